"""``POST /webhooks/hubspot`` and the app card's endpoint, signed exactly as HubSpot signs (v3, real HMAC).

Requests are signed with the local HubSpot's own signer (``crm_qb.sandbox.hubspot.signatures``), which the
sandbox's tests check against HubSpot's published vectors, so the product's verifier is tested against an
independent implementation of HubSpot's scheme.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from crm_qb.config import Settings
from crm_qb.connections import create_hubspot_connection
from crm_qb.db import db
from crm_qb.models import Connection, InboundEvent
from crm_qb.runtime import runtime
from crm_qb.sandbox.hubspot.signatures import fetch_headers, webhook_headers
from tests.conftest import make_settings
from tests.support.folder import APP_BASE, REALM, apply, link, txn

PUBLIC = "https://crm-qb.example.com"
APP_SECRET = "app-client-secret"
PORTAL = "62515"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """crm-qb reached at PUBLIC by HubSpot, with the app's client secret."""
    return make_settings(tmp_path, database_url, public_url=PUBLIC, hubspot_client_secret=APP_SECRET,
                         qbo_environment="production", qbo_app_base=APP_BASE)


def hubspot_connection(app: Flask, portal: str = PORTAL, secret: str | None = None) -> int:
    """A HubSpot connection of ``portal`` (a private-app token; the portal given, not read from HubSpot)."""
    with app.app_context():
        made = create_hubspot_connection(runtime(app).secrets, api_base="http://127.0.0.1:9", token="pat-x",
                                         portal_id=portal, client_secret=secret)
        row = db.session.get(Connection, made.connection.id)
        assert row is not None
        row.qbo_realm_id, row.home_currency = REALM, "USD"
        db.session.commit()
        return made.connection.id


def event(kind: str, object_id: int, event_id: int = 1, portal: str = PORTAL, **extra: Any) -> dict[str, Any]:
    """One HubSpot webhook event."""
    return {"eventId": event_id, "subscriptionId": 1000, "portalId": int(portal), "appId": 54321,
            "occurredAt": 1764633600000 + event_id, "subscriptionType": kind, "attemptNumber": 0,
            "objectId": object_id, "changeSource": "CRM", **extra}


def post(client: FlaskClient, events: Any, secret: str = APP_SECRET, stamp_ms: int | None = None,
         url: str = PUBLIC + "/webhooks/hubspot") -> Any:
    """Deliver ``events`` as HubSpot does: one POST, a JSON array, v1 and v3 headers."""
    body = json.dumps(events).encode() if not isinstance(events, bytes) else events
    stamp = stamp_ms if stamp_ms is not None else int(time.time() * 1000)
    return client.post("/webhooks/hubspot", data=body, content_type="application/json",
                       headers=webhook_headers(secret, "POST", url, body, stamp))


def stored(app: Flask) -> list[tuple[int | None, str | None, str, dict[str, Any]]]:
    """(connection, contact, operation, payload) of every stored event, in order."""
    with app.app_context():
        rows = db.session.scalars(select(InboundEvent).order_by(InboundEvent.id))
        return [(r.connection_id, r.entity_id, r.operation, dict(r.payload or {})) for r in rows]


def test_a_batch_is_one_request_routed_by_portal_and_deduplicated(app: Flask, client: FlaskClient) -> None:
    mine, other = hubspot_connection(app), hubspot_connection(app, "777")
    batch = [event("contact.creation", 51, 1), event("contact.propertyChange", 51, 2, propertyName="email",
                                                      propertyValue="a@b.c"),
             event("contact.deletion", 52, 3), event("contact.creation", 60, 4, portal="777"),
             event("company.creation", 9, 5), event("object.creation", 70, 6, objectTypeId="0-27")]
    answer = post(client, batch)
    assert answer.status_code == 200, answer.json
    assert answer.json == {"status": "accepted", "stored": 4, "received": 6}
    assert [(c, i, o) for c, i, o, _ in stored(app)] == [(mine, "51", "created"), (mine, "51", "updated"),
                                                       (mine, "52", "deleted"), (other, "60", "created")]
    again = post(client, [{**e, "attemptNumber": 1} for e in batch])  # HubSpot's retry of the same batch
    assert again.status_code == 200 and again.json["stored"] == 0


def test_a_merge_moves_every_old_id_to_the_new_record(app: Flask, client: FlaskClient) -> None:
    connection = hubspot_connection(app)
    merge = event("contact.merge", 11, 7, primaryObjectId=11, mergedObjectIds=[12], newObjectId=13,
                  numberOfPropertiesMoved=3)
    assert post(client, [merge]).json["stored"] == 3
    rows = stored(app)
    assert [(i, o, p.get("merged_into")) for _, i, o, p in rows] == [("11", "merged", "13"), ("12", "merged", "13"),
                                                                    ("13", "updated", None)]
    assert all(c == connection for c, *_ in rows)


@pytest.mark.parametrize("tamper", ["secret", "old", "future", "url", "body", "none"])
def test_bad_signatures_are_401(app: Flask, client: FlaskClient, tamper: str) -> None:
    hubspot_connection(app)
    body = json.dumps([event("contact.creation", 51)]).encode()
    now = int(time.time() * 1000)
    secret, stamp, url = APP_SECRET, now, PUBLIC + "/webhooks/hubspot"
    if tamper == "secret":
        secret = "wrong"
    elif tamper in ("old", "future"):
        stamp = now - 301_000 if tamper == "old" else now + 301_000
    elif tamper == "url":
        url = "https://attacker.example/webhooks/hubspot"
    headers = webhook_headers(secret, "POST", url, body, stamp)
    if tamper == "body":
        body = body.replace(b"51", b"52")
    if tamper == "none":
        headers = {}
    answer = client.post("/webhooks/hubspot", data=body, content_type="application/json", headers=headers)
    assert answer.status_code == 401 and answer.json["error"]["code"] == "invalid_signature"
    assert stored(app) == []


def test_a_connections_own_secret_vouches_for_its_portal_only(app: Flask, client: FlaskClient) -> None:
    mine = hubspot_connection(app, PORTAL, secret="private-app-secret")
    hubspot_connection(app, "777")
    batch = [event("contact.creation", 51, 1), event("contact.creation", 60, 2, portal="777")]
    answer = post(client, batch, secret="private-app-secret")
    assert answer.status_code == 200 and answer.json["stored"] == 1
    assert [(c, i) for c, i, _, _ in stored(app)] == [(mine, "51")]


def test_an_unknown_portal_is_accepted_and_stores_nothing(app: Flask, client: FlaskClient) -> None:
    answer = post(client, [event("contact.creation", 51, portal="999")])
    assert answer.status_code == 200 and answer.json["stored"] == 0


@pytest.mark.parametrize("body", [
    {"events": []}, [], [{"eventId": 1}], [event("contact.creation", 1, occurredAt=10 ** 18)],
    [{**event("contact.creation", 1), "objectId": "abc"}], [{**event("contact.creation", 1), "portalId": True}],
    b"not json", b"[" * 5000 + b"]" * 5000, [event("contact.creation", 1)] * 1001,
    [{**event("contact.merge", 1), "mergedObjectIds": "x"}],
    [{**event("contact.creation", 1), "portalId": []}], [{**event("contact.creation", 1), "portalId": "9" * 65}],
])
def test_hostile_signed_bodies_are_4xx_json_never_500(app: Flask, client: FlaskClient, body: Any) -> None:
    hubspot_connection(app)
    answer = post(client, body)
    assert answer.status_code in (400, 413), answer.data
    assert answer.json["error"]["code"] in ("invalid_body", "payload_too_large", "too_large")


# -- the app card's endpoint -----------------------------------------------------------------------------------

def card(client: FlaskClient, contact: str, query: str = "limit=5", portal: str = PORTAL,
         secret: str = APP_SECRET, stamp_ms: int | None = None) -> Any:
    """Call the card endpoint as HubSpot's proxy does: its metadata appended to the query, signed v3 and v2."""
    query = f"{query}&userId=1296619&userEmail=jsmith%40example.com&appId=54321&portalId={portal}"
    path = f"/hubspot/card/contacts/{contact}?{query}"
    stamp = stamp_ms if stamp_ms is not None else int(time.time() * 1000)
    return client.get(path, headers=fetch_headers(secret, "GET", PUBLIC + path, b"", stamp))


def test_the_card_shows_summary_recent_transactions_and_a_panel_link(app: Flask, client: FlaskClient) -> None:
    connection = hubspot_connection(app)
    link(app, connection, "1051", "24", payment_terms="Net 30", currency="USD", balance="160.00")
    for number in range(1, 8):
        apply(app, connection, "Invoice", txn("Invoice", str(number), "24", TxnDate=f"2024-05-0{number}"))
    answer = card(client, "1051", "limit=3")
    assert answer.status_code == 200, answer.json
    data = answer.json
    assert (data["portal_id"], data["connection_id"], data["crm_contact_id"]) == (62515, connection, "1051")
    assert data["link"]["state"] == "linked" and data["link"]["qbo_customer_id"] == "24"
    assert data["summary"]["terms"] == "Net 30"
    assert Decimal(data["summary"]["open_balance"]["home"]) == Decimal("700.00")
    assert [t["qbo_id"] for t in data["transactions"]] == ["7", "6", "5"] and data["transactions_total"] == 7
    assert data["panel_url"].startswith(f"{PUBLIC}/panel/{connection}/contacts/1051?token=")
    panel = client.get(data["panel_url"].removeprefix(PUBLIC))
    assert panel.status_code == 200
    assert "https://*.hubspot.com" in panel.headers["Content-Security-Policy"]


def test_a_contact_crm_qb_never_saw_is_unlinked_not_404(app: Flask, client: FlaskClient) -> None:
    hubspot_connection(app)
    data = card(client, "4242").json
    assert data["link"]["state"] == "unlinked" and data["summary"] is None and data["transactions"] == []
    assert data["link"]["reason"]


def test_card_refusals(app: Flask, client: FlaskClient) -> None:
    hubspot_connection(app)
    assert card(client, "1", secret="wrong").status_code == 401
    assert card(client, "1", stamp_ms=int(time.time() * 1000) - 400_000).status_code == 401
    assert card(client, "1", portal="999").json["error"]["code"] == "not_connected"
    too_many = card(client, "1", "limit=50")
    assert too_many.status_code == 400 and "limit" in too_many.json["error"]["message"]
    assert client.get("/hubspot/card/contacts/1?portalId=62515").status_code == 401
    assert client.get("/hubspot/card/contacts/1").status_code == 401


def test_calls_and_meetings_are_stored_as_activities(app: Flask, client: FlaskClient) -> None:
    connection = hubspot_connection(app)
    batch = [event("object.creation", 71, 1, objectTypeId="0-48"),
             event("object.propertyChange", 72, 2, objectTypeId="0-47", propertyName="hs_meeting_end_time"),
             event("object.deletion", 73, 3, objectTypeId="0-48"), event("object.creation", 74, 4, objectTypeId="0-27")]
    # A call associated with a contact after it was made: both sides' events come, only the call's is time.
    association = {"associationType": "CALL_TO_CONTACT", "toObjectId": 901, "associationRemoved": False}
    sides = [event("object.associationChange", 0, 5, objectTypeId="0-48", fromObjectId=75, **association),
             event("contact.associationChange", 0, 6, fromObjectId=901, associationType="CONTACT_TO_CALL",
                   toObjectId=75)]
    batch += [{key: value for key, value in side.items() if key != "objectId"} for side in sides]  # none there
    answer = post(client, batch)
    assert answer.status_code == 200 and answer.json["stored"] == 4
    with app.app_context():
        rows = db.session.scalars(select(InboundEvent).order_by(InboundEvent.id)).all()
        assert [(r.connection_id, r.entity, r.entity_id, r.operation) for r in rows] == [
            (connection, "Activity", "call-71", "created"), (connection, "Activity", "meeting-72", "updated"),
            (connection, "Activity", "call-73", "deleted"), (connection, "Activity", "call-75", "updated")]
