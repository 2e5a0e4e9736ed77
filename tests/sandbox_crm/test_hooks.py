"""Change hooks from a real reference CRM server to a real HTTP receiver, verified independently."""

from __future__ import annotations

import json
import time

import requests

from crm_qb.sandbox.crm.hooks import HookDispatcher, make_event
from crm_qb.sandbox.crm.server import RunningServer
from crm_qb.signatures import verify_crm
from tests.sandbox_crm.conftest import AUTH, HookReceiver

SECRET = "hook-secret"


def subscribe(http: requests.Session, crm: RunningServer, receiver: HookReceiver) -> None:
    """Point the CRM's hooks at the receiver."""
    response = http.post(f"{crm.url}/_sandbox/hooks", json={"url": receiver.url, "secret": SECRET})
    assert response.status_code == 200


def test_every_change_sends_a_signed_hook_in_order(http: requests.Session, live_crm: RunningServer,
                                                   receiver: HookReceiver) -> None:
    subscribe(http, live_crm, receiver)
    api = live_crm.url
    ada = http.post(f"{api}/contacts", json={"first_name": "Ada", "phone": "1"}, headers=AUTH).json()
    bob = http.post(f"{api}/_sandbox/contacts", json={"first_name": "Bob"}).json()
    edited = http.patch(f"{api}/contacts/{ada['id']}", json={"last_name": "L"},
                        headers={**AUTH, "If-Match": "1"}).json()
    merged = http.post(f"{api}/contacts/{ada['id']}/merge", json={"into": bob["id"]}, headers=AUTH).json()
    http.delete(f"{api}/_sandbox/contacts/{bob['id']}")

    events = receiver.wait_events(6)
    assert [e["type"] for e in events] == ["contact.created", "contact.created", "contact.updated",
                                           "contact.merged", "contact.updated", "contact.deleted"]
    assert events[0]["contact"] == ada and events[1]["contact"] == bob and events[2]["contact"] == edited
    assert (events[3]["contact_id"], events[3]["merged_into"]) == (ada["id"], bob["id"])
    assert events[4]["contact"] == merged and merged["phone"] == "1"
    assert events[5] == {"id": events[5]["id"], "type": "contact.deleted",
                         "occurred_at": events[5]["occurred_at"], "contact_id": bob["id"]}
    assert len({e["id"] for e in events}) == 6
    times = [e["occurred_at"] for e in events]
    assert times == sorted(times) and all(t.endswith("Z") for t in times)
    for body, headers in receiver.received:
        assert headers["Content-Type"] == "application/json"
        assert verify_crm(body, headers["X-CRM-Signature"], SECRET, time.time())
        assert not verify_crm(body, headers["X-CRM-Signature"], "other-secret", time.time())


def test_no_hook_for_a_patch_that_changes_nothing_or_for_the_quickbooks_summary(
        http: requests.Session, live_crm: RunningServer, receiver: HookReceiver) -> None:
    subscribe(http, live_crm, receiver)
    ada = http.post(f"{live_crm.url}/contacts", json={"first_name": "Ada"}, headers=AUTH).json()
    http.patch(f"{live_crm.url}/contacts/{ada['id']}", json={"first_name": "Ada"}, headers={**AUTH, "If-Match": "1"})
    http.put(f"{live_crm.url}/contacts/{ada['id']}/quickbooks", json={"balance": "1.00"}, headers=AUTH)
    http.patch(f"{live_crm.url}/contacts/{ada['id']}", json={"active": False}, headers={**AUTH, "If-Match": "1"})
    events = receiver.wait_events(2)
    assert [e["type"] for e in events] == ["contact.created", "contact.updated"]
    assert events[1]["contact"]["active"] is False and events[1]["contact"]["quickbooks"] == {"balance": "1.00"}


def test_delivery_is_retried_until_the_receiver_answers_2xx(http: requests.Session, live_crm: RunningServer,
                                                            receiver: HookReceiver) -> None:
    receiver.fail_first = 3
    subscribe(http, live_crm, receiver)
    contact = http.post(f"{live_crm.url}/contacts", json={"first_name": "Ada"}, headers=AUTH).json()
    events = receiver.wait_events(1)
    assert receiver.statuses == [500, 500, 500, 202]
    assert events[0]["contact"] == contact
    assert live_crm.sandbox.hooks.wait_idle(5)
    log = http.get(f"{live_crm.url}/_sandbox/hooks").json()
    assert [d["status"] for d in log["deliveries"]] == [500, 500, 500, 202]
    assert [d["attempt"] for d in log["deliveries"]] == [1, 2, 3, 4]
    assert {tuple(d["event_ids"]) for d in log["deliveries"]} == {(events[0]["id"],)}
    assert (log["pending"], log["delivered"], log["url"]) == (0, 1, receiver.url)


def test_a_slow_receiver_never_blocks_the_api(http: requests.Session, live_crm: RunningServer,
                                              receiver: HookReceiver) -> None:
    receiver.gate.clear()  # the receiver takes every hook but answers none until released
    subscribe(http, live_crm, receiver)
    created = [http.post(f"{live_crm.url}/contacts", json={"first_name": f"N{number}"}, headers=AUTH).status_code
               for number in range(5)]
    assert created == [201] * 5 and receiver.answered == 0  # every write returned while a delivery hung
    receiver.gate.set()
    names = [e["contact"]["first_name"] for e in receiver.wait_events(5)]
    assert names == [f"N{number}" for number in range(5)]


def test_changes_without_a_hook_url_are_dropped(http: requests.Session, live_crm: RunningServer) -> None:
    http.post(f"{live_crm.url}/contacts", json={"first_name": "Ada"}, headers=AUTH)
    log = http.get(f"{live_crm.url}/_sandbox/hooks").json()
    assert (log["url"], log["pending"], log["dropped"], log["deliveries"]) == (None, 0, 1, [])


def test_an_unreachable_receiver_keeps_events_pending_until_it_is_replaced(receiver: HookReceiver) -> None:
    dispatcher = HookDispatcher(backoff_base=0.02, backoff_max=0.05, timeout=1.0)
    dispatcher.configure("http://127.0.0.1:9/nothing-listens-here", SECRET)
    dispatcher.start()
    try:
        for number in range(3):
            dispatcher.enqueue(make_event("contact.deleted", "2024-01-01T00:00:00Z", contact_id=f"c{number}"))
        assert not dispatcher.wait_idle(0.3)
        assert dispatcher.snapshot()["deliveries"][0]["error"] == "ConnectionError"
        dispatcher.configure(receiver.url, SECRET)
        assert dispatcher.wait_idle(5)
    finally:
        dispatcher.stop()
    assert [e["contact_id"] for e in receiver.events()] == ["c0", "c1", "c2"]
    body, headers = receiver.received[0]
    assert json.loads(body)["events"][0]["type"] == "contact.deleted"
    assert verify_crm(body, headers["X-CRM-Signature"], SECRET, time.time())
