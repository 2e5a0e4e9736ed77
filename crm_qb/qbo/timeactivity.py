"""TimeActivity and the lists it names (Employee, Vendor, service Item), over the Accounting API client.

What QBO allows is in docs/qbo/time-activity.md: creates take ``NameOf`` with the matching ``EmployeeRef`` or
``VendorRef``, Billable time needs ``CustomerRef`` and ``HourlyRate``; updates are sparse with the SyncToken;
deletes are ``operation=delete``; billed time (``HasBeenBilled``) is refused (6000) until its invoice lets it go.
TimeActivity is not in CDC: its billing status is read by query (``Id IN``, or ``MetaData.LastUpdatedTime``).
Employee and Vendor e-mails are not filterable, so people are read in pages and matched by the caller.

Creates go in batches of up to 30 (``BATCH_MAX_ITEMS``) under a request id the caller stores before sending,
so a batch repeated after a crash is answered with QBO's first answer (docs/qbo/facts.md §2.4).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crm_qb.qbo.client import BATCH_MAX_ITEMS, BatchResult, QboClient, escape
from crm_qb.qbo.faults import QboFault

ENTITY = "TimeActivity"
PEOPLE = ("Employee", "Vendor")
BATCH_SIZE = BATCH_MAX_ITEMS


@dataclass(frozen=True)
class CreateItem:
    """One TimeActivity to create in a batch: its batch item id (at most 10 characters) and body."""

    bid: str
    body: Mapping[str, Any]


def people(client: QboClient) -> list[tuple[str, dict[str, Any]]]:
    """Every Employee and Vendor, active or not, as (entity, row); paged, one page in memory at a time."""
    found: list[tuple[str, dict[str, Any]]] = []
    for entity in PEOPLE:
        found += [(entity, row) for row in client.query_all(entity, "Active IN (true, false)")]
    return found


def item_named(client: QboClient, name: str) -> dict[str, Any] | None:
    """The active item called ``name`` (QBO item names are unique), or None."""
    rows = client.query(f"SELECT * FROM Item WHERE Name = '{escape(name)}'").get("QueryResponse") or {}
    items = [row for row in rows.get("Item") or [] if row.get("Active", True) is not False]
    return items[0] if items else None


def read_item(client: QboClient, item_id: str) -> dict[str, Any]:
    """The item with this id."""
    return client.read("Item", item_id)


def create_batch(client: QboClient, items: list[CreateItem], request_id: str) -> dict[str, BatchResult]:
    """Create up to 30 TimeActivities in one batch request under ``request_id``; results by batch item id."""
    if len(items) > BATCH_SIZE:
        raise ValueError(f"at most {BATCH_SIZE} TimeActivities per batch, got {len(items)}")
    requests = [{"bId": item.bid, "operation": "create", ENTITY: dict(item.body)} for item in items]
    return {result.bid: result for result in client.batch(requests, request_id=request_id)}


def update(client: QboClient, time_id: str, sync_token: str, fields: Mapping[str, Any]) -> dict[str, Any]:
    """A sparse update; StaleObjectError (5010) when it changed meanwhile (billing it changes its SyncToken)."""
    return client.sparse_update(ENTITY, time_id, sync_token, fields)


def delete(client: QboClient, time_id: str, sync_token: str) -> dict[str, Any]:
    """Delete the TimeActivity."""
    return client.delete(ENTITY, time_id, sync_token)


def read_many(client: QboClient, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The TimeActivities with these ids (one ``Id IN`` query per 200); deleted ones are absent."""
    return client.read_many(ENTITY, ids)


def changed_since(client: QboClient, since: datetime) -> list[dict[str, Any]]:
    """Every TimeActivity changed at or after ``since`` (billing one changes its LastUpdatedTime)."""
    stamp = since.isoformat(timespec="seconds")
    return list(client.query_all(ENTITY, f"MetaData.LastUpdatedTime >= '{escape(stamp)}'"))


def is_billed(row: Mapping[str, Any]) -> bool:
    """Whether QBO billed this time (an invoice links it)."""
    return row.get("BillableStatus") == "HasBeenBilled"


def fault_of(result: BatchResult) -> QboFault | None:
    """The item's fault, if it failed."""
    return result.error
