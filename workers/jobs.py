"""The jobs. Each takes ids, reloads state, is safe to run twice, and has a deterministic job id.

Inbound events are not processed one job per event: ingress *wakes* one drain job per QBO realm (or CRM
connection), which processes every pending event of that realm in arrival order. A burst of a thousand webhooks
therefore costs one enqueue and one job, and later issues can fetch the changes of a whole burst with one CDC
call. A wake is a Redis ``SET NX`` whose value becomes part of the job id; the job clears it before it reads the
pending events, so an event arriving while a drain runs always wakes another one and is never left behind.

A drain lists a batch of pending events, then, per connection, takes the connection's sync lock (Redis),
re-checks which events are still pending, fetches the QBO state for the whole batch in bulk and runs one unit of
work per customer / contact / transaction (``crm_qb.sync.inbound``). No database transaction is open during the
HTTP calls: each unit stores its result and marks its events processed in one short transaction at the end. A
job killed mid-way leaves its events pending; the sweep re-runs them and the stored base makes the re-run
write nothing twice (the echo of our own write equals the base). A failing unit counts an attempt on its own
events only; the others go on, and the drain raises at the end so RQ retries it. Jobs run in the app context
that the worker pushes (see ``workers.worker``).
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Callable
from datetime import timedelta

from flask import current_app
from redis import Redis
from rq import get_current_job
from sqlalchemy import ColumnElement, func, select, update

from crm_qb.db import db, utcnow
from crm_qb.models import AuditEntry, Connection, EventSource, EventStatus, InboundEvent, QboStatus
from crm_qb.runtime import runtime
from crm_qb.sync.context import SyncContext, build_context, connection_lock, settings_of
from crm_qb.sync.inbound import Unit, crm_units, qbo_units
from crm_qb.sync.links import EventRef, mark_processed
from workers.followup_jobs import enqueue_after_sync
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
    """Sync every pending QBO event of ``realm_id`` (coalesced per customer); return how many were processed."""
    _clear_wake(EventSource.QBO, realm_id)
    routes = _connections_of_realm(realm_id)
    where = (InboundEvent.source == EventSource.QBO) & (InboundEvent.realm_id == realm_id)
    return _drain(where, lambda events: _apply_qbo_batch(events, routes))


@job(INBOUND, timeout=600, retry_intervals=(5, 30, 120))
def drain_crm_connection(connection_id: str) -> int:
    """Sync every pending CRM event of one connection (coalesced per contact); return how many were processed."""
    _clear_wake(EventSource.CRM, connection_id)
    where = (InboundEvent.source == EventSource.CRM) & (InboundEvent.connection_id == int(connection_id))
    return _drain(where, lambda events: _apply_crm_batch(events, int(connection_id)))


_DRAINS: dict[EventSource, Callable[[str], int]] = {
    EventSource.QBO: drain_qbo_realm,
    EventSource.CRM: drain_crm_connection,
}


def _clear_wake(source: EventSource, key: str) -> None:
    rt = runtime()
    rt.redis.delete(_wake_key(rt.settings.queue_prefix, source, key))


def _drain(where: ColumnElement[bool], apply: Callable[[list[EventRef]], None]) -> int:
    """Apply pending events batch by batch (each seen once per run); raise the first failure at the end."""
    processed, after, failure = 0, 0, None
    while True:
        events = _pending(where, after)
        if not events:
            break
        after = events[-1].id
        try:
            apply(events)
        except _Recorded as exc:
            failure = failure or exc.cause
        except Exception as exc:
            db.session.rollback()
            for event in events:
                _record_failure(event.id, exc)
            failure = failure or exc
        processed += _count_settled([event.id for event in events])
        if len(events) < DRAIN_BATCH:
            break
    if failure is not None:
        raise failure
    return processed


def _pending(where: ColumnElement[bool], after: int) -> list[EventRef]:
    rows = db.session.scalars(
        select(InboundEvent).where(where, InboundEvent.status == EventStatus.PENDING, InboundEvent.id > after)
        .order_by(InboundEvent.id).limit(DRAIN_BATCH)
    ).all()
    events = [EventRef(r.id, r.entity, r.entity_id, r.operation, r.occurred_at, dict(r.payload or {})) for r in rows]
    db.session.rollback()
    return events


def _count_settled(ids: list[int]) -> int:
    # Under the connection lock, the events of this batch that are no longer pending were settled by this job.
    count = db.session.scalar(select(func.count()).select_from(InboundEvent).where(
        InboundEvent.id.in_(ids), InboundEvent.status.in_((EventStatus.PROCESSED, EventStatus.IGNORED))))
    db.session.rollback()
    return int(count or 0)


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


def _apply_qbo_batch(events: list[EventRef], connection_ids: list[int]) -> None:
    """Sync a batch of one realm's events for every connection of the realm, each under its connection lock."""
    if not connection_ids:
        _ignore([event.id for event in events], "unknown realm")
        return
    for connection_id in connection_ids:
        _run_for_connection(connection_id, events, qbo_units)


def _apply_crm_batch(events: list[EventRef], connection_id: int) -> None:
    """Sync a batch of one connection's CRM events under its connection lock."""
    _run_for_connection(connection_id, events, crm_units)


def _run_for_connection(connection_id: int, events: list[EventRef],
                        plan: Callable[[SyncContext, list[EventRef]], list[Unit]]) -> None:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    rt = runtime(app)
    current = get_current_job()
    job_id = current.id if current else None
    if not settings_of(connection_id).enabled:
        _skip_disabled(connection_id, job_id, events)
        return
    if not _connected(connection_id):
        # Needs reconnect or disconnected: call nobody, count no attempt, keep the events pending. Reconnecting
        # wakes the drains again (wake_connection), so no CRM change made meanwhile is lost.
        log.info("connection %s is not connected to QuickBooks; %s event(s) wait for reconnect", connection_id,
                 len(events))
        return
    ctx = build_context(app, connection_id, job_id)
    try:
        with connection_lock(rt.redis, rt.settings.queue_prefix, connection_id):
            still = _still_pending(events)
            if still:
                _run_units(ctx, plan(ctx, still))
    finally:
        ctx.close()
        # Invoices mirrored by this drain (committed unit by unit) get their follow-ups checked right away.
        enqueue_after_sync(rt.redis, rt.settings.queue_prefix, connection_id, ctx.invoices_changed)


def _connected(connection_id: int) -> bool:
    status = db.session.scalar(select(Connection.qbo_status).where(Connection.id == connection_id))
    db.session.rollback()
    return status == QboStatus.CONNECTED


def wake_connection(redis: Redis, prefix: str, connection_id: int) -> int:
    """Wake the drains of a connection's pending events (after it is (re)connected); return how many woke."""
    rows = db.session.execute(
        select(InboundEvent.source, InboundEvent.realm_id).distinct()
        .where(InboundEvent.status == EventStatus.PENDING,
               (InboundEvent.connection_id == connection_id) | (InboundEvent.source == EventSource.QBO))
    ).all()
    realm = db.session.scalar(select(Connection.qbo_realm_id).where(Connection.id == connection_id))
    db.session.rollback()
    keys = {(EventSource.CRM, str(connection_id)) for row in rows if row.source == EventSource.CRM}
    keys |= {(EventSource.QBO, realm) for row in rows if row.source == EventSource.QBO and row.realm_id == realm}
    return sum(1 for source, key in keys if key and wake(redis, prefix, source, key))


def _still_pending(events: list[EventRef]) -> list[EventRef]:
    """The events no other drain settled while this one waited for the lock."""
    pending = set(db.session.scalars(select(InboundEvent.id).where(
        InboundEvent.id.in_([e.id for e in events]), InboundEvent.status == EventStatus.PENDING)))
    db.session.rollback()
    return [event for event in events if event.id in pending]


def _run_units(ctx: SyncContext, units: list[Unit]) -> None:
    """Run every unit; a failing unit counts an attempt on its events and the first failure is re-raised."""
    failure: Exception | None = None
    for unit in units:
        try:
            outcome = unit.run()
            log.info("sync %s connection=%s job=%s: %s", unit.label, ctx.connection_id, ctx.job_id, outcome)
        except Exception as exc:
            db.session.rollback()
            log.warning("sync %s connection=%s job=%s failed: %s", unit.label, ctx.connection_id, ctx.job_id,
                        type(exc).__name__)
            for event_id in unit.events:
                _record_failure(event_id, exc)
            failure = failure or exc
    if failure is not None:
        raise _Recorded(failure)


class _Recorded(Exception):
    """A unit failure whose attempts are already counted (the drain must not count them again)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


def _skip_disabled(connection_id: int, job_id: str | None, events: list[EventRef]) -> None:
    for event in events:
        db.session.add(AuditEntry(
            connection_id=connection_id, inbound_event_id=event.id, job_id=job_id, action="sync.disabled",
            direction=event_direction(event), entity=event.entity, entity_id=event.entity_id,
            diff={"operation": event.operation}, outcome="skipped",
        ))
    mark_processed([event.id for event in events], connection_id)
    db.session.commit()


def event_direction(event: EventRef) -> str:
    """The sync direction an event starts: QBO events go to the CRM, CRM events to QBO."""
    return "crm_to_qbo" if event.entity == "Contact" else "qbo_to_crm"


def _ignore(ids: list[int], reason: str) -> None:
    db.session.execute(update(InboundEvent).where(InboundEvent.id.in_(ids), InboundEvent.status == EventStatus.PENDING)
                       .values(status=EventStatus.IGNORED, status_reason=reason, processed_at=utcnow()))
    db.session.commit()


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
