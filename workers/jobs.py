"""The jobs. Each takes ids, reloads state, is safe to run twice, and has a deterministic job id.

Inbound events are not processed one job per event: ingress *wakes* one drain job per QBO realm (or CRM
connection), which processes every pending event of that realm in arrival order. A burst of a thousand webhooks
therefore costs one enqueue and one job, and later issues can fetch the changes of a whole burst with one CDC
call. A wake is a Redis ``SET NX`` whose value becomes part of the job id; the job clears it before it reads the
pending events, so an event arriving while a drain runs always wakes another one and is never left behind.

Every event is claimed by a guarded UPDATE inside the transaction that does its work, so a second drain that
races the first finds it already processed: the work happens once. Jobs run in the app context that the worker
pushes (see ``workers.worker``).
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Callable
from datetime import timedelta

from redis import Redis
from rq import get_current_job
from sqlalchemy import ColumnElement, select, update

from crm_qb.db import db, utcnow
from crm_qb.models import AuditEntry, Connection, EventSource, EventStatus, InboundEvent, QboStatus
from crm_qb.runtime import runtime
from workers.queues import INBOUND, SCHEDULED, enqueue, job

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
DRAIN_BATCH = 200
SWEEP_BATCH = 5000
WAKE_TTL_SECONDS = 600
ROUTED_STATUSES = (QboStatus.CONNECTED, QboStatus.NEEDS_RECONNECT)


def wake(redis: Redis, prefix: str, source: EventSource, key: str) -> str | None:
    """Make sure a drain job will run for ``key`` (a realm id or a connection id); return its job id if new."""
    token = uuid.uuid4().hex[:16]
    if not redis.set(_wake_key(prefix, source, key), token, nx=True, ex=WAKE_TTL_SECONDS):
        return None  # a drain job is queued and has not started yet: it will see the new events
    job_id = drain_job_id(source, key, token)
    enqueue(redis, prefix, _DRAINS[source], key, job_id=job_id)
    return job_id


def drain_job_id(source: EventSource, key: str, suffix: str) -> str:
    """A job id for a drain of ``key``; RQ allows only letters, digits, ``_`` and ``-`` in ids."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", key)[:64]
    if safe != key:
        safe += "_" + hashlib.sha256(key.encode()).hexdigest()[:10]
    return f"drain-{source.value}-{safe}-{suffix}"


def _wake_key(prefix: str, source: EventSource, key: str) -> str:
    return f"{prefix}:wake:{source.value}:{key}"


@job(INBOUND, timeout=600, retry_intervals=(5, 30, 120))
def drain_qbo_realm(realm_id: str) -> int:
    """Process every pending QBO event of ``realm_id`` in arrival order; return how many were processed."""
    _clear_wake(EventSource.QBO, realm_id)
    routes = _connections_of_realm(realm_id)
    where = (InboundEvent.source == EventSource.QBO) & (InboundEvent.realm_id == realm_id)
    return _drain(where, lambda event: _apply_qbo_event(event, routes))


@job(INBOUND, timeout=600, retry_intervals=(5, 30, 120))
def drain_crm_connection(connection_id: str) -> int:
    """Process every pending CRM event of one connection in arrival order; return how many were processed."""
    _clear_wake(EventSource.CRM, connection_id)
    where = (InboundEvent.source == EventSource.CRM) & (InboundEvent.connection_id == int(connection_id))
    return _drain(where, _apply_crm_event)


_DRAINS: dict[EventSource, Callable[[str], int]] = {
    EventSource.QBO: drain_qbo_realm,
    EventSource.CRM: drain_crm_connection,
}


def _clear_wake(source: EventSource, key: str) -> None:
    rt = runtime()
    rt.redis.delete(_wake_key(rt.settings.queue_prefix, source, key))


def _drain(where: ColumnElement[bool], apply: Callable[[InboundEvent], str]) -> int:
    processed = 0
    while True:
        ids = list(db.session.scalars(
            select(InboundEvent.id).where(where, InboundEvent.status == EventStatus.PENDING)
            .order_by(InboundEvent.id).limit(DRAIN_BATCH)
        ))
        db.session.rollback()
        for event_id in ids:
            processed += process_event(event_id, apply)
        if len(ids) < DRAIN_BATCH:
            return processed


def process_event(event_id: int, apply: Callable[[InboundEvent], str]) -> int:
    """Claim and apply one event in one transaction; return 1 if this call processed it, else 0."""
    try:
        return _claim_and_apply(event_id, apply)
    except Exception as exc:
        db.session.rollback()
        _record_failure(event_id, exc)
        raise


def _claim_and_apply(event_id: int, apply: Callable[[InboundEvent], str]) -> int:
    # The guarded UPDATE is the claim: a concurrent run blocks on the row (PostgreSQL) or the write lock
    # (SQLite) and then finds the status changed, so the work inside this transaction happens once.
    claimed = db.session.execute(
        update(InboundEvent)
        .where(InboundEvent.id == event_id, InboundEvent.status == EventStatus.PENDING)
        .values(status=EventStatus.PROCESSED, processed_at=utcnow())
    ).rowcount
    if not claimed:
        db.session.rollback()
        return 0
    event = db.session.get(InboundEvent, event_id)
    assert event is not None  # the claim just updated it
    outcome = apply(event)
    if outcome != "processed":
        event.status, event.status_reason = EventStatus.IGNORED, outcome
    db.session.commit()
    log.info("inbound event %s (%s %s %s): %s", event_id, event.source.value, event.entity, event.operation,
             outcome)
    return 1


def _connections_of_realm(realm_id: str) -> list[int]:
    ids = list(db.session.scalars(
        select(Connection.id).where(Connection.qbo_realm_id == realm_id, Connection.qbo_status.in_(ROUTED_STATUSES))
        .order_by(Connection.id)
    ))
    db.session.rollback()
    return ids


def _apply_qbo_event(event: InboundEvent, connection_ids: list[int]) -> str:
    """Apply one QBO change to every connection of its realm (later issues sync it; now it is audited)."""
    if not connection_ids:
        return "unknown realm"
    for connection_id in connection_ids:
        _audit(event, connection_id)
    event.connection_id = connection_ids[0]
    return "processed"


def _apply_crm_event(event: InboundEvent) -> str:
    """Apply one CRM change (later issues sync it; now it is audited)."""
    _audit(event, event.connection_id)
    return "processed"


def _audit(event: InboundEvent, connection_id: int | None) -> None:
    current = get_current_job()
    db.session.add(AuditEntry(
        connection_id=connection_id, inbound_event_id=event.id, job_id=current.id if current else None,
        action="event.received", direction=event.source.value, entity=event.entity, entity_id=event.entity_id,
        diff={"operation": event.operation}, outcome="ok",
    ))


def _record_failure(event_id: int, exc: Exception) -> None:
    """Count a failed attempt in its own transaction; give up (status failed) after MAX_ATTEMPTS."""
    event = db.session.get(InboundEvent, event_id)
    if event is None or event.status != EventStatus.PENDING:
        return
    event.attempts += 1
    event.status_reason = f"{type(exc).__name__}: {exc}"[:2000]
    if event.attempts >= MAX_ATTEMPTS:
        event.status = EventStatus.FAILED
    db.session.commit()
    log.warning("inbound event %s failed (attempt %s): %s", event_id, event.attempts, type(exc).__name__)


@job(SCHEDULED, timeout=300)
def sweep_inbound_events() -> int:
    """Enqueue drains for events stored but not processed within the sweep delay; return how many drains."""
    rt = runtime()
    cutoff = utcnow() - timedelta(seconds=rt.settings.sweep_after_seconds)
    stranded = db.session.execute(
        select(InboundEvent.source, InboundEvent.realm_id, InboundEvent.connection_id)
        .where(InboundEvent.status == EventStatus.PENDING, InboundEvent.received_at <= cutoff)
        .group_by(InboundEvent.source, InboundEvent.realm_id, InboundEvent.connection_id)
        .limit(SWEEP_BATCH)
    ).all()
    db.session.rollback()
    keys = {(row.source, row.realm_id if row.source == EventSource.QBO else str(row.connection_id))
            for row in stranded}
    period = int(utcnow().timestamp() // 60)
    count = sum(
        1 for source, key in sorted(keys, key=lambda k: (k[0].value, k[1] or ""))
        if key and enqueue(rt.redis, rt.settings.queue_prefix, _DRAINS[source], key,
                           job_id=drain_job_id(source, key, f"sweep-{period}"))
    )
    if count:
        log.warning("sweep enqueued %s drain job(s) for stranded inbound events", count)
    return count
