"""Letting a burst of a realm's webhooks finish arriving before its drain reads QBO: a CDC call per burst, not a
query per drain.

A burst of changes (a bulk edit, an import, a script) reaches crm-qb as webhooks spread over seconds. A drain woken
by the first of them saw only a few events and read them with one ``Id IN`` query; the next drain, woken
meanwhile, saw a few more and made another query; only the drains that met 20 or more events used CDC, whose answer
carries the rest of the burst (``fetch``). So a burst of 1,000 changes cost two small queries before its CDC calls.

A drain now looks at how its realm's webhooks are arriving before it lists its first batch (``settle``). When the
realm's pending events received within the last BURST_WINDOW came in at least BURST_ARRIVALS separate arrivals
(distinct ``received_at``: one webhook request, or one group of requests committed together, is one arrival), a
burst is arriving: the drain waits until no event arrived for PAUSE (looking every LOOK), at most WAIT_MAX, and then
reads the whole batch with one CDC call even when it holds fewer than 20 events (``ChangeCache.burst``).

Arrivals count, not events: the drain woken by a burst's first webhook usually starts before the fifth has arrived,
and under the earlier rule (five events) it read the few it met with a query of its own, a call more or not for the
burst depending on how fast a worker picked the job up. One notification carrying several entities is one arrival:
it has arrived whole and is read at once. A single edit (one webhook, whatever it carries) is never a burst and
never waits: it costs one count query. Two unrelated edits whose webhooks arrive within BURST_WINDOW wait PAUSE for
more, then are read together.

A CDC answer holds every object changed since the batch's oldest change, so it also serves the burst's later events
whose webhooks are still on the way (Intuit may send them minutes later), here and, through Redis, in the realm's
next drains.

The rule is pure (``arriving``, ``settled``); the looking is one indexed count of the realm's recent pending events.
Web and worker hosts compare ``received_at`` (the web host's clock) with their own clock: a worker whose clock is
behind waits at most WAIT_MAX; one ahead by more than BURST_WINDOW sees no burst and reads as before.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import distinct, func, select

from crm_qb.db import db, utcnow
from crm_qb.models import EventSource, EventStatus, InboundEvent

log = logging.getLogger(__name__)

BURST_ARRIVALS = 2  # this many separate arrivals of a realm's events within BURST_WINDOW: a burst is arriving
BURST_WINDOW = timedelta(seconds=0.5)
PAUSE = timedelta(seconds=0.2)  # no new event for this long: the burst has arrived (or paused)
WAIT_MAX = 1.0  # seconds a drain waits for a burst at most (QBO -> CRM target: p95 <= 2 s from receipt)
LOOK = 0.05  # seconds between looks while waiting


@dataclass(frozen=True)
class Arrivals:
    """How a realm's events were arriving at ``at``: those received within BURST_WINDOW, in how many separate
    arrivals (distinct receipt times), and the newest one."""

    at: datetime
    recent: int
    newest: datetime | None
    arrivals: int = 1


def arriving(seen: Arrivals) -> bool:
    """Whether a burst is arriving (a drain should wait for it and read it with CDC)."""
    return seen.recent > 0 and seen.arrivals >= BURST_ARRIVALS


def settled(seen: Arrivals) -> bool:
    """Whether the events have stopped arriving (none for PAUSE)."""
    return seen.newest is None or seen.at - seen.newest >= PAUSE


def arrivals(realm_id: str, now: datetime) -> Arrivals:
    """The realm's pending QBO events received within BURST_WINDOW before ``now``; ends the read."""
    recent, apart, newest = db.session.execute(
        select(func.count(), func.count(distinct(InboundEvent.received_at)),
               func.max(InboundEvent.received_at)).where(
            InboundEvent.status == EventStatus.PENDING, InboundEvent.received_at >= now - BURST_WINDOW,
            InboundEvent.source == EventSource.QBO, InboundEvent.realm_id == realm_id)).one()
    db.session.rollback()  # no snapshot kept: the next look must see the events stored meanwhile
    return Arrivals(now, int(recent or 0), newest, int(apart or 0))


def settle(realm_id: str) -> bool:
    """Wait while a burst of the realm's webhooks is arriving (at most WAIT_MAX); whether one was arriving."""
    seen = arrivals(realm_id, utcnow())
    if not arriving(seen):
        return False
    began = time.monotonic()
    while not settled(seen) and time.monotonic() - began < WAIT_MAX:
        pause(LOOK)
        seen = arrivals(realm_id, utcnow())
    log.info("realm %s: a burst is arriving (%s events, %s arrivals in %.1f s); its drain waited %.2f s and reads "
             "it with CDC",
             realm_id, seen.recent, seen.arrivals, BURST_WINDOW.total_seconds(), time.monotonic() - began)
    return True


def pause(seconds: float) -> None:
    """Wait between looks (tests replace it to deliver webhooks exactly while a drain waits)."""
    time.sleep(seconds)
