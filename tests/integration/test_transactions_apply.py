"""apply_transaction and refresh_statuses on SQLite and PostgreSQL: the folder mirrors QBO transactions."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from crm_qb.db import db
from crm_qb.models import AuditEntry, FolderItem
from crm_qb.sync.transactions.mirror import apply_transaction, refresh_statuses
from tests.support import fixture_bytes
from tests.support.folder import TODAY, apply, company, qbo_json, txn


def item(app: Flask, txn_type: str, qbo_id: str) -> FolderItem | None:
    """The folder item of a transaction, detached from the session."""
    with app.app_context():
        found = db.session.scalar(select(FolderItem).where(FolderItem.txn_type == txn_type,
                                                           FolderItem.qbo_id == qbo_id))
        if found is not None:
            db.session.expunge(found)
        return found


def audits(app: Flask, action: str) -> list[dict[str, Any]]:
    """The audit entries of ``action``, oldest first."""
    with app.app_context():
        rows = db.session.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id))
        return [{"entity": r.entity, "entity_id": r.entity_id, "diff": r.diff, "direction": r.direction}
                for r in rows]


def count_items(app: Flask) -> int:
    """How many folder items exist."""
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(FolderItem)) or 0)


def test_invoice_created_with_amounts_status_and_details(app: Flask) -> None:
    conn = company(app)
    change = apply(app, conn.id, "Invoice", txn("Invoice", "130", "24", TotalAmt=Decimal("362.07"),
                                                Balance=Decimal("362.07")))
    assert (change.action, change.from_customer_id, change.to_customer_id, change.status) == (
        "created", None, "24", "Open")
    stored = item(app, "Invoice", "130")
    assert stored is not None
    assert (stored.qbo_customer_id, stored.doc_number, stored.status, stored.currency) == ("24", "INV-130", "Open",
                                                                                           "USD")
    assert (stored.txn_date, stored.due_date) == (date(2024, 6, 1), date(2024, 7, 1))
    assert (stored.total, stored.balance, stored.home_total, stored.home_balance) == (
        Decimal("362.07"), Decimal("362.07"), Decimal("362.07"), Decimal("362.07"))
    assert stored.exchange_rate == 1 and stored.home_computed is False
    assert stored.details["customer_name"] == "Customer 24"
    assert stored.details["status_input"]["DueDate"] == "2024-07-01"
    assert stored.qbo_updated_at is not None and stored.qbo_updated_at.utcoffset().total_seconds() == 0


@pytest.mark.parametrize(("changes", "status", "partial", "days"), [
    ({"Balance": Decimal("40.00")}, "Partially paid", True, None),
    ({"Balance": Decimal("0")}, "Paid", False, None),
    ({"DueDate": "2024-06-10"}, "Overdue", False, 5),
    ({"DueDate": "2024-06-10", "Balance": Decimal("40.00")}, "Overdue", True, 5),
    ({"DueDate": "2024-06-15"}, "Open", False, None),
    ({"TotalAmt": Decimal("0"), "Balance": Decimal("0"), "PrivateNote": "Voided - wrong customer"}, "Voided", False,
     None),
])
def test_invoice_lifecycle_updates_status(app: Flask, changes: dict[str, Any], status: str, partial: bool,
                                          days: int | None) -> None:
    conn = company(app)
    apply(app, conn.id, "Invoice", txn("Invoice", "7", "24"))
    later = {"SyncToken": "1", "MetaData": {"LastUpdatedTime": "2024-06-12T10:00:00-07:00"}}
    change = apply(app, conn.id, "Invoice", txn("Invoice", "7", "24", **later, **changes))
    assert (change.action, change.previous_status, change.status, change.moved) == ("updated", "Open", status, False)
    stored = item(app, "Invoice", "7")
    assert stored is not None
    assert (stored.status, stored.details["partial"], stored.details["days_overdue"]) == (status, partial, days)
    assert stored.balance == changes.get("Balance", Decimal("100.00"))
    if status == "Voided":
        assert stored.details["status_input"]["PrivateNote"] == "Voided"  # the bookkeeper's note is not kept


@pytest.mark.parametrize("gone", [None, {"Id": "7", "status": "Deleted", "domain": "QBO"}])
def test_deleted_in_qbo_removes_the_item_with_one_audit_entry(app: Flask, gone: dict[str, Any] | None) -> None:
    conn = company(app)
    apply(app, conn.id, "Invoice", txn("Invoice", "7", "24", Balance=Decimal("60.00")))
    change = apply(app, conn.id, "invoice", gone, qbo_id="7")
    assert (change.action, change.from_customer_id, change.previous_status) == ("deleted", "24", "Partially paid")
    assert item(app, "Invoice", "7") is None
    again = apply(app, conn.id, "Invoice", gone, qbo_id="7")
    assert again.action == "absent" and not again.changed
    entries = audits(app, "folder.deleted")
    assert len(entries) == 1
    assert entries[0]["entity"] == "Invoice" and entries[0]["entity_id"] == "7"
    assert entries[0]["diff"]["qbo_customer_id"] == "24" and entries[0]["diff"]["balance"] == "60.00"


def test_customer_change_moves_the_item_and_says_from_where(app: Flask) -> None:
    conn = company(app)
    apply(app, conn.id, "Invoice", txn("Invoice", "7", "24"))
    moved = txn("Invoice", "7", "31", SyncToken="1", MetaData={"LastUpdatedTime": "2024-06-02T09:00:00-07:00"})
    change = apply(app, conn.id, "Invoice", moved)
    assert change.moved and (change.from_customer_id, change.to_customer_id) == ("24", "31")
    stored = item(app, "Invoice", "7")
    assert stored is not None and stored.qbo_customer_id == "31"
    assert [e["diff"] for e in audits(app, "folder.moved")] == [{"from_customer_id": "24", "to_customer_id": "31"}]


def test_same_input_twice_changes_nothing(app: Flask) -> None:
    conn = company(app)
    body = qbo_json(fixture_bytes("qbo/invoice_read.json").decode())["Invoice"]
    first, second = apply(app, conn.id, "Invoice", body), apply(app, conn.id, "Invoice", body)
    assert (first.action, second.action, second.changed) == ("created", "unchanged", False)
    assert count_items(app) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEntry)) == 0
    stored = item(app, "Invoice", "130")
    assert stored is not None and stored.total == Decimal("362.07")
    assert stored.linked_txns == [{"type": "Estimate", "id": "100", "amount": None}]


def test_an_older_update_than_the_stored_one_is_ignored(app: Flask) -> None:
    conn = company(app)
    newer = txn("Invoice", "7", "24", SyncToken="2", Balance=Decimal("0"),
                MetaData={"LastUpdatedTime": "2024-06-05T09:00:00-07:00"})
    apply(app, conn.id, "Invoice", newer)
    change = apply(app, conn.id, "Invoice", txn("Invoice", "7", "24", SyncToken="1"))
    assert change.action == "stale" and not change.changed
    stored = item(app, "Invoice", "7")
    assert stored is not None and stored.status == "Paid"


@pytest.mark.parametrize(("fields", "status"), [
    ({"TxnStatus": "Accepted", "ExpirationDate": "2024-06-30"}, "Accepted"),
    ({"TxnStatus": "Pending", "ExpirationDate": "2024-06-14"}, "Expired"),
    ({"TxnStatus": "Pending", "ExpirationDate": "2024-06-15"}, "Pending"),
    ({"TxnStatus": "Closed"}, "Closed"),
    ({"TxnStatus": "Rejected"}, "Rejected"),
])
def test_estimates(app: Flask, fields: dict[str, Any], status: str) -> None:
    conn = company(app)
    apply(app, conn.id, "Estimate", txn("Estimate", "100", "24", **fields))
    stored = item(app, "Estimate", "100")
    assert stored is not None and stored.status == status
    assert stored.balance == 0 and stored.expiration_date == (
        date.fromisoformat(fields["ExpirationDate"]) if "ExpirationDate" in fields else None)


def test_sales_receipt_is_paid(app: Flask) -> None:
    conn = company(app)
    change = apply(app, conn.id, "SalesReceipt", txn("SalesReceipt", "11", "24", TotalAmt=Decimal("337.5")))
    stored = item(app, "SalesReceipt", "11")
    assert change.status == "Paid" and stored is not None and stored.total == Decimal("337.5")


def test_payment_records_which_invoices_it_paid(app: Flask) -> None:
    conn = company(app)
    payment = txn("Payment", "200", "24", TotalAmt=Decimal("65.00"), UnappliedAmt=Decimal("10.00"),
                  PaymentMethodRef={"value": "2", "name": "Check"}, Line=[
                      {"Amount": Decimal("30.00"), "LinkedTxn": [{"TxnId": "70", "TxnType": "Invoice"}]},
                      {"Amount": Decimal("20.00"), "LinkedTxn": [{"TxnId": "71", "TxnType": "Invoice"}]},
                      {"Amount": Decimal("5.00"), "LinkedTxn": [{"TxnId": "70", "TxnType": "Invoice"}]},
                  ])
    change = apply(app, conn.id, "Payment", payment)
    stored = item(app, "Payment", "200")
    assert change.status == "Applied" and stored is not None
    assert stored.linked_txns == [{"type": "Invoice", "id": "70", "amount": "35.00"},
                                  {"type": "Invoice", "id": "71", "amount": "20.00"}]
    assert (stored.balance, stored.details["partial"], stored.details["payment_method"]) == (
        Decimal("10.00"), True, "Check")


def test_eur_invoice_keeps_qbo_home_amounts_exactly(app: Flask) -> None:
    conn = company(app, home="USD")
    body = qbo_json("""{"Id": "501", "SyncToken": "0", "DocNumber": "EU-1", "TxnDate": "2024-06-01",
        "DueDate": "2024-07-01", "CustomerRef": {"value": "60", "name": "Société Générale"},
        "CurrencyRef": {"value": "EUR", "name": "Euro"}, "ExchangeRate": 1.0853,
        "TotalAmt": 1234.56, "Balance": 234.56, "HomeTotalAmt": 1339.88, "HomeBalance": 254.57,
        "MetaData": {"LastUpdatedTime": "2024-06-01T09:00:00-07:00"}}""")
    apply(app, conn.id, "Invoice", body)
    stored = item(app, "Invoice", "501")
    assert stored is not None
    assert (stored.currency, stored.exchange_rate, stored.total, stored.balance) == (
        "EUR", Decimal("1.0853"), Decimal("1234.56"), Decimal("234.56"))
    # QBO's own home figures (it rounds line by line), not 1234.56 x 1.0853 = 1339.87 recomputed here.
    assert (stored.home_total, stored.home_balance, stored.home_computed) == (
        Decimal("1339.88"), Decimal("254.57"), False)


def test_home_amounts_are_computed_and_marked_when_qbo_omits_them(app: Flask) -> None:
    conn = company(app, home="USD")
    apply(app, conn.id, "Payment", txn("Payment", "9", "60", CurrencyRef={"value": "EUR"},
                                       ExchangeRate=Decimal("1.1"), TotalAmt=Decimal("10.05")))
    stored = item(app, "Payment", "9")
    assert stored is not None and (stored.home_total, stored.home_computed) == (Decimal("11.06"), True)


def test_unknown_entity_is_refused(app: Flask) -> None:
    conn = company(app)
    with app.app_context(), pytest.raises(ValueError, match="Bill"):
        apply_transaction(conn.id, "Bill", "1", txn("Invoice", "1", "24"), today=TODAY)


def test_refresh_statuses_turns_invoices_overdue_and_estimates_expired(app: Flask) -> None:
    conn = company(app)
    apply(app, conn.id, "Invoice", txn("Invoice", "7", "24", DueDate="2024-06-20"))
    apply(app, conn.id, "Invoice", txn("Invoice", "8", "24", Balance=Decimal("0")))
    apply(app, conn.id, "Estimate", txn("Estimate", "100", "24", ExpirationDate="2024-06-20"))
    with app.app_context():
        assert refresh_statuses(conn.id, date(2024, 6, 20)) == 0
        assert refresh_statuses(conn.id, date(2024, 6, 23)) == 2
        db.session.commit()
        assert refresh_statuses(conn.id, date(2024, 6, 23)) == 0
        assert refresh_statuses(conn.id, date(2024, 6, 24)) == 1  # one more day overdue
        db.session.commit()
    overdue, paid, expired = item(app, "Invoice", "7"), item(app, "Invoice", "8"), item(app, "Estimate", "100")
    assert overdue is not None and (overdue.status, overdue.details["days_overdue"]) == ("Overdue", 4)
    assert paid is not None and paid.status == "Paid"
    assert expired is not None and expired.status == "Expired"


def test_today_defaults_to_the_company_day(app: Flask) -> None:
    conn = company(app, tz="Pacific/Kiritimati")
    with app.app_context():
        change = apply_transaction(conn.id, "Invoice", "7", txn("Invoice", "7", "24", DueDate="2000-01-01"))
        db.session.commit()
    assert change.status == "Overdue"


def test_a_higher_sync_token_is_newer_even_with_an_equal_or_earlier_timestamp(app: Flask) -> None:
    conn = company(app)
    stamp = {"LastUpdatedTime": "2024-06-05T09:00:00-07:00"}
    apply(app, conn.id, "Invoice", txn("Invoice", "7", "24", SyncToken="1", MetaData=stamp))
    paid_same_second = txn("Invoice", "7", "24", SyncToken="2", Balance=Decimal("0"), MetaData=stamp)
    assert apply(app, conn.id, "Invoice", paid_same_second).action == "updated"
    skewed = txn("Invoice", "7", "24", SyncToken="3", Balance=Decimal("40.00"),
                 MetaData={"LastUpdatedTime": "2024-06-05T08:59:00-07:00"})  # a later version, an earlier stamp
    assert apply(app, conn.id, "Invoice", skewed).action == "updated"
    stored = item(app, "Invoice", "7")
    assert stored is not None and (stored.balance, stored.qbo_sync_token) == (Decimal("40.00"), "3")
    late_echo = txn("Invoice", "7", "24", SyncToken="2", Balance=Decimal("0"),
                    MetaData={"LastUpdatedTime": "2024-06-05T10:00:00-07:00"})  # an old version, a later stamp
    assert apply(app, conn.id, "Invoice", late_echo).action == "stale"
