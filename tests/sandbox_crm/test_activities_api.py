"""Activities of the reference CRM through the Flask test client: shapes, validation, versions, paging."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.sandbox_crm.conftest import AUTH

FIELDS = ["id", "version", "updated_at", "contact_id", "owner_id", "type", "subject", "notes", "started_at",
          "duration_minutes", "billable", "hourly_rate", "service"]


@pytest.fixture
def contact_id(client: FlaskClient) -> str:
    """A contact to log activities on."""
    return client.post("/contacts", json={"first_name": "Ada"}, headers=AUTH).json["id"]


def log(client: FlaskClient, contact_id: str, **fields: Any) -> dict[str, Any]:
    """Log a billable call through the API (fields override) and return it."""
    body = {"contact_id": contact_id, "owner_id": "u1", "type": "call", "subject": "Kick-off",
            "started_at": "2024-05-01T09:30:00-05:00", "duration_minutes": 45, "billable": True, **fields}
    response = client.post("/activities", json=body, headers=AUTH)
    assert response.status_code == 201, response.json
    return response.json


def patch(client: FlaskClient, activity_id: str, version: int | str, **fields: Any) -> Any:
    """PATCH an activity at ``version``."""
    return client.patch(f"/activities/{activity_id}", json=fields, headers={**AUTH, "If-Match": str(version)})


def test_create_returns_the_full_activity_with_etag_and_location(client: FlaskClient, contact_id: str) -> None:
    response = client.post("/activities", headers=AUTH, json={
        "contact_id": contact_id, "owner_id": "u2", "type": "time", "subject": "Design work",
        "notes": "Two options", "started_at": "2024-05-01T09:30:00-05:00", "duration_minutes": 90,
        "billable": True, "hourly_rate": "62.50", "service": "Design"})
    activity = response.json
    assert response.status_code == 201 and list(activity) == FIELDS
    assert response.headers["ETag"] == '"1"' and response.headers["Location"] == f"/activities/{activity['id']}"
    assert activity["id"].startswith("ac_") and activity["version"] == 1 and activity["updated_at"].endswith("Z")
    assert activity["started_at"] == "2024-05-01T14:30:00.000000Z", "stored as UTC like every other time"
    assert (activity["duration_minutes"], activity["hourly_rate"], activity["billable"]) == (90, "62.50", True)
    got = client.get(f"/activities/{activity['id']}", headers=AUTH)
    assert got.json == activity and got.headers["ETag"] == '"1"'


def test_optional_fields_default_to_not_billable_and_null(client: FlaskClient, contact_id: str) -> None:
    activity = client.post("/activities", headers=AUTH, json={
        "contact_id": contact_id, "owner_id": "u1", "type": "email", "started_at": "2024-05-01T09:30:00Z"}).json
    assert (activity["billable"], activity["duration_minutes"], activity["hourly_rate"], activity["service"],
            activity["subject"], activity["notes"]) == (False, None, None, None, None, None)


@pytest.mark.parametrize(("fields", "field"), [
    ({"type": "lunch"}, "type"),
    ({"type": None}, "type"),
    ({"duration_minutes": -1}, "duration_minutes"),
    ({"duration_minutes": 1441}, "duration_minutes"),
    ({"duration_minutes": 30.5}, "duration_minutes"),
    ({"duration_minutes": "30"}, "duration_minutes"),
    ({"duration_minutes": True}, "duration_minutes"),
    ({"billable": "yes"}, "billable"),
    ({"billable": None}, "billable"),
    ({"hourly_rate": 62.5}, "hourly_rate"),
    ({"hourly_rate": "-1"}, "hourly_rate"),
    ({"hourly_rate": "1e3"}, "hourly_rate"),
    ({"hourly_rate": "62.12345"}, "hourly_rate"),
    ({"hourly_rate": "100000000000"}, "hourly_rate"),
    ({"hourly_rate": "99999999999.0001"}, "hourly_rate"),
    ({"hourly_rate": ""}, "hourly_rate"),
    ({"started_at": "2024-05-01T09:30:00"}, "started_at"),
    ({"started_at": "2024-05-01"}, "started_at"),
    ({"started_at": "yesterday"}, "started_at"),
    ({"started_at": 1714555800}, "started_at"),
    ({"subject": "x" * 256}, "subject"),
    ({"notes": "x" * 4001}, "notes"),
    ({"service": "x" * 101}, "service"),
    ({"service": 3}, "service"),
    ({"contact_id": "ct_missing"}, "contact_id"),
    ({"contact_id": ""}, "contact_id"),
    ({"owner_id": "u99"}, "owner_id"),
    ({"owner_id": None}, "owner_id"),
    ({"version": 3}, "version"),
    ({"id": "ac_x"}, "id"),
    ({"colour": "red"}, "colour"),
])
def test_invalid_fields_are_400_naming_the_field(client: FlaskClient, contact_id: str, fields: dict[str, Any],
                                                 field: str) -> None:
    body = {"contact_id": contact_id, "owner_id": "u1", "type": "call", "started_at": "2024-05-01T09:30:00Z",
            **fields}
    response = client.post("/activities", json=body, headers=AUTH)
    assert response.status_code == 400, response.json
    assert response.json["error"]["code"] == "invalid_field" and response.json["error"]["field"] == field
    assert field in response.json["error"]["message"]
    assert client.get("/activities", headers=AUTH).json["activities"] == []


@pytest.mark.parametrize("missing", ["contact_id", "owner_id", "type", "started_at"])
def test_required_fields(client: FlaskClient, contact_id: str, missing: str) -> None:
    body = {"contact_id": contact_id, "owner_id": "u1", "type": "call", "started_at": "2024-05-01T09:30:00Z"}
    del body[missing]
    response = client.post("/activities", json=body, headers=AUTH)
    assert response.status_code == 400 and response.json["error"]["field"] == missing


def test_limits_at_the_edge_are_accepted(client: FlaskClient, contact_id: str) -> None:
    activity = log(client, contact_id, duration_minutes=1440, hourly_rate="99999999999", subject="x" * 255,
                   notes="n" * 4000, service="s" * 100)
    assert activity["duration_minutes"] == 1440 and activity["hourly_rate"] == "99999999999"
    assert log(client, contact_id, duration_minutes=0, hourly_rate="0")["hourly_rate"] == "0"


def test_patch_requires_if_match_and_refuses_a_stale_version(client: FlaskClient, contact_id: str) -> None:
    activity = log(client, contact_id)
    missing = client.patch(f"/activities/{activity['id']}", json={"duration_minutes": 60}, headers=AUTH)
    assert missing.status_code == 428 and missing.json["error"]["code"] == "precondition_required"
    updated = patch(client, activity["id"], 'W/"1"', duration_minutes=60, billable=False)
    assert updated.status_code == 200 and updated.headers["ETag"] == '"2"'
    assert (updated.json["version"], updated.json["duration_minutes"], updated.json["billable"]) == (2, 60, False)
    assert updated.json["updated_at"] > activity["updated_at"] and updated.json["subject"] == "Kick-off"
    stale = patch(client, activity["id"], 1, duration_minutes=5)
    assert stale.status_code == 412 and stale.json["error"]["code"] == "version_conflict"
    assert patch(client, "ac_missing", 1, billable=True).status_code == 404
    assert patch(client, activity["id"], 2, owner_id="u99").json["error"]["field"] == "owner_id"
    assert client.get(f"/activities/{activity['id']}", headers=AUTH).json == updated.json


def test_a_patch_that_changes_nothing_keeps_the_version(client: FlaskClient, contact_id: str) -> None:
    activity = log(client, contact_id)
    same = patch(client, activity["id"], 1, duration_minutes=45, started_at="2024-05-01T14:30:00+00:00")
    assert same.status_code == 200 and same.json == activity


def test_an_activity_can_move_to_another_contact(client: FlaskClient, contact_id: str) -> None:
    other = client.post("/contacts", json={"first_name": "Bob"}, headers=AUTH).json["id"]
    activity = log(client, contact_id)
    assert patch(client, activity["id"], 1, contact_id=other).json["contact_id"] == other


def test_delete_honours_if_match(client: FlaskClient, contact_id: str) -> None:
    activity = log(client, contact_id)
    stale = client.delete(f"/activities/{activity['id']}", headers={**AUTH, "If-Match": "2"})
    assert stale.status_code == 412
    assert client.delete(f"/activities/{activity['id']}", headers={**AUTH, "If-Match": "1"}).status_code == 204
    assert client.get(f"/activities/{activity['id']}", headers=AUTH).status_code == 404
    assert client.delete(f"/activities/{activity['id']}", headers=AUTH).status_code == 404


def test_every_activity_call_needs_the_token(client: FlaskClient) -> None:
    for method, path in [("get", "/activities"), ("post", "/activities"), ("get", "/activities/x"),
                         ("patch", "/activities/x"), ("delete", "/activities/x")]:
        assert getattr(client, method)(path, json={}).status_code == 401


def test_pages_walk_activities_in_updated_order_and_filter(client: FlaskClient, contact_id: str) -> None:
    other = client.post("/contacts", json={"first_name": "Bob"}, headers=AUTH).json["id"]
    made = [log(client, contact_id if n % 2 else other, subject=f"A{n}") for n in range(7)]
    seen, cursor = [], None
    while True:
        body = client.get("/activities", query_string={"limit": 3, **({"cursor": cursor} if cursor else {})},
                          headers=AUTH).json
        seen += body["activities"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
        patch(client, made[0]["id"], client.get(f"/activities/{made[0]['id']}", headers=AUTH).json["version"],
              notes=f"touched after {len(seen)}")
    assert [a["id"] for a in seen[:7]] == [a["id"] for a in made]
    assert seen[-1]["id"] == made[0]["id"] and seen[-1]["version"] > 1, "a change during a walk is seen again"
    since = made[4]["updated_at"]
    later = client.get("/activities", query_string={"updated_since": since}, headers=AUTH).json["activities"]
    assert [a["id"] for a in later] == [made[4]["id"], made[5]["id"], made[6]["id"], made[0]["id"]]
    mine = client.get("/activities", query_string={"contact_id": contact_id}, headers=AUTH).json["activities"]
    assert {a["id"] for a in mine} == {made[n]["id"] for n in (1, 3, 5)}


@pytest.mark.parametrize(("params", "field"), [
    ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"), ({"cursor": "nope"}, "cursor"),
    ({"updated_since": "2024-05-01T00:00:00"}, "updated_since"),
])
def test_bad_paging_parameters_are_400(client: FlaskClient, params: dict[str, str], field: str) -> None:
    response = client.get("/activities", query_string=params, headers=AUTH)
    assert response.status_code == 400 and response.json["error"]["field"] == field


def test_deleting_a_contact_deletes_its_activities(client: FlaskClient, contact_id: str) -> None:
    other = client.post("/contacts", json={"first_name": "Bob"}, headers=AUTH).json["id"]
    gone, kept = log(client, contact_id), log(client, other)
    assert client.delete(f"/contacts/{contact_id}", headers=AUTH).status_code == 204
    assert client.get(f"/activities/{gone['id']}", headers=AUTH).status_code == 404
    assert client.get("/activities", headers=AUTH).json["activities"] == [kept]


def test_merging_a_contact_moves_its_activities_to_the_survivor(client: FlaskClient, contact_id: str) -> None:
    survivor = client.post("/contacts", json={"first_name": "Ada L."}, headers=AUTH).json["id"]
    moved, own = log(client, contact_id), log(client, survivor)
    client.post(f"/contacts/{contact_id}/merge", json={"into": survivor}, headers=AUTH)
    after = client.get(f"/activities/{moved['id']}", headers=AUTH).json
    assert (after["contact_id"], after["version"]) == (survivor, 2) and after["updated_at"] > moved["updated_at"]
    assert client.get(f"/activities/{own['id']}", headers=AUTH).json == own


def test_control_api_logs_edits_and_deletes_as_a_crm_user(client: FlaskClient, contact_id: str) -> None:
    body = {"contact_id": contact_id, "owner_id": "u3", "type": "meeting", "started_at": "2024-05-02T15:00:00Z",
            "duration_minutes": 60, "billable": True}
    logged = client.post("/_sandbox/activities", json=body)
    assert logged.status_code == 201 and logged.json["owner_id"] == "u3" and logged.headers["ETag"] == '"1"'
    edited = client.patch(f"/_sandbox/activities/{logged.json['id']}", json={"duration_minutes": 75}).json
    assert (edited["version"], edited["duration_minutes"]) == (2, 75)
    assert client.post("/_sandbox/activities", json={**body, "owner_id": "u9"}).json["error"]["field"] == "owner_id"
    assert client.patch(f"/_sandbox/activities/{edited['id']}", json={"type": "x"}).status_code == 400
    assert client.delete(f"/_sandbox/activities/{edited['id']}").status_code == 204
    assert client.get(f"/activities/{edited['id']}", headers=AUTH).status_code == 404
    assert client.delete(f"/_sandbox/activities/{edited['id']}").status_code == 404
