"""Billing status from QBO: TimeActivity is not in CDC (docs/qbo/facts.md §6), so it is read by query.

Billing time in QBO (an invoice linking it) changes the activity's BillableStatus to ``HasBeenBilled`` together
with its SyncToken and LastUpdatedTime, and sends no webhook for the activity (docs/qbo/time-activity.md). So
when invoices change (a webhook or the CDC poll), one query of the time activities changed since then tells
which time was billed, or released again by a deleted or voided invoice.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from crm_qb.db import db
from crm_qb.models import TimeEntry, TimeState
from crm_qb.qbo import timeactivity as qbo_time
from crm_qb.sync.context import SyncContext
from crm_qb.sync.time import store

LOOK_BACK = timedelta(minutes=5)  # QBO times have one-second resolution; webhooks may lag their change
UNKNOWN_CHANGE_TIME = timedelta(hours=1)  # an invoice webhook without a time: look back this far
TRACKED = (TimeState.SYNCED, TimeState.BILLED)


def has_tracked_time(connection_id: int) -> bool:
    """Whether the connection has time in QBO whose billing status can change (no query otherwise)."""
    found = db.session.scalar(select(TimeEntry.id).where(TimeEntry.connection_id == connection_id,
                                                         TimeEntry.state.in_(TRACKED)).limit(1))
    db.session.rollback()
    return found is not None


def refresh_since(ctx: SyncContext, since: datetime) -> int:
    """Read the time activities changed since ``since`` (less a margin) and store their billing status."""
    if not has_tracked_time(ctx.connection_id):
        return 0
    return apply_rows(ctx, qbo_time.changed_since(ctx.qbo, since - LOOK_BACK))


def apply_rows(ctx: SyncContext, rows: Iterable[dict[str, Any]]) -> int:
    """Store the billing status and SyncToken of each row that is one of the connection's time; return changes."""
    by_id = {str(row.get("Id")): row for row in rows}
    if not by_id:
        return 0
    entries = store.entries_where(ctx.connection_id, TimeEntry.qbo_id.in_(sorted(by_id)),
                                  TimeEntry.state.in_(TRACKED))
    changed = [entry for entry in entries if _follow(entry, by_id[str(entry.qbo_id)])]
    if changed:
        store.save(changed, [store.audit(ctx.connection_id, ctx.job_id, f"time.{entry.state.value}",
                                         entry.crm_activity_id, {"qbo_id": entry.qbo_id,
                                                                 "billable_status": entry.billable_status})
                             for entry in changed])
    return len(changed)


def _follow(entry: store.EntryRecord, row: dict[str, Any]) -> bool:
    """Take QBO's status; True when it moved between billed and not billed."""
    billed = qbo_time.is_billed(row)
    entry.qbo_sync_token, entry.billable_status = str(row.get("SyncToken")), row.get("BillableStatus")
    state = TimeState.BILLED if billed else TimeState.SYNCED
    moved = state != entry.state
    entry.state = state
    return moved
