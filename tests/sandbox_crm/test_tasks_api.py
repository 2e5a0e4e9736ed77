"""Tasks (follow-ups) of the reference CRM."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient

from tests.sandbox_crm.conftest import AUTH


@pytest.fixture
def contact_id(client: FlaskClient) -> str:
    """A contact to hang tasks on."""
    return client.post("/contacts", json={"first_name": "Ada"}, headers=AUTH).json["id"]


def new_task(client: FlaskClient, contact_id: str, **fields: Any) -> dict[str, Any]:
    """Create a task and return it."""
    response = client.post(f"/contacts/{contact_id}/tasks", json={"title": "Call", **fields}, headers=AUTH)
    assert response.status_code == 201, response.json
    return response.json


def test_create_list_and_read_tasks(client: FlaskClient, contact_id: str) -> None:
    first = new_task(client, contact_id, description="Invoice 1001 is 14 days overdue", due_date="2024-06-01",
                     owner_id="u1")
    second = new_task(client, contact_id, title="Email")
    assert first["status"] == "open" and first["completed_at"] is None and first["contact_id"] == contact_id
    assert first["created_at"].endswith("Z") and first["due_date"] == "2024-06-01"
    listed = client.get(f"/contacts/{contact_id}/tasks", headers=AUTH).json["tasks"]
    assert [t["id"] for t in listed] == [first["id"], second["id"]]
    assert client.get(f"/tasks/{first['id']}", headers=AUTH).json == first


def test_completing_and_reopening_sets_completed_at(client: FlaskClient, contact_id: str) -> None:
    task = new_task(client, contact_id)
    done = client.patch(f"/tasks/{task['id']}", json={"status": "done"}, headers=AUTH).json
    assert done["status"] == "done" and done["completed_at"] >= task["created_at"]
    open_only = client.get(f"/contacts/{contact_id}/tasks?status=open", headers=AUTH).json["tasks"]
    assert open_only == []
    reopened = client.patch(f"/tasks/{task['id']}", json={"status": "open", "title": "Call again"},
                            headers=AUTH).json
    assert reopened["completed_at"] is None and reopened["title"] == "Call again"


@pytest.mark.parametrize(("body", "field"), [
    ({}, "title"), ({"title": ""}, "title"), ({"title": "x", "status": "later"}, "status"),
    ({"title": "x", "due_date": "01/06/2024"}, "due_date"), ({"title": "x", "due_date": "2024-02-30"}, "due_date"),
    ({"title": "x", "contact_id": "other"}, "contact_id"), ({"title": "x", "priority": 1}, "priority"),
])
def test_invalid_task_bodies_are_400(client: FlaskClient, contact_id: str, body: dict[str, Any], field: str) -> None:
    response = client.post(f"/contacts/{contact_id}/tasks", json=body, headers=AUTH)
    assert response.status_code == 400 and response.json["error"]["field"] == field


def test_delete_task_and_404s(client: FlaskClient, contact_id: str) -> None:
    task = new_task(client, contact_id)
    assert client.delete(f"/tasks/{task['id']}", headers=AUTH).status_code == 204
    assert client.patch(f"/tasks/{task['id']}", json={"status": "done"}, headers=AUTH).status_code == 404
    assert client.delete(f"/tasks/{task['id']}", headers=AUTH).status_code == 404
    assert client.post("/contacts/nope/tasks", json={"title": "x"}, headers=AUTH).status_code == 404
    assert client.get(f"/contacts/{contact_id}/tasks?status=later", headers=AUTH).status_code == 400


def test_tasks_follow_a_merge_and_go_with_a_delete(client: FlaskClient, contact_id: str) -> None:
    task = new_task(client, contact_id)
    survivor = client.post("/contacts", json={"first_name": "B"}, headers=AUTH).json["id"]
    client.post(f"/contacts/{contact_id}/merge", json={"into": survivor}, headers=AUTH)
    moved = client.get(f"/contacts/{survivor}/tasks", headers=AUTH).json["tasks"]
    assert [(t["id"], t["contact_id"]) for t in moved] == [(task["id"], survivor)]
    client.delete(f"/contacts/{survivor}", headers=AUTH)
    assert client.get(f"/tasks/{task['id']}", headers=AUTH).status_code == 404
