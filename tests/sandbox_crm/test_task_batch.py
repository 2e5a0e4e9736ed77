"""POST /tasks/batch: many tasks on many contacts in one request, each item as its single create, in order."""

from __future__ import annotations

from typing import Any

from flask.testing import FlaskClient

from tests.sandbox_crm.conftest import AUTH


def batch(client: FlaskClient, body: Any) -> Any:
    """POST a task batch and return the response."""
    return client.post("/tasks/batch", json=body, headers=AUTH)


def contact(client: FlaskClient, name: str) -> str:
    """Create a contact and return its id."""
    return str(client.post("/contacts", json={"first_name": name}, headers=AUTH).json["id"])


def test_tasks_are_created_in_request_order_and_fail_alone(client: FlaskClient) -> None:
    ada, bob = contact(client, "Ada"), contact(client, "Bob")
    response = batch(client, {"create": [
        {"contact_id": ada, "title": "Call Ada", "description": "overdue\n[m1]", "due_date": "2026-12-04",
         "owner_id": "u1"},
        {"contact_id": "ct_missing", "title": "Nobody"},
        {"contact_id": bob, "title": ""},
        {"title": "No contact"},
        {"contact_id": bob, "title": "Call Bob", "colour": "red"},
        "not an object",
        {"contact_id": bob, "title": "Call Bob"},
        {"contact_id": ada, "title": "Ada again"},
    ]})
    assert response.status_code == 200
    results = response.json["results"]
    assert [r["index"] for r in results] == list(range(8))
    assert [r["status"] for r in results] == [201, 404, 400, 400, 400, 400, 201, 201]
    first = results[0]["task"]
    assert {k: first[k] for k in ("contact_id", "title", "description", "due_date", "status", "owner_id")} == {
        "contact_id": ada, "title": "Call Ada", "description": "overdue\n[m1]", "due_date": "2026-12-04",
        "status": "open", "owner_id": "u1"}
    assert results[1]["error"]["code"] == "not_found" and "task" not in results[1]
    assert [results[n]["error"].get("field") for n in (2, 3, 4)] == ["title", "contact_id", "colour"]
    assert results[5]["error"]["code"] == "invalid_body"
    assert [t["title"] for t in client.get(f"/contacts/{ada}/tasks", headers=AUTH).json["tasks"]] == [
        "Call Ada", "Ada again"]
    assert [t["title"] for t in client.get(f"/contacts/{bob}/tasks", headers=AUTH).json["tasks"]] == ["Call Bob"]
    assert client.get(f"/tasks/{first['id']}", headers=AUTH).json == first, "the same task the single read answers"


def test_the_envelope_is_checked_as_a_whole(client: FlaskClient) -> None:
    ada = contact(client, "Ada")
    assert batch(client, {}).json == {"results": []}
    assert batch(client, {"create": {"contact_id": ada}}).json["error"]["field"] == "create"
    assert batch(client, {"update": []}).json["error"]["field"] == "update", "tasks are only created in a batch"
    assert batch(client, [1]).json["error"]["code"] == "invalid_body"
    too_many = batch(client, {"create": [{"contact_id": ada, "title": f"T{n}"} for n in range(101)]})
    assert too_many.status_code == 400 and too_many.json["error"]["code"] == "invalid_body"
    assert "100" in too_many.json["error"]["message"]
    assert client.get(f"/contacts/{ada}/tasks", headers=AUTH).json["tasks"] == [], "a refused batch creates nothing"
    assert client.post("/tasks/batch", json={}).status_code == 401


def test_a_hundred_tasks_are_one_request(client: FlaskClient) -> None:
    ada = contact(client, "Ada")
    response = batch(client, {"create": [{"contact_id": ada, "title": f"T{n}"} for n in range(100)]})
    assert [r["status"] for r in response.json["results"]] == [201] * 100
    assert client.get("/_sandbox/requests").json["endpoints"] == {"POST /contacts": 1, "POST /tasks/batch": 1}
    assert len(client.get(f"/contacts/{ada}/tasks", headers=AUTH).json["tasks"]) == 100


def test_tasks_are_read_by_id_whatever_their_contacts(client: FlaskClient) -> None:
    ada, bob = contact(client, "Ada"), contact(client, "Bob")
    made = batch(client, {"create": [{"contact_id": ada, "title": "A"}, {"contact_id": bob, "title": "B"}]})
    first, second = (r["task"] for r in made.json["results"])
    assert client.delete(f"/tasks/{first['id']}", headers=AUTH).status_code == 204
    answer = client.post("/tasks/batch/read", json={"ids": [second["id"], first["id"], "tk_never"]}, headers=AUTH)
    assert answer.status_code == 200 and answer.json == {"tasks": [second]}, "a deleted or unknown task is left out"
    for body, field in (({}, "ids"), ({"ids": []}, "ids"), ({"ids": [5]}, "ids"), ({"ids": ["x"] * 101}, "ids"),
                        ({"ids": ["x"], "status": "open"}, "status")):
        refused = client.post("/tasks/batch/read", json=body, headers=AUTH)
        assert refused.status_code == 400 and refused.json["error"]["field"] == field, body
    assert client.post("/tasks/batch/read", json={"ids": ["x"]}).status_code == 401
