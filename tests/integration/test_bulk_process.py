"""``crm-qb worker`` serves its live queues while a bulk job runs: the bulk queue is served by a child process at
lower CPU priority that lives and dies with it (workers/bulk_process.py). Real worker processes, real Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from redis import Redis
from rq import Queue

from crm_qb.runtime import runtime
from tests.conftest import settings_env
from tests.support import ROOT, wait_for
from workers.queues import _pid_alive

SQLITE = pytest.mark.parametrize("backend", ["sqlite"])  # the worker processes' database: either does
IDLE_CLASS = hasattr(os, "SCHED_IDLE")  # Linux: the bulk child's idle CPU priority; elsewhere its niceness only


def _probe(redis: Redis, name: str, stage: str) -> dict[str, Any] | None:
    raw = redis.get(f"probe:{name}:{stage}")
    return json.loads(raw) if raw else None


def _parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


class Rig:
    def __init__(self, app: Flask, tmp_path: Path) -> None:
        rt = runtime(app)
        self.redis, self.keys, self.tmp_path = rt.redis, rt.keys, tmp_path
        self.env = {**os.environ, **settings_env(rt.settings), "CRM_QB_LOG_LEVEL": "WARNING"}
        self.workers: list[subprocess.Popen[bytes]] = []

    def worker(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.tmp_path / f"worker-{len(self.workers)}.log").open("wb")
        process = subprocess.Popen([sys.executable, "-m", "crm_qb.cli", "worker", *args], cwd=ROOT, env=self.env,
                                   stdout=log, stderr=subprocess.STDOUT)
        self.workers.append(process)
        return process

    def enqueue(self, queue: str, func: str, name: str) -> None:
        Queue(self.keys.queue(queue), connection=self.redis).enqueue(f"tests.support.worker_probe.{func}", name,
                                                                        job_timeout=120)

    def started(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        return wait_for(lambda: _probe(self.redis, name, "started"), timeout, what=f"{name} to start")

    def done(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        return wait_for(lambda: _probe(self.redis, name, "done"), timeout, what=f"{name} to run")

    def release(self, name: str) -> None:
        self.redis.set(f"probe:{name}:release", 1)

    def stop_all(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.kill()
                process.wait(10)


@pytest.fixture
def rig(app: Flask, tmp_path: Path) -> Iterator[Rig]:
    made = Rig(app, tmp_path)
    yield made
    made.stop_all()


IDLE_START_TIMEOUT = 120.0


def _names() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"bulk-{tag}", f"live-{tag}"


def _bulk_job_on(rig: Rig, *args: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start ``crm-qb worker ARGS``, run one bulk job on it to its end; the worker, and what the job saw of the
    process running it (pid, niceness, idle class)."""
    worker = rig.worker(*args)
    bulk, _ = _names()
    rig.enqueue("backfill", "hold", bulk)
    # An idle-class process gets a core only when nothing else wants one: on a host the parallel test run keeps
    # busy, its start (imports, the app) can take far longer than a normal process's.
    held = rig.started(bulk, timeout=IDLE_START_TIMEOUT)
    rig.release(bulk)
    rig.done(bulk, timeout=IDLE_START_TIMEOUT)
    return worker, held


@SQLITE
def test_live_jobs_run_while_a_bulk_job_holds_the_workers_child(rig: Rig) -> None:
    worker = rig.worker()
    bulk, live = _names()
    rig.enqueue("backfill", "hold", bulk)
    held = rig.started(bulk, timeout=IDLE_START_TIMEOUT)
    assert held["pid"] != worker.pid and _parent_of(held["pid"]) == worker.pid  # the worker's child runs it
    assert held["nice"] == 10  # at --bulk-nice's default, the whole process
    assert held["idle"] is IDLE_CLASS  # and in Linux's idle class (--bulk-idle, the default)
    rig.enqueue("inbound", "note", live)
    ran = rig.done(live, timeout=10)  # while the bulk job still holds its process
    assert ran["pid"] == worker.pid and ran["nice"] == 0 and ran["idle"] is False
    assert _probe(rig.redis, bulk, "done") is None
    rig.release(bulk)
    rig.done(bulk)

    worker.send_signal(signal.SIGTERM)  # a warm stop of the worker stops its child too
    assert worker.wait(30) == 0
    wait_for(lambda: not _pid_alive(held["pid"]), 10, what="the child to end")


@SQLITE
def test_no_bulk_idle_leaves_the_child_at_its_niceness_only(rig: Rig) -> None:
    worker, held = _bulk_job_on(rig, "--no-bulk-idle", "--bulk-nice", "7")
    assert _parent_of(held["pid"]) == worker.pid
    assert (held["nice"], held["idle"]) == (7, False)


@SQLITE
def test_a_worker_of_the_bulk_queue_runs_idle_when_asked_and_a_live_one_refuses_to(rig: Rig) -> None:
    idle, held = _bulk_job_on(rig, "--queues", "backfill", "--idle")
    assert held["pid"] == idle.pid and (held["nice"], held["idle"]) == (10, IDLE_CLASS)  # its bulk thread: --bulk-nice
    refused = subprocess.run([sys.executable, "-m", "crm_qb.cli", "worker", "--queues", "inbound,backfill", "--idle"],
                             cwd=ROOT, env=rig.env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2
    assert "--idle: the idle CPU priority is for a worker of the backfill queue only, not of inbound" in refused.stderr
    assert "Traceback" not in refused.stderr


@SQLITE
def test_without_a_bulk_process_a_live_job_waits_for_the_bulk_job(rig: Rig) -> None:
    worker = rig.worker("--no-bulk-process")
    bulk, live = _names()
    rig.enqueue("backfill", "hold", bulk)
    held = rig.started(bulk)
    assert held["pid"] == worker.pid  # on a niced thread of the worker itself
    rig.enqueue("inbound", "note", live)
    time.sleep(2.0)
    assert _probe(rig.redis, live, "done") is None  # queued behind the bulk job
    rig.release(bulk)
    rig.done(live)


@SQLITE
def test_the_child_dies_with_a_killed_worker_and_is_started_again_when_it_dies_alone(rig: Rig) -> None:
    worker = rig.worker()
    first, second = _names()
    rig.enqueue("backfill", "hold", first)
    child = rig.started(first)["pid"]
    os.kill(child, signal.SIGKILL)  # the child alone: the worker starts another, which takes the next bulk job
    wait_for(lambda: not _pid_alive(child), 10, what="the child to die")
    rig.enqueue("backfill", "hold", second)
    again = rig.started(second)["pid"]
    assert again != child and _parent_of(again) == worker.pid

    worker.send_signal(signal.SIGKILL)  # the worker killed outright takes its child (and its job) along
    worker.wait(10)
    wait_for(lambda: not _pid_alive(again), 10, what="the orphaned child to die")
    assert _probe(rig.redis, second, "done") is None


def test_a_zombie_worker_process_counts_as_dead() -> None:
    """A killed worker's child is killed with it and may stay a zombie (its new parent need not reap it): its job
    must count as abandoned, so that the first sync's resume can queue the job again."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_for(lambda: Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z", 10,
             what="the process to end unreaped")
    assert not _pid_alive(process.pid)
    process.wait()
    assert not _pid_alive(process.pid)
    assert _pid_alive(os.getpid())
