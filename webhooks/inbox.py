"""The inbox: store notices as inbound events under their unique key, then (after commit) enqueue them.

A redelivered notice hits the unique constraint and is skipped by the database itself (no check-then-insert),
so a retry storm from Intuit or a CRM is harmless. Enqueueing happens only after the commit, so a worker never
looks for a row that is not there yet; if Redis is down at that moment the event is still stored and the sweep
enqueues it later.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from crm_qb.db import db
from crm_qb.models import Connection, EventSource, EventStatus, InboundEvent, QboStatus
from crm_qb.runtime import runtime
from webhooks.notices import Notice
from workers import jobs
from workers.queues import enqueue

log = logging.getLogger(__name__)

ROUTED_STATUSES = (QboStatus.CONNECTED, QboStatus.NEEDS_RECONNECT)


def record_qbo(notices: Sequence[Notice]) -> list[int]:
    """Store QBO notices, routed to the connections of their realm; return the ids of new pending events."""
    realms = {n.realm_id for n in notices if n.realm_id}
    routes = _connections_by_realm(realms)
    rows: list[dict[str, Any]] = []
    for notice in notices:
        connection_ids = routes.get(notice.realm_id or "", [])
        if not connection_ids:
            rows.append(_row(EventSource.QBO, notice, None, notice.dedupe_key, "unknown realm"))
            continue
        for connection_id in connection_ids:
            reason = None if notice.synced else f"entity {notice.entity} is not synced"
            key = notice.dedupe_key if len(connection_ids) == 1 else f"{notice.dedupe_key}@{connection_id}"
            rows.append(_row(EventSource.QBO, notice, connection_id, key, reason))
    return _insert(rows)


def record_crm(notices: Sequence[Notice], connection_id: int) -> list[int]:
    """Store CRM notices of one connection; return the ids of new pending events."""
    return _insert([_row(EventSource.CRM, n, connection_id, n.dedupe_key, None) for n in notices])


def dispatch(event_ids: Iterable[int]) -> int:
    """Enqueue the processing job of each event (call after commit); return how many were enqueued."""
    rt = runtime()
    count = 0
    try:
        for event_id in event_ids:
            if enqueue(rt.redis, rt.settings.queue_prefix, jobs.process_inbound_event, event_id,
                       job_id=jobs.inbound_job_id(event_id)):
                count += 1
    except RedisError as exc:
        # The events are committed; the sweep enqueues them once Redis is back. Never fail the webhook.
        log.warning("enqueue failed, leaving events for the sweep: %s", type(exc).__name__)
    return count


def _connections_by_realm(realms: set[str]) -> dict[str, list[int]]:
    if not realms:
        return {}
    rows = db.session.execute(
        select(Connection.qbo_realm_id, Connection.id)
        .where(Connection.qbo_realm_id.in_(realms), Connection.qbo_status.in_(ROUTED_STATUSES))
        .order_by(Connection.id)
    ).all()
    routes: dict[str, list[int]] = {}
    for realm_id, connection_id in rows:
        routes.setdefault(realm_id, []).append(connection_id)
    return routes


def _row(source: EventSource, notice: Notice, connection_id: int | None, key: str,
         ignore_reason: str | None) -> dict[str, Any]:
    return {
        "source": source, "dedupe_key": key[:400], "connection_id": connection_id, "realm_id": notice.realm_id,
        "entity": notice.entity, "entity_id": notice.entity_id, "operation": notice.operation,
        "occurred_at": notice.occurred_at, "payload": notice.payload,
        "status": EventStatus.IGNORED if ignore_reason else EventStatus.PENDING, "status_reason": ignore_reason,
        "attempts": 0,
    }


def _insert(rows: list[dict[str, Any]]) -> list[int]:
    """Insert rows, skipping duplicates by (source, dedupe_key); return ids of inserted pending rows."""
    if not rows:
        return []
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(InboundEvent)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["source", "dedupe_key"])
        .returning(InboundEvent.id, InboundEvent.status)
    )
    return [row.id for row in db.session.execute(stmt) if row.status == EventStatus.PENDING]
