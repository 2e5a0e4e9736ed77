"""Status of QBO transactions as pure functions of the transaction and "today" in the company's time zone.

Decisions:
- Voided: QBO has no flag (docs/qbo/facts.md §9.3). A transaction is voided when its PrivateNote starts with
  "Voided" and its TotalAmt is 0; a caller that saw a Void webhook may say so with ``voided=True``.
- Invoice precedence: Voided, then Paid (Balance 0), then Overdue (Balance > 0 and DueDate before today; due
  today is not overdue), then Partially paid (0 < Balance < TotalAmt), then Open. An invoice both partly paid
  and overdue is "Overdue" with ``partial=True``: overdue is what needs action.
- Estimate: QBO's TxnStatus (case-insensitive); "Converted" is shown as "Closed"; a Pending estimate whose
  ExpirationDate is before today is "Expired" (the expiration date itself is still valid). No TxnStatus means
  Pending, QBO's default. An unknown TxnStatus raises ValueError.
- Payment: "Applied" when UnappliedAmt is 0, "Unapplied" when nothing is applied (UnappliedAmt = TotalAmt
  > 0), "Applied" with ``partial=True`` in between; a voided payment is "Voided".
- Sales receipt: "Paid", or "Voided". Credit memo: like a payment ("Applied"/"Unapplied", partial), Balance
  being the credit left. Refund receipt: "Refunded", or "Voided".
Which rule a transaction type uses is said by its entry in ``crm_qb.sync.transactions.registry``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_qb.sync.rules.money import to_decimal

OPEN, OVERDUE, PARTIALLY_PAID, PAID, VOIDED = "Open", "Overdue", "Partially paid", "Paid", "Voided"
PENDING, ACCEPTED, CLOSED, REJECTED, EXPIRED = "Pending", "Accepted", "Closed", "Rejected", "Expired"
APPLIED, UNAPPLIED, REFUNDED = "Applied", "Unapplied", "Refunded"
# Every status label, in the order filters list them; a type's labels are named in its registry entry.
LABELS: tuple[str, ...] = (OPEN, OVERDUE, PARTIALLY_PAID, PAID, VOIDED, PENDING, ACCEPTED, CLOSED, REJECTED, EXPIRED,
                           APPLIED, UNAPPLIED, REFUNDED)
_ESTIMATE_STATUSES: Mapping[str, str] = {
    "pending": PENDING,
    "accepted": ACCEPTED,
    "closed": CLOSED,
    "converted": CLOSED,
    "rejected": REJECTED,
}
ZERO = Decimal(0)


@dataclass(frozen=True)
class TxnStatus:
    """A derived status: the label, days overdue (Overdue only) and whether it is partly paid or applied."""

    label: str
    days_overdue: int | None = None
    partial: bool = False


def company_today(now_utc: datetime, tz_name: str) -> date:
    """Return the calendar date at ``now_utc`` (timezone-aware) in the IANA time zone ``tz_name``."""
    if now_utc.tzinfo is None or now_utc.utcoffset() is None:
        raise ValueError(f"now_utc must be timezone-aware, got {now_utc!r}")
    try:
        zone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {tz_name!r}") from None
    return now_utc.astimezone(zone).date()


def is_voided(txn: Mapping[str, Any]) -> bool:
    """Return True when QBO's void marks are present: PrivateNote starts with "Voided" and TotalAmt is 0."""
    note = txn.get("PrivateNote") or ""
    return note.startswith("Voided") and to_decimal(txn.get("TotalAmt", 0), "TotalAmt") == ZERO


def invoice_status(invoice: Mapping[str, Any], today: date, *, voided: bool = False) -> TxnStatus:
    """Return an invoice's status on ``today``: Voided, Paid, Overdue, Partially paid or Open."""
    if voided or is_voided(invoice):
        return TxnStatus(VOIDED)
    total = to_decimal(invoice.get("TotalAmt", 0), "TotalAmt")
    balance = to_decimal(invoice.get("Balance", total), "Balance")
    if balance <= ZERO:
        return TxnStatus(PAID)
    partial = balance < total
    days = days_overdue(_date(invoice.get("DueDate")), today)
    if days > 0:
        return TxnStatus(OVERDUE, days_overdue=days, partial=partial)
    return TxnStatus(PARTIALLY_PAID, partial=True) if partial else TxnStatus(OPEN)


def days_overdue(due_date: date | None, today: date) -> int:
    """Return whole days past ``due_date`` on ``today`` (0 when not yet due, due today, or no due date)."""
    if due_date is None:
        return 0
    return max((today - due_date).days, 0)


def estimate_status(estimate: Mapping[str, Any], today: date) -> TxnStatus:
    """Return an estimate's status on ``today``: Pending, Accepted, Closed, Rejected or Expired."""
    raw = estimate.get("TxnStatus") or PENDING
    label = _ESTIMATE_STATUSES.get(str(raw).casefold())
    if label is None:
        raise ValueError(f"estimate {estimate.get('Id')!r} has unknown TxnStatus {raw!r}")
    expiration = _date(estimate.get("ExpirationDate"))
    if label == PENDING and expiration is not None and today > expiration:
        return TxnStatus(EXPIRED)
    return TxnStatus(label)


def payment_status(payment: Mapping[str, Any], *, voided: bool = False) -> TxnStatus:
    """Return a payment's status: Applied (partial when some is unapplied), Unapplied, or Voided."""
    if voided or is_voided(payment):
        return TxnStatus(VOIDED)
    return _applied(payment, "UnappliedAmt")


def credit_memo_status(memo: Mapping[str, Any], *, voided: bool = False) -> TxnStatus:
    """Return a credit memo's status: Applied (partial when credit is left), Unapplied, or Voided."""
    if voided or is_voided(memo):
        return TxnStatus(VOIDED)
    return _applied(memo, "Balance")


def sales_receipt_status(receipt: Mapping[str, Any], *, voided: bool = False) -> TxnStatus:
    """Return a sales receipt's status: Paid, or Voided."""
    return TxnStatus(VOIDED if voided or is_voided(receipt) else PAID)


def refund_receipt_status(receipt: Mapping[str, Any], *, voided: bool = False) -> TxnStatus:
    """Return a refund receipt's status: Refunded, or Voided."""
    return TxnStatus(VOIDED if voided or is_voided(receipt) else REFUNDED)


def paid_invoices(payment: Mapping[str, Any]) -> list[tuple[str, Decimal]]:
    """Return (invoice id, amount applied) for each invoice a payment pays, summed per invoice, in order."""
    paid: dict[str, Decimal] = {}
    for line in payment.get("Line") or []:
        for link in line.get("LinkedTxn") or []:
            if link.get("TxnType") == "Invoice":
                invoice_id = str(link["TxnId"])
                paid[invoice_id] = paid.get(invoice_id, ZERO) + to_decimal(
                    line.get("Amount", 0), "Line.Amount"
                )
    return list(paid.items())


def _applied(txn: Mapping[str, Any], left_key: str) -> TxnStatus:
    total = to_decimal(txn.get("TotalAmt", 0), "TotalAmt")
    left = to_decimal(txn.get(left_key, 0), left_key)
    if left <= ZERO:
        return TxnStatus(APPLIED)
    return TxnStatus(UNAPPLIED) if left >= total else TxnStatus(APPLIED, partial=True)


def _date(value: object) -> date | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise TypeError(f"a QBO date must be a yyyy-MM-dd string, got {value!r}")
    return date.fromisoformat(value)
