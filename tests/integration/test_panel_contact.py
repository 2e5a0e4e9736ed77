"""The contact panel and its embed redirect: tokens, framing headers, states, rows and filters."""

from __future__ import annotations

import re
import time
from decimal import Decimal
from html import escape
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from crm_qb.config import Settings
from crm_qb.db import db
from crm_qb.models import Connection, LinkState
from crm_qb.web.panel_tokens import make_embed_token, make_panel_token
from tests.conftest import make_settings
from tests.support.folder import APP_BASE, apply, company, link, qbo_json, qbo_page, txn

# What this file tests does not depend on the database: its SQLite variants run in CI, its PostgreSQL ones with the
# slow tests (tests/conftest.py), to keep CI under 15 minutes.
pytestmark = pytest.mark.postgresql_slow


SECRET = "test-secret-key"  # make_settings' SECRET_KEY


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Production QBO with deep links on the local sandbox host."""
    return make_settings(tmp_path, database_url, qbo_environment="production", qbo_app_base=APP_BASE)


def token_for(app: Flask, connection_id: int, contact: str, ttl: int = 3600, now: float | None = None) -> str:
    """A panel token made the way the CLI and the embed endpoint make them."""
    with app.app_context():
        row = db.session.get(Connection, connection_id)
        assert row is not None
        return make_panel_token(SECRET, row, contact, ttl, now)


def embed_token_for(app: Flask, connection_id: int, ttl: int = 86400, now: float | None = None) -> str:
    """An embed token of a connection."""
    with app.app_context():
        row = db.session.get(Connection, connection_id)
        assert row is not None
        return make_embed_token(SECRET, row, ttl, now)


def panel(client: FlaskClient, connection_id: int, contact: str, token: str | None, **params: str):  # type: ignore[no-untyped-def]
    """GET the panel."""
    query = {"token": token, **params} if token is not None else params
    return client.get(f"/panel/{connection_id}/contacts/{contact}", query_string=query)


def seeded(app: Flask) -> int:
    """A USD company; contact c1 is customer 24 with an overdue invoice, a EUR invoice and a payment."""
    conn = company(app)
    link(app, conn.id, "c1", "24", payment_terms="Net 30", preferred_payment_method="Check",
         delivery_preference="Email", currency="USD")
    apply(app, conn.id, "Invoice", txn("Invoice", "1", "24", DocNumber="1001", TxnDate="2024-05-01",
                                       DueDate="2024-05-31"))
    apply(app, conn.id, "Invoice", qbo_json("""{"Id": "2", "DocNumber": "EU-2", "TxnDate": "2024-06-02",
        "CustomerRef": {"value": "24"}, "CurrencyRef": {"value": "EUR"}, "ExchangeRate": 1.0853,
        "TotalAmt": 1234.56, "Balance": 1234.56, "HomeTotalAmt": 1339.88, "HomeBalance": 1339.88,
        "DueDate": "2024-07-02"}"""))
    apply(app, conn.id, "Payment", txn("Payment", "3", "24", TxnDate="2024-05-20", TotalAmt=Decimal("40.00")))
    return conn.id


def test_panel_shows_summary_and_a_real_table(app: Flask, client: FlaskClient) -> None:
    conn = seeded(app)
    response = panel(client, conn, "c1", token_for(app, conn, "c1"))
    assert response.status_code == 200 and response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "Payment &amp; Billing" in html and "Net 30" in html and "Check" in html and "Email" in html
    assert "<table>" in html and "<caption" in html and html.count('<th scope="col"') == 6
    assert html.count('<th scope="row">') == 3
    assert f'href="{escape(qbo_page("customerdetail", "nameId", "24"))}"' in html
    for page, record in (("invoice", "1"), ("invoice", "2"), ("recvpayment", "3")):
        assert re.search(rf'href="{re.escape(escape(qbo_page(page, "txnId", record)))}" target="_blank" '
                         r'rel="noopener noreferrer"', html), page
    assert '<span class="badge bad">Overdue</span><span class="small">15 days</span>' in html
    assert '<span class="badge ok">Applied</span>' in html
    assert "EUR 1,234.56" in html and "USD 1,339.88" in html and "1 EUR = 1.0853 USD" in html
    assert "<script" not in html and "http://" not in html.replace(APP_BASE, "")  # no external assets


def test_framing_only_from_the_crm_origin(app: Flask, client: FlaskClient) -> None:
    conn = seeded(app)
    response = panel(client, conn, "c1", token_for(app, conn, "c1"))
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors http://127.0.0.1:8702" in csp and csp.endswith("frame-ancestors http://127.0.0.1:8702")
    assert "X-Frame-Options" not in response.headers
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(("case", "message"), [
    ("missing", "has no token"),
    ("garbage", "is not valid"),
    ("other_contact", "another contact"),
    ("expired", "has expired"),
    ("other_connection", "is not valid"),
    ("embed_as_panel", "is not valid"),
    ("rotated_api_key", "is not valid"),
])
def test_tokens_that_do_not_open_this_panel_get_a_clear_403(app: Flask, client: FlaskClient, case: str,
                                                            message: str) -> None:
    conn = seeded(app)
    other = company(app, crm_url="https://other-crm.example")
    link(app, other.id, "c1", "24")
    token = {
        "missing": None, "garbage": "abc.def",
        "other_contact": token_for(app, conn, "c2"),
        "expired": token_for(app, conn, "c1", ttl=60, now=time.time() - 3600),
        "other_connection": token_for(app, other.id, "c1"),
        "embed_as_panel": embed_token_for(app, conn),
        "rotated_api_key": token_for(app, conn, "c1"),
    }[case]
    if case == "rotated_api_key":
        with app.app_context():
            row = db.session.get(Connection, conn)
            assert row is not None
            row.api_key_hash = "0" * 64
            db.session.commit()
    response = panel(client, conn, "c1", token)
    assert response.status_code == 403 and response.mimetype == "text/html"
    assert message in response.get_data(as_text=True)
    assert "frame-ancestors http://127.0.0.1:8702" in response.headers["Content-Security-Policy"]


def test_unknown_connection_is_403_and_not_framable(app: Flask, client: FlaskClient) -> None:
    response = panel(client, 999, "c1", "whatever")
    assert response.status_code == 403
    assert response.headers["Content-Security-Policy"].endswith("frame-ancestors 'none'")


def test_unlinked_contact_shows_a_clear_empty_state(app: Flask, client: FlaskClient) -> None:
    conn = seeded(app)
    html = panel(client, conn, "stranger", token_for(app, conn, "stranger")).get_data(as_text=True)
    assert "Not linked to QuickBooks" in html and "not linked to a QuickBooks customer yet" in html
    assert "<table" not in html


def test_contact_waiting_for_review_says_so(app: Flask, client: FlaskClient) -> None:
    conn = seeded(app)
    link(app, conn, "c9", None, state=LinkState.REVIEW, reason="Two QuickBooks customers share ada@example.com.")
    html = panel(client, conn, "c9", token_for(app, conn, "c9")).get_data(as_text=True)
    assert "Waiting for review" in html and "Two QuickBooks customers share ada@example.com." in html
    assert "<table" not in html


def test_linked_contact_without_transactions(app: Flask, client: FlaskClient) -> None:
    conn = seeded(app)
    link(app, conn, "c5", "55")
    html = panel(client, conn, "c5", token_for(app, conn, "c5")).get_data(as_text=True)
    assert "No QuickBooks transactions for this customer yet." in html


def test_type_filter_links_and_status_form_work_without_javascript(app: Flask, client: FlaskClient) -> None:
    conn = seeded(app)
    token = token_for(app, conn, "c1")
    html = panel(client, conn, "c1", token).get_data(as_text=True)
    links = dict(re.findall(r'<li><a href="([^"]+)"[^>]*>([^<(]+) \(', html))
    assert set(links.values()) == {"All", "Invoices", "Payments"}
    invoices_url = next(url for url, label in links.items() if label == "Invoices").replace("&amp;", "&")
    assert parse_qs(urlsplit(invoices_url).query) == {"token": [token], "type": ["Invoice"]}
    filtered = client.get(invoices_url).get_data(as_text=True)
    assert filtered.count('<th scope="row">') == 2 and 'aria-current="page">Invoices' in filtered
    assert '<label for="status-filter">Status</label>' in filtered
    overdue = panel(client, conn, "c1", token, type="Invoice", status="Overdue").get_data(as_text=True)
    assert overdue.count('<th scope="row">') == 1 and '<option value="Overdue" selected>' in overdue
    none = panel(client, conn, "c1", token, status="Voided").get_data(as_text=True)
    assert "No transactions match these filters." in none


def test_bad_filter_is_a_400_page(app: Flask, client: FlaskClient) -> None:
    conn = seeded(app)
    response = panel(client, conn, "c1", token_for(app, conn, "c1"), type="Bill")
    assert response.status_code == 400 and "unknown type &#39;Bill&#39;" in response.get_data(as_text=True)


def test_paging_links_keep_the_token_and_filters(app: Flask, client: FlaskClient) -> None:
    conn = seeded(app)
    token = token_for(app, conn, "c1")
    html = panel(client, conn, "c1", token, per_page="2").get_data(as_text=True)
    older = re.search(r'<a href="([^"]+)" rel="next">', html)
    assert older is not None and "Page 1 of 2" in html
    second = client.get(older.group(1).replace("&amp;", "&") + "&per_page=2").get_data(as_text=True)
    assert second.count('<th scope="row">') == 1 and "Page 2 of 2" in second


def test_embed_redirects_to_a_fresh_panel_url(app: Flask, client: FlaskClient) -> None:
    conn = seeded(app)
    response = client.get(f"/panel/{conn}/embed/c1", query_string={"token": embed_token_for(app, conn)})
    assert response.status_code == 302
    target = response.headers["Location"]
    assert urlsplit(target).path == f"/panel/{conn}/contacts/c1"
    assert client.get(target).status_code == 200
    assert "frame-ancestors http://127.0.0.1:8702" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize("case", ["missing", "panel_token", "expired", "other_connection"])
def test_embed_refuses_anything_but_a_valid_embed_token(app: Flask, client: FlaskClient, case: str) -> None:
    conn = seeded(app)
    other = company(app)
    token = {"missing": None, "panel_token": token_for(app, conn, "c1"),
             "expired": embed_token_for(app, conn, ttl=10, now=time.time() - 60),
             "other_connection": embed_token_for(app, other.id)}[case]
    query = {"token": token} if token else {}
    response = client.get(f"/panel/{conn}/embed/c1", query_string=query)
    assert response.status_code == 403 and "Location" not in response.headers
