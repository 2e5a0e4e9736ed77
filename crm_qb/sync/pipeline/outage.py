"""A connection's outage: one side (QBO or the CRM) stopped answering, and what ends it.

When sync work finds a side down (``failures.side_down``: 5xx or unreachable after the clients' own retries) the
connection records it (``note_down``: side, since, reason), health reports it (degraded, with the reason), the
rest of that batch waits without attempts, and the scheduler probes that side every minute with its catch-up poll
(the CDC poll for QBO, the CRM poll for the CRM). The first success on that side ends the outage (``note_up``):
every event of the connection still backing off is released at once and its drains are woken, so nothing waits
out a long step of the retry schedule after the side is back (docs/architecture.md §7). While the outage lasts
one drain per turn calls that side (``take_turn``), without the client's retry; the others' changes wait for
the next turn, uncounted (``hold``).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime

from redis import Redis

from crm_qb.db import db, utcnow
from crm_qb.jobqueue import JobQueue
from crm_qb.keys import RedisKeys
from crm_qb.models import Connection
from crm_qb.sync.pipeline import events
from crm_qb.sync.pipeline.failures import CRM, QBO

log = logging.getLogger(__name__)

BOTH = (QBO, CRM)
PROBE_EVERY_SECONDS = 60
FIRST_TURN_SECONDS = 5.0  # the first step of the transient retry schedule (crm_qb.sync.rules.retry)
# The longest wait between two turns: a turn of a company answering 5xx is one short job, so four a minute cost
# the workers nothing, while a company that answers again is found within 15 s once changes arrive (a minute,
# the probe's period, made the fault suite's qbo-5xx storm converge in 60 s instead of 6).
LAST_TURN_SECONDS = 15.0


def note_down(connection_id: int, side: str, exc: BaseException, now: datetime | None = None) -> None:
    """Record that ``side`` does not answer for the connection (since the first such failure; committed)."""
    connection = db.session.get(Connection, connection_id)
    if connection is None:
        db.session.rollback()
        return
    if connection.outage_side is None:
        connection.outage_side, connection.outage_since = side, now or utcnow()
        log.warning("connection %s: %s is not answering (%s); its changes wait and are retried", connection_id,
                    side, type(exc).__name__)
    if connection.outage_side == side:
        connection.outage_reason = f"{side} not answering: {type(exc).__name__}: {exc}"[:1000]
    db.session.commit()


def take_turn(redis: Redis, keys: RedisKeys, connection_id: int, since: datetime | None,
              now: datetime | None = None) -> float | None:
    """None when this drain may call the side that is down for the connection (the turn is now taken); else the
    seconds until the next turn.

    One drain per turn calls it; the turns back off with the outage's age (5 s, then as long as it has lasted, at
    most ``LAST_TURN_SECONDS``), so a blip ends within seconds while a failing company is called a few times a
    minute however many changes it receives, not by every drain on a worker other tenants need.
    """
    age = ((now or utcnow()) - since).total_seconds() if since is not None else 0.0
    step = min(LAST_TURN_SECONDS, max(FIRST_TURN_SECONDS, age))
    key = keys.outage_turn(connection_id)
    if redis.set(key, "1", nx=True, px=int(step * 1000)):
        return None
    left = redis.pttl(key)  # negative when the key expired meanwhile: the next turn is due at the next step
    return left / 1000 if left > 0 else FIRST_TURN_SECONDS


def hold(connection_id: int, ids: Sequence[int], side: str, until: datetime) -> None:
    """Let events wait, uncounted, until ``until`` while ``side`` is down for the connection (committed).

    The end of the outage (``note_up``) releases them at once.
    """
    events.defer(ids, until, f"waiting: {side} is not answering")
    if ids:
        log.info("connection %s: %s event(s) wait for %s until %s", connection_id, len(ids), side,
                 until.isoformat())


def note_up(connection_id: int, sides: Collection[str], jobs: JobQueue) -> int:
    """``sides`` answered: end an outage on one of them, release the waiting events, wake them; return how many."""
    connection = db.session.get(Connection, connection_id)
    if connection is None or connection.outage_side not in sides:
        db.session.rollback()
        return 0
    side, since, realm = connection.outage_side, connection.outage_since, connection.qbo_realm_id
    connection.outage_side = connection.outage_since = connection.outage_reason = None
    db.session.commit()
    released = events.release(events.of_connection(connection_id, realm))
    events.wake_connection(jobs, connection_id, now=True)  # not at the delayed drain's turn: now
    lasted = (utcnow() - since).total_seconds() if since else 0.0
    log.warning("connection %s: %s answers again after %.0f s; %s waiting event(s) resume", connection_id, side,
                lasted, released)
    return released
