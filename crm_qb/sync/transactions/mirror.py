"""Mirror QBO transactions into the "QuickBooks Transactions" folder (one FolderItem per QBO transaction).

Called by the QBO drain (the customer sync helper) once per changed transaction, inside its transaction::

    apply_transaction(connection_id: int, entity: str, qbo_id: str, txn: dict | None, *,
                      today: date | None = None) -> FolderChange

- ``entity`` is a QBO entity name registered in ``registry`` (case-insensitive; anything else raises
  ``UnknownTransactionType``, a ValueError). ``txn`` is the entity's JSON object as QBO returns it
  (parsed with ``parse_float=Decimal``); ``None`` or ``{"status": "Deleted", ...}`` (CDC) means deleted in QBO.
- ``today`` defaults to the current date in the company's time zone (``Connection.company_timezone``).
- It flushes and never commits: the caller's transaction decides. Same input twice changes nothing and writes
  no second audit entry. An update older than the stored one (a lower SyncToken; MetaData.LastUpdatedTime when a
  token is missing) is ignored ("stale").
- Deletions and moves to another customer write an AuditEntry; the returned FolderChange says what happened,
  including ``from_customer_id``/``to_customer_id`` so follow-ups can react to moves, payments and voids.
- Items are keyed by ``qbo_customer_id``, not by contact: a customer not linked yet keeps its items, and they
  appear in the contact's folder as soon as the link exists.

``refresh_statuses(connection_id: int, today: date | None = None) -> int`` recomputes the time-dependent
statuses (days overdue, Overdue, Expired) for a scheduled job (run it at least hourly: company midnights differ);
it also flushes only. Status inputs are kept in ``FolderItem.details["status_input"]`` so no QBO call is needed.
The column values themselves are pure (``fields_of``, over ``crm_qb.sync.rules.folder``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crm_qb.db import db, insert_many, utcnow
from crm_qb.errors import PermanentError
from crm_qb.models import AuditEntry, Connection, FolderItem
from crm_qb.sync.context import SyncContext
from crm_qb.sync.rules.folder import folder_fields, is_deleted, is_stale, status_details
from crm_qb.sync.rules.status import company_today
from crm_qb.sync.transactions import registry
from crm_qb.sync.transactions.registry import TxnType

log = logging.getLogger(__name__)

REFRESH_BATCH = 500
# Columns compared to decide "unchanged"; updated_at and created_at are bookkeeping.
_COMPARED = ("qbo_customer_id", "doc_number", "txn_date", "due_date", "expiration_date", "status", "currency",
             "exchange_rate", "total", "balance", "home_total", "home_balance", "home_computed", "linked_txns",
             "details", "qbo_sync_token", "qbo_updated_at")


@dataclass(frozen=True)
class FolderChange:
    """What apply_transaction did: action is created, updated, unchanged, stale, deleted or absent."""

    action: str
    connection_id: int
    txn_type: str
    qbo_id: str
    from_customer_id: str | None = None
    to_customer_id: str | None = None
    previous_status: str | None = None
    status: str | None = None
    item_id: int | None = None

    @property
    def moved(self) -> bool:
        """True when the transaction now belongs to another customer than before."""
        return (self.action == "updated" and self.from_customer_id is not None
                and self.from_customer_id != self.to_customer_id)

    @property
    def changed(self) -> bool:
        """True when the folder changed (an item was created, updated or removed)."""
        return self.action in ("created", "updated", "deleted")


def fields_of(txn_type: TxnType, txn: Mapping[str, Any], home_currency: str, today: date) -> dict[str, Any]:
    """Return the FolderItem column values of a QBO transaction of ``txn_type`` on ``today`` (pure)."""
    return folder_fields(txn_type.entity, txn, home_currency, lambda t: txn_type.status_of(t, today), txn_type.links)


def apply_transaction(connection_id: int, entity: str, qbo_id: str, txn: dict[str, Any] | None, *,
                      today: date | None = None) -> FolderChange:
    """Upsert (or remove, when deleted in QBO) the folder item of one QBO transaction; flush, never commit."""
    txn_type, qbo_id = registry.get(entity), str(qbo_id)
    item = _find(connection_id, txn_type.entity, qbo_id)
    if is_deleted(txn):
        return _delete(connection_id, txn_type.entity, qbo_id, item)
    assert txn is not None  # is_deleted covers None
    connection = _connection(connection_id)
    fields = fields_of(txn_type, txn, _home_currency(connection, txn), today or _today(connection))
    if item is None:
        return _insert(connection_id, txn_type.entity, qbo_id, fields)
    return _update(item, fields)


def mirror(ctx: SyncContext, entity: str, txn_id: str, txn: dict[str, Any] | None) -> FolderChange:
    """Mirror one QBO transaction of a sync (flushed, not committed); note a changed followed-up one on ``ctx``."""
    change = apply_transaction(ctx.connection_id, entity, txn_id, txn)
    _note(ctx, change)
    return change


def mirror_many(ctx: SyncContext, entity: str, txns: list[dict[str, Any]]) -> list[FolderChange | Exception]:
    """Mirror a page of one type's transactions (the backfill), as ``mirror`` each: flushed, not committed.

    The stored items of the page are read with one query and the new ones inserted with one bulk INSERT (their
    changes carry no ``item_id``), instead of a read and a flush per transaction. One result per transaction, in
    order: its change, or the PermanentError or ValueError that transaction failed with (the others are kept).
    A concurrent insert of the same item (the unique constraint) makes the whole insert fail: the caller rolls
    back and mirrors the page one by one.
    """
    txn_type = registry.get(entity)
    connection = _connection(ctx.connection_id)
    today = _today(connection)
    stored = {item.qbo_id: item for item in db.session.scalars(select(FolderItem).where(
        FolderItem.connection_id == ctx.connection_id, FolderItem.txn_type == txn_type.entity,
        FolderItem.qbo_id.in_([str(txn["Id"]) for txn in txns])))}
    results: list[FolderChange | Exception] = []
    new_rows: dict[str, dict[str, Any]] = {}
    for txn in txns:
        try:
            results.append(_page_one(ctx.connection_id, txn_type, txn, stored, new_rows, connection, today))
        except (PermanentError, ValueError) as exc:
            results.append(exc)
    if new_rows:  # the table's INSERT: the ORM's bulk path costs more CPU per row than the row itself
        insert_many(FolderItem.__table__, list(new_rows.values()))
    for result in results:
        if isinstance(result, FolderChange):
            _note(ctx, result)
    return results


def _page_one(connection_id: int, txn_type: TxnType, txn: dict[str, Any], stored: dict[str, FolderItem],
              new_rows: dict[str, dict[str, Any]], connection: Connection, today: date) -> FolderChange:
    """One transaction of a page; a new item becomes a row of ``new_rows`` (inserted with the page)."""
    qbo_id = str(txn["Id"])
    item = stored.get(qbo_id)
    if is_deleted(txn):
        new_rows.pop(qbo_id, None)
        return _delete(connection_id, txn_type.entity, qbo_id, item)
    fields = fields_of(txn_type, txn, _home_currency(connection, txn), today)
    if item is not None:
        return _update(item, fields)
    new_rows[qbo_id] = {"connection_id": connection_id, "txn_type": txn_type.entity, "qbo_id": qbo_id, **fields}
    return FolderChange("created", connection_id, txn_type.entity, qbo_id, None, fields["qbo_customer_id"], None,
                        fields["status"])


def _note(ctx: SyncContext, change: FolderChange) -> None:
    """Tell the job's caller about a changed followed-up transaction and the customers whose folder changed."""
    if registry.get(change.txn_type).followed_up and change.changed:
        ctx.invoices_changed.add(change.qbo_id)
    if change.changed:
        ctx.customers_changed.update(c for c in (change.from_customer_id, change.to_customer_id) if c)


def refresh_statuses(connection_id: int, today: date | None = None) -> int:
    """Recompute date-dependent statuses (Overdue days, Expired) of one connection; return how many changed."""
    connection = _connection(connection_id)
    today = today or _today(connection)
    changed = 0
    for item in _time_dependent_items(connection_id):
        changed += _refresh(item, today)
    db.session.flush()
    log.info("connection %s: %s folder status(es) refreshed for %s", connection_id, changed, today)
    return changed


def _refresh(item: FolderItem, today: date) -> int:
    source = dict((item.details or {}).get("status_input") or {})
    derived = registry.txn_status(item.txn_type, source, today)
    details = status_details(item.details, derived)
    if item.status == derived.label and details == item.details:
        return 0
    item.status, item.details = derived.label, details
    return 1


def _time_dependent_items(connection_id: int) -> Iterator[FolderItem]:
    for txn_type in registry.TYPES:
        if not txn_type.time_dependent:
            continue
        query = (select(FolderItem)
                 .where(FolderItem.connection_id == connection_id, FolderItem.txn_type == txn_type.entity,
                        FolderItem.status.in_(txn_type.time_dependent))
                 .execution_options(yield_per=REFRESH_BATCH))
        yield from db.session.scalars(query)


def _find(connection_id: int, txn_type: str, qbo_id: str) -> FolderItem | None:
    return db.session.scalar(select(FolderItem).where(
        FolderItem.connection_id == connection_id, FolderItem.txn_type == txn_type, FolderItem.qbo_id == qbo_id))


def _connection(connection_id: int) -> Connection:
    connection = db.session.get(Connection, connection_id)
    if connection is None:
        raise LookupError(f"no connection {connection_id}")
    return connection


def _today(connection: Connection) -> date:
    return company_today(utcnow(), connection.company_timezone or "UTC")


def _home_currency(connection: Connection, txn: Mapping[str, Any]) -> str:
    if connection.home_currency:
        return connection.home_currency
    currency = (txn.get("CurrencyRef") or {}).get("value")
    # A single-currency company's transactions are all in its home currency, so the transaction tells it.
    if not connection.multicurrency_enabled and currency:
        return str(currency)
    raise ValueError(f"connection {connection.id} has no home currency yet; read QBO Preferences when connecting")


def _insert(connection_id: int, txn_type: str, qbo_id: str, fields: dict[str, Any]) -> FolderChange:
    item = FolderItem(connection_id=connection_id, txn_type=txn_type, qbo_id=qbo_id, **fields)
    try:
        # A savepoint, so that losing a race with a concurrent insert leaves the caller's transaction usable.
        with db.session.begin_nested():
            db.session.add(item)
    except IntegrityError:
        existing = _find(connection_id, txn_type, qbo_id)
        if existing is None:
            raise
        return _update(existing, fields)
    return FolderChange("created", connection_id, txn_type, qbo_id, None, fields["qbo_customer_id"], None,
                        fields["status"], item.id)


def _update(item: FolderItem, fields: dict[str, Any]) -> FolderChange:
    before_customer, before_status = item.qbo_customer_id, item.status
    change = FolderChange("unchanged", item.connection_id, item.txn_type, item.qbo_id, before_customer,
                          fields["qbo_customer_id"], before_status, fields["status"], item.id)
    if is_stale(item.qbo_sync_token, item.qbo_updated_at, fields["qbo_sync_token"], fields["qbo_updated_at"]):
        return FolderChange("stale", item.connection_id, item.txn_type, item.qbo_id, before_customer,
                            before_customer, before_status, before_status, item.id)
    if all(_same(getattr(item, name), fields[name]) for name in _COMPARED):
        return change
    for name, value in fields.items():
        setattr(item, name, value)
    if before_customer != fields["qbo_customer_id"]:
        _audit(item.connection_id, "folder.moved", item.txn_type, item.qbo_id,
               {"from_customer_id": before_customer, "to_customer_id": fields["qbo_customer_id"]})
    db.session.flush()
    return replace(change, action="updated")


def _delete(connection_id: int, txn_type: str, qbo_id: str, item: FolderItem | None) -> FolderChange:
    if item is None:
        return FolderChange("absent", connection_id, txn_type, qbo_id)
    _audit(connection_id, "folder.deleted", txn_type, qbo_id, {
        "qbo_customer_id": item.qbo_customer_id, "doc_number": item.doc_number, "status": item.status,
        "currency": item.currency, "total": str(item.total), "balance": str(item.balance),
    })
    db.session.delete(item)
    db.session.flush()
    return FolderChange("deleted", connection_id, txn_type, qbo_id, item.qbo_customer_id, None, item.status, None,
                        item.id)


def _audit(connection_id: int, action: str, txn_type: str, qbo_id: str, diff: dict[str, Any]) -> None:
    db.session.add(AuditEntry(connection_id=connection_id, action=action, direction="qbo", entity=txn_type,
                              entity_id=qbo_id, diff=diff, outcome="ok"))
    log.info("connection %s: %s %s %s", connection_id, action, txn_type, qbo_id)


def _same(current: object, new: object) -> bool:
    # Decimals compare by value (PostgreSQL gives 10.00 back for 10), JSON by its canonical content.
    if isinstance(current, Decimal) or isinstance(new, Decimal):
        return current is not None and new is not None and Decimal(str(current)) == Decimal(str(new))
    return current == new
