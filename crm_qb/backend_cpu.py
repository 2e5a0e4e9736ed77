"""The CPU that a process's PostgreSQL backends use on this host: a bulk job's share of a core counts it too.

While live work is about, a bulk job keeps to a share of one core (crm_qb.sync.pacing). Its own process's CPU is
not all it takes from the live work: every statement it sends runs in a PostgreSQL backend, a process of its own
at normal priority. When the database runs on the same host as the workers, as on a one-host install and on the
bench, that backend's CPU comes from the cores the live drains wait for. Beside a 3,000-customer first sync,
PostgreSQL used 0.03 to 0.04 cores more than without it, against the bulk child's own 0.13 to 0.14
(docs/benchmarks-history.md, "The bulk share made to hold").

So the pacer's clock adds what the process's backends used. PostgreSQL keeps no per-backend CPU figure a client
can ask for, but a backend is a process, and on Linux ``/proc/<pid>/stat`` holds its user and system time
(crm_qb.procstat). Each
connection names its backend (``backend_pid``, which psycopg reads from the connection's start-up, no query).
A connection is watched from its first check-out after this clock exists, and only its CPU from then on counts.

Only a backend this host can see counts: the connection goes to a local address (a Unix socket, a loopback
address, ``localhost``) and the process behind the pid is a ``postgres`` one. A database on another host costs
that host's cores, not the live workers' (its load shows in the statements' own latency), so nothing is added.
When a backend ends (its connection closed), what it used up to the last reading stays counted; a pid the system
gives to a new process is told apart by the process's start time.

SQLite runs inside the process: its work is already the process's own CPU, and nothing is watched.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from crm_qb.procstat import ProcessStat, read_process


def is_local_host(host: str | None) -> bool:
    """Whether a libpq ``host`` (psycopg's ``ConnectionInfo.host``) is this machine: a Unix socket's directory, a
    loopback address or ``localhost``."""
    if not host:
        return False
    if host.startswith("/") or host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass
class _Watched:
    started: int
    first: float
    last: float


class BackendCpu:
    """CPU seconds used by the local PostgreSQL backends of ``engine``'s connections since each was first checked
    out here (``seconds``); always 0 on another database, or when no backend is visible."""

    def __init__(self, engine: Engine, read: Callable[[int], ProcessStat | None] = read_process) -> None:
        self._read = read
        self._watched: dict[int, _Watched] = {}
        self._ended = 0.0  # what backends that are gone used while watched
        self._lock = threading.Lock()  # check-outs may come from several threads (a worker without a bulk process)
        if engine.dialect.name == "postgresql":  # for the process's lifetime, as the engine's
            event.listen(engine, "checkout", self._checked_out)

    def seconds(self) -> float:
        """The watched backends' CPU seconds since each was first seen (never less than an earlier answer)."""
        with self._lock:
            total = self._ended
            for pid, watched in list(self._watched.items()):
                now = self._read(pid)
                if now is None or now.started != watched.started or now.cpu_seconds < watched.last:
                    used = watched.last - watched.first  # it ended, or its pid is another process's now
                    self._ended += used
                    total += used
                    del self._watched[pid]
                    continue
                watched.last = now.cpu_seconds
                total += now.cpu_seconds - watched.first
            return total

    def watch(self, dbapi_connection: Any) -> None:
        """Watch the backend of ``dbapi_connection`` (a psycopg connection) from now on, if this host can see it;
        the pool calls this on each check-out, and a backend already watched is left as it is."""
        info = getattr(dbapi_connection, "info", None)  # psycopg's ConnectionInfo
        pid = getattr(info, "backend_pid", None)
        if not isinstance(pid, int) or pid in self._watched or not is_local_host(getattr(info, "host", None)):
            return
        process = self._read(pid)
        if process is None or process.name != "postgres":
            return
        with self._lock:
            self._watched.setdefault(pid, _Watched(process.started, process.cpu_seconds, process.cpu_seconds))

    def _checked_out(self, dbapi_connection: Any, _record: ConnectionPoolEntry,
                     _proxy: PoolProxiedConnection) -> None:
        self.watch(dbapi_connection)
