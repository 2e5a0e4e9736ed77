"""Jobs for tests of worker processes (``tests/integration/test_bulk_process.py``): they report which process ran
them, at which CPU niceness and whether in the idle class, and a bulk one holds its worker until the test releases
it. Kept in Redis under ``probe:<name>:…``."""

from __future__ import annotations

import json
import os
import time

from crm_qb.runtime import runtime

HOLD_AT_MOST_SECONDS = 60.0


def _report(name: str, stage: str) -> None:
    runtime().redis.set(f"probe:{name}:{stage}", json.dumps(
        {"pid": os.getpid(), "nice": os.getpriority(os.PRIO_PROCESS, 0), "at": time.time(),
         "idle": hasattr(os, "SCHED_IDLE") and os.sched_getscheduler(0) == os.SCHED_IDLE}))


def hold(name: str) -> None:
    """Report the start, wait until ``probe:<name>:release`` exists (at most a minute), report the end."""
    _report(name, "started")
    redis, deadline = runtime().redis, time.monotonic() + HOLD_AT_MOST_SECONDS
    while not redis.exists(f"probe:{name}:release") and time.monotonic() < deadline:
        time.sleep(0.05)
    _report(name, "done")


def note(name: str) -> None:
    """Report that this job ran."""
    _report(name, "done")
