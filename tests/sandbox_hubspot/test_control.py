"""The control API: info, faults, counts, clock, reset, seed, persistence, the record page and the card proxy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import requests
from flask.testing import FlaskClient

from crm_qb.sandbox.hubspot.app import create_app, sandbox_of
from crm_qb.sandbox.hubspot.server import RunningServer
from crm_qb.sandbox.hubspot.signatures import sign_v2, verify_v3
from tests.sandbox_hubspot.conftest import AUTH, CLIENT_SECRET, TOKEN, Receiver, config
from tests.support import wait_for


def test_info_has_what_clients_need(client: FlaskClient) -> None:
    info = client.get("/_sandbox/info").get_json()
    assert info["token"] == TOKEN and info["client_secret"] == CLIENT_SECRET and info["portal_id"] == 62515
    assert {"api_base", "client_id", "authorize_url", "token_url", "record_url_template"} <= set(info)
    assert info["record_url_template"].endswith("/contacts/62515/record/0-1/{id}")


def test_injected_faults_then_recovery(client: FlaskClient) -> None:
    plan = client.post("/_sandbox/faults", json={"count": 2, "status": 477, "retry_after": 30}).get_json()
    assert plan["count"] == 2
    first = client.get("/crm/v3/objects/contacts", headers=AUTH)
    assert first.status_code == 477 and first.headers["Retry-After"] == "30"
    assert first.get_json()["category"] == "MIGRATION_IN_PROGRESS"
    assert client.get("/crm/v3/objects/contacts", headers=AUTH).status_code == 477
    assert client.get("/crm/v3/objects/contacts", headers=AUTH).status_code == 200
    assert client.post("/_sandbox/faults", json={"status": 418}).status_code == 400


def test_error_rate_is_seeded_and_counts_are_per_endpoint(client: FlaskClient) -> None:
    client.post("/_sandbox/faults", json={"error_rate": 0.5, "status": 503, "seed": 11})
    statuses = [client.get("/crm/v3/objects/contacts", headers=AUTH).status_code for _ in range(40)]
    assert {200, 503} == set(statuses) and 8 < statuses.count(503) < 32
    client.delete("/_sandbox/faults")
    client.post("/crm/v3/objects/contacts/search", json={}, headers=AUTH)
    counts = client.get("/_sandbox/requests").get_json()
    assert counts["by_endpoint"]["GET /crm/v3/objects/<object_type>"] == 40
    assert counts["by_endpoint"]["POST /crm/v3/objects/<object_type>/search"] == 1 and counts["total"] == 41
    assert client.delete("/_sandbox/requests").status_code == 204
    assert client.get("/_sandbox/requests").get_json()["total"] == 0


def test_latency_is_added(client: FlaskClient) -> None:
    import time

    client.post("/_sandbox/faults", json={"latency_ms": 200})
    started = time.monotonic()
    client.get("/crm/v3/objects/contacts", headers=AUTH)
    assert time.monotonic() - started >= 0.2


def test_clock_moves_lastmodifieddate_and_token_expiry(client: FlaskClient) -> None:
    before = client.get("/_sandbox/clock").get_json()
    moved = client.post("/_sandbox/clock", json={"advance_seconds": 3600}).get_json()
    assert moved["offset_seconds"] == before["offset_seconds"] + 3600
    made = client.post("/crm/v3/objects/contacts", json={"properties": {"email": "late@example.com"}},
                       headers=AUTH).get_json()
    assert made["properties"]["createdate"][:13] == moved["now"][:13]


def test_reset_and_seed(client: FlaskClient) -> None:
    seeded = client.post("/_sandbox/seed", json={"contacts": 25, "seed": 3})
    assert seeded.status_code == 201 and len(seeded.get_json()["ids"]) == 25
    page = client.get("/crm/v3/objects/contacts?limit=100", headers=AUTH).get_json()
    assert len(page["results"]) == 25
    client.post("/crm/v3/properties/contacts", headers=AUTH, json={
        "name": "qb_x", "label": "X", "type": "string", "fieldType": "text", "groupName": "contactinformation"})
    assert client.post("/_sandbox/reset").status_code == 204
    assert client.get("/_sandbox/info").get_json()["token"] == TOKEN
    assert client.get("/crm/v3/objects/contacts", headers=AUTH).get_json()["results"] == []
    assert client.get("/crm/v3/properties/contacts/qb_x", headers=AUTH).status_code == 404
    assert len(client.get("/crm/v3/owners", headers=AUTH).get_json()["results"]) == 2


def test_ui_edits_act_as_a_user(client: FlaskClient) -> None:
    made = client.post("/_sandbox/objects/contacts", json={"properties": {"email": "u@example.com"}})
    assert made.status_code == 201
    contact_id = made.get_json()["id"]
    edited = client.patch(f"/_sandbox/objects/contacts/{contact_id}", json={"properties": {"phone": "+1 555"}})
    assert edited.get_json()["properties"]["phone"] == "+1 555"
    history = client.get(f"/crm/v3/objects/contacts/{contact_id}?propertiesWithHistory=phone", headers=AUTH)
    assert history.get_json()["propertiesWithHistory"]["phone"][0]["sourceType"] == "CRM"
    assert client.delete(f"/_sandbox/objects/contacts/{contact_id}").status_code == 204
    assert client.get(f"/crm/v3/objects/contacts/{contact_id}", headers=AUTH).status_code == 404
    bad = client.post("/_sandbox/webhooks", json={"url": "ftp://nope"})
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "invalid"


def test_persistence_survives_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "hubspot.db")
    first = create_app(config(persist_path=path, token=None, client_id=None, client_secret=None))
    box = sandbox_of(first)
    made = box.store.create("contacts", {"email": "keep@example.com"})
    company = box.store.create("companies", {"name": "Keep Co"})
    box.store.associate("contacts", made["id"], "companies", company["id"], None)
    box.store.catalog.create_definition("contacts", {"name": "qb_balance", "label": "Balance", "type": "number",
                                             "fieldType": "number", "groupName": "contactinformation"})
    box.set_panel_template("https://crm-qb.example/panel/1/embed/{id}")
    token, secret = box.token, box.client_secret
    box.stop()

    second = create_app(config(persist_path=path, token=None, client_id=None, client_secret=None))
    again = sandbox_of(second)
    try:
        assert (again.token, again.client_secret) == (token, secret)
        assert again.store.get("contacts", "keep@example.com", "email")["id"] == made["id"]
        assert again.store.associations("contacts", made["id"], "companies")[0][0] == company["id"]
        assert again.store.catalog.definition("contacts", "qb_balance") is not None
        assert again.panel_url(made["id"]) == f"https://crm-qb.example/panel/1/embed/{made['id']}"
        newer = again.store.create("contacts", {"email": "next@example.com"})
        assert int(newer["id"]) > int(company["id"])
    finally:
        again.stop()


def test_record_page_shows_the_card_and_embeds_the_panel(live: RunningServer, receiver: Receiver,
                                                         http: requests.Session) -> None:
    contact = http.post(f"{live.url}/crm/v3/objects/contacts", headers=AUTH,
                        json={"properties": {"email": "r@example.com", "firstname": "Rita"}}).json()
    receiver.reply = {"summary": {"open_balance": "120.00", "currency": "USD"},
                      "transactions": [{"type": "Invoice", "number": "1001", "status": "Overdue"}],
                      "panel_url": "https://crm-qb.example/panel"}
    http.post(f"{live.url}/_sandbox/card", json={"url": receiver.url + "/hubspot/card/contacts/{id}"})
    http.post(f"{live.url}/_sandbox/panel", json={"url_template": receiver.url + "/panel/1/embed/{id}"})
    page = http.get(f"{live.url}/contacts/62515/record/0-1/{contact['id']}")
    assert page.status_code == 200
    html = page.text
    assert "Rita" in html and "open_balance" in html and "120.00" in html and "1001" in html
    assert f'src="{receiver.url}/panel/1/embed/{contact["id"]}"' in html
    assert f"frame-src {receiver.url};" in page.headers["Content-Security-Policy"]
    call = receiver.requests[-1]
    assert call.method == "GET" and call.url.startswith(f"/hubspot/card/contacts/{contact['id']}?")
    query = parse_qs(urlsplit(call.url).query)
    assert query["portalId"] == ["62515"] and query["userEmail"] == ["jsmith@example.com"]
    assert {"userId", "appId"} <= set(query)
    stamp = int(call.headers["X-HubSpot-Request-Timestamp"])
    assert verify_v3(CLIENT_SECRET, "GET", receiver.url + call.url, b"", call.headers, stamp)
    assert call.headers["X-HubSpot-Signature"] == sign_v2(CLIENT_SECRET, "GET", receiver.url + call.url, b"")
    assert http.get(f"{live.url}/contacts/62515/record/0-1/999999").status_code == 404
    listing = http.get(f"{live.url}/contacts/62515/objects/0-1/views/all/list")
    assert f"/contacts/62515/record/0-1/{contact['id']}" in listing.text


def test_card_fetch_posts_signed_json_and_retries_a_5xx_once(live: RunningServer, receiver: Receiver,
                                                             http: requests.Session) -> None:
    receiver.script = [(502, {})]
    receiver.reply = {"ok": True}
    answer = http.post(f"{live.url}/_sandbox/card/fetch", json={
        "url": receiver.url + "/hubspot/card/refresh?x=1", "method": "POST", "body": {"contactId": "5"}}).json()
    assert answer["status"] == 200 and answer["body"] == {"ok": True}
    assert len(receiver.requests) == 2
    call = receiver.requests[-1]
    assert json.loads(call.body) == {"contactId": "5"} and call.headers["Content-Type"] == "application/json"
    assert call.url.startswith("/hubspot/card/refresh?x=1&userId=")
    stamp = int(call.headers["X-HubSpot-Request-Timestamp"])
    assert verify_v3(CLIENT_SECRET, "POST", receiver.url + call.url, call.body, call.headers, stamp)


def test_cli_prints_one_json_line_and_serves_info(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen([sys.executable, "-m", "crm_qb.cli", "sandbox", "hubspot", "--port", "0",
                                "--db", str(tmp_path / "hs.db")], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        info = json.loads(line)
        with requests.Session() as session:
            session.trust_env = False
            served = wait_for(lambda: session.get(info["api_base"] + "/_sandbox/info").json(), what="info")
        assert served["token"] == info["token"] and served["portal_id"] == 62515
    finally:
        process.terminate()
        assert process.wait(10) == 0


def test_reset_also_forgets_what_was_persisted(tmp_path: Path) -> None:
    path = str(tmp_path / "hubspot.db")
    first = create_app(config(persist_path=path))
    box = sandbox_of(first)
    made = box.store.create("contacts", {"email": "gone@example.com"})
    box.store.catalog.create_definition("contacts", {"name": "qb_gone", "label": "Gone", "type": "string",
                                                     "fieldType": "text", "groupName": "contactinformation"})
    assert first.test_client().post("/_sandbox/reset").status_code == 204
    box.stop()
    again = sandbox_of(create_app(config(persist_path=path)))
    try:
        assert again.store.search_unique("contacts", "email", "gone@example.com") is None
        assert again.store.page("contacts", None, 10) == ([], None)
        assert again.store.catalog.definition("contacts", "qb_gone") is None
        assert len(again.store.owners()) == 2
        assert int(again.store.create("contacts", {"email": "new@example.com"})["id"]) > int(made["id"])
    finally:
        again.stop()


def test_a_user_reads_objects_associations_and_owners_without_spending_the_api_budget(client: FlaskClient) -> None:
    client.post("/_sandbox/limits", json={"burst": 3})
    ids = client.post("/_sandbox/seed", json={"contacts": 1100, "seed": 4}).get_json()["ids"]
    task = client.post("/crm/v3/objects/tasks", headers=AUTH, json={
        "properties": {"hs_task_subject": "Call back", "hs_timestamp": "2026-12-02T10:00:00Z"},
        "associations": [{"to": {"id": ids[0]}, "types": [
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}]}]}).get_json()
    client.delete("/_sandbox/requests")
    for _ in range(5):  # more reads than the burst limit allows
        listed = client.get("/_sandbox/objects/contacts").get_json()["results"]
        assert sorted(c["id"] for c in listed) == sorted(ids)  # past the API's 100-per-page limit
        one = client.get(f"/_sandbox/objects/contacts/{ids[0]}").get_json()
        assert one["id"] == ids[0] and "email" in one["properties"]
        links = client.get(f"/_sandbox/objects/contacts/{ids[0]}/associations/tasks").get_json()["results"]
        assert [str(link["toObjectId"]) for link in links] == [task["id"]]
        assert client.get(f"/_sandbox/objects/tasks/{task['id']}").get_json()["properties"][
            "hs_task_subject"] == "Call back"
        assert len(client.get("/_sandbox/owners").get_json()["results"]) == 2
    assert client.get("/_sandbox/objects/contacts/999999999").status_code == 404
    assert client.get("/_sandbox/requests").get_json()["total"] == 0
    assert client.get("/crm/v3/objects/contacts", headers=AUTH).status_code == 200
