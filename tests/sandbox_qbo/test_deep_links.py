"""The web app's deep-link pages and how they choose the company (docs/qbo/deep-links.md)."""

from __future__ import annotations

from html import escape
from urllib.parse import quote

import pytest
import requests

from crm_qb.sandbox.qbo.applinks import COMPANY_COOKIE


def _second_company(client) -> str:
    """A seeded realm whose ids overlap the demo realm's (its invoice ids run far past the demo's three)."""
    return client.post("/_sandbox/realms", json={"customers": 6, "transactions": 40, "seed": 7}).get_json()["realm_id"]


def _an_invoice_only_in(sandbox, realm_id: str) -> dict:
    demo_ids = {row["Id"] for row in sandbox.engine.rows(sandbox.demo_realm_id, "Invoice")}
    return next(row for row in sandbox.engine.rows(realm_id, "Invoice") if row["Id"] not in demo_ids)


def _scoped(page: str, realm_id: str) -> str:
    """The company-scoped link the product must generate: the sign-in route with pagereq and deeplinkcompanyid."""
    return f"/app/login?pagereq={quote(page, safe='')}&deeplinkcompanyid={realm_id}"


def test_a_bare_link_opens_the_record_in_the_active_company_only(client, sandbox):
    other = _second_company(client)
    invoice = _an_invoice_only_in(sandbox, other)
    bare = client.get(f"/app/invoice?txnId={invoice['Id']}")
    assert bare.status_code == 404  # a fresh session is in the demo company: "Not found", as issue 10 saw it


def test_the_company_scoped_link_shows_the_other_companys_invoice(client, sandbox):
    other = _second_company(client)
    invoice = _an_invoice_only_in(sandbox, other)
    entry = client.get(_scoped(f"invoice?txnId={invoice['Id']}", other))
    assert entry.status_code == 302 and entry.headers["Location"] == f"/app/invoice?txnId={invoice['Id']}"
    page = client.get(entry.headers["Location"])
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f"Invoice {invoice['DocNumber']}" in html and f"({other})" in html
    # The company stays active for the session: a later bare link resolves there too.
    assert client.get(f"/app/invoice?txnId={invoice['Id']}").status_code == 200


def test_the_same_customer_id_shows_each_companys_own_customer(client, sandbox):
    other = _second_company(client)
    theirs = sandbox.engine.read(other, "Customer", "9")
    ours = sandbox.engine.read(sandbox.demo_realm_id, "Customer", "2")
    page = client.get(_scoped("customerdetail?nameId=9", other), follow_redirects=True)
    assert page.status_code == 200 and escape(theirs["DisplayName"]) in page.get_data(as_text=True)
    back = client.get(_scoped("customerdetail?nameId=2", sandbox.demo_realm_id), follow_redirects=True)
    assert escape(ours["DisplayName"]) in back.get_data(as_text=True)


@pytest.mark.parametrize("param", ["realm", "deeplinkcompanyid"])
def test_a_company_parameter_on_the_page_selects_the_company(client, sandbox, param):
    other = _second_company(client)
    invoice = _an_invoice_only_in(sandbox, other)
    page = client.get(f"/app/invoice?txnId={invoice['Id']}&{param}={other}")
    assert page.status_code == 200 and COMPANY_COOKIE in page.headers.get("Set-Cookie", "")


def test_the_root_login_route_and_bad_requests(client, sandbox):
    assert client.get(_scoped("invoice?txnId=1", "999").replace("/app/login", "/login")).status_code == 404
    assert client.get("/login?pagereq=https://evil.example/&deeplinkcompanyid=1").status_code == 400
    root = client.get(f"/login?pagereq=invoice%3FtxnId%3D1&deeplinkcompanyid={sandbox.demo_realm_id}")
    assert root.status_code == 302 and root.headers["Location"] == "/app/invoice?txnId=1"


def test_time_activity_and_employee_pages(client, api, sandbox):
    activity = sandbox.engine.rows(sandbox.demo_realm_id, "TimeActivity")[0]
    for query in (f"id={activity['Id']}", f"txnId={activity['Id']}"):
        assert client.get(f"/app/timeactivity?{query}").status_code == 200
    employee = sandbox.engine.rows(sandbox.demo_realm_id, "Employee")[0]
    page = client.get(f"/app/employeedetail?nameId={employee['Id']}")
    assert page.status_code == 200 and employee["DisplayName"] in page.get_data(as_text=True)


def test_a_browser_like_client_follows_the_scoped_link_over_http(live):
    other = requests.post(f"{live.base_url}/_sandbox/realms", json={"customers": 6, "transactions": 40, "seed": 7},
                          timeout=10).json()["realm_id"]
    invoice = _an_invoice_only_in(live, other)
    link = _scoped(f"invoice?txnId={invoice['Id']}", other)
    answer = requests.get(f"{live.base_url}{link}", timeout=10)
    assert answer.status_code == 200 and f"({other})" in answer.text
