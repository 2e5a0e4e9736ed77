"""Mirror QBO transactions into the "QuickBooks Transactions" folder (one FolderItem per QBO transaction).

Called by the QBO drain (the customer sync helper) once per changed transaction, inside its transaction::

    apply_transaction(connection_id: int, entity: str, qbo_id: str, txn: dict | None, *,
                      today: date | None = None) -> FolderChange

- ``entity`` is the QBO entity name: Invoice, Payment, Estimate, SalesReceipt, CreditMemo or RefundReceipt
  (case-insensitive; anything else is a ValueError). ``txn`` is the entity's JSON object as QBO returns it
  (parsed with ``parse_float=Decimal``); ``None`` or ``{"status": "Deleted", ...}`` (CDC) means deleted in QBO.
- ``today`` defaults to the current date in the company's time zone (``Connection.company_timezone``).
- It flushes and never commits: the caller's transaction decides. Same input twice changes nothing and writes
  no second audit entry. An update older than the stored one (MetaData.LastUpdatedTime) is ignored ("stale").
- Deletions and moves to another customer write an AuditEntry; the returned FolderChange says what happened,
  including ``from_customer_id``/``to_customer_id`` so follow-ups can react to moves, payments and voids.
- Items are keyed by ``qbo_customer_id``, not by contact: a customer not linked yet keeps its items, and they
  appear in the contact's folder as soon as the link exists.

``refresh_statuses(connection_id: int, today: date | None = None) -> int`` recomputes the time-dependent
statuses (days overdue, Overdue, Expired) for a scheduled job (run it at least hourly: company midnights differ);
it also flushes only. Status inputs are kept in ``FolderItem.details["status_input"]`` so no QBO call is needed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crm_qb.db import db, utcnow
from crm_qb.models import AuditEntry, Connection, FolderItem
from crm_qb.sync import status as st
from crm_qb.sync.money import to_decimal, transaction_amounts

log = logging.getLogger(__name__)

TXN_TYPES: tuple[str, ...] = ("Invoice", "Payment", "Estimate", "SalesReceipt", "CreditMemo", "RefundReceipt")
_BY_FOLDED = {name.casefold(): name for name in TXN_TYPES}
# The raw fields each status rule reads; kept so refresh_statuses can recompute without QBO.
STATUS_FIELDS: tuple[str, ...] = ("TotalAmt", "Balance", "UnappliedAmt", "DueDate", "TxnStatus", "ExpirationDate")
# Statuses that can change with the date alone (invoice falling overdue, estimate expiring).
TIME_DEPENDENT: Mapping[str, tuple[str, ...]] = {
    "Invoice": (st.OPEN, st.OVERDUE, st.PARTIALLY_PAID),
    "Estimate": (st.PENDING, st.EXPIRED),
}
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


def txn_type_of(entity: str) -> str:
    """Return the canonical QBO entity name for ``entity`` (case-insensitive); ValueError if not mirrored."""
    name = _BY_FOLDED.get(str(entity).casefold())
    if name is None:
        raise ValueError(f"transaction type {entity!r} is not mirrored; expected one of {', '.join(TXN_TYPES)}")
    return name


def is_deleted(txn: Mapping[str, Any] | None) -> bool:
    """True when ``txn`` stands for a transaction deleted in QBO (None, or CDC's status "Deleted")."""
    return txn is None or str(txn.get("status", "")).casefold() == "deleted"


def folder_fields(txn_type: str, txn: Mapping[str, Any], home_currency: str, today: date) -> dict[str, Any]:
    """Return the FolderItem column values for a QBO transaction (pure: no I/O)."""
    amounts = transaction_amounts(txn, home_currency, multicurrency=True)
    derived = st.txn_status(txn_type, txn, today)
    customer = txn.get("CustomerRef") or {}
    if not customer.get("value"):
        raise ValueError(f"{txn_type} {txn.get('Id')!r} has no CustomerRef")
    return {
        "qbo_customer_id": str(customer["value"]),
        "doc_number": _text(txn.get("DocNumber") or txn.get("PaymentRefNum")),
        "txn_date": _date(txn.get("TxnDate")),
        "due_date": _date(txn.get("DueDate")),
        "expiration_date": _date(txn.get("ExpirationDate")),
        "status": derived.label,
        "currency": amounts.currency,
        "exchange_rate": amounts.exchange_rate,
        "total": amounts.total,
        "balance": amounts.balance if amounts.balance is not None else Decimal(0),
        "home_total": amounts.home_total,
        "home_balance": amounts.home_balance if amounts.home_balance is not None else Decimal(0),
        "home_computed": amounts.home_computed,
        "linked_txns": linked_transactions(txn_type, txn),
        "details": _details(txn, derived, customer),
        "qbo_sync_token": _text(txn.get("SyncToken")),
        "qbo_updated_at": _updated_at(txn),
    }


def linked_transactions(txn_type: str, txn: Mapping[str, Any]) -> list[dict[str, str | None]]:
    """Return the transactions ``txn`` links to: for payments, what each line paid, summed per transaction."""
    if txn_type == "Payment":
        return [{"type": kind, "id": txn_id, "amount": str(amount)} for kind, txn_id, amount in _payment_links(txn)]
    links = txn.get("LinkedTxn") or []
    return [{"type": str(link.get("TxnType")), "id": str(link.get("TxnId")), "amount": None} for link in links]


def apply_transaction(connection_id: int, entity: str, qbo_id: str, txn: dict[str, Any] | None, *,
                      today: date | None = None) -> FolderChange:
    """Upsert (or remove, when deleted in QBO) the folder item of one QBO transaction; flush, never commit."""
    txn_type, qbo_id = txn_type_of(entity), str(qbo_id)
    item = _find(connection_id, txn_type, qbo_id)
    if is_deleted(txn):
        return _delete(connection_id, txn_type, qbo_id, item)
    assert txn is not None  # is_deleted covers None
    connection = _connection(connection_id)
    fields = folder_fields(txn_type, txn, _home_currency(connection, txn), today or _today(connection))
    if item is None:
        return _insert(connection_id, txn_type, qbo_id, fields)
    return _update(item, fields)


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
    derived = st.txn_status(item.txn_type, source, today)
    details = {**(item.details or {}), "days_overdue": derived.days_overdue, "partial": derived.partial}
    if item.status == derived.label and details == item.details:
        return 0
    item.status, item.details = derived.label, details
    return 1


def _time_dependent_items(connection_id: int) -> Iterator[FolderItem]:
    for txn_type, statuses in TIME_DEPENDENT.items():
        query = (select(FolderItem)
                 .where(FolderItem.connection_id == connection_id, FolderItem.txn_type == txn_type,
                        FolderItem.status.in_(statuses))
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
    return st.company_today(utcnow(), connection.company_timezone or "UTC")


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
    if _is_stale(item.qbo_updated_at, fields["qbo_updated_at"]):
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


def _is_stale(stored: datetime | None, incoming: datetime | None) -> bool:
    return stored is not None and incoming is not None and incoming < stored


def _same(current: object, new: object) -> bool:
    # Decimals compare by value (PostgreSQL gives 10.00 back for 10), JSON by its canonical content.
    if isinstance(current, Decimal) or isinstance(new, Decimal):
        return current is not None and new is not None and Decimal(str(current)) == Decimal(str(new))
    return current == new


def _details(txn: Mapping[str, Any], derived: st.TxnStatus, customer: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "status_input": _status_input(txn),
        "days_overdue": derived.days_overdue,
        "partial": derived.partial,
        "customer_name": _text(customer.get("name")),
        "payment_method": _text((txn.get("PaymentMethodRef") or {}).get("name")),
    }


def _status_input(txn: Mapping[str, Any]) -> dict[str, str]:
    source = {key: str(txn[key]) for key in STATUS_FIELDS if txn.get(key) is not None}
    if st.is_voided(txn):
        # The void mark is the note prefix; keeping only the prefix avoids storing the bookkeeper's note.
        source["PrivateNote"] = "Voided"
    return source


def _payment_links(payment: Mapping[str, Any]) -> list[tuple[str, str, Decimal]]:
    paid: dict[tuple[str, str], Decimal] = {}
    for line in payment.get("Line") or []:
        amount = to_decimal(line.get("Amount", 0), "Line.Amount")
        for link in line.get("LinkedTxn") or []:
            key = (str(link.get("TxnType")), str(link.get("TxnId")))
            paid[key] = paid.get(key, Decimal(0)) + amount
    return [(kind, txn_id, amount) for (kind, txn_id), amount in paid.items()]


def _text(value: object) -> str | None:
    return None if value in (None, "") else str(value)


def _date(value: object) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) and value else None


def _updated_at(txn: Mapping[str, Any]) -> datetime | None:
    raw = (txn.get("MetaData") or {}).get("LastUpdatedTime")
    if not raw:
        return None
    moment = datetime.fromisoformat(str(raw))
    return moment if moment.tzinfo else None
