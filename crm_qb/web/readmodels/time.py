"""The Time section of a contact (DESIGN §9): unbilled and billed hours and amounts per currency, and each entry.

Read from ``time_entries`` only (no QBO call while a page renders). Each entry created in QBO links to its
TimeActivity page in the right company: ``timeactivity?id=<Id>`` through the web app's sign-in route
(docs/qbo/deep-links.md: the QBO web app's own UI tests open a time entry with ``?id=``). Held time is listed
with the reason it waits, so a user sees that nothing was dropped.
"""

from __future__ import annotations

from typing import Any

from crm_qb.models import Connection, TimeEntry, TimeState
from crm_qb.qbo.deeplinks import AppLinks
from crm_qb.sync.time import store
from crm_qb.sync.time.admin import totals

TIME_PAGE, TIME_PARAM = "timeactivity", "id"
SHOWN = (TimeState.SYNCED, TimeState.BILLED, TimeState.HELD, TimeState.CREATING)
STATUS = {TimeState.SYNCED: "unbilled", TimeState.BILLED: "billed", TimeState.HELD: "held",
          TimeState.CREATING: "sending"}
MAX_ENTRIES = 200


def time_json(connection: Connection, crm_contact_id: str, base: AppLinks) -> dict[str, Any]:
    """The contact's time: totals per currency (unbilled, billed) and its entries, newest first."""
    rows = store.entries_where(connection.id, TimeEntry.crm_contact_id == crm_contact_id,
                               TimeEntry.state.in_(SHOWN), limit=MAX_ENTRIES)
    rows.sort(key=lambda e: (str(e.txn_date or ""), e.id or 0), reverse=True)
    return {"totals": totals(connection.id, crm_contact_id), "entries": [_entry(e, base) for e in rows]}


def _entry(entry: store.EntryRecord, base: AppLinks) -> dict[str, Any]:
    activity = entry.activity or {}
    minutes = entry.minutes if entry.minutes is not None else activity.get("duration_minutes")
    return {
        "activity_id": entry.crm_activity_id, "subject": activity.get("subject"), "type": activity.get("type"),
        "date": entry.txn_date.isoformat() if entry.txn_date else str(activity.get("started_at") or "")[:10] or None,
        "minutes": minutes, "duration": _duration(minutes), "status": STATUS[entry.state],
        "hourly_rate": str(entry.hourly_rate) if entry.hourly_rate is not None else None,
        "amount": str(entry.amount) if entry.amount is not None else None, "currency": entry.currency,
        "user_id": entry.crm_user_id, "held_reason": entry.hold_reason if entry.state == TimeState.HELD else None,
        "qbo_time_activity_id": entry.qbo_id,
        "url": base.transaction_page(TIME_PAGE, TIME_PARAM, entry.qbo_id) if entry.qbo_id else None,
    }


def _duration(minutes: Any) -> str | None:
    """``1:30`` (hours:minutes), as time sheets write it."""
    if not isinstance(minutes, int):
        return None
    return f"{minutes // 60}:{minutes % 60:02d}"
