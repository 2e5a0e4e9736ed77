"""The inbox: store notices as inbound events under their unique key, then (after commit) enqueue them.

A redelivered notice hits the unique constraint and is skipped by the database itself (no check-then-insert),
so a retry storm from Intuit or a CRM is harmless. Waking the drain job happens only after the commit, so a worker
never looks for a row that is not there yet; if Redis is down at that moment the event is still stored and the
sweep enqueues it later. The hot path does one INSERT, one COMMIT and (in a burst, rarely more than) one Redis
round trip: routing a realm to its connections is left to the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.dialects import postgresql, sqlite

from crm_qb.db import db
from crm_qb.models import EventSource, EventStatus, InboundEvent
from crm_qb.runtime import runtime
from webhooks.notices import Notice
from workers import jobs

log = logging.getLogger(__name__)

def record_qbo(notices: Sequence[Notice]) -> list[Notice]:
    """Store QBO notices (routing a realm to its connections is the worker's job); return the new pending ones."""
    rows = [_row(EventSource.QBO, n, None, None if n.synced else f"entity {n.entity} is not synced")
            for n in notices]
    return _insert(rows, notices)


def record_crm(notices: Sequence[Notice], connection_id: int) -> list[Notice]:
    """Store CRM notices of one connection; return the new pending ones."""
    return _insert([_row(EventSource.CRM, n, connection_id, None) for n in notices], notices)


def dispatch_qbo(new: Iterable[Notice]) -> int:
    """After commit: wake one drain job per realm that got new events; return how many were woken."""
    return _wake(EventSource.QBO, {n.realm_id for n in new if n.realm_id})


def dispatch_crm(new: Iterable[Notice], connection_id: int) -> int:
    """After commit: wake the connection's drain job if it got new events; return how many were woken."""
    return _wake(EventSource.CRM, {str(connection_id)} if any(True for _ in new) else set())


def _wake(source: EventSource, keys: set[str]) -> int:
    rt = runtime()
    try:
        return sum(1 for key in sorted(keys) if jobs.wake(rt.redis, rt.settings.queue_prefix, source, key))
    except RedisError as exc:
        # The events are committed; the sweep enqueues them once Redis is back. Never fail the webhook.
        log.warning("enqueue failed, leaving events for the sweep: %s", type(exc).__name__)
        return 0


def _row(source: EventSource, notice: Notice, connection_id: int | None, ignore_reason: str | None) -> dict[str, Any]:
    return {
        "source": source, "dedupe_key": notice.dedupe_key[:400], "connection_id": connection_id,
        "realm_id": notice.realm_id,
        "entity": notice.entity, "entity_id": notice.entity_id, "operation": notice.operation,
        "occurred_at": notice.occurred_at, "payload": notice.payload,
        "status": EventStatus.IGNORED if ignore_reason else EventStatus.PENDING, "status_reason": ignore_reason,
        "attempts": 0,
    }


def _insert(rows: list[dict[str, Any]], notices: Sequence[Notice]) -> list[Notice]:
    """Insert rows, skipping duplicates by (source, dedupe_key); return the notices of inserted pending rows."""
    if not rows:
        return []
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # Parameters passed separately (not .values(rows)) keep the compiled statement in SQLAlchemy's cache.
    table = InboundEvent.__table__  # Core, not the ORM bulk path: this is the hot path of every webhook
    stmt = (
        insert(table)
        .on_conflict_do_nothing(index_elements=["source", "dedupe_key"])
        .returning(table.c.dedupe_key, table.c.status)
    )
    connection = db.session.connection()
    result = connection.execute(stmt, rows) if len(rows) > 1 else connection.execute(stmt, rows[0])
    inserted = {row.dedupe_key for row in result if row.status == EventStatus.PENDING}
    return [n for n in notices if n.dedupe_key[:400] in inserted]
