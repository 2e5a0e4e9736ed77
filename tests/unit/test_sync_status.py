"""Transaction status as pure functions of the transaction and the company's "today"."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from crm_qb.sync.rules.status import (
    TxnStatus,
    company_today,
    days_overdue,
    estimate_status,
    invoice_status,
    is_voided,
    paid_invoices,
    payment_status,
)
from crm_qb.sync.transactions.registry import txn_status
from tests.support import qbo_fixture

D = Decimal
DUE = "2025-03-10"



def _invoice(total: str = "100.00", balance: str = "100.00", **fields: object) -> dict[str, object]:
    return {"Id": "1", "TotalAmt": D(total), "Balance": D(balance), "DueDate": DUE, **fields}


@pytest.mark.parametrize(
    ("invoice", "today", "expected"),
    [
        (_invoice(), date(2025, 3, 9), TxnStatus("Open")),
        (_invoice(), date(2025, 3, 10), TxnStatus("Open")),  # due today is not overdue
        (_invoice(), date(2025, 3, 11), TxnStatus("Overdue", days_overdue=1)),
        (_invoice(), date(2025, 4, 9), TxnStatus("Overdue", days_overdue=30)),
        (_invoice(balance="40.00"), date(2025, 3, 1), TxnStatus("Partially paid", partial=True)),
        (_invoice(balance="40.00"), date(2025, 3, 24), TxnStatus("Overdue", days_overdue=14, partial=True)),
        (_invoice(balance="0"), date(2025, 6, 1), TxnStatus("Paid")),
        (_invoice(total="0", balance="0"), date(2025, 3, 1), TxnStatus("Paid")),
        (_invoice(DueDate=None), date(2030, 1, 1), TxnStatus("Open")),
        (_invoice(total="0", balance="0", PrivateNote="Voided"), date(2025, 6, 1), TxnStatus("Voided")),
        (
            _invoice(total="0", balance="0", PrivateNote="Voided - was INV 12"),
            date(2025, 6, 1),
            TxnStatus("Voided"),
        ),
        # A void after a payment: amounts are zeroed and the payment link stays; still Voided, not Paid.
        (
            _invoice(
                total="0", balance="0", PrivateNote="Voided", LinkedTxn=[{"TxnId": "7", "TxnType": "Payment"}]
            ),
            date(2025, 6, 1),
            TxnStatus("Voided"),
        ),
        (
            _invoice(PrivateNote="Voided cheque replaced"),
            date(2025, 3, 1),
            TxnStatus("Open"),
        ),  # TotalAmt not 0
    ],
)
def test_invoice_status(invoice: dict[str, Any], today: date, expected: TxnStatus) -> None:
    assert invoice_status(invoice, today) == expected
    assert txn_status("Invoice", invoice, today) == expected


def test_void_webhook_hint_overrides_amounts() -> None:
    assert invoice_status(_invoice(), date(2025, 3, 1), voided=True) == TxnStatus("Voided")


@pytest.mark.parametrize(
    ("payload", "entity", "today", "expected"),
    [
        ("invoice_read.json", "Invoice", date(2014, 10, 19), TxnStatus("Open")),
        ("invoice_read.json", "Invoice", date(2014, 11, 2), TxnStatus("Overdue", days_overdue=14)),
        ("invoice_void_response.json", "Invoice", date(2015, 1, 1), TxnStatus("Voided")),
        ("payment_read.json", "Payment", date(2015, 1, 16), TxnStatus("Applied", partial=True)),
        ("payment_void_response.json", "Payment", date(2015, 3, 1), TxnStatus("Voided")),
        ("estimate_read.json", "Estimate", date(2015, 3, 26), TxnStatus("Pending")),
        ("salesreceipt_from_batch_query.json", "SalesReceipt", date(2016, 1, 1), TxnStatus("Paid")),
    ],
)
def test_status_of_sample_payloads(payload: str, entity: str, today: date, expected: TxnStatus) -> None:
    assert txn_status(entity, qbo_fixture(payload)[entity], today) == expected


@pytest.mark.parametrize(
    ("estimate", "today", "expected"),
    [
        ({"TxnStatus": "Pending"}, date(2025, 1, 1), "Pending"),
        ({}, date(2025, 1, 1), "Pending"),
        ({"TxnStatus": "Accepted"}, date(2025, 1, 1), "Accepted"),
        ({"TxnStatus": "ACCEPTED"}, date(2025, 1, 1), "Accepted"),
        ({"TxnStatus": "Closed"}, date(2025, 1, 1), "Closed"),
        ({"TxnStatus": "Converted"}, date(2025, 1, 1), "Closed"),
        ({"TxnStatus": "Rejected"}, date(2025, 1, 1), "Rejected"),
        ({"TxnStatus": "Pending", "ExpirationDate": "2025-01-31"}, date(2025, 1, 31), "Pending"),
        ({"TxnStatus": "Pending", "ExpirationDate": "2025-01-31"}, date(2025, 2, 1), "Expired"),
        ({"TxnStatus": "Accepted", "ExpirationDate": "2025-01-31"}, date(2025, 2, 1), "Accepted"),
        ({"TxnStatus": "Rejected", "ExpirationDate": "2025-01-31"}, date(2025, 2, 1), "Rejected"),
    ],
)
def test_estimate_status(estimate: dict[str, Any], today: date, expected: str) -> None:
    assert estimate_status({"Id": "5", "TotalAmt": D(10), **estimate}, today) == TxnStatus(expected)


def test_unknown_estimate_status_is_named() -> None:
    with pytest.raises(ValueError, match="'Lost'"):
        estimate_status({"Id": "5", "TxnStatus": "Lost"}, date(2025, 1, 1))


@pytest.mark.parametrize(
    ("txn_type", "txn", "expected"),
    [
        ("Payment", {"TotalAmt": D(65), "UnappliedAmt": D(0)}, TxnStatus("Applied")),
        ("Payment", {"TotalAmt": D(65), "UnappliedAmt": D(10)}, TxnStatus("Applied", partial=True)),
        ("Payment", {"TotalAmt": D(65), "UnappliedAmt": D(65)}, TxnStatus("Unapplied")),
        ("Payment", {"TotalAmt": D(0), "UnappliedAmt": D(0)}, TxnStatus("Applied")),
        ("Payment", {"TotalAmt": D(0), "UnappliedAmt": D(0), "PrivateNote": "Voided"}, TxnStatus("Voided")),
        ("SalesReceipt", {"TotalAmt": D(5), "Balance": D(0)}, TxnStatus("Paid")),
        ("SalesReceipt", {"TotalAmt": D(0), "PrivateNote": "Voided"}, TxnStatus("Voided")),
        ("CreditMemo", {"TotalAmt": D(20), "Balance": D(20)}, TxnStatus("Unapplied")),
        ("CreditMemo", {"TotalAmt": D(20), "Balance": D(5)}, TxnStatus("Applied", partial=True)),
        ("CreditMemo", {"TotalAmt": D(20), "Balance": D(0)}, TxnStatus("Applied")),
        ("CreditMemo", {"TotalAmt": D(0), "Balance": D(0), "PrivateNote": "Voided"}, TxnStatus("Voided")),
        ("RefundReceipt", {"TotalAmt": D(20)}, TxnStatus("Refunded")),
        ("RefundReceipt", {"TotalAmt": D(0), "PrivateNote": "Voided"}, TxnStatus("Voided")),
    ],
)
def test_other_transaction_statuses(txn_type: str, txn: dict[str, Any], expected: TxnStatus) -> None:
    assert txn_status(txn_type, txn, date(2025, 1, 1)) == expected


def test_voided_hint_for_every_type() -> None:
    for txn_type in ("Invoice", "Payment", "SalesReceipt", "CreditMemo", "RefundReceipt"):
        assert txn_status(txn_type, {"TotalAmt": D(5)}, date(2025, 1, 1), voided=True) == TxnStatus("Voided")


def test_unknown_transaction_type_is_named() -> None:
    with pytest.raises(ValueError, match="'Bill'"):
        txn_status("Bill", {}, date(2025, 1, 1))


@pytest.mark.parametrize(
    ("txn", "expected"),
    [
        ({"TotalAmt": D(0), "PrivateNote": "Voided"}, True),
        ({"TotalAmt": 0, "PrivateNote": "Voided; customer cancelled"}, True),
        ({"TotalAmt": D(0), "PrivateNote": "voided"}, False),
        ({"TotalAmt": D(0)}, False),
        ({"TotalAmt": D(1), "PrivateNote": "Voided"}, False),
    ],
)
def test_is_voided(txn: dict[str, Any], expected: bool) -> None:
    assert is_voided(txn) is expected


@pytest.mark.parametrize(
    ("payment", "expected"),
    [
        (qbo_fixture("payment_read.json")["Payment"], [("70", D("55.0"))]),
        (qbo_fixture("payment_void_response.json")["Payment"], []),
        (
            {
                "Line": [
                    {"Amount": D("10"), "LinkedTxn": [{"TxnId": "0070", "TxnType": "Invoice"}]},
                    {"Amount": D("5"), "LinkedTxn": [{"TxnId": "71", "TxnType": "CreditMemo"}]},
                    {"Amount": D("2.50"), "LinkedTxn": [{"TxnId": "0070", "TxnType": "Invoice"}]},
                    {"Amount": D("7"), "LinkedTxn": [{"TxnId": "72", "TxnType": "Invoice"}]},
                ]
            },
            [("0070", D("12.50")), ("72", D("7"))],
        ),
        ({}, []),
    ],
)
def test_paid_invoices(payment: dict[str, Any], expected: list[tuple[str, Decimal]]) -> None:
    assert paid_invoices(payment) == expected


def test_paid_invoices_rejects_float_amounts() -> None:
    with pytest.raises(TypeError):
        paid_invoices({"Line": [{"Amount": 55.0, "LinkedTxn": [{"TxnId": "70", "TxnType": "Invoice"}]}]})


@pytest.mark.parametrize(
    ("now", "tz_name", "expected"),
    [
        # PDT began on 2025-03-09 at 10:00 UTC: local midnight is 08:00 UTC before it and 07:00 UTC after.
        (datetime(2025, 3, 9, 7, 59, tzinfo=UTC), "America/Los_Angeles", date(2025, 3, 8)),
        (datetime(2025, 3, 9, 8, 0, tzinfo=UTC), "America/Los_Angeles", date(2025, 3, 9)),
        (datetime(2025, 3, 10, 6, 59, tzinfo=UTC), "America/Los_Angeles", date(2025, 3, 9)),
        (datetime(2025, 3, 10, 7, 0, tzinfo=UTC), "America/Los_Angeles", date(2025, 3, 10)),
        (datetime(2025, 1, 10, 7, 59, tzinfo=UTC), "America/Los_Angeles", date(2025, 1, 9)),  # 23:59 PST
        (datetime(2025, 1, 10, 8, 0, tzinfo=UTC), "America/Los_Angeles", date(2025, 1, 10)),
        (
            datetime(2025, 10, 26, 22, 59, tzinfo=UTC),
            "Europe/Berlin",
            date(2025, 10, 26),
        ),  # CET after DST end
        (datetime(2025, 10, 26, 23, 0, tzinfo=UTC), "Europe/Berlin", date(2025, 10, 27)),
        (datetime(2025, 3, 10, 11, 0, tzinfo=UTC), "Pacific/Auckland", date(2025, 3, 11)),
        (datetime(2025, 3, 10, 23, 30, tzinfo=timezone(timedelta(hours=-2))), "UTC", date(2025, 3, 11)),
    ],
)
def test_company_today(now: datetime, tz_name: str, expected: date) -> None:
    assert company_today(now, tz_name) == expected


@pytest.mark.parametrize(
    ("now", "tz_name", "message"),
    [
        (datetime(2025, 3, 10, 12, 0), "UTC", "timezone-aware"),
        (datetime(2025, 3, 10, 12, 0, tzinfo=UTC), "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        (datetime(2025, 3, 10, 12, 0, tzinfo=UTC), "../etc/passwd", "unknown time zone"),
    ],
)
def test_company_today_rejects(now: datetime, tz_name: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        company_today(now, tz_name)


@pytest.mark.parametrize(
    ("due", "today", "expected"),
    [
        (date(2025, 3, 10), date(2025, 3, 10), 0),
        (date(2025, 3, 10), date(2025, 3, 1), 0),
        (date(2025, 2, 28), date(2025, 3, 1), 1),
        (date(2024, 2, 28), date(2024, 3, 1), 2),
        (None, date(2025, 3, 1), 0),
    ],
)
def test_days_overdue(due: date | None, today: date, expected: int) -> None:
    assert days_overdue(due, today) == expected


def test_payment_status_direct() -> None:
    assert payment_status({"TotalAmt": D(5), "UnappliedAmt": D(5)}) == TxnStatus("Unapplied")
