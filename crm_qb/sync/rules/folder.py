"""A QBO transaction as a folder item: the column values, its links and what a status refresh needs (pure).

Decisions:
- ``None`` or CDC's ``{"status": "Deleted", ...}`` stands for a transaction deleted in QBO (``is_deleted``).
- A payment links to what each of its lines paid, summed per transaction, with the amount; any other type links
  to its ``LinkedTxn`` entries, without amounts.
- The raw fields the status rules read (``STATUS_FIELDS``) are kept in ``details["status_input"]``, so the
  hourly refresh recomputes date-dependent statuses without calling QBO. Of ``PrivateNote`` only the void mark is
  kept ("Voided"), never the bookkeeper's note itself.
- Balance is 0 when QBO gives none (sales and refund receipts); an update older than the stored one is the
  caller's to refuse (``is_stale``): the SyncToken decides, since QBO raises it on every change (a higher token
  is newer even when its LastUpdatedTime is equal or earlier: one-second stamps, clocks, a payment that changes
  an invoice within the same second); the time decides only when a token is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from crm_qb.sync.rules.money import to_decimal, transaction_amounts
from crm_qb.sync.rules.status import TxnStatus, is_voided

# The raw fields each status rule reads; kept so a refresh can recompute without QBO.
STATUS_FIELDS: tuple[str, ...] = ("TotalAmt", "Balance", "UnappliedAmt", "DueDate", "TxnStatus", "ExpirationDate")


def is_deleted(txn: Mapping[str, Any] | None) -> bool:
    """True when ``txn`` stands for a transaction deleted in QBO (None, or CDC's status "Deleted")."""
    return txn is None or str(txn.get("status", "")).casefold() == "deleted"


Links = list[dict[str, str | None]]


def folder_fields(txn_type: str, txn: Mapping[str, Any], home_currency: str,
                  status: Callable[[Mapping[str, Any]], TxnStatus],
                  links: Callable[[Mapping[str, Any]], Links]) -> dict[str, Any]:
    """Return the FolderItem column values of a QBO transaction of ``txn_type``, its type's rules applied."""
    amounts = transaction_amounts(txn, home_currency, multicurrency=True)
    derived = status(txn)
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
        "linked_txns": links(txn),
        "details": _details(txn, derived, customer),
        "qbo_sync_token": _text(txn.get("SyncToken")),
        "qbo_updated_at": _updated_at(txn),
    }


def is_stale(stored_token: str | None, stored_at: datetime | None, incoming_token: str | None,
             incoming_at: datetime | None) -> bool:
    """Whether an incoming version of a transaction is older than the stored one (by SyncToken, else by time)."""
    stored, incoming = _token(stored_token), _token(incoming_token)
    if stored is not None and incoming is not None:
        return incoming < stored
    return stored_at is not None and incoming_at is not None and incoming_at < stored_at


def _token(value: str | None) -> int | None:
    return int(value) if value is not None and str(value).isdigit() else None


def payment_links(payment: Mapping[str, Any]) -> Links:
    """What each line of a payment paid, summed per linked transaction, with the amount."""
    paid: dict[tuple[str, str], Decimal] = {}
    for line in payment.get("Line") or []:
        amount = to_decimal(line.get("Amount", 0), "Line.Amount")
        for link in line.get("LinkedTxn") or []:
            key = (str(link.get("TxnType")), str(link.get("TxnId")))
            paid[key] = paid.get(key, Decimal(0)) + amount
    return [{"type": kind, "id": txn_id, "amount": str(amount)} for (kind, txn_id), amount in paid.items()]


def header_links(txn: Mapping[str, Any]) -> Links:
    """The transactions ``txn`` links to in its ``LinkedTxn`` (estimates, payments, time), without amounts."""
    links = txn.get("LinkedTxn") or []
    return [{"type": str(link.get("TxnType")), "id": str(link.get("TxnId")), "amount": None} for link in links]


def status_details(details: Mapping[str, Any] | None, derived: TxnStatus) -> dict[str, Any]:
    """A folder item's ``details`` with the date-dependent parts of ``derived`` (days overdue, partial)."""
    return {**(details or {}), "days_overdue": derived.days_overdue, "partial": derived.partial}


def _details(txn: Mapping[str, Any], derived: TxnStatus, customer: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "status_input": _status_input(txn),
        "days_overdue": derived.days_overdue,
        "partial": derived.partial,
        "customer_name": _text(customer.get("name")),
        "payment_method": _text((txn.get("PaymentMethodRef") or {}).get("name")),
    }


def _status_input(txn: Mapping[str, Any]) -> dict[str, str]:
    source = {key: str(txn[key]) for key in STATUS_FIELDS if txn.get(key) is not None}
    if is_voided(txn):
        # The void mark is the note prefix; keeping only the prefix avoids storing the bookkeeper's note.
        source["PrivateNote"] = "Voided"
    return source


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
