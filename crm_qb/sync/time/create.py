"""Creating time in QBO exactly once: 30 TimeActivities to a batch request under a request id stored first.

Before a batch is sent, its entries are committed as ``creating`` with the body, their batch item ids and the
request id; a run that finds entries still ``creating`` (the worker was killed, the answer was lost, QBO
answered 5xx or 429 throughout) resends exactly that request, and QBO answers a repeated request id with its
first answer (docs/qbo/facts.md §2.4), so nothing is created twice. An item QBO refuses is held with QBO's
reason (``qbo``: tried again when the admin runs ``crm-qb time configure``); an item that failed for now is held
as ``retry`` and the unit fails, so the drain is retried.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from crm_qb.errors import PermanentError, TransientError
from crm_qb.models import AuditEntry, TimeEntry, TimeState
from crm_qb.qbo import timeactivity as qbo_time
from crm_qb.qbo.client import BatchResult
from crm_qb.sync.context import SyncContext
from crm_qb.sync.time import store
from crm_qb.sync.time.store import EntryRecord


class TimeHeldError(TransientError):
    """QBO could not take some time now (a batch item failed transiently); the drain retries its events."""


def create(ctx: SyncContext, entries: list[EntryRecord]) -> int:
    """Create the time of ``entries`` (their ``sent`` bodies) in batches of 30; return how many were created."""
    created = 0
    for start in range(0, len(entries), qbo_time.BATCH_SIZE):
        chunk = entries[start:start + qbo_time.BATCH_SIZE]
        request_id = uuid.uuid4().hex
        for index, entry in enumerate(chunk):
            entry.state, entry.request_id, entry.batch_item_id = TimeState.CREATING, request_id, f"b{index}"
            entry.hold_kind = entry.hold_reason = None
        store.save(chunk)  # committed before the request: a rerun resends exactly this
        created += _send(ctx, chunk)
    return created


def recover_creating(ctx: SyncContext) -> int:
    """Resend every create a killed or failed run left unanswered (same request id: QBO's first answer)."""
    pending = store.entries_where(ctx.connection_id, TimeEntry.state == TimeState.CREATING)
    chunks: dict[str, list[EntryRecord]] = {}
    for entry in pending:
        chunks.setdefault(str(entry.request_id), []).append(entry)
    return sum(_send(ctx, chunk) for chunk in chunks.values())


def _send(ctx: SyncContext, chunk: list[EntryRecord]) -> int:
    items = [qbo_time.CreateItem(str(e.batch_item_id), _wire(e.sent or {})) for e in chunk]
    try:
        results = qbo_time.create_batch(ctx.qbo, items, str(chunk[0].request_id))
    except PermanentError as exc:
        for entry in chunk:
            _refused(entry, f"QuickBooks refused the batch: {exc}")
        store.save(chunk, [note(ctx, "time.create_refused", chunk[0], {"error": str(exc)}, outcome="failed")])
        return 0
    return _store_results(ctx, chunk, results)


def _store_results(ctx: SyncContext, chunk: list[EntryRecord], results: dict[str, BatchResult]) -> int:
    created, retry, notes = 0, False, []
    for entry in chunk:
        result = results.get(str(entry.batch_item_id))
        if result is not None and result.ok and result.data is not None:
            stored(entry, result.data, dict(entry.sent or {}))
            entry.request_id = entry.batch_item_id = None
            notes.append(note(ctx, "time.created", entry, {"qbo_id": entry.qbo_id}))
            created += 1
            continue
        error = result.error if result is not None else None
        transient = error is None or isinstance(error, TransientError)
        retry = retry or transient
        _refused(entry, f"QuickBooks could not take the time: {error}", kind="retry" if transient else "qbo")
        notes.append(note(ctx, "time.create_failed", entry, {"error": str(error)}, outcome="failed"))
    store.save(chunk, notes)
    if retry:
        raise TimeHeldError("some time could not be created in QuickBooks now; it is retried")
    return created


def note(ctx: SyncContext, action: str, entry: EntryRecord, diff: dict[str, Any] | None = None,
         outcome: str = "ok") -> AuditEntry:
    """An audit entry about one activity's time in this job."""
    return store.audit(ctx.connection_id, ctx.job_id, action, entry.crm_activity_id, diff, outcome=outcome)


def stored(entry: EntryRecord, row: dict[str, Any], written: dict[str, Any]) -> None:
    """Take QBO's answer for an entry: its id, SyncToken and billing status, and what was written."""
    entry.qbo_id, entry.qbo_sync_token = str(row.get("Id", entry.qbo_id)), str(row.get("SyncToken", ""))
    entry.billable_status = row.get("BillableStatus")
    entry.state = TimeState.BILLED if qbo_time.is_billed(row) else TimeState.SYNCED
    entry.written, entry.sent, entry.hold_kind, entry.hold_reason = jsonable(written), None, None, None


def _refused(entry: EntryRecord, reason: str, kind: str = "qbo") -> None:
    entry.state, entry.hold_kind, entry.hold_reason = TimeState.HELD, kind, reason[:2000]
    entry.request_id = entry.batch_item_id = None


def _wire(sent: dict[str, Any]) -> dict[str, Any]:
    """A stored create body as sent: the rate as an exact decimal number again."""
    body = dict(sent)
    if body.get("HourlyRate") is not None:
        body["HourlyRate"] = Decimal(str(body["HourlyRate"]))
    return body


def jsonable(value: Any) -> Any:
    """``value`` with Decimals as strings (JSON columns)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {key: jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    return value
