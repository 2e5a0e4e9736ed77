"""When a failed inbound event is tried again, and when crm-qb gives up on it (pure; docs/architecture.md §7).

Three kinds of failure, decided by the caller from the error (``crm_qb.sync.pipeline.retry.kind_of``):

- ``wait``: the work had to wait (the connection's lock, a rate limit, Redis away). Nothing is wrong with the
  event: no attempt is counted and nothing is scheduled; the job's own retry or the sweep runs it again.
- ``transient``: the other side failed for now (5xx, network, a version race). Outages last minutes to hours,
  so these back off along ``TRANSIENT_SCHEDULE`` for about 24 hours before the event is failed; and as soon as
  the connection answers again its waiting events resume at once (``crm_qb.sync.pipeline.outage``), so a long
  step of the schedule never delays the recovery.
- ``error``: a permanent refusal or an unexpected error: ``ERROR_SCHEDULE`` (8 attempts over about 1.5 hours,
  in case a deploy or a race fixes it), then failed for a person to look at (``crm-qb replay``).

A schedule is written as seconds, ``N*COUNT`` repeating a step: ``CRM_QB_RETRY_SCHEDULE`` replaces the transient
one (the fault suite compresses a one-hour outage with it).
"""

from __future__ import annotations

from datetime import timedelta

WAIT = "wait"
TRANSIENT = "transient"
ERROR = "error"
KINDS = (WAIT, TRANSIENT, ERROR)

TRANSIENT_SCHEDULE_TEXT = "5,30,120,300,600,900,1800,3600*23"
ERROR_SCHEDULE: tuple[float, ...] = (5, 30, 120, 300, 600, 1800, 3600)


def parse_schedule(text: str) -> tuple[float, ...]:
    """Seconds between attempts from ``"5,30,3600*23"``; ValueError with the bad part when malformed."""
    steps: list[float] = []
    for part in (p.strip() for p in text.split(",")):
        value, _, count = part.partition("*")
        try:
            seconds, times = float(value), int(count) if count else 1
        except ValueError:
            raise ValueError(f"expected seconds or seconds*count, got {part!r}") from None
        if not (seconds >= 0 and 1 <= times <= 10_000 and seconds != float("inf")):
            raise ValueError(f"expected seconds >= 0 and a count of 1 to 10000, got {part!r}")
        steps += [seconds] * times
    if not steps:
        raise ValueError("a retry schedule needs at least one step")
    return tuple(steps)


TRANSIENT_SCHEDULE = parse_schedule(TRANSIENT_SCHEDULE_TEXT)


def next_delay(kind: str, attempts: int, transient: tuple[float, ...] = TRANSIENT_SCHEDULE) -> timedelta | None:
    """How long after its ``attempts``-th failed attempt an event waits; None: give up (the event fails)."""
    if kind not in KINDS:
        raise ValueError(f"unknown failure kind {kind!r}; known: {', '.join(KINDS)}")
    if kind == WAIT:
        return timedelta(0)
    schedule = transient if kind == TRANSIENT else ERROR_SCHEDULE
    if attempts > len(schedule):
        return None
    return timedelta(seconds=schedule[max(attempts, 1) - 1])


def total_span(schedule: tuple[float, ...]) -> timedelta:
    """How long a schedule keeps retrying in all (what an outage may last without loss)."""
    return timedelta(seconds=sum(schedule))
