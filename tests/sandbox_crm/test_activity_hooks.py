"""Activity hooks from a real reference CRM to a real receiver: signed, batched and ordered like contact hooks."""

from __future__ import annotations

import time
from typing import Any

import requests

from crm_qb.sandbox.crm.server import RunningServer
from crm_qb.signatures import verify_crm
from tests.sandbox_crm.conftest import AUTH, HookReceiver
from tests.sandbox_crm.test_hooks import SECRET, subscribe

CALL = {"owner_id": "u1", "type": "call", "subject": "Kick-off", "started_at": "2024-05-01T09:30:00Z",
        "duration_minutes": 45, "billable": True}


def create_contact(http: requests.Session, crm: RunningServer, name: str, **fields: Any) -> dict[str, Any]:
    """Create a contact through the API."""
    return http.post(f"{crm.url}/contacts", json={"first_name": name, **fields}, headers=AUTH).json()


def test_every_activity_change_sends_a_signed_hook_in_order(http: requests.Session, live_crm: RunningServer,
                                                            receiver: HookReceiver) -> None:
    subscribe(http, live_crm, receiver)
    api = live_crm.url
    contact = create_contact(http, live_crm, "Ada")
    logged = http.post(f"{api}/activities", json={**CALL, "contact_id": contact["id"]}, headers=AUTH).json()
    by_user = http.post(f"{api}/_sandbox/activities", json={**CALL, "contact_id": contact["id"],
                                                            "owner_id": "u2"}).json()
    edited = http.patch(f"{api}/activities/{logged['id']}", json={"duration_minutes": 60},
                        headers={**AUTH, "If-Match": "1"}).json()
    user_edit = http.patch(f"{api}/_sandbox/activities/{by_user['id']}", json={"billable": False}).json()
    http.delete(f"{api}/activities/{logged['id']}", headers=AUTH)
    http.delete(f"{api}/_sandbox/activities/{by_user['id']}")

    events = receiver.wait_events(7)
    assert [e["type"] for e in events] == ["contact.created", "activity.created", "activity.created",
                                           "activity.updated", "activity.updated", "activity.deleted",
                                           "activity.deleted"]
    assert [e.get("activity") for e in events[1:5]] == [logged, by_user, edited, user_edit]
    assert [e["occurred_at"] for e in events[1:5]] == [a["updated_at"] for a in (logged, by_user, edited, user_edit)]
    assert events[5] == {"id": events[5]["id"], "type": "activity.deleted", "occurred_at": events[5]["occurred_at"],
                         "activity_id": logged["id"]}
    assert events[6]["activity_id"] == by_user["id"]
    times = [e["occurred_at"] for e in events]
    assert times == sorted(times) and len({e["id"] for e in events}) == 7
    for body, headers in receiver.received:
        assert verify_crm(body, headers["X-CRM-Signature"], SECRET, time.time())


def test_no_hook_for_an_activity_write_that_changes_nothing(http: requests.Session, live_crm: RunningServer,
                                                            receiver: HookReceiver) -> None:
    subscribe(http, live_crm, receiver)
    contact = create_contact(http, live_crm, "Ada")
    logged = http.post(f"{live_crm.url}/activities", json={**CALL, "contact_id": contact["id"]}, headers=AUTH).json()
    same = http.patch(f"{live_crm.url}/activities/{logged['id']}", json={"duration_minutes": 45, "billable": True},
                      headers={**AUTH, "If-Match": "1"}).json()
    http.patch(f"{live_crm.url}/_sandbox/activities/{logged['id']}", json={"subject": "Kick-off"})
    http.patch(f"{live_crm.url}/_sandbox/activities/{logged['id']}", json={"subject": "Changed"})
    events = receiver.wait_events(3)
    assert same == logged
    assert [e["type"] for e in events] == ["contact.created", "activity.created", "activity.updated"]
    assert events[2]["activity"]["version"] == 2 and events[2]["activity"]["subject"] == "Changed"


def test_contact_delete_and_merge_carry_their_activities(http: requests.Session, live_crm: RunningServer,
                                                         receiver: HookReceiver) -> None:
    subscribe(http, live_crm, receiver)
    api = live_crm.url
    doomed, survivor = create_contact(http, live_crm, "Doomed"), create_contact(http, live_crm, "Survivor")
    loser = create_contact(http, live_crm, "Loser", phone="+1 555 0100")
    first = http.post(f"{api}/_sandbox/activities", json={**CALL, "contact_id": doomed["id"]}).json()
    second = http.post(f"{api}/_sandbox/activities", json={**CALL, "contact_id": doomed["id"], "type": "time"}).json()
    moving = http.post(f"{api}/_sandbox/activities", json={**CALL, "contact_id": loser["id"]}).json()
    assert http.delete(f"{api}/contacts/{doomed['id']}", headers=AUTH).status_code == 204
    merged = http.post(f"{api}/_sandbox/contacts/{loser['id']}/merge", json={"into": survivor["id"]}).json()

    events = receiver.wait_events(12)[6:]
    assert [e["type"] for e in events] == ["activity.deleted", "activity.deleted", "contact.deleted",
                                           "contact.merged", "contact.updated", "activity.updated"]
    assert {events[0]["activity_id"], events[1]["activity_id"]} == {first["id"], second["id"]}
    assert events[2]["contact_id"] == doomed["id"]
    assert (events[3]["contact_id"], events[3]["merged_into"]) == (loser["id"], survivor["id"])
    assert events[4]["contact"] == merged
    assert events[5]["activity"] == {**moving, "contact_id": survivor["id"], "version": 2,
                                     "updated_at": events[5]["occurred_at"]}
