"""The sandbox's answers have the shapes of HubSpot's documented and observed payloads (docs/hubspot/payloads)."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient

from crm_qb.sandbox.hubspot.state import sandbox_of
from tests.sandbox_hubspot.conftest import AUTH, CLIENT_ID, CLIENT_SECRET, payload


def keys(value: dict[str, Any]) -> set[str]:
    return set(value)


def new_contact(client: FlaskClient, email: str) -> dict[str, Any]:
    answer = client.post("/crm/v3/objects/contacts", json={"properties": {"email": email}}, headers=AUTH)
    assert answer.status_code == 201
    return answer.get_json()


def test_object_list_and_search_shapes(client: FlaskClient) -> None:
    made = new_contact(client, "shape@example.com")
    new_contact(client, "shape2@example.com")
    one = client.get(f"/crm/v3/objects/contacts/{made['id']}", headers=AUTH).get_json()
    assert keys(one) == keys(payload("contact_object.json"))
    assert all(isinstance(v, str | None) for v in one["properties"].values())

    page = client.get("/crm/v3/objects/contacts?limit=1", headers=AUTH).get_json()
    documented = payload("contacts_list_page.json")
    assert keys(page) == keys(documented) and keys(page["paging"]["next"]) == keys(documented["paging"]["next"])
    assert page["paging"]["next"]["link"] == f"?after={page['paging']['next']['after']}"

    found = client.post("/crm/v3/objects/contacts/search", json={"limit": 1}, headers=AUTH).get_json()
    documented = payload("search_response.json")
    assert keys(found) == keys(documented) and keys(found["results"][0]) == keys(documented["results"][0])


def test_documented_search_request_is_accepted(client: FlaskClient) -> None:
    client.post("/crm/v3/objects/contacts", json={"properties": {"email": "al@example.com", "firstname": "Alice"}},
                headers=AUTH)
    client.post("/crm/v3/objects/contacts", json={"properties": {"email": "bo@example.com", "firstname": "Bob"}},
                headers=AUTH)
    found = client.post("/crm/v3/objects/contacts/search", json=payload("search_request.json"), headers=AUTH)
    assert found.status_code == 200
    assert [r["properties"]["firstname"] for r in found.get_json()["results"]] == ["Alice"]


def test_owner_shape(client: FlaskClient) -> None:
    owners = client.get("/crm/v3/owners/", headers=AUTH).get_json()
    documented = payload("owners_list.json")
    assert keys(documented) <= keys(owners)
    assert keys(documented["results"][0]) <= keys(owners["results"][0])
    assert isinstance(owners["results"][0]["userId"], int)


def test_documented_task_create_body_with_associations(client: FlaskClient) -> None:
    body = payload("task_create_with_association.json")
    targets = [new_contact(client, f"t{i}@example.com")["id"] for i in range(2)]
    for association, target in zip(body["associations"], targets, strict=True):
        association["to"]["id"] = int(target)  # the documented body sends numeric ids
    body["properties"].pop("hubspot_owner_id")
    made = client.post("/crm/v3/objects/tasks", json=body, headers=AUTH)
    assert made.status_code == 201, made.get_data(as_text=True)
    task_id = made.get_json()["id"]
    for target in targets:
        linked = client.get(f"/crm/v4/objects/contacts/{target}/associations/tasks", headers=AUTH).get_json()
        assert [r["toObjectId"] for r in linked["results"]] == [task_id]


def test_batch_207_shape(client: FlaskClient) -> None:
    new_contact(client, "dup@example.com")
    body = payload("batch_create_request.json")
    item = body["inputs"][0]
    item.pop("associations")
    item["properties"], item["objectWriteTraceId"] = {"email": "dup@example.com"}, "t1"
    ok = {"properties": {"email": "fine@example.com"}, "objectWriteTraceId": "t2"}
    answer = client.post("/crm/v3/objects/contacts/batch/create", json={"inputs": [item, ok]}, headers=AUTH)
    assert answer.status_code == 207
    result = answer.get_json()
    documented = payload("batch_create_response_207.json")
    assert {"status", "results", "startedAt", "completedAt", "errors", "numErrors"} <= keys(result) <= keys(documented)
    assert result["status"] == "COMPLETE" and result["numErrors"] == 1
    assert keys(result["errors"][0]) <= keys(documented["errors"][0])
    assert keys(result["results"][0]) - {"objectWriteTraceId"} == keys(documented["results"][0])


def test_error_shapes(client: FlaskClient) -> None:
    missing = client.get("/crm/v3/objects/contacts/12345", headers=AUTH)
    assert missing.status_code == 404
    assert keys(missing.get_json()) == keys(payload("object_not_found_404.json"))
    assert missing.get_json()["message"] == payload("object_not_found_404.json")["message"]

    new_contact(client, "c@example.com")
    conflict = client.post("/crm/v3/objects/contacts", json={"properties": {"email": "c@example.com"}}, headers=AUTH)
    assert conflict.status_code == 409 and keys(conflict.get_json()) == keys(payload("conflict_409.json"))

    invalid = client.post("/crm/v3/objects/contacts", json={"properties": {"nope": "1"}}, headers=AUTH)
    documented = payload("validation_error_400.json")
    assert invalid.status_code == 400
    assert keys(documented) - {"links"} <= keys(invalid.get_json())
    assert invalid.get_json()["category"] == documented["category"]

    malformed = client.post("/crm/v3/objects/contacts", data="{", content_type="application/json", headers=AUTH)
    assert malformed.status_code == 400 and malformed.get_json()["category"] == "VALIDATION_ERROR"
    route = client.get("/crm/v3/nothing-here", headers=AUTH)
    assert route.status_code == 404 and route.get_json()["category"] == "OBJECT_NOT_FOUND"


def test_expired_token_and_bad_refresh_token_shapes(client: FlaskClient) -> None:
    box = sandbox_of(client.application)
    code = box.oauth.authorize(CLIENT_ID, "https://app.example/cb", "oauth")
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": "https://app.example/cb",
            "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    tokens = client.post("/oauth/v1/token", data=form).get_json()
    box.clock.advance(1800)
    expired = client.get("/crm/v3/objects/contacts", headers={"Authorization": f"Bearer {tokens['access_token']}"})
    assert expired.status_code == 401 and expired.headers["X-HubSpot-Auth-Failure"] == "401 Unauthorized"
    assert keys(expired.get_json()) == keys(payload("expired_authentication_401.json"))
    assert expired.get_json()["message"] == "The OAuth token used to make this call expired 0 second(s) ago."

    assert client.delete(f"/oauth/v1/refresh-tokens/{tokens['refresh_token']}").status_code == 204
    refused = client.post("/oauth/v3/token", data={**form, "grant_type": "refresh_token",
                                                   "refresh_token": tokens["refresh_token"]})
    documented = payload("bad_refresh_token_400.json")
    assert refused.status_code == 400 and keys(refused.get_json()) == keys(documented)
    assert {k: refused.get_json()[k] for k in ("status", "error")} == {k: documented[k] for k in ("status", "error")}


def test_webhook_event_shapes_match_the_documented_examples(client: FlaskClient) -> None:
    from crm_qb.sandbox.hubspot.webhooks import default_subscriptions, events_for

    documented = payload("webhook_contact_creation.json")[0]
    change = {"action": "creation", "objectType": "contacts", "objectId": "123", "occurredAt": 1564113600000,
              "changeSource": "CRM", "sourceId": None}
    event = next(e for e in events_for(change, default_subscriptions(), 62515, 54321, lambda: 1)
                 if e["subscriptionType"] == "contact.creation")
    assert event == documented | {"subscriptionId": event["subscriptionId"]}
    assert json.dumps(sorted(event)) == json.dumps(sorted(documented))
    constructed = {e["subscriptionType"]: e for e in payload("webhook_events_constructed.json")}
    samples = {
        "contact.propertyChange": {"action": "propertyChange", "propertyName": "email", "propertyValue": "n@x.com"},
        "contact.deletion": {"action": "deletion"},
        "contact.merge": {"action": "merge", "primaryObjectId": 1, "mergedObjectIds": [2], "newObjectId": 3,
                          "numberOfPropertiesMoved": 1},
        "contact.associationChange": {"action": "associationChange", "associationType": "CONTACT_TO_COMPANY",
                                      "fromObjectId": 1, "toObjectId": 2, "associationRemoved": False,
                                      "isPrimaryAssociation": False},
    }
    for kind, fields in samples.items():
        ours = next(e for e in events_for({**change, **fields}, default_subscriptions(), 62515, 54321, lambda: 1)
                    if e["subscriptionType"] == kind)
        assert keys(constructed[kind]) <= keys(ours) | {"changeFlag"}, kind
