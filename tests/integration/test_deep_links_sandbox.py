"""Deep links open the record in its own company: two companies with the same invoice id, each connection's link
followed in a fresh browser session of the QBO sandbox's web app (docs/qbo/deep-links.md).

Both companies are synced for real (signed webhooks, a real worker); the links come from the JSON API.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import requests

from crm_qb.crypto import hash_api_key, new_api_key
from crm_qb.db import db
from crm_qb.models import Connection, ContactLink
from tests.conftest import VERIFIER_TOKEN
from tests.support import sync as support
from tests.support.connections import add_connection, post_qbo
from tests.support.sync import Harness, connect_qbo

qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness


def _customer_and_invoice(h: Harness, realm: str, name: str, number: str) -> tuple[str, str]:
    """A customer and one invoice of theirs in ``realm``, made as the bookkeeper would; their ids."""
    customer = h.qbo.post(f"/_sandbox/realms/{realm}/entities/Customer", {"DisplayName": name})["Customer"]
    body = {"CustomerRef": {"value": customer["Id"]}, "DocNumber": number,
            "Line": [{"Amount": "90.00", "DetailType": "SalesItemLineDetail",
                      "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": "90.00"}}]}
    invoice = h.qbo.post(f"/_sandbox/realms/{realm}/entities/Invoice", body)["Invoice"]
    return str(customer["Id"]), str(invoice["Id"])


def _announce(h: Harness, realm: str, entity: str, entity_id: str) -> None:
    event = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "intuit.test",
             "type": f"qbo.{entity}.created.v1", "datacontenttype": "application/json",
             "time": datetime.now(UTC).isoformat(), "intuitentityid": entity_id, "intuitaccountid": realm, "data": {}}
    assert post_qbo(h.client, json.dumps([event]).encode(), VERIFIER_TOKEN).status_code == 200


def _links(h: Harness, connection_id: int, api_key: str, customer_id: str) -> dict[str, Any]:
    [link] = [lk for lk in h.links() if lk.connection_id == connection_id and lk.qbo_customer_id == customer_id]
    assert isinstance(link, ContactLink)
    answer = h.client.get(f"/api/v1/connections/{connection_id}/contacts/{link.crm_contact_id}/quickbooks",
                          headers={"Authorization": f"Bearer {api_key}"})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    return {"customer": body["link"]["customer_url"], "invoice": body["folder"]["items"][0]["url"]}


def _new_api_key(h: Harness) -> str:
    """Give the harness's own connection a known API key (the harness does not keep the one it was made with)."""
    key = new_api_key()
    with h.app.app_context():
        row = db.session.get(Connection, h.connection_id)
        assert row is not None
        row.api_key_hash = hash_api_key(key)
        db.session.commit()
    return key


def _open_in_a_fresh_browser(url: str) -> str:
    """Follow ``url`` as a browser with no QBO session would; the page's text."""
    with requests.Session() as browser:
        page = browser.get(url, timeout=10)
    assert page.status_code == 200, (url, page.status_code)
    return page.text


def test_a_second_companys_invoice_link_opens_that_companys_invoice(harness: Harness) -> None:
    h = harness
    second = add_connection(h.app, crm_url=h.crm.url)
    other_realm = h.qbo.post("/_sandbox/realms", {"customers": 0, "transactions": 0})["realm_id"]
    connect_qbo(h.app, second.id, other_realm)
    first_ids = _customer_and_invoice(h, h.qbo.realm_id, "First Company Customer", "FIRST-1")
    second_ids = _customer_and_invoice(h, other_realm, "Second Company Customer", "SECOND-1")
    assert first_ids == second_ids  # the same ids in both companies: only the company tells them apart
    for realm in (h.qbo.realm_id, other_realm):
        _announce(h, realm, "customer", first_ids[0])
        _announce(h, realm, "invoice", first_ids[1])
    h.work()

    theirs = _links(h, second.id, second.api_key, second_ids[0])
    page = _open_in_a_fresh_browser(theirs["invoice"])
    assert "Invoice SECOND-1" in page and f"({other_realm})" in page
    assert "Second Company Customer" in _open_in_a_fresh_browser(theirs["customer"])

    ours = _links(h, h.connection_id, _new_api_key(h), first_ids[0])
    assert "Invoice FIRST-1" in _open_in_a_fresh_browser(ours["invoice"])
    assert "First Company Customer" in _open_in_a_fresh_browser(ours["customer"])
