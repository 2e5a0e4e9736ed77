"""The control API: info, webhooks for API and bookkeeper changes, merge, faults, throttling, counts, pages."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from crm_qb.signatures import verify_qbo

from .conftest import access_token, sales_line


def _register(client, fmt: str = "cloudevents", realm: str | None = None) -> None:
    body = {"url": "http://127.0.0.1:9/hooks", "format": fmt, "delay_ms": 0}
    if realm:
        body["realm"] = realm
    assert client.post("/_sandbox/webhooks", json=body).status_code == 201


def test_info_has_the_contract_fields(client, sandbox):
    info = client.get("/_sandbox/info").get_json()
    for key in ("discovery_url", "api_base", "app_base", "realm_id", "client_id", "client_secret",
                "verifier_token"):
        assert info[key]
    assert info["home_currency"] == "USD" and info["multicurrency"] is True
    assert info["realm_id"] == sandbox.demo_realm_id


def test_api_changes_emit_signed_cloudevents(client, sandbox, api, hooks):
    _register(client)
    customer = api.create("Customer", {"DisplayName": "Hooked"})
    api.post("customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Notes": "x"})
    sandbox.dispatcher.deliver_due()
    _url, body, headers = hooks.deliveries[0]
    assert verify_qbo(body, headers["intuit-signature"], sandbox.config.verifier_token)
    events = hooks.events()
    assert [(e["type"], e["intuitentityid"]) for e in events] == [
        ("qbo.customer.created.v1", customer["Id"]), ("qbo.customer.updated.v1", customer["Id"])]
    assert events[0]["intuitaccountid"] == api.realm_id


def test_bookkeeper_actions_emit_the_same_events(client, sandbox, api, hooks, item):
    _register(client, "legacy")
    base = f"/_sandbox/realms/{api.realm_id}"
    customer = client.post(f"{base}/entities/Customer", json={"DisplayName": "UI Customer"}).get_json()["Customer"]
    edited = client.patch(f"{base}/entities/Customer/{customer['Id']}", json={"Notes": "edited in the UI"})
    assert edited.get_json()["Customer"]["SyncToken"] == "1"
    invoice = client.post(f"{base}/entities/invoice", json={"CustomerRef": {"value": customer["Id"]},
                                                            "Line": [sales_line(item["Id"], "3")]}).get_json()
    invoice_id = invoice["Invoice"]["Id"]
    paid = client.post(f"{base}/payments", json={"customer_id": customer["Id"], "amount": 25}).get_json()
    assert paid["Payment"]["Line"][0]["LinkedTxn"] == [{"TxnId": invoice_id, "TxnType": "Invoice"}]
    assert client.post(f"{base}/entities/invoice/{invoice_id}/void").status_code == 200
    assert client.delete(f"{base}/entities/payment/{paid['Payment']['Id']}").status_code == 200
    sandbox.dispatcher.deliver_due()
    entities = [entity for _u, body, _h in hooks.deliveries
                for note in json.loads(body)["eventNotifications"] for entity in note["dataChangeEvent"]["entities"]]
    assert [(e["name"], e["operation"]) for e in entities] == [
        ("Customer", "Create"), ("Customer", "Update"), ("Invoice", "Create"), ("Payment", "Create"),
        ("Invoice", "Update"), ("Payment", "Update"), ("Invoice", "Void"), ("Payment", "Delete")]


def test_merge_sends_survivor_update_and_merged_event(client, sandbox, api, hooks, item):
    base = f"/_sandbox/realms/{api.realm_id}"
    keep = api.create("Customer", {"DisplayName": "Keeper"})
    dup = api.create("Customer", {"DisplayName": "Keeper Duplicate"})
    api.create("Invoice", {"CustomerRef": {"value": dup["Id"]}, "Line": [sales_line(item["Id"])]})
    _register(client)
    merged = client.post(f"{base}/customers/merge", json={"from": dup["Id"], "into": keep["Id"]}).get_json()
    assert merged["Customer"]["Balance"] == Decimal("20.00") or merged["Customer"]["Balance"] == 20
    sandbox.dispatcher.deliver_due()
    events = hooks.events()
    assert [(e["type"], e["intuitentityid"], e["data"]) for e in events] == [
        ("qbo.customer.updated.v1", keep["Id"], {}),
        ("qbo.customer.merged.v1", keep["Id"], {"deletedid": dup["Id"]})]
    gone = api.get(f"customer/{dup['Id']}").json_body["Customer"]
    assert gone["Active"] is False
    moved = api.query(f"select * from Invoice where CustomerRef = '{keep['Id']}'")["Invoice"]
    assert len(moved) == 1


def test_bookkeeper_delete_of_customer_makes_it_inactive(client, api):
    customer = api.create("Customer", {"DisplayName": "UI Deleted"})
    response = client.delete(f"/_sandbox/realms/{api.realm_id}/entities/customer/{customer['Id']}")
    assert response.get_json()["Customer"]["Active"] is False


def test_throttle_now_answers_429_xml_and_counts(client, api):
    assert api.get("customer/1").status_code == 200
    assert client.post("/_sandbox/throttle", json={"realm": api.realm_id, "seconds": 30}).status_code == 200
    throttled = api.get("customer/1")
    assert throttled.status_code == 429 and throttled.mimetype == "application/xml"
    assert b'<Error code="3001">' in throttled.get_data()
    counts = client.get(f"/_sandbox/realms/{api.realm_id}/requests").get_json()
    assert counts["by_endpoint"]["GET /customer/{id}"] == 2 and counts["throttled"] == 1 and counts["total"] == 2


def test_per_minute_limit_is_configurable(client, api):
    assert client.post("/_sandbox/limits", json={"per_minute": 3}).get_json()["per_minute"] == 3
    statuses = [api.get("customer/1").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]


def test_injected_5xx_and_fault_in_200(client, api):
    client.post("/_sandbox/faults", json={"realm": api.realm_id, "error_rate": 1.0, "error_status": 503})
    failed = api.get("customer/1")
    assert failed.status_code == 503 and failed.json_body["Fault"]["type"] == "SystemFault"
    client.post("/_sandbox/faults", json={"realm": api.realm_id, "error_rate": 0, "fault_in_200_rate": 1.0})
    odd = api.get("customer/1")
    assert odd.status_code == 200 and "Fault" in odd.json_body
    assert client.delete("/_sandbox/faults").status_code == 204
    assert "Customer" in api.get("customer/1").json_body
    assert client.post("/_sandbox/faults", json={"error_rate": 2}).status_code == 400


def test_clock_offset_moves_today(client, sandbox, api, item):
    before = sandbox.engine.today(sandbox.store.realm(api.realm_id))
    client.post("/_sandbox/clock", json={"offset_seconds": 86400 * 10})
    api.token = access_token(client, sandbox, api.realm_id)  # the old one expired 10 days ago
    customer = api.create("Customer", {"DisplayName": "Future"})
    invoice = api.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"])]})
    now = client.get("/_sandbox/clock").get_json()
    assert invoice["TxnDate"] == (before + timedelta(days=10)).isoformat() and now["offset_seconds"] == 864000


def test_deep_link_page_escapes_everything(client, api):
    customer = api.create("Customer", {"DisplayName": "<script>alert(1)</script>"})
    page = client.get(f"/app/customerdetail?nameId={customer['Id']}")
    assert page.status_code == 200 and b"<script>" not in page.get_data()
    assert b"&lt;script&gt;" in page.get_data()
    assert client.get("/app/invoice?txnId=1").status_code == 200
    assert client.get("/app/invoice?txnId=<b>").status_code == 404


def test_bad_control_requests_get_json_errors(client):
    response = client.post("/_sandbox/webhooks", json={"url": "ftp://x", "format": "legacy"})
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_request"
    assert client.get("/_sandbox/realms/nope/requests").status_code == 404
