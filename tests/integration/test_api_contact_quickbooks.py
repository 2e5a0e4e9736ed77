"""GET /api/v1/connections/<id>/contacts/<crm_contact_id>/quickbooks on SQLite and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from crm_qb.config import Settings
from crm_qb.db import db
from crm_qb.models import LinkState, QboReference
from tests.conftest import make_settings
from tests.support.connections import TestConnection as Conn
from tests.support.folder import APP_BASE, apply, company, link, qbo_json, qbo_page, txn


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Production QBO with the web app base pointed at the local sandbox (deep links stay on 127.0.0.1)."""
    return make_settings(tmp_path, database_url, qbo_environment="production", qbo_app_base=APP_BASE)


def get(client: FlaskClient, conn: Conn, contact: str, key: str | None = None,
        connection_id: int | None = None, **params: Any) -> Any:
    """Call the endpoint as ``conn`` (or with ``key``)."""
    headers = {"Authorization": f"Bearer {key if key is not None else conn.api_key}"}
    path = f"/api/v1/connections/{connection_id or conn.id}/contacts/{contact}/quickbooks"
    return client.get(path, headers=headers, query_string=params)


def seeded(app: Flask) -> Conn:
    """A USD company whose contact c1 (customer 24) has five transactions, newest last."""
    conn = company(app)
    link(app, conn.id, "c1", "24", payment_terms="Net 30", preferred_payment_method="Check",
         delivery_preference="Email", currency="USD", balance="160.00")
    apply(app, conn.id, "Invoice", txn("Invoice", "1", "24", TxnDate="2024-05-01", DueDate="2024-05-31"))
    apply(app, conn.id, "Invoice", txn("Invoice", "2", "24", TxnDate="2024-05-10", DueDate="2024-07-10",
                                       Balance=Decimal("60.00")))
    apply(app, conn.id, "Payment", txn("Payment", "3", "24", TxnDate="2024-05-20", TotalAmt=Decimal("40.00"),
                                       Line=[{"Amount": Decimal("40.00"),
                                              "LinkedTxn": [{"TxnId": "2", "TxnType": "Invoice"}]}]))
    apply(app, conn.id, "Estimate", txn("Estimate", "4", "24", TxnDate="2024-06-01", TxnStatus="Accepted"))
    apply(app, conn.id, "SalesReceipt", txn("SalesReceipt", "5", "24", TxnDate="2024-06-02",
                                            TotalAmt=Decimal("25.50")))
    apply(app, conn.id, "Invoice", txn("Invoice", "99", "77"))  # another customer's: never shown for c1
    return conn


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "Bearer cqb_wrong"])
def test_missing_or_bad_key_is_401(app: Flask, client: FlaskClient, header: str | None) -> None:
    conn = seeded(app)
    headers = {} if header is None else {"Authorization": header}
    response = client.get(f"/api/v1/connections/{conn.id}/contacts/c1/quickbooks", headers=headers)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_unknown_contact_is_404(app: Flask, client: FlaskClient) -> None:
    conn = seeded(app)
    response = get(client, conn, "nobody")
    assert response.status_code == 404 and response.json["error"]["code"] == "contact_not_found"


def test_another_connections_contact_is_404_not_403(app: Flask, client: FlaskClient) -> None:
    mine, theirs = seeded(app), company(app)
    link(app, theirs.id, "theirs-1", "24")
    assert get(client, mine, "theirs-1").status_code == 404
    # My key on their URL, even for a contact that exists there: 404, nothing about them is revealed.
    response = get(client, mine, "theirs-1", connection_id=theirs.id)
    assert response.status_code == 404 and response.json["error"]["code"] == "contact_not_found"
    assert get(client, theirs, "theirs-1").status_code == 200


def test_linked_contact_shows_link_summary_and_folder(app: Flask, client: FlaskClient) -> None:
    conn = seeded(app)
    body = get(client, conn, "c1").json
    assert body["link"] == {"state": "linked", "reason": None, "qbo_customer_id": "24",
                            "customer_url": qbo_page("customerdetail", "nameId", "24")}
    folder = body["folder"]
    assert (folder["total"], folder["page"], folder["per_page"], folder["pages"]) == (5, 1, 50, 1)
    assert [i["qbo_id"] for i in folder["items"]] == ["5", "4", "3", "2", "1"]  # newest first
    payment = folder["items"][2]
    assert payment["url"] == qbo_page("recvpayment", "txnId", "3")
    assert payment["linked"] == [{"type": "Invoice", "id": "2", "amount": "40.00"}]
    invoice = folder["items"][4]
    assert invoice | {"updated_at": None} == invoice | {
        "type": "Invoice", "number": "INV-1", "date": "2024-05-01", "due_date": "2024-05-31", "status": "Overdue",
        "days_overdue": 15, "currency": "USD", "exchange_rate": "1", "total": "100.00", "balance": "100.00",
        "home_total": "100.00", "home_balance": "100.00", "home_computed": False,
        "url": qbo_page("invoice", "txnId", "1"), "updated_at": None}


def test_summary_figures(app: Flask, client: FlaskClient) -> None:
    conn = seeded(app)
    summary = get(client, conn, "c1").json["summary"]
    assert (summary["terms"], summary["preferred_payment_method"], summary["delivery_preference"]) == (
        "Net 30", "Check", "Email")
    assert (summary["currency"], summary["home_currency"], summary["qbo_balance"]) == ("USD", "USD", "160.00")
    assert summary["open_balance"] == {"by_currency": {"USD": "160.00"}, "home": "160.00"}
    assert summary["overdue_balance"] == {"by_currency": {"USD": "100.00"}, "home": "100.00"}
    assert summary["last_payment"] == {"qbo_id": "3", "date": "2024-05-20", "currency": "USD", "amount": "40.00",
                                       "home_amount": "40.00", "url": qbo_page("recvpayment", "txnId", "3")}
    assert summary["counts"] == {"Invoice": 2, "Payment": 1, "Estimate": 1, "SalesReceipt": 1}
    assert summary["totals"]["USD"] == {"open": "160.00", "overdue": "100.00", "invoiced": "200.00",
                                        "received": "65.50", "credited": "0.00", "refunded": "0.00",
                                        "unapplied_credits": "0.00", "unapplied_payments": "0.00"}
    assert summary["unapplied_credits"] == summary["unapplied_payments"] == {"by_currency": {}, "home": "0.00"}
    assert (summary["parent"], summary["jobs"]) == (None, [])
    assert summary["home_totals"]["received"] == "65.50"
    assert summary["customer_url"] == qbo_page("customerdetail", "nameId", "24")


def test_reference_names_follow_renames_in_qbo(app: Flask, client: FlaskClient) -> None:
    conn = company(app)
    link(app, conn.id, "c1", "24", payment_terms="Net 30", payment_terms_id="3",
         preferred_payment_method="Check", payment_method_id="2")
    with app.app_context():
        db.session.add_all([QboReference(connection_id=conn.id, kind="term", qbo_id="3", name="Net 45"),
                            QboReference(connection_id=conn.id, kind="payment_method", qbo_id="2", name="Cheque")])
        db.session.commit()
    summary = get(client, conn, "c1").json["summary"]
    assert (summary["terms"], summary["preferred_payment_method"]) == ("Net 45", "Cheque")


@pytest.mark.parametrize(("params", "ids"), [
    ({"type": "Invoice"}, ["2", "1"]),
    ({"type": "invoice,payment"}, ["3", "2", "1"]),
    ({"status": "overdue"}, ["1"]),
    ({"status": "Partially paid"}, ["2"]),
    ({"type": "Invoice", "status": "paid"}, []),
    ({"per_page": "2"}, ["5", "4"]),
    ({"per_page": "2", "page": "3"}, ["1"]),
    ({"per_page": "2", "page": "9"}, []),
])
def test_filters_and_paging(app: Flask, client: FlaskClient, params: dict[str, str], ids: list[str]) -> None:
    conn = seeded(app)
    response = get(client, conn, "c1", **params)
    assert response.status_code == 200
    assert [i["qbo_id"] for i in response.json["folder"]["items"]] == ids


def test_repeated_type_parameters_combine(app: Flask, client: FlaskClient) -> None:
    conn = seeded(app)
    response = client.get(f"/api/v1/connections/{conn.id}/contacts/c1/quickbooks?type=Estimate&type=SalesReceipt",
                          headers={"Authorization": f"Bearer {conn.api_key}"})
    assert [i["qbo_id"] for i in response.json["folder"]["items"]] == ["5", "4"]
    assert response.json["folder"]["filters"] == {"type": ["Estimate", "SalesReceipt"], "status": []}


@pytest.mark.parametrize(("params", "code", "words"), [
    ({"type": "Bill"}, "invalid_type", "Bill"),
    ({"status": "late"}, "invalid_status", "late"),
    ({"per_page": "201"}, "invalid_per_page", "at most 200"),
    ({"per_page": "0"}, "invalid_per_page", "at least 1"),
    ({"page": "-1"}, "invalid_page", "page"),
    ({"page": "two"}, "invalid_page", "two"),
])
def test_bad_filters_are_clear_400s(app: Flask, client: FlaskClient, params: dict[str, str], code: str,
                                    words: str) -> None:
    conn = seeded(app)
    response = get(client, conn, "c1", **params)
    assert response.status_code == 400
    assert response.json["error"]["code"] == code and words in response.json["error"]["message"]


def test_review_and_unlinked_states(app: Flask, client: FlaskClient) -> None:
    conn = seeded(app)
    link(app, conn.id, "c2", None, state=LinkState.REVIEW, reason="Two QuickBooks customers share this email.")
    link(app, conn.id, "c3", None, state=LinkState.UNLINKED)
    review, unlinked = get(client, conn, "c2").json, get(client, conn, "c3").json
    assert review["link"] == {"state": "review", "reason": "Two QuickBooks customers share this email.",
                              "qbo_customer_id": None, "customer_url": None}
    assert unlinked["link"]["state"] == "unlinked" and "not linked" in unlinked["link"]["reason"]
    for body in (review, unlinked):
        assert body["summary"] is None and body["folder"]["items"] == [] and body["folder"]["total"] == 0


def test_transactions_of_a_customer_linked_later_appear_with_the_link(app: Flask, client: FlaskClient) -> None:
    conn = company(app)
    apply(app, conn.id, "Invoice", txn("Invoice", "1", "50"))
    assert get(client, conn, "late").status_code == 404
    link(app, conn.id, "late", "50")
    assert [i["qbo_id"] for i in get(client, conn, "late").json["folder"]["items"]] == ["1"]


def test_eur_customer_in_usd_company(app: Flask, client: FlaskClient) -> None:
    conn = company(app, home="USD")
    link(app, conn.id, "eu", "60", currency="EUR")
    apply(app, conn.id, "Invoice", qbo_json("""{"Id": "501", "SyncToken": "0", "DocNumber": "EU-1",
        "TxnDate": "2024-06-01", "DueDate": "2024-07-01", "CustomerRef": {"value": "60"},
        "CurrencyRef": {"value": "EUR", "name": "Euro"}, "ExchangeRate": 1.0853, "TotalAmt": 1234.56,
        "Balance": 1234.56, "HomeTotalAmt": 1339.88, "HomeBalance": 1339.88}"""))
    body = get(client, conn, "eu").json
    invoice = body["folder"]["items"][0]
    assert (invoice["currency"], invoice["exchange_rate"], invoice["total"], invoice["balance"]) == (
        "EUR", "1.0853", "1234.56", "1234.56")
    assert (invoice["home_currency"], invoice["home_total"], invoice["home_balance"]) == ("USD", "1339.88", "1339.88")
    assert body["summary"]["open_balance"] == {"by_currency": {"EUR": "1234.56"}, "home": "1339.88"}
    assert body["summary"]["currency"] == "EUR"
