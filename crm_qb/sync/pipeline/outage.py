"""A connection's outage: one side (QBO or the CRM) stopped answering, and what ends it.

When sync work finds a side down (``failures.side_down``: 5xx or unreachable after the clients' own retries) the
connection records it (``note_down``: side, since, reason), health reports it (degraded, with the reason), the
rest of that batch waits without attempts, and the scheduler probes that side every minute with its catch-up poll
(the CDC poll for QBO, the CRM poll for the CRM). The first success on that side ends the outage (``note_up``):
every event of the connection still backing off is released at once and its drains are woken, so nothing waits
out a long step of the retry schedule after the side is back (docs/architecture.md §7). While the outage lasts
no drain calls that side (``hold``): its changes wait, uncounted, for the probe.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta

from crm_qb.db import db, utcnow
from crm_qb.jobqueue import JobQueue
from crm_qb.models import Connection
from crm_qb.sync.pipeline import events
from crm_qb.sync.pipeline.failures import CRM, QBO

log = logging.getLogger(__name__)

BOTH = (QBO, CRM)
PROBE_EVERY_SECONDS = 60


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


def hold(connection_id: int, ids: Sequence[int], side: str, now: datetime | None = None) -> datetime:
    """Let events wait, uncounted, while ``side`` is down for the connection; return until when (committed).

    Only the probe calls a side that is down: a drain calling it for each change would fail again, after the
    client's retry, on a worker other tenants need. The probe's success (``note_up``) releases them at once; if
    it has not come by then, they come due in a minute and wait again.
    """
    until = (now or utcnow()) + timedelta(seconds=PROBE_EVERY_SECONDS)
    events.defer(ids, until, f"waiting: {side} is not answering")
    log.info("connection %s: %s event(s) wait for %s until %s", connection_id, len(ids), side, until.isoformat())
    return until


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
    events.wake_connection(jobs, connection_id)
    lasted = (utcnow() - since).total_seconds() if since else 0.0
    log.warning("connection %s: %s answers again after %.0f s; %s waiting event(s) resume", connection_id, side,
                lasted, released)
    return released
