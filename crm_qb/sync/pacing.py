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

Pausing only while a live job runs leaves the bulk work running beside the live jobs that start between two
looks, and on a host whose cores the live work keeps busy that is most of them: even in Linux's idle scheduling
class a bulk thread on a core delays a waking live thread now and then by a scheduler tick (4 ms on the bench
host), and what it drives (the database, the CRM) runs at normal priority. So while live work is about (seen in
the last ``live_memory`` seconds), bulk work also keeps to ``share`` of one core: after it used ``cpu`` seconds of
CPU (its process's, every thread, and in a worker its local database backends': crm_qb.backend_cpu) it owes a
rest of ``cpu * (1 - share) / share``, and takes it before it looks again. One rest lasts at most ``max_rest``; what
a long item owes beyond it is carried to the next looks, so over a stretch of live work the share holds however
the bulk work's items are cut (a page of a first sync can take half a second of CPU, and forgiving what one rest
could not take gave a first sync 12 % of a core at a 10 % share). The share is the host's: when ``sharers`` says
that other bulk processes of the host are at work too (a first sync in one worker's bulk child and the drains of
its backlog in another's), each keeps to its part of it. CPU, not wall time: a bulk job waiting for a
rate limit or a slow answer takes nothing from the live work and owes no rest for it. Without live work it runs
flat out, and owes nothing: a first sync on a quiet host is as quick as the rate limits let it be. Live work is
about when a look saw it in the last ``live_memory`` seconds, or when ``recent`` says a live job of the host ran
in that time: a bulk process that did not look for a while (the drains of a first sync's backlog alternate
between two processes, each waiting for its next job meanwhile) would otherwise be forgiven what it owes. (A worker
that runs bulk jobs on a thread beside its live ones, ``--no-bulk-process``, counts their CPU too and rests more
than it needs.)

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
# While live work is about, bulk work takes at most this share of one core (1: only the pauses above).
PACE_SHARE = 1.0
# Live work seen this recently is "about"; the longest rest the share takes at once (a longer debt is carried).
PACE_LIVE_MEMORY_SECONDS = 1.0
PACE_MAX_REST_SECONDS = 2.0


def no_pace() -> None:
    """Work on without pausing (not bulk work, or pacing turned off)."""


def alone() -> int:
    """No other bulk process shares the host's share of a core."""
    return 1


def unseen() -> bool:
    """Nothing tells of live work beyond what the pacer's own looks see."""
    return False


@dataclass
class LivePacer:
    """Called between a bulk job's items: while ``busy()`` says live work is under way, sleep (bounded); while
    live work is about, keep to ``share`` of a core, split among the host's ``sharers()`` bulk processes."""

    busy: Callable[[], bool]
    sharers: Callable[[], int] = alone  # the host's bulk processes at work, this one included (asked after busy)
    recent: Callable[[], bool] = unseen  # live work ran within live_memory though busy did not see it (after busy)
    interval: float = PACE_INTERVAL_SECONDS
    step: float = PACE_STEP_SECONDS
    max_wait: float = PACE_MAX_WAIT_SECONDS
    share: float = PACE_SHARE
    live_memory: float = PACE_LIVE_MEMORY_SECONDS
    max_rest: float = PACE_MAX_REST_SECONDS
    clock: Callable[[], float] = time.monotonic
    cpu: Callable[[], float] = time.process_time
    sleep: Callable[[float], None] = time.sleep
    checks: int = 0
    paused: int = 0
    paused_seconds: float = 0.0
    _next_check: float = 0.0
    _cpu_at_look: float | None = None  # the process's CPU seconds when the last look ended
    _live_seen: float = float("-inf")
    _owed: float = 0.0  # rest owed to the live work and not yet taken (an item longer than max_rest allows)

    def __call__(self) -> None:
        now = self.clock()
        if now < self._next_check:
            return
        self.checks += 1
        ran = self.cpu() - self._cpu_at_look if self._cpu_at_look is not None else 0.0
        started, slept = now, False
        busy = self._look()
        if self.share < 1.0 and now - self._live_seen <= self.live_memory:
            share = self.share / max(1, self.sharers())  # this process's part of the host's share
            self._owed += max(ran, 0.0) * (1.0 - share) / share  # the live work's share of the time
            if self._owed > 0:
                rest = min(self.max_rest, self._owed)  # the rest of a long item's debt waits for the next looks
                self.sleep(rest)
                self._owed -= rest
                slept, busy = True, self._look()
        else:
            self._owed = 0.0  # no live work about (or no share): nothing is owed to it
        while busy:
            if self.clock() - started >= self.max_wait:
                break
            self.sleep(self.step)
            slept, busy = True, self._look()
        ended = self.clock()
        if slept:
            self.paused += 1
            self.paused_seconds += ended - started
        self._next_check = ended + self.interval
        self._cpu_at_look = self.cpu()

    def _look(self) -> bool:
        """Ask ``busy``, and remember when live work was last seen: under way now, or, says ``recent``, within
        ``live_memory`` while this process did not look (it waited for its next job, or for an answer)."""
        busy = self.busy()
        if busy or self.recent():
            self._live_seen = self.clock()
        return busy
