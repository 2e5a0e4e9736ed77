"""POST /contacts/batch: creates and updates in one request, each item on its own, results in request order."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient

from crm_qb.sandbox.crm.server import RunningServer
from tests.sandbox_crm.conftest import AUTH, HookReceiver
from tests.sandbox_crm.test_hooks import subscribe


def batch(client: FlaskClient, body: Any) -> Any:
    """POST a batch and return the response."""
    return client.post("/contacts/batch", json=body, headers=AUTH)


def contact(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    """Create a contact and return it."""
    return client.post("/contacts", json=fields, headers=AUTH).json


def test_creates_and_updates_answer_in_request_order_and_fail_alone(client: FlaskClient) -> None:
    ada, bob = contact(client, first_name="Ada"), contact(client, first_name="Bob")
    response = batch(client, {
        "create": [{"first_name": "Cy", "email": "cy@example.com"}, {"email": "not-an-email"}, {"company": "Dee Ltd"}],
        "update": [{"id": ada["id"], "version": 1, "phone": "+1 1"}, {"id": bob["id"], "version": 7, "phone": "+1 2"},
                   {"id": "ct_missing", "version": 1, "phone": "+1 3"}, {"id": bob["id"], "version": 1, "colour": "x"},
                   {"id": bob["id"], "phone": "+1 4"}, {"version": 1}, "not an object"],
    })
    assert response.status_code == 200
    results = response.json["results"]
    assert [r["index"] for r in results] == list(range(10))
    assert [r["status"] for r in results] == [201, 400, 201, 200, 412, 404, 400, 400, 400, 400]
    assert results[0]["contact"]["email"] == "cy@example.com" and results[0]["contact"]["version"] == 1
    assert results[1]["error"]["field"] == "email" and "contact" not in results[1]
    assert results[2]["contact"]["company"] == "Dee Ltd"
    assert results[3]["contact"] == {**ada, "phone": "+1 1", "version": 2,
                                     "updated_at": results[3]["contact"]["updated_at"]}
    assert results[4]["error"]["code"] == "version_conflict" and results[5]["error"]["code"] == "not_found"
    assert [results[n]["error"]["field"] for n in (6, 7, 8)] == ["colour", "version", "id"]
    assert results[9]["error"]["code"] == "invalid_body"
    assert client.get(f"/contacts/{bob['id']}", headers=AUTH).json == bob, "failed items changed nothing"
    listed = client.get("/contacts", headers=AUTH).json["contacts"]
    assert len(listed) == 4


def test_an_update_that_changes_nothing_keeps_the_version(client: FlaskClient) -> None:
    ada = contact(client, first_name="Ada")
    result = batch(client, {"update": [{"id": ada["id"], "version": 1, "first_name": "Ada"}]}).json["results"][0]
    assert result == {"index": 0, "status": 200, "contact": ada}


def test_the_envelope_is_checked_as_a_whole(client: FlaskClient) -> None:
    assert batch(client, {}).json == {"results": []}
    assert batch(client, {"create": {"first_name": "A"}}).json["error"]["field"] == "create"
    assert batch(client, {"update": None}).json["error"]["field"] == "update"
    assert batch(client, {"delete": []}).json["error"]["field"] == "delete"
    assert batch(client, [1]).json["error"]["code"] == "invalid_body"
    too_many = batch(client, {"create": [{"first_name": f"N{n}"} for n in range(60)],
                              "update": [{"id": "x", "version": 1}] * 41})
    assert too_many.status_code == 400 and too_many.json["error"]["code"] == "invalid_body"
    assert "100" in too_many.json["error"]["message"]
    assert client.get("/contacts", headers=AUTH).json["contacts"] == [], "a refused batch changes nothing"
    assert client.post("/contacts/batch", json={}).status_code == 401


def test_a_hundred_items_are_one_request(client: FlaskClient) -> None:
    response = batch(client, {"create": [{"first_name": f"N{n}"} for n in range(100)]})
    assert [r["status"] for r in response.json["results"]] == [201] * 100
    assert client.get("/_sandbox/requests").json["endpoints"] == {"POST /contacts/batch": 1}
    assert response.headers["X-RateLimit-Remaining"] == "99"


def test_each_changed_contact_sends_its_hook(http: requests.Session, live_crm: RunningServer,
                                             receiver: HookReceiver) -> None:
    subscribe(http, live_crm, receiver)
    ada = http.post(f"{live_crm.url}/contacts", json={"first_name": "Ada"}, headers=AUTH).json()
    results = http.post(f"{live_crm.url}/contacts/batch", headers=AUTH, json={
        "create": [{"first_name": "Bob"}, {"first_name": 5}],
        "update": [{"id": ada["id"], "version": 1, "first_name": "Ada"}, {"id": ada["id"], "version": 1, "phone": "1"}],
    }).json()["results"]
    events = receiver.wait_events(3)
    assert [e["type"] for e in events] == ["contact.created", "contact.created", "contact.updated"]
    assert events[1]["contact"] == results[0]["contact"] and events[2]["contact"] == results[3]["contact"]
    assert live_crm.sandbox.hooks.wait_idle(5)
    assert http.get(f"{live_crm.url}/_sandbox/hooks").json()["delivered"] == 3


@pytest.mark.parametrize("changes", [
    {}, {"first_name": "Ada", "tags": ["a", "b"]},
    {"billing_address": {"line1": "1 Main St", "city": "Springfield"}, "shipping_address": None},
    {"email": "ada@example.test", "quickbooks": None, "active": False, "notes": "x\ny"},
])
def test_a_new_contact_changed_in_place_is_the_copy_changed(changes: dict) -> None:
    """``create_contact`` applies its changes to the new record itself (``copy=False``): the same record."""
    from crm_qb.sandbox.crm.store import apply_changes, new_contact

    copied = apply_changes(new_contact("ct_1"), changes)
    in_place = new_contact("ct_1")
    assert apply_changes(in_place, changes, copy=False) is in_place
    assert in_place == copied
    assert json.dumps(in_place) == json.dumps(copied)
