"""QuickBooks housekeeping jobs: keeping idle connections' tokens alive and reading company details.

A busy connection refreshes its access token every hour as it works, which also renews its refresh token
(docs/qbo/facts.md §1.4). An idle one does not, and its refresh token would eventually lapse. Every six hours the
scheduler runs ``refresh_idle_tokens``, which queues one ``refresh_connection_tokens`` job per connected connection that
has been idle for a week (its access token expired more than ``IDLE_AFTER`` ago) or whose refresh token expires
within ``EXPIRING_WITHIN``. The refresh goes through the TokenManager (Redis lock, re-read, save before use),
which also records the new refresh token's expiry, and marks the connection "needs reconnect" on invalid_grant.
A connection that needs reconnect is never selected, and the TokenManager refuses it without calling Intuit.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import or_, select

from crm_qb.db import db, utcnow
from crm_qb.keys import JobIds
from crm_qb.models import Connection, QboStatus
from crm_qb.qbo.company import refresh_company
from crm_qb.qbo.tokens import NeedsReconnectError, NotConnectedError
from crm_qb.runtime import runtime
from workers.queues import SCHEDULED, SYNC, enqueue, job

log = logging.getLogger(__name__)

REFRESH_EVERY_SECONDS = 6 * 3600
IDLE_AFTER = timedelta(days=7)
EXPIRING_WITHIN = timedelta(days=30)


def connections_due_for_refresh(now: datetime, only: int | None = None) -> list[int]:
    """Ids of connected connections whose access token expired and that are idle or whose refresh token ends soon."""
    query = select(Connection.id).where(
        Connection.qbo_status == QboStatus.CONNECTED,
        Connection.qbo_refresh_token_encrypted.is_not(None),
        Connection.qbo_access_expires_at <= now,
        or_(Connection.qbo_access_expires_at <= now - IDLE_AFTER,
            Connection.qbo_refresh_expires_at <= now + EXPIRING_WITHIN),
    )
    if only is not None:
        query = query.where(Connection.id == only)
    ids = list(db.session.scalars(query.order_by(Connection.id)))
    db.session.rollback()
    return ids


@job(SCHEDULED, timeout=300)
def refresh_idle_tokens() -> int:
    """Queue a token refresh for every connection due one (see the module docstring); return how many."""
    rt = runtime()
    ids = connections_due_for_refresh(utcnow())
    for connection_id in ids:
        enqueue(rt.redis, rt.keys, refresh_connection_tokens, str(connection_id),
                job_id=JobIds.refresh_tokens(connection_id))
    log.info("QBO idle token refresh: %d connection(s) queued", len(ids))
    return len(ids)


@job(SCHEDULED, timeout=120, retry_intervals=(60, 600, 3600))
def refresh_connection_tokens(connection_id: str) -> str:
    """Refresh the connection's tokens if still due: "refreshed", "skipped" or "needs_reconnect".

    Intuit being unavailable raises (a transient error: RQ retries); a refused refresh token is recorded on the
    connection by the TokenManager and reported here, not retried.
    """
    if not connections_due_for_refresh(utcnow(), only=int(connection_id)):
        return "skipped"  # refreshed, disconnected or marked since it was queued
    try:
        runtime().qbo().tokens.access_token(connection_id)
    except NeedsReconnectError:
        log.warning("QBO idle refresh: connection needs reconnect connection=%s", connection_id)
        return "needs_reconnect"
    except NotConnectedError:
        return "skipped"
    log.info("QBO idle refresh done connection=%s", connection_id)
    return "refreshed"


@job(SYNC, timeout=300, retry_intervals=(30, 300, 1800))
def load_company_details(connection_id: str) -> str:
    """Read the company's details and reference lists into the connection: "loaded" or "skipped"."""
    connection = db.session.get(Connection, int(connection_id))
    if connection is None or connection.qbo_status != QboStatus.CONNECTED:
        db.session.rollback()
        return "skipped"
    try:
        with runtime().qbo().client_for(connection) as client:
            refresh_company(db.session, connection, client)
    except NeedsReconnectError:
        db.session.rollback()
        return "skipped"
    db.session.commit()
    return "loaded"
