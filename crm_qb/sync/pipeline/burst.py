"""Letting a burst of a realm's webhooks finish arriving before its drain reads QBO: a CDC call per burst, not a
query per drain.

A burst of changes (a bulk edit, an import, a script) reaches crm-qb as webhooks spread over seconds. A drain woken
by the first of them saw only a few events and read them with one ``Id IN`` query; the next drain, woken
meanwhile, saw a few more and made another query; only the drains that met 20 or more events used CDC, whose answer
carries the rest of the burst (``fetch``). So a burst of 1,000 changes cost two small queries before its CDC calls.

A drain now looks at how its realm's webhooks are arriving before it lists its first batch (``settle``). When at
least BURST_EVENTS of the realm's pending events were received within the last BURST_WINDOW, a burst is arriving:
the drain waits until no event arrived for PAUSE (looking every LOOK), at most WAIT_MAX, and then reads the whole
batch with one CDC call even when it holds fewer than 20 events (``ChangeCache.burst``). A CDC answer holds every
object changed since the batch's oldest change, so it also serves the burst's later events whose webhooks are still
on the way (Intuit may send them minutes later), here and, through Redis, in the realm's next drains. A single edit
(one event, or a few at the same time) is never a burst and never waits: it costs one count query.

The rule is pure (``arriving``, ``settled``); the looking is one indexed count of the realm's recent pending events.
Web and worker hosts compare ``received_at`` (the web host's clock) with their own clock: a worker whose clock is
behind waits at most WAIT_MAX; one ahead by more than BURST_WINDOW sees no burst and reads as before.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select

from crm_qb.db import db, utcnow
from crm_qb.models import EventSource, EventStatus, InboundEvent

log = logging.getLogger(__name__)

BURST_EVENTS = 5  # this many of a realm's events received within BURST_WINDOW: a burst is arriving
BURST_WINDOW = timedelta(seconds=0.5)
PAUSE = timedelta(seconds=0.2)  # no new event for this long: the burst has arrived (or paused)
WAIT_MAX = 1.0  # seconds a drain waits for a burst at most (QBO -> CRM target: p95 <= 2 s from receipt)
LOOK = 0.05  # seconds between looks while waiting


@dataclass(frozen=True)
class Arrivals:
    """How a realm's events were arriving at ``at``: those received within BURST_WINDOW, and the newest one."""

    at: datetime
    recent: int
    newest: datetime | None


def arriving(seen: Arrivals) -> bool:
    """Whether a burst is arriving (a drain should wait for it and read it with CDC)."""
    return seen.recent >= BURST_EVENTS


def settled(seen: Arrivals) -> bool:
    """Whether the events have stopped arriving (none for PAUSE)."""
    return seen.newest is None or seen.at - seen.newest >= PAUSE


def arrivals(realm_id: str, now: datetime) -> Arrivals:
    """The realm's pending QBO events received within BURST_WINDOW before ``now``; ends the read."""
    recent, newest = db.session.execute(
        select(func.count(), func.max(InboundEvent.received_at)).where(
            InboundEvent.status == EventStatus.PENDING, InboundEvent.received_at >= now - BURST_WINDOW,
            InboundEvent.source == EventSource.QBO, InboundEvent.realm_id == realm_id)).one()
    db.session.rollback()  # no snapshot kept: the next look must see the events stored meanwhile
    return Arrivals(now, int(recent or 0), newest)


def settle(realm_id: str) -> bool:
    """Wait while a burst of the realm's webhooks is arriving (at most WAIT_MAX); whether one was arriving."""
    seen = arrivals(realm_id, utcnow())
    if not arriving(seen):
        return False
    began = time.monotonic()
    while not settled(seen) and time.monotonic() - began < WAIT_MAX:
        pause(LOOK)
        seen = arrivals(realm_id, utcnow())
    log.info("realm %s: a burst is arriving (%s events in %.1f s); its drain waited %.2f s and reads it with CDC",
             realm_id, seen.recent, BURST_WINDOW.total_seconds(), time.monotonic() - began)
    return True


def pause(seconds: float) -> None:
    """Wait between looks (tests replace it to deliver webhooks exactly while a drain waits)."""
    time.sleep(seconds)
