"""The CPU of a process's local PostgreSQL backends (crm_qb.backend_cpu), which a bulk job's share counts: which
backends are watched, what each adds, and that the figure never goes back."""

from __future__ import annotations

import os
import subprocess
import time
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine

from crm_qb.backend_cpu import BackendCpu, is_local_host
from crm_qb.procstat import ProcessStat, read_process


class Processes:
    """A fake /proc: pid → the process's reading, changed by the test."""

    def __init__(self) -> None:
        self.table: dict[int, ProcessStat] = {}
        self.reads = 0

    def read(self, pid: int) -> ProcessStat | None:
        self.reads += 1
        return self.table.get(pid)

    def run(self, pid: int, cpu: float, name: str = "postgres", started: int = 100) -> None:
        self.table[pid] = ProcessStat(name, "S", started, cpu)


def _connection(pid: int, host: str | None = "127.0.0.1") -> SimpleNamespace:
    return SimpleNamespace(info=SimpleNamespace(backend_pid=pid, host=host))


def _clock(processes: Processes) -> BackendCpu:
    # an engine of the PostgreSQL dialect; creating it connects to nothing
    return BackendCpu(create_engine("postgresql+psycopg://crm_qb@127.0.0.1:1/none"), read=processes.read)


def test_a_backend_counts_only_what_it_used_after_it_was_first_seen() -> None:
    processes = Processes()
    processes.run(41, cpu=7.5)  # a pooled connection that already worked before the bulk job
    clock = _clock(processes)
    clock.watch(_connection(41))
    assert clock.seconds() == 0.0
    processes.run(41, cpu=8.25)
    processes.run(42, cpu=1.0)
    clock.watch(_connection(42))
    processes.run(42, cpu=1.5)
    assert clock.seconds() == pytest.approx(0.75 + 0.5)
    clock.watch(_connection(41))  # checked out again: its first reading stays
    assert clock.seconds() == pytest.approx(1.25)


def test_an_ended_backend_keeps_what_it_used_and_a_reused_pid_starts_afresh() -> None:
    processes = Processes()
    processes.run(41, cpu=2.0)
    processes.run(42, cpu=3.0)
    clock = _clock(processes)
    clock.watch(_connection(41))
    clock.watch(_connection(42))
    processes.run(41, cpu=2.5)
    processes.run(42, cpu=3.25)
    assert clock.seconds() == pytest.approx(0.75)
    del processes.table[41]  # its connection closed
    processes.run(42, cpu=0.5, name="postgres", started=900)  # pid 42 ended and was given to a new backend
    assert clock.seconds() == pytest.approx(0.75)  # nothing lost, nothing counted twice, never less
    clock.watch(_connection(42))  # the new backend behind pid 42, from its first sight
    processes.run(42, cpu=0.75, started=900)
    assert clock.seconds() == pytest.approx(1.0)


def test_only_a_postgres_backend_of_this_host_is_watched() -> None:
    processes = Processes()
    for pid in (50, 51, 52, 53, 54):
        processes.run(pid, cpu=1.0)
    processes.run(55, cpu=1.0, name="python3")  # the pid is some other local process (another PID namespace's)
    clock = _clock(processes)
    clock.watch(_connection(50, host="db.example.com"))  # a database on another host: its cores are not ours
    clock.watch(_connection(51, host="10.1.2.3"))
    clock.watch(_connection(52, host=None))
    clock.watch(_connection(55))
    clock.watch(_connection(56))  # no such process here
    clock.watch(SimpleNamespace())  # not a psycopg connection
    for pid in (50, 51, 52, 55):
        processes.run(pid, cpu=9.0)
    assert clock.seconds() == 0.0
    clock.watch(_connection(53, host="/var/run/postgresql"))  # a Unix socket
    clock.watch(_connection(54, host="::1"))
    processes.run(53, cpu=1.5)
    processes.run(54, cpu=1.25)
    assert clock.seconds() == pytest.approx(0.75)


def test_on_sqlite_nothing_is_watched() -> None:
    processes = Processes()
    engine = create_engine("sqlite://")
    clock = BackendCpu(engine, read=processes.read)
    with engine.connect() as connection:  # in-process: its work is the process's own CPU already
        assert connection.exec_driver_sql("SELECT 1").scalar() == 1
    assert clock.seconds() == 0.0 and processes.reads == 0


def test_local_hosts() -> None:
    assert is_local_host("/tmp") and is_local_host("localhost") and is_local_host("127.0.0.1")
    assert is_local_host("127.3.2.1") and is_local_host("::1")
    assert not is_local_host("db") and not is_local_host("192.168.1.5") and not is_local_host("")


def test_reading_a_process_of_this_host() -> None:
    before = read_process(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # burn a little CPU of our own
        pass
    after = read_process(os.getpid())
    assert before is not None and after is not None and after.state == "R"  # reading it, it runs
    assert after.started == before.started and after.cpu_seconds - before.cpu_seconds >= 0.2
    child = subprocess.Popen(["sleep", "0"])
    child.wait()  # reaped: its pid names no process now
    assert read_process(child.pid) is None
