"""The CDC poll: catch QBO changes that no webhook announced, through the same sync path as webhooks.

One CDC call (split by ``QboClient.cdc_all`` only past 1,000 objects) returns every customer and transaction
changed since the connection's cursor minus an overlap; each is synced exactly as a webhook would have made it
(already-synced ones are no-ops: they equal the base). The cursor advances to the poll's start time. CDC looks
back at most 30 days: an older cursor is clipped (and logged), since a longer gap needs a full backfill.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from crm_qb.db import db, utcnow
from crm_qb.models import Connection
from crm_qb.sync.context import SyncContext
from crm_qb.sync.inbound import TRANSACTION_ENTITIES, mirror_transaction
from crm_qb.sync.qbo_side import sync_customer

log = logging.getLogger(__name__)

OVERLAP = timedelta(minutes=5)
CDC_LIMIT = timedelta(days=30) - timedelta(hours=1)  # QBO refuses changedSince older than 30 days
FIRST_LOOK_BACK = timedelta(hours=1)


def poll_changes(ctx: SyncContext, now: datetime | None = None) -> int:
    """Sync what changed in QBO since the connection's cursor; advance the cursor; return objects seen."""
    now = now or utcnow()
    since = _since(ctx.connection_id, now)
    entities = ["Customer", *TRANSACTION_ENTITIES]
    seen = 0
    for entity, obj in ctx.qbo.cdc_all(entities, since, now):
        seen += 1
        _apply(ctx, entity, obj)
    _advance(ctx.connection_id, now)
    log.info("CDC poll connection=%s since=%s objects=%s job=%s", ctx.connection_id, since.isoformat(), seen,
             ctx.job_id)
    return seen


def _since(connection_id: int, now: datetime) -> datetime:
    connection = db.session.get(Connection, connection_id)
    cursor = connection.cdc_cursor if connection is not None else None
    db.session.rollback()
    since = (cursor - OVERLAP) if cursor else now - FIRST_LOOK_BACK
    if now - since > CDC_LIMIT:
        log.warning("CDC cursor of connection %s is older than 30 days; changes before %s need a backfill",
                    connection_id, (now - CDC_LIMIT).isoformat())
        since = now - CDC_LIMIT
    return since


def _apply(ctx: SyncContext, entity: str, obj: dict[str, Any]) -> None:
    if entity == "Customer":
        if obj.get("status") != "Deleted":
            sync_customer(ctx, obj, [])
        return
    try:
        mirror_transaction(ctx, entity, str(obj["Id"]), obj)
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
