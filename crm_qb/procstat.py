"""One process as Linux's ``/proc/<pid>/stat`` shows it: its name, state, start time and CPU.

Several parts read it: a bulk job's share counts its local database backends' CPU (crm_qb.backend_cpu), the
watchdog tells a zombie from a live bulk child (workers.queues), and the benchmarks measure the processes they
start. The file's second field, the process's name in parentheses, may itself hold spaces and parentheses, so
the fields after it are split from the last ``)``; field n (numbered from 1, as ``proc(5)`` does) is then
``fields[n - 3]``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class ProcessStat:
    """One reading of a process: its name, its state (``R``, ``S``, ``Z``...), when it started (clock ticks since
    boot, which tells a new process under a reused pid apart) and its CPU seconds (user and system)."""

    name: str
    state: str
    started: int
    cpu_seconds: float


def read_process(pid: int) -> ProcessStat | None:
    """Process ``pid`` as ``/proc/<pid>/stat`` shows it; None when there is no such process to read (it ended, it
    lives in another PID namespace or on another host, or this system has no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None
    opened, closed = text.find("("), text.rfind(")")
    fields = text[closed + 2:].split()  # from the third field (state) on
    if opened < 0 or closed < opened or len(fields) < 20:
        return None
    try:  # state (3), utime (14), stime (15), starttime (22)
        return ProcessStat(text[opened + 1:closed], fields[0], int(fields[19]),
                           (int(fields[11]) + int(fields[12])) / _TICKS_PER_SECOND)
    except ValueError:
        return None
