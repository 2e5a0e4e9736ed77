"""The reference CRM's /_sandbox/ control API: info, hooks, faults, counts, seed, reset, panel."""

from __future__ import annotations

import time

import pytest
from flask.testing import FlaskClient

from tests.sandbox_crm.conftest import AUTH, TOKEN


def test_info_names_the_api_base_token_and_hook_url(client: FlaskClient) -> None:
    info = client.get("/_sandbox/info").json
    assert (info["api_base"], info["token"], info["hook_url"]) == ("http://localhost", TOKEN, None)
    client.post("/_sandbox/hooks", json={"url": "http://127.0.0.1:1/hooks", "secret": "s"})
    assert client.get("/_sandbox/info").json["hook_url"] == "http://127.0.0.1:1/hooks"
    assert "s" not in client.get("/_sandbox/info").json.values(), "the hook secret is never echoed"


@pytest.mark.parametrize(("body", "field"), [
    ({"url": "ftp://x", "secret": "s"}, "url"), ({"url": "http://x"}, "secret"), ({"url": 5, "secret": "s"}, "url"),
])
def test_hook_settings_are_validated(client: FlaskClient, body: dict[str, object], field: str) -> None:
    response = client.post("/_sandbox/hooks", json=body)
    assert response.status_code == 400 and response.json["error"]["field"] == field


def test_injected_faults_fail_the_next_calls_then_stop(client: FlaskClient) -> None:
    plan = client.post("/_sandbox/faults", json={"count": 2, "status": 429, "retry_after": 3}).json
    assert plan == {"count": 2, "status": 429, "retry_after": 3, "latency_ms": 0}
    first = client.get("/contacts", headers=AUTH)
    assert first.status_code == 429 and first.headers["Retry-After"] == "3"
    assert first.json["error"]["code"] == "rate_limited"
    assert client.get("/contacts").status_code == 429, "faults come before authentication, like a gateway"
    assert client.get("/contacts", headers=AUTH).status_code == 200
    client.post("/_sandbox/faults", json={"count": 1})
    unavailable = client.get("/contacts", headers=AUTH)
    assert unavailable.status_code == 503 and "Retry-After" not in unavailable.headers
    assert client.get("/_sandbox/info").status_code == 200, "the control API is never faulted"


def test_fault_plans_are_validated(client: FlaskClient) -> None:
    assert client.post("/_sandbox/faults", json={"count": 1, "status": 404}).json["error"]["field"] == "status"
    assert client.post("/_sandbox/faults", json={"count": -1}).json["error"]["field"] == "count"
    assert client.post("/_sandbox/faults", json={"latency_ms": True}).json["error"]["field"] == "latency_ms"


def test_latency_is_added_to_api_calls(client: FlaskClient) -> None:
    client.post("/_sandbox/faults", json={"latency_ms": 150})
    started = time.monotonic()
    assert client.get("/contacts", headers=AUTH).status_code == 200
    assert time.monotonic() - started >= 0.15


def test_request_counts_by_endpoint_and_reset(client: FlaskClient) -> None:
    contact_id = client.post("/contacts", json={"first_name": "A"}, headers=AUTH).json["id"]
    client.get(f"/contacts/{contact_id}", headers=AUTH)
    client.get("/contacts/other", headers=AUTH)
    client.get("/contacts", headers=AUTH)
    counts = client.get("/_sandbox/requests").json
    assert counts == {"endpoints": {"POST /contacts": 1, "GET /contacts/<contact_id>": 2, "GET /contacts": 1},
                      "total": 4}
    assert client.post("/_sandbox/reset").status_code == 204
    assert client.get("/_sandbox/requests").json == {"endpoints": {}, "total": 0}
    assert client.get("/contacts", headers=AUTH).json["contacts"] == []


def test_seed_is_deterministic_and_acts_like_crm_users(client: FlaskClient) -> None:
    ids = client.post("/_sandbox/seed", json={"contacts": 3, "seed": 42}).json["ids"]
    first = [client.get(f"/contacts/{i}", headers=AUTH).json for i in ids]
    client.post("/_sandbox/reset")
    again = client.post("/_sandbox/seed", json={"contacts": 3, "seed": 42}).json["ids"]
    second = [client.get(f"/contacts/{i}", headers=AUTH).json for i in again]
    names = [(c["first_name"], c["last_name"], c["email"]) for c in first]
    assert names == [(c["first_name"], c["last_name"], c["email"]) for c in second]


def test_control_contact_edits_need_no_if_match(client: FlaskClient) -> None:
    contact = client.post("/_sandbox/contacts", json={"first_name": "A"}).json
    edited = client.patch(f"/_sandbox/contacts/{contact['id']}", json={"first_name": "B"}).json
    assert edited["version"] == 2 and edited["first_name"] == "B"
    assert client.patch(f"/_sandbox/contacts/{contact['id']}", json={"version": 9}).status_code == 400


def test_a_user_reads_contacts_and_tasks_without_spending_the_api_budget(client: FlaskClient) -> None:
    client.post("/_sandbox/limits", json={"requests": 2, "window_seconds": 60})
    ids = client.post("/_sandbox/seed", json={"contacts": 1200, "seed": 3}).json["ids"]
    task = client.post(f"/contacts/{ids[0]}/tasks", json={"title": "Call back"}, headers=AUTH).json
    for _ in range(5):  # more reads than the limit allows
        listed = client.get("/_sandbox/contacts").json["contacts"]
        assert sorted(c["id"] for c in listed) == sorted(ids)  # past the API's 1,000-per-page limit
        assert client.get(f"/_sandbox/contacts/{ids[0]}").json["id"] == ids[0]
        assert client.get(f"/_sandbox/contacts/{ids[0]}/tasks").json["tasks"] == [task]
    email = listed[1]["email"]
    assert [c["id"] for c in client.get("/_sandbox/contacts", query_string={"email": email}).json["contacts"]] == [
        listed[1]["id"]]
    assert client.get("/_sandbox/contacts/nope").status_code == 404
    assert client.get("/_sandbox/contacts/nope/tasks").status_code == 404
    assert client.get("/_sandbox/requests").json == {"endpoints": {"POST /contacts/<contact_id>/tasks": 1},
                                                     "total": 1}
    assert client.get("/contacts", headers=AUTH).status_code == 200  # the API's budget: one call left


def test_panel_template_is_validated(client: FlaskClient) -> None:
    bad = client.post("/_sandbox/panel", json={"url_template": "http://x/panel"})
    assert bad.status_code == 400 and bad.json["error"]["field"] == "url_template"
    good = client.post("/_sandbox/panel", json={"url_template": "http://127.0.0.1:5000/panel/1/contacts/{id}"})
    assert good.status_code == 200
    assert client.get("/_sandbox/info").json["panel_url_template"] == "http://127.0.0.1:5000/panel/1/contacts/{id}"


def test_seed_with_activities_logs_billable_time_by_the_active_users(client: FlaskClient) -> None:
    client.patch("/_sandbox/users/u2", json={"active": False})
    seeded = client.post("/_sandbox/seed", json={"contacts": 5, "seed": 1, "activities": 4})
    assert seeded.status_code == 201
    ids, activity_ids = seeded.json["ids"], seeded.json["activity_ids"]
    assert len(ids) == 5 and len(activity_ids) == 20
    activities = client.get("/activities", query_string={"limit": 100}, headers=AUTH).json["activities"]
    assert [a["id"] for a in activities] == activity_ids
    assert [a["contact_id"] for a in activities] == [i for i in ids for _ in range(4)]
    assert {a["owner_id"] for a in activities} == {"u1", "u3"}, "only active users log time"
    billable = [a for a in activities if a["billable"]]
    assert len(billable) >= 10
    assert all(a["type"] in ("call", "meeting", "time") and 15 <= a["duration_minutes"] <= 120 for a in billable)
    assert all(a["type"] == "email" and a["duration_minutes"] is None for a in activities if not a["billable"])
    assert {a["service"] for a in billable} <= {"Design", "Installation", "Hours", None}
    now = client.get("/_sandbox/clock").json["now"]
    assert all(a["started_at"] < now for a in activities)


def test_seed_is_deterministic_for_activities_too(client: FlaskClient) -> None:
    def shapes() -> list[tuple[object, ...]]:
        activities = client.get("/activities", headers=AUTH).json["activities"]
        return [(a["type"], a["duration_minutes"], a["hourly_rate"], a["service"], a["owner_id"]) for a in activities]

    client.post("/_sandbox/seed", json={"contacts": 3, "seed": 9, "activities": 3})
    first = shapes()
    client.post("/_sandbox/reset")
    client.post("/_sandbox/seed", json={"contacts": 3, "seed": 9, "activities": 3})
    assert shapes() == first and len(first) == 9


def test_seed_activities_on_existing_contacts(client: FlaskClient) -> None:
    kept = client.post("/_sandbox/contacts", json={"first_name": "Amy"}).json["id"]
    other = client.post("/_sandbox/contacts", json={"first_name": "Bill"}).json["id"]
    chosen = client.post("/_sandbox/seed/activities", json={"contact_ids": [kept], "per_contact": 3}).json
    assert len(chosen["activity_ids"]) == 3
    everyone = client.post("/_sandbox/seed/activities", json={}).json["activity_ids"]
    assert len(everyone) == 4, "two per contact by default"
    listed = client.get("/activities", query_string={"contact_id": other}, headers=AUTH).json["activities"]
    assert len(listed) == 2
    assert client.post("/_sandbox/seed/activities", json={"contact_ids": ["nope"]}).status_code == 404
    assert client.post("/_sandbox/seed/activities", json={"contact_ids": "x"}).json["error"]["field"] == "contact_ids"
    assert client.post("/_sandbox/seed/activities", json={"per_contact": 101}).json["error"]["field"] == "per_contact"
    assert client.post("/_sandbox/seed", json={"activities": -1}).json["error"]["field"] == "activities"
    for user in ("u1", "u2", "u3"):
        client.patch(f"/_sandbox/users/{user}", json={"active": False})
    assert client.post("/_sandbox/seed/activities", json={}).json["error"]["field"] == "activities"


def test_reset_deletes_activities(client: FlaskClient) -> None:
    client.post("/_sandbox/seed", json={"contacts": 2, "activities": 2})
    client.post("/_sandbox/reset")
    assert client.get("/activities", headers=AUTH).json == {"activities": [], "next_cursor": None}
