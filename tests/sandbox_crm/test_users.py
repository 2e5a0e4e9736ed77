"""Users of the reference CRM: GET /users, the control API that adds and edits them, owners of records."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from crm_qb.sandbox.crm.app import SandboxConfig, create_app, sandbox_of
from crm_qb.sandbox.crm.users import DEMO_USERS
from tests.sandbox_crm.conftest import AUTH, TOKEN


def test_a_new_crm_has_the_demo_users(client: FlaskClient) -> None:
    response = client.get("/users", headers=AUTH)
    assert response.status_code == 200
    assert response.json == {"users": [dict(user) for user in DEMO_USERS]}
    assert [set(user) for user in response.json["users"]] == [{"id", "name", "email", "active"}] * 3
    assert client.get("/users/u2", headers=AUTH).json["name"] == "John Johnson"
    assert client.get("/users/nobody", headers=AUTH).status_code == 404


def test_users_need_the_token_but_the_control_listing_does_not(client: FlaskClient) -> None:
    assert client.get("/users").status_code == 401
    assert client.get("/_sandbox/users").json == client.get("/users", headers=AUTH).json


def test_users_are_added_and_edited_through_the_control_api(client: FlaskClient) -> None:
    added = client.post("/_sandbox/users", json={"name": "Sam Rivera", "email": "sam@example.com"})
    assert added.status_code == 201
    assert added.json == {"id": "u4", "name": "Sam Rivera", "email": "sam@example.com", "active": True}
    chosen = client.post("/_sandbox/users", json={"id": "u7", "name": "Pat", "email": "pat@example.com",
                                                  "active": False}).json
    assert chosen == {"id": "u7", "name": "Pat", "email": "pat@example.com", "active": False}
    edited = client.patch("/_sandbox/users/u4", json={"active": False, "email": "SAM@example.org"}).json
    assert edited == {"id": "u4", "name": "Sam Rivera", "email": "SAM@example.org", "active": False}
    assert [u["id"] for u in client.get("/users", headers=AUTH).json["users"]] == ["u1", "u2", "u3", "u4", "u7"]
    assert client.patch("/_sandbox/users/nope", json={"name": "X"}).status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"email": "a@example.com"}, "name"),
    ({"name": "A"}, "email"),
    ({"name": "", "email": "a@example.com"}, "name"),
    ({"name": "A", "email": "not-an-email"}, "email"),
    ({"name": "A", "email": "EMILY.PLATT@example.com"}, "email"),
    ({"name": "A", "email": "a@example.com", "active": "yes"}, "active"),
    ({"name": "A", "email": "a@example.com", "id": "u1"}, "id"),
    ({"name": "A", "email": "a@example.com", "id": "has space"}, "id"),
    ({"name": "A", "email": "a@example.com", "role": "admin"}, "role"),
    ({"name": "x" * 256, "email": "a@example.com"}, "name"),
])
def test_invalid_users_are_400_naming_the_field(client: FlaskClient, body: dict[str, Any], field: str) -> None:
    response = client.post("/_sandbox/users", json=body)
    assert response.status_code == 400, response.json
    assert response.json["error"]["field"] == field
    assert len(client.get("/_sandbox/users").json["users"]) == 3


def test_a_user_id_cannot_be_changed_and_emails_stay_unique(client: FlaskClient) -> None:
    assert client.patch("/_sandbox/users/u1", json={"id": "u9"}).json["error"]["field"] == "id"
    taken = client.patch("/_sandbox/users/u1", json={"email": "john.johnson@EXAMPLE.com"})
    assert taken.status_code == 400 and taken.json["error"]["field"] == "email"
    assert client.patch("/_sandbox/users/u1", json={"email": "Emily.Platt@example.com"}).status_code == 200


def test_owner_ids_of_contacts_and_tasks_must_name_a_user(client: FlaskClient) -> None:
    refused = client.post("/contacts", json={"first_name": "A", "owner_id": "u99"}, headers=AUTH)
    assert refused.status_code == 400 and refused.json["error"]["field"] == "owner_id"
    contact = client.post("/contacts", json={"first_name": "A", "owner_id": "u2"}, headers=AUTH).json
    assert contact["owner_id"] == "u2"
    moved = client.patch(f"/contacts/{contact['id']}", json={"owner_id": "u99"}, headers={**AUTH, "If-Match": "1"})
    assert moved.status_code == 400 and moved.json["error"]["field"] == "owner_id"
    task = client.post(f"/contacts/{contact['id']}/tasks", json={"title": "T", "owner_id": "nobody"}, headers=AUTH)
    assert task.status_code == 400 and task.json["error"]["field"] == "owner_id"
    task_id = client.post(f"/contacts/{contact['id']}/tasks", json={"title": "T", "owner_id": "u3"},
                          headers=AUTH).json["id"]
    assert client.patch(f"/tasks/{task_id}", json={"owner_id": "x"}, headers=AUTH).json["error"]["field"] == "owner_id"
    client.patch("/_sandbox/users/u3", json={"active": False})
    assert client.get(f"/tasks/{task_id}", headers=AUTH).json["owner_id"] == "u3", "inactive users keep their records"


def test_reset_restores_the_configured_users() -> None:
    team = ({"id": "alice", "name": "Alice", "email": "alice@example.com"},)
    app = create_app(SandboxConfig(token=TOKEN, users=team))
    try:
        client = app.test_client()
        assert client.get("/_sandbox/users").json["users"] == [{**team[0], "active": True}]
        client.post("/_sandbox/users", json={"name": "Bob", "email": "bob@example.com"})
        client.patch("/_sandbox/users/alice", json={"active": False})
        assert client.post("/_sandbox/reset").status_code == 204
        assert client.get("/_sandbox/users").json["users"] == [{**team[0], "active": True}]
    finally:
        sandbox_of(app).stop()
