"""The CDC poll: catch QBO changes that no webhook announced, through the same sync path as webhooks.

One CDC call (split by ``QboClient.cdc_all`` only past 1,000 objects) returns every customer and transaction
changed since the connection's cursor minus an overlap; each is synced exactly as a webhook would have made it
(already-synced ones are no-ops: they equal the base). The cursor advances to the poll's start time. CDC looks
back at most 30 days: from an older cursor (sync was off for long) the changes are read with queries on
``MetaData.LastUpdatedTime`` instead, as for a window too dense for CDC.

One object that cannot be applied never stops the poll: whatever it raised, unless the failure is transient (a
side not answering, which stops the poll so its cursor stays and the next poll, the outage probe, tries again),
it is recorded as a *failed* inbound event with its reason (and an audit entry), so it shows among the failures
and ``crm-qb replay`` runs it again, and the poll goes on. A poll that completes tells the outage tracking that
QBO answers (crm_qb.sync.pipeline.outage).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from crm_qb.db import db, utcnow
from crm_qb.errors import TransientError
from crm_qb.models import AuditEntry, Connection, EventSource, EventStatus, InboundEvent
from crm_qb.qbo.client import CdcWindowTooDenseError
from crm_qb.sync import references
from crm_qb.sync.context import SyncContext
from crm_qb.sync.customers.qbo_side import sync_customer
from crm_qb.sync.pipeline import events
from crm_qb.sync.pipeline.events import CUSTOMER, Notice
from crm_qb.sync.time import billing as time_billing
from crm_qb.sync.transactions import registry
from crm_qb.sync.transactions.mirror import mirror

log = logging.getLogger(__name__)

OVERLAP = timedelta(minutes=5)
CDC_LIMIT = timedelta(days=30) - timedelta(hours=1)  # QBO refuses changedSince older than 30 days
FIRST_LOOK_BACK = timedelta(hours=1)


def poll_changes(ctx: SyncContext, now: datetime | None = None) -> int:
    """Sync what changed in QBO since the connection's cursor; advance the cursor; return objects seen."""
    now = now or utcnow()
    since = _since(ctx.connection_id, now)
    entities = [CUSTOMER, *(t.cdc_name for t in registry.TYPES), *references.ENTITIES]
    if now - since > CDC_LIMIT:
        log.warning("CDC cursor of connection %s is older than 30 days; catching up with queries since %s",
                    ctx.connection_id, since.isoformat())
        seen = _apply_all(ctx, _query_changes(ctx, entities, since))
        _advance(ctx.connection_id, now)
        return seen
    try:
        seen = _apply_all(ctx, ctx.qbo.cdc_all(entities, since, now))
    except CdcWindowTooDenseError:
        # Over 1,000 changes within one second (a bulk import): CDC cannot page through that, queries can.
        # What was applied before is applied again as a no-op; deletions in that window are left to a backfill.
        log.warning("CDC window too dense for connection=%s; catching up with queries since %s", ctx.connection_id,
                    since.isoformat())
        seen = _apply_all(ctx, _query_changes(ctx, entities, since))
    # TimeActivity is not in CDC: billing status of the connection's time is read by query (sync/time/billing).
    time_billing.refresh_since(ctx, since)
    _advance(ctx.connection_id, now)
    log.info("CDC poll connection=%s since=%s objects=%s job=%s", ctx.connection_id, since.isoformat(), seen,
             ctx.job_id)
    return seen


def _apply_all(ctx: SyncContext, changes: Iterable[tuple[str, dict[str, Any]]]) -> int:
    """Apply each change; one that fails for any but a transient reason is recorded and the others go on."""
    seen = 0
    for entity, obj in changes:
        seen += 1
        try:
            _apply(ctx, entity, obj)
        except TransientError:
            db.session.rollback()
            raise
        except Exception as exc:  # recorded as a failed event (replayable), never re-raised: see the docstring
            _record_failure(ctx, entity, obj, exc)
    return seen


def _query_changes(ctx: SyncContext, entities: list[str], since: datetime) -> Iterator[tuple[str, dict[str, Any]]]:
    stamp = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    for entity in entities:
        where = f"MetaData.LastUpdatedTime >= '{stamp}'"
        if entity == CUSTOMER or references.is_reference(entity):
            where += " AND Active IN (true, false)"  # inactive customers and list entries changed too
        for obj in ctx.qbo.query_all(entity, where):
            yield entity, obj


def _record_failure(ctx: SyncContext, entity: str, obj: dict[str, Any], exc: Exception) -> None:
    """An audit entry, and a failed inbound event for the object that ``crm-qb replay`` can run again."""
    db.session.rollback()
    reason = f"{type(exc).__name__}: {exc}"[:2000]
    entity_id = str(obj.get("Id"))
    db.session.add(AuditEntry(connection_id=ctx.connection_id, job_id=ctx.job_id, action="sync.failed",
                              direction="qbo_to_crm", entity=entity, entity_id=entity_id,
                              outcome="failed", message=reason))
    stamp = str((obj.get("MetaData") or {}).get("LastUpdatedTime") or obj.get("SyncToken") or "")
    notice = Notice(dedupe_key=f"cdc-failed:{ctx.qbo.realm_id}:{entity}:{entity_id}:{stamp}",
                    realm_id=ctx.qbo.realm_id, entity=entity, entity_id=entity_id, operation="Update",
                    occurred_at=None, payload={"via": "cdc_poll"})
    events.store(EventSource.QBO, [notice], ctx.connection_id)
    db.session.execute(update(InboundEvent).where(InboundEvent.source == EventSource.QBO,
                                                  InboundEvent.dedupe_key == events.storable(notice.dedupe_key),
                                                  InboundEvent.status == EventStatus.PENDING)
                       .values(status=EventStatus.FAILED, status_reason=reason, attempts=1))
    db.session.commit()
    log.warning("CDC poll could not apply %s %s connection=%s: %s", entity, obj.get("Id"), ctx.connection_id,
                type(exc).__name__)


def _since(connection_id: int, now: datetime) -> datetime:
    connection = db.session.get(Connection, connection_id)
    cursor = connection.cdc_cursor if connection is not None else None
    db.session.rollback()
    return (cursor - OVERLAP) if cursor else now - FIRST_LOOK_BACK


def _apply(ctx: SyncContext, entity: str, obj: dict[str, Any]) -> None:
    if references.is_reference(entity):
        if obj.get("status") != "Deleted":
            references.apply_references(ctx, entity, [str(obj["Id"])], {str(obj["Id"]): obj}, [])
        return
    if entity == CUSTOMER:
        if obj.get("status") != "Deleted":
            sync_customer(ctx, obj, [])
        return
    try:
        mirror(ctx, entity, str(obj["Id"]), obj)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


def _advance(connection_id: int, now: datetime) -> None:
    connection = db.session.get(Connection, connection_id)
    if connection is not None:
        connection.cdc_cursor = now
        connection.last_sync_at = now
    db.session.commit()
