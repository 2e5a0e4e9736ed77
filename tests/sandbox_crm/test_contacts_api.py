"""The reference CRM's contact API through the Flask test client."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.sandbox_crm.conftest import AUTH

ADA = {"first_name": "Ada", "last_name": "Lovelace", "email": "Ada@Example.com", "company": "Engines Ltd",
       "billing_address": {"line1": "1 St James's Sq", "city": "London", "country": "GB"}, "tags": ["vip"]}


def create(client: FlaskClient, **fields: Any) -> dict[str, Any]:
    """Create a contact through the API and return it."""
    response = client.post("/contacts", json=fields or ADA, headers=AUTH)
    assert response.status_code == 201, response.json
    return response.json


def patch(client: FlaskClient, contact_id: str, version: int | str, **fields: Any) -> Any:
    """PATCH a contact at ``version``."""
    return client.patch(f"/contacts/{contact_id}", json=fields, headers={**AUTH, "If-Match": str(version)})


def test_create_returns_full_contact_with_version_etag_and_location(client: FlaskClient) -> None:
    response = client.post("/contacts", json=ADA, headers=AUTH)
    contact = response.json
    assert response.status_code == 201
    assert response.headers["ETag"] == '"1"'
    assert response.headers["Location"] == f"/contacts/{contact['id']}"
    assert contact["version"] == 1 and contact["active"] is True and contact["quickbooks"] is None
    assert contact["updated_at"].endswith("Z")
    assert contact["billing_address"] == {"line1": "1 St James's Sq", "line2": None, "city": "London",
                                          "region": None, "postal_code": None, "country": "GB"}
    assert contact["shipping_address"]["city"] is None
    assert client.get(f"/contacts/{contact['id']}", headers=AUTH).json == contact


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic dGVzdA=="}])
def test_every_api_call_needs_the_bearer_token(client: FlaskClient, headers: dict[str, str]) -> None:
    for method, path in [("get", "/contacts"), ("post", "/contacts"), ("get", "/contacts/x"),
                         ("patch", "/tasks/x"), ("delete", "/contacts/x")]:
        response = getattr(client, method)(path, json={}, headers=headers)
        assert response.status_code == 401
        assert response.json["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(("body", "field"), [
    ({"email": "not-an-email"}, "email"),
    ({"first_name": 3}, "first_name"),
    ({"first_name": "A", "version": 4}, "version"),
    ({"first_name": "A", "colour": "red"}, "colour"),
    ({"first_name": "A", "billing_address": {"town": "X"}}, "billing_address.town"),
    ({"first_name": "A", "tags": "vip"}, "tags"),
    ({"first_name": "A", "active": "yes"}, "active"),
    ({"first_name": "x" * 101}, "first_name"),
    ({"phone": "123"}, "display_name"),
])
def test_invalid_bodies_are_400_naming_the_field(client: FlaskClient, body: dict[str, Any], field: str) -> None:
    response = client.post("/contacts", json=body, headers=AUTH)
    assert response.status_code == 400
    assert response.json["error"]["field"] == field
    assert field in response.json["error"]["message"]


def test_a_body_that_is_not_a_json_object_is_400(client: FlaskClient) -> None:
    response = client.post("/contacts", data="[1]", content_type="application/json", headers=AUTH)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_body"


def test_unknown_ids_are_404_json(client: FlaskClient) -> None:
    for method, path in [("get", "/contacts/nope"), ("delete", "/contacts/nope"), ("get", "/contacts/nope/tasks"),
                         ("put", "/contacts/nope/quickbooks"), ("get", "/tasks/nope")]:
        response = getattr(client, method)(path, json={}, headers=AUTH)
        assert response.status_code == 404, path
        assert response.json["error"]["code"] == "not_found"
    assert patch(client, "nope", 1, first_name="A").status_code == 404


def test_patch_requires_if_match_and_refuses_a_stale_version(client: FlaskClient) -> None:
    contact = create(client)
    missing = client.patch(f"/contacts/{contact['id']}", json={"phone": "1"}, headers=AUTH)
    assert missing.status_code == 428
    assert missing.json["error"]["code"] == "precondition_required"

    updated = patch(client, contact["id"], '"1"', phone="+44 20 7946 0000")
    assert updated.status_code == 200 and updated.json["version"] == 2 and updated.headers["ETag"] == '"2"'
    assert updated.json["updated_at"] > contact["updated_at"]

    stale = patch(client, contact["id"], 1, phone="0")
    assert stale.status_code == 412
    assert stale.json["error"]["code"] == "version_conflict"
    assert client.get(f"/contacts/{contact['id']}", headers=AUTH).json["phone"] == "+44 20 7946 0000"
    assert patch(client, contact["id"], "two", phone="0").json["error"]["field"] == "If-Match"


def test_patch_merges_address_parts_and_null_clears(client: FlaskClient) -> None:
    contact = create(client)
    merged = patch(client, contact["id"], 1, billing_address={"postal_code": "SW1Y 4LE"}).json
    assert merged["billing_address"]["city"] == "London"
    assert merged["billing_address"]["postal_code"] == "SW1Y 4LE"
    cleared = patch(client, contact["id"], 2, billing_address=None, tags=[], active=False).json
    assert set(cleared["billing_address"].values()) == {None}
    assert cleared["tags"] == [] and cleared["active"] is False and cleared["version"] == 3


def test_a_patch_that_changes_nothing_keeps_the_version(client: FlaskClient) -> None:
    contact = create(client)
    same = patch(client, contact["id"], 1, first_name="Ada", email="Ada@Example.com").json
    assert same == contact


def test_email_lookup_ignores_case(client: FlaskClient) -> None:
    ada = create(client)
    create(client, first_name="Bob", email="bob@example.com")
    found = client.get("/contacts", query_string={"email": "  ADA@example.COM"}, headers=AUTH).json
    assert [c["id"] for c in found["contacts"]] == [ada["id"]] and found["next_cursor"] is None
    assert client.get("/contacts?email=nobody@example.com", headers=AUTH).json["contacts"] == []


def test_delete_removes_the_contact_and_honours_if_match(client: FlaskClient) -> None:
    contact = create(client)
    stale = client.delete(f"/contacts/{contact['id']}", headers={**AUTH, "If-Match": "7"})
    assert stale.status_code == 412
    assert client.delete(f"/contacts/{contact['id']}", headers=AUTH).status_code == 204
    assert client.get(f"/contacts/{contact['id']}", headers=AUTH).status_code == 404


def test_merge_fills_the_survivors_empty_fields_and_removes_the_loser(client: FlaskClient) -> None:
    loser = create(client, first_name="Ada", phone="123", tags=["a", "b"], shipping_address={"city": "Paris"})
    survivor = create(client, first_name="Ada L.", email="ada@example.com", tags=["b", "c"])
    response = client.post(f"/contacts/{loser['id']}/merge", json={"into": survivor["id"]}, headers=AUTH)
    merged = response.json
    assert response.status_code == 200
    assert merged["id"] == survivor["id"] and merged["version"] == 2
    assert (merged["first_name"], merged["phone"], merged["email"]) == ("Ada L.", "123", "ada@example.com")
    assert merged["tags"] == ["b", "c", "a"] and merged["shipping_address"]["city"] == "Paris"
    assert client.get(f"/contacts/{loser['id']}", headers=AUTH).status_code == 404


def test_merge_refuses_itself_unknown_targets_and_missing_into(client: FlaskClient) -> None:
    contact = create(client)
    path = f"/contacts/{contact['id']}/merge"
    assert client.post(path, json={"into": contact["id"]}, headers=AUTH).json["error"]["field"] == "into"
    assert client.post(path, json={}, headers=AUTH).json["error"]["field"] == "into"
    assert client.post(path, json={"into": "nope"}, headers=AUTH).status_code == 404
    assert client.get(f"/contacts/{contact['id']}", headers=AUTH).status_code == 200


def test_quickbooks_summary_is_stored_as_given_without_a_version_bump(client: FlaskClient) -> None:
    contact = create(client)
    summary = {"open_balance": "120.50", "currency": "USD", "nested": {"overdue": ["1001"]}}
    response = client.put(f"/contacts/{contact['id']}/quickbooks", json=summary, headers=AUTH)
    assert response.status_code == 200 and response.json["quickbooks"] == summary
    again = client.get(f"/contacts/{contact['id']}", headers=AUTH).json
    assert again["quickbooks"] == summary
    assert (again["version"], again["updated_at"]) == (contact["version"], contact["updated_at"])
    refused = patch(client, contact["id"], 1, quickbooks={})
    assert refused.status_code == 400 and refused.json["error"]["field"] == "quickbooks"
