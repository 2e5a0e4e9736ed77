"""Bulk work gives way to live work: a pause between the bulk work's items while live work is under way.

A first sync (its preview and its run) and a plain backfill work through thousands of objects in one job. On a
host whose cores are shared with the live drains, every item of it costs CPU there and in the processes it drives:
the database backends answering its queries, the CRM creating its contacts, crm-qb's web receiving their echo
hooks. A worker's niceness (``crm-qb worker --nice``) lowers the worker's own priority, but not theirs: they run at
normal priority whenever the bulk job asks something of them. So the bulk job itself holds back: between items it
asks ``busy`` (a live job is waiting in a live queue, or running on this host) and, while it is, sleeps in short
steps; the items it drives downstream wait with it. To keep the bulk work moving whatever the live load, one pause
lasts at most ``max_wait``, and the next check comes ``interval`` after the pause ends (so the bulk work gets at
least ``interval / (interval + max_wait)`` of the time, and the probe's cost stays bounded).

The pacer is a plain callable (``SyncServices.pace``); outside bulk jobs it is ``no_pace``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

# Checks at most this often: the bulk work runs this long between two looks at the live work.
PACE_INTERVAL_SECONDS = 0.05
# One pause's step, and its longest: live work never stops bulk work for longer (it then runs one interval).
PACE_STEP_SECONDS = 0.005
PACE_MAX_WAIT_SECONDS = 0.25


def no_pace() -> None:
    """Work on without pausing (not bulk work, or pacing turned off)."""


@dataclass
class LivePacer:
    """Called between a bulk job's items: while ``busy()`` says live work is under way, sleep (bounded)."""

    busy: Callable[[], bool]
    interval: float = PACE_INTERVAL_SECONDS
    step: float = PACE_STEP_SECONDS
    max_wait: float = PACE_MAX_WAIT_SECONDS
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    checks: int = 0
    paused: int = 0
    paused_seconds: float = 0.0
    _next_check: float = 0.0

    def __call__(self) -> None:
        now = self.clock()
        if now < self._next_check:
            return
        self.checks += 1
        started, slept = now, False
        while self.busy():
            if self.clock() - started >= self.max_wait:
                break
            self.sleep(self.step)
            slept = True
        ended = self.clock()
        if slept:
            self.paused += 1
            self.paused_seconds += ended - started
        self._next_check = ended + self.interval
