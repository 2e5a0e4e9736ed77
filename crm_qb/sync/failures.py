"""Failures an operator must see: events that failed for good, and records a sync could not apply.

Three kinds, listed together (DESIGN §11 "Failures"):
- an **event** (a webhook or CRM hook) that failed ``MAX_ATTEMPTS`` times is ``failed`` in ``inbound_events``;
  one still being retried is pending with attempts counted and is listed as *retrying*;
- a **record** a CDC poll or a sync could not apply (a permanent refusal of one object) is an audit entry with
  outcome ``failed`` (``sync/pipeline/poll.py``);
- a **sync_record**: a record a finished first sync or history import failed (``sync_run_records``, action
  ``failed``; the run's report lists it too).

Retry puts an event back to pending (attempts reset) and wakes its drain; a failed record is retried by storing
a new inbound event for that object, so it takes the ordinary, idempotent path; a failed sync record is retried
by a worker as the report's "Retry failed" does (``firstsync.service.retry_failed``, only the chosen records).
Dismiss settles an event as ignored with the reason "dismissed", marks a failed record ``failed_dismissed``, or
sets a sync record's ``dismissed_at`` (its report still says it failed). All are audited with who did it.
Nothing here calls QBO or the CRM: the drains and the workers do the work.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, update

from crm_qb.db import db, utcnow
from crm_qb.errors import PermanentError
from crm_qb.jobqueue import JobQueue
from crm_qb.models import AuditEntry, Connection, EventSource, EventStatus, InboundEvent, SyncRunRecord
from crm_qb.sync.firstsync import store as runs
from crm_qb.sync.pipeline.events import CONTACT, MAX_ATTEMPTS, Notice, drain_key, store
from crm_qb.sync.rules.failure_words import explain

EVENT, RECORD, SYNC_RECORD = "event", "record", "sync_record"
KINDS = (EVENT, RECORD, SYNC_RECORD)
RUN_LABELS = {runs.FIRST: "first sync", runs.HISTORY: "history import"}
FAILED_RECORD = "failed"
DISMISSED_RECORD = "failed_dismissed"
RETRIED_RECORD = "failed_retried"


class FailureNotFound(PermanentError):
    """No failure of that kind and id on this connection (the message says which)."""


@dataclass(frozen=True)
class Failure:
    """One failure as the console and the API show it."""

    kind: str  # "event", "record" or "sync_record"
    id: int
    state: str  # "failed" or "retrying"
    source: str  # "qbo" or "crm"
    entity: str
    entity_id: str | None
    operation: str | None
    words: str
    error: str
    code: str | None
    intuit_tid: str | None
    attempts: int
    last_try: datetime | None
    run_id: int | None = None  # a sync record's first sync or history import
    name: str | None = None  # a sync record's name as the run saw it (its report shows it too)

    def as_json(self) -> dict[str, Any]:
        """The JSON object of ``GET /api/v1/connections/<id>/failures``."""
        data = dict(vars(self))
        data["last_try"] = self.last_try.isoformat() if self.last_try else None
        return data


def events_of(connection: Connection) -> ColumnElement[bool]:
    """The inbound events that concern ``connection``: its own, and QBO events of its realm not yet routed."""
    own = InboundEvent.connection_id == connection.id
    if not connection.qbo_realm_id:
        return own
    realm = (InboundEvent.source == EventSource.QBO) & (InboundEvent.realm_id == connection.qbo_realm_id)
    return own | realm


def list_failures(connection: Connection, limit: int = 200) -> list[Failure]:
    """Failed and retrying events, then failed records, then failed sync records, newest first (at most ``limit``
    of each); ends the read."""
    failing = (InboundEvent.status == EventStatus.FAILED) | (
        (InboundEvent.status == EventStatus.PENDING) & (InboundEvent.attempts > 0))
    rows = db.session.scalars(select(InboundEvent).where(events_of(connection), failing)
                              .order_by(InboundEvent.id.desc()).limit(limit)).all()
    records = db.session.scalars(select(AuditEntry).where(AuditEntry.connection_id == connection.id,
                                                          AuditEntry.outcome == FAILED_RECORD)
                                 .order_by(AuditEntry.id.desc()).limit(limit)).all()
    found = [_event_failure(row) for row in rows] + [_record_failure(row) for row in records]
    found += [sync_record_failure(row, kind) for row, kind in runs.open_failures(connection.id, limit=limit)]
    db.session.rollback()
    return found


def count_failures(connection: Connection) -> int:
    """How many events failed for good and records (of syncs and of runs) are failed (for the health panel)."""
    events = db.session.scalar(select(func.count()).select_from(InboundEvent).where(
        events_of(connection), InboundEvent.status == EventStatus.FAILED))
    records = db.session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.connection_id == connection.id, AuditEntry.outcome == FAILED_RECORD))
    in_runs = runs.open_failure_counts(connection.id).get(connection.id, 0)
    db.session.rollback()
    return int(events or 0) + int(records or 0) + in_runs


def sync_record_counts(connection_id: int | None = None) -> dict[int, int]:
    """Open failed sync records per connection (only ``connection_id``'s when given), for /healthz."""
    return runs.open_failure_counts(connection_id)


def _event_failure(row: InboundEvent) -> Failure:
    told = explain(row.status_reason)
    state = "failed" if row.status == EventStatus.FAILED else "retrying"
    return Failure(EVENT, row.id, state, row.source.value, row.entity, row.entity_id, row.operation, told.words,
                   told.error, told.code, told.intuit_tid, row.attempts, row.processed_at or row.received_at)


def _record_failure(row: AuditEntry) -> Failure:
    told = explain(row.message, row.intuit_tid)
    source = "crm" if row.direction == "crm_to_qbo" else "qbo"
    return Failure(RECORD, row.id, "failed", source, row.entity or "", row.entity_id, None, told.words,
                   told.error, told.code, told.intuit_tid, 1, row.created_at)


def sync_record_failure(row: SyncRunRecord, run_kind: str) -> Failure:
    """A failed record of a run (``run_kind`` "first" or "history") as the console shows it; the side is where
    the record came from, as for failed records: a QBO customer or transaction, or a CRM contact."""
    source = "crm" if row.entity == "Contact" else "qbo"
    words = row.reason or "The record could not be synced."
    return Failure(SYNC_RECORD, row.id, "failed", source, row.entity, row.object_id,
                   f"{RUN_LABELS.get(run_kind, run_kind)} {row.run_id}", words, row.error or "", row.error_code,
                   row.intuit_tid, row.attempts or 1, row.updated_at, row.run_id, row.name)


def retry(connection: Connection, kind: str, failure_id: int | None, jobs: JobQueue, who: str) -> int:
    """Retry one failure (``failure_id``) or every one (None) of ``kind`` (one of ``KINDS``, or "all")."""
    count = 0
    if kind in (EVENT, "all"):
        count += _retry_events(connection, failure_id, jobs, who)
    if kind in (RECORD, "all"):
        count += _retry_records(connection, failure_id, jobs, who)
    if kind in (SYNC_RECORD, "all"):
        count += _retry_sync_records(connection, failure_id, jobs, who)
    return count


def dismiss(connection: Connection, kind: str, failure_id: int | None, who: str) -> int:
    """Dismiss one failure (``failure_id``) or every one (None) of ``kind``; they leave the list, audited."""
    count = 0
    if kind in (EVENT, "all"):
        ids = _event_ids(connection, failure_id)
        db.session.execute(update(InboundEvent).where(InboundEvent.id.in_(ids)).values(
            status=EventStatus.IGNORED, status_reason=f"dismissed by {who}", processed_at=utcnow()))
        count += _audited(connection, "failure.dismissed", EVENT, ids, who)
    if kind in (RECORD, "all"):
        ids = _record_ids(connection, failure_id)
        db.session.execute(update(AuditEntry).where(AuditEntry.id.in_(ids)).values(outcome=DISMISSED_RECORD))
        count += _audited(connection, "failure.dismissed", RECORD, ids, who)
    if kind in (SYNC_RECORD, "all"):
        ids = list(_sync_record_ids(connection, failure_id))
        runs.dismiss_records(ids)
        count += _audited(connection, "failure.dismissed", SYNC_RECORD, ids, who)
    db.session.commit()
    return count


def _retry_events(connection: Connection, failure_id: int | None, jobs: JobQueue, who: str) -> int:
    ids = _event_ids(connection, failure_id)
    db.session.execute(update(InboundEvent).where(InboundEvent.id.in_(ids)).values(
        status=EventStatus.PENDING, attempts=0, status_reason=None, next_attempt_at=None))
    _audited(connection, "failure.retried", EVENT, ids, who)
    keys = db.session.execute(select(InboundEvent.source, InboundEvent.realm_id, InboundEvent.connection_id)
                              .where(InboundEvent.id.in_(ids)).distinct()).all() if ids else []
    db.session.commit()
    for row in keys:
        key = drain_key(row.source, row.realm_id, row.connection_id)
        if key:
            jobs.wake(row.source, key)
    return len(ids)


def _retry_records(connection: Connection, failure_id: int | None, jobs: JobQueue, who: str) -> int:
    rows = db.session.scalars(select(AuditEntry).where(AuditEntry.id.in_(_record_ids(connection, failure_id)))).all()
    qbo = [Notice(f"retry:{row.id}:{uuid.uuid4().hex}", connection.qbo_realm_id, row.entity or "", row.entity_id,
                  "Update", utcnow()) for row in rows if row.direction != "crm_to_qbo"]
    crm = [Notice(f"retry:{row.id}:{uuid.uuid4().hex}", None, CONTACT, row.entity_id, "updated", utcnow())
           for row in rows if row.direction == "crm_to_qbo"]
    store(EventSource.QBO, qbo)
    store(EventSource.CRM, crm, connection.id)
    ids = [row.id for row in rows]
    db.session.execute(update(AuditEntry).where(AuditEntry.id.in_(ids)).values(outcome=RETRIED_RECORD))
    _audited(connection, "failure.retried", RECORD, ids, who)
    db.session.commit()
    if qbo and connection.qbo_realm_id:
        jobs.wake(EventSource.QBO, connection.qbo_realm_id)
    if crm:
        jobs.wake(EventSource.CRM, str(connection.id))
    return len(ids)


def _retry_sync_records(connection: Connection, failure_id: int | None, jobs: JobQueue, who: str) -> int:
    """Audit the retry, then ask a worker per run to retry the chosen records (after the commit)."""
    by_run = _sync_record_ids(connection, failure_id)
    ids = list(by_run)
    _audited(connection, "failure.retried", SYNC_RECORD, ids, who)
    db.session.commit()
    for run_id in sorted(set(by_run.values())):
        jobs.sync_retry(run_id, sorted(i for i, run in by_run.items() if run == run_id))
    return len(ids)


def _sync_record_ids(connection: Connection, failure_id: int | None) -> dict[int, int]:
    """The open failed sync records (one, or all) as ``{record id: run id}``."""
    rows = runs.open_failures(connection.id, failure_id, limit=100_000)
    if failure_id is not None and not rows:
        db.session.rollback()
        raise FailureNotFound(f"there is no failed sync record {failure_id} on connection {connection.id}")
    return {row.id: row.run_id for row, _ in rows}


def _event_ids(connection: Connection, failure_id: int | None) -> list[int]:
    failing = (InboundEvent.status == EventStatus.FAILED) | (
        (InboundEvent.status == EventStatus.PENDING) & (InboundEvent.attempts > 0))
    query = select(InboundEvent.id).where(events_of(connection), failing)
    if failure_id is not None:
        query = query.where(InboundEvent.id == failure_id)
    ids = list(db.session.scalars(query))
    if failure_id is not None and not ids:
        raise FailureNotFound(f"there is no failed event {failure_id} on connection {connection.id}")
    return ids


def _record_ids(connection: Connection, failure_id: int | None) -> list[int]:
    query = select(AuditEntry.id).where(AuditEntry.connection_id == connection.id,
                                        AuditEntry.outcome == FAILED_RECORD)
    if failure_id is not None:
        query = query.where(AuditEntry.id == failure_id)
    ids = list(db.session.scalars(query))
    if failure_id is not None and not ids:
        raise FailureNotFound(f"there is no failed record {failure_id} on connection {connection.id}")
    return ids


def _audited(connection: Connection, action: str, kind: str, ids: list[int], who: str) -> int:
    if ids:
        db.session.add(AuditEntry(connection_id=connection.id, action=action, direction="admin", entity="Failure",
                                  entity_id=kind, diff={"by": who, "kind": kind, "ids": ids}, outcome="ok",
                                  message=f"{len(ids)} {kind}(s) by {who}"))
    return len(ids)


__all__ = ["EVENT", "KINDS", "MAX_ATTEMPTS", "RECORD", "SYNC_RECORD", "Failure", "FailureNotFound",
           "count_failures", "dismiss", "events_of", "list_failures", "retry", "sync_record_counts"]
