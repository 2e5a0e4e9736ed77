"""The jobs. Each takes ids, reloads state, is safe to run twice, and has a deterministic job id.

They run inside the app context that the worker pushes (see ``workers.worker``).
"""

from __future__ import annotations

import logging
from datetime import timedelta

from rq import get_current_job
from sqlalchemy import select, update

from crm_qb.db import db, utcnow
from crm_qb.models import AuditEntry, EventStatus, InboundEvent
from crm_qb.runtime import runtime
from workers.queues import INBOUND, SCHEDULED, enqueue, job

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
SWEEP_BATCH = 5000


def inbound_job_id(event_id: int) -> str:
    """The job id of the processing job of inbound event ``event_id``."""
    return f"inbound-{event_id}"


@job(INBOUND, timeout=300, retry_intervals=(5, 30, 120))
def process_inbound_event(event_id: int) -> str:
    """Process one stored inbound event exactly once; return what happened ("processed" or "skipped")."""
    try:
        return _process(event_id)
    except Exception as exc:
        db.session.rollback()
        _record_failure(event_id, exc)
        raise


def _process(event_id: int) -> str:
    # The guarded UPDATE is the claim: a concurrent run blocks on the row (PostgreSQL) or the write lock
    # (SQLite) and then finds the status changed, so the work inside this transaction happens once.
    claimed = db.session.execute(
        update(InboundEvent)
        .where(InboundEvent.id == event_id, InboundEvent.status == EventStatus.PENDING)
        .values(status=EventStatus.PROCESSED, processed_at=utcnow())
    ).rowcount
    if not claimed:
        db.session.rollback()
        log.info("inbound event %s already handled; skipping", event_id)
        return "skipped"
    event = db.session.get(InboundEvent, event_id)
    assert event is not None  # the claim just updated it
    db.session.add(AuditEntry(
        connection_id=event.connection_id, inbound_event_id=event.id, job_id=_current_job_id(),
        action="event.received", direction=event.source.value, entity=event.entity, entity_id=event.entity_id,
        diff={"operation": event.operation}, outcome="ok",
    ))
    db.session.commit()
    log.info("inbound event %s processed (connection %s, %s %s)", event_id, event.connection_id,
             event.entity, event.operation)
    return "processed"


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
    """Re-enqueue events stored but not processed within the sweep delay; return how many were enqueued."""
    rt = runtime()
    cutoff = utcnow() - timedelta(seconds=rt.settings.sweep_after_seconds)
    ids = db.session.scalars(
        select(InboundEvent.id)
        .where(InboundEvent.status == EventStatus.PENDING, InboundEvent.received_at <= cutoff)
        .order_by(InboundEvent.id)
        .limit(SWEEP_BATCH)
    ).all()
    db.session.rollback()
    count = sum(
        1 for event_id in ids
        if enqueue(rt.redis, rt.settings.queue_prefix, process_inbound_event, event_id,
                   job_id=inbound_job_id(event_id))
    )
    if count:
        log.warning("sweep re-enqueued %s stranded inbound events", count)
    return count


def _current_job_id() -> str | None:
    current = get_current_job()
    return current.id if current else None
