"""Webhooks: HubSpot-shaped events for API and UI changes, batched, signed (v1 + v3), retried as HubSpot does."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import requests

from crm_qb.sandbox.hubspot.server import RunningServer
from crm_qb.sandbox.hubspot.signatures import sign_v1, verify_v3
from crm_qb.sandbox.hubspot.webhooks import (
    MAX_RETRIES,
    WebhookDispatcher,
    check_subscriptions,
    retry_ceilings,
    retry_delay,
)
from tests.sandbox_hubspot.conftest import AUTH, CLIENT_SECRET, Receiver
from tests.support import wait_for

HOOK_PATH = "/webhooks/hubspot?source=sandbox"


def register(http: requests.Session, live: RunningServer, receiver: Receiver, **extra: Any) -> None:
    """Point the app's webhooks at the receiver."""
    answer = http.post(f"{live.url}/_sandbox/webhooks", json={"url": receiver.url + HOOK_PATH, **extra})
    assert answer.status_code == 200, answer.text


def create(http: requests.Session, live: RunningServer, path: str, body: dict[str, Any]) -> dict[str, Any]:
    answer = http.post(f"{live.url}{path}", json=body, headers=AUTH)
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_api_changes_send_signed_event_arrays(live: RunningServer, receiver: Receiver, http: requests.Session) -> None:
    register(http, live, receiver)
    made = create(http, live, "/crm/v3/objects/contacts", {"properties": {"email": "w@example.com"}})
    http.patch(f"{live.url}/crm/v3/objects/contacts/{made['id']}", json={"properties": {"firstname": "Wes"}},
               headers=AUTH)
    http.delete(f"{live.url}/crm/v3/objects/contacts/{made['id']}", headers=AUTH)
    events = receiver.wait_events(lambda e: any(x["subscriptionType"] == "contact.deletion" for x in e), "deletion")
    kinds = [(e["subscriptionType"], e.get("propertyName")) for e in events]
    assert kinds == [("contact.creation", None), ("contact.propertyChange", "email"),
                     ("contact.propertyChange", "firstname"), ("contact.deletion", None)]
    creation = events[0]
    assert creation["objectId"] == int(made["id"]) and creation["portalId"] == live.sandbox.portal_id
    assert creation["changeFlag"] == "NEW" and creation["attemptNumber"] == 0
    assert creation["changeSource"] == "INTEGRATION" and creation["appId"] == live.sandbox.config.app_id
    assert events[2]["propertyValue"] == "Wes" and events[3]["changeFlag"] == "DELETED"
    assert len({e["eventId"] for e in events}) == len(events)
    for request in receiver.requests:
        assert request.method == "POST" and request.headers["Content-Type"] == "application/json"
        uri = receiver.url + request.url
        stamp = int(request.headers["X-HubSpot-Request-Timestamp"])
        assert verify_v3(CLIENT_SECRET, "POST", uri, request.body, request.headers, stamp)
        assert request.headers["X-HubSpot-Signature"] == sign_v1(CLIENT_SECRET, request.body)
        assert request.headers["X-HubSpot-Signature-Version"] == "v1"


def test_ui_changes_merges_and_associations_send_events(live: RunningServer, receiver: Receiver,
                                                         http: requests.Session) -> None:
    register(http, live, receiver, subscriptions=[
        {"subscriptionType": "contact.merge"}, {"subscriptionType": "contact.associationChange"},
        {"subscriptionType": "contact.propertyChange", "propertyName": "phone"},
        {"subscriptionType": "object.creation", "objectTypeId": "0-27"}])
    a = http.post(f"{live.url}/_sandbox/objects/contacts", json={"properties": {"email": "a@x.com"}}).json()
    b = http.post(f"{live.url}/_sandbox/objects/contacts",
                  json={"properties": {"email": "b@x.com", "phone": "1"}}).json()
    company = create(http, live, "/crm/v3/objects/companies", {"properties": {"name": "Acme"}})
    http.put(f"{live.url}/crm/v4/objects/contacts/{a['id']}/associations/default/companies/{company['id']}",
             headers=AUTH)
    create(http, live, "/crm/v3/objects/tasks", {"properties": {"hs_timestamp": "0", "hs_task_subject": "Call"}})
    merged = http.post(f"{live.url}/_sandbox/objects/contacts/merge",
                       json={"primaryObjectId": a["id"], "objectIdToMerge": b["id"]}).json()
    events = receiver.wait_events(lambda e: any(x["subscriptionType"] == "contact.merge" for x in e), "merge")
    by_type = {e["subscriptionType"]: e for e in events}
    assert set(by_type) == {"contact.propertyChange", "contact.associationChange", "object.creation",
                            "contact.merge"}
    assert by_type["contact.propertyChange"]["changeSource"] == "CRM"
    assert by_type["contact.propertyChange"]["propertyValue"] == "1"
    association = by_type["contact.associationChange"]
    assert association["associationType"] == "CONTACT_TO_COMPANY" and association["associationRemoved"] is False
    assert association["fromObjectId"] == int(a["id"]) and association["toObjectId"] == int(company["id"])
    assert by_type["object.creation"]["objectTypeId"] == "0-27"
    merge = by_type["contact.merge"]
    assert merge["primaryObjectId"] == int(a["id"]) and merge["mergedObjectIds"] == [int(b["id"])]
    assert merge["newObjectId"] == int(merged["id"])


def test_batches_hold_at_most_100_events(live: RunningServer, receiver: Receiver, http: requests.Session) -> None:
    register(http, live, receiver, subscriptions=[{"subscriptionType": "contact.creation"}], delay_ms=300)
    inputs = [{"properties": {"email": f"n{i}@example.com"}} for i in range(100)]
    for start in (0, 50):
        answer = http.post(f"{live.url}/crm/v3/objects/contacts/batch/create",
                           json={"inputs": inputs[start:start + 50]}, headers=AUTH)
        assert answer.status_code == 201
    more = [{"properties": {"email": f"m{i}@example.com"}} for i in range(30)]
    http.post(f"{live.url}/crm/v3/objects/contacts/batch/create", json={"inputs": more}, headers=AUTH)
    receiver.wait_events(lambda e: len(e) == 130, "130 creation events")
    sizes = [len(r.events()) for r in receiver.requests]
    assert max(sizes) == 100 and sum(sizes) == 130


def test_failed_delivery_is_retried_with_attempt_number(live: RunningServer, receiver: Receiver,
                                                        http: requests.Session) -> None:
    receiver.script = [(500, {}), (503, {}), (429, {"Retry-After": "1"})]
    register(http, live, receiver, subscriptions=[{"subscriptionType": "contact.creation"}])
    create(http, live, "/crm/v3/objects/contacts", {"properties": {"email": "r@example.com"}})
    wait_for(lambda: len(receiver.requests) == 4, what="three retries")
    attempts = [r.events()[0]["attemptNumber"] for r in receiver.requests]
    assert attempts == [0, 1, 2, 3]
    assert len({r.events()[0]["eventId"] for r in receiver.requests}) == 1
    stamps = [int(r.headers["X-HubSpot-Request-Timestamp"]) for r in receiver.requests]
    assert stamps == sorted(stamps)
    assert live.sandbox.webhooks.snapshot()["delivered"] == 1


def test_4xx_refusals_are_not_retried(live: RunningServer, receiver: Receiver, http: requests.Session) -> None:
    receiver.script = [(401, {})]
    register(http, live, receiver, subscriptions=[{"subscriptionType": "contact.creation"}])
    create(http, live, "/crm/v3/objects/contacts", {"properties": {"email": "no@example.com"}})
    wait_for(lambda: live.sandbox.webhooks.snapshot()["refused"] == 1, what="refusal recorded")
    assert live.sandbox.webhooks.wait_idle(5)
    assert len(receiver.requests) == 1


def test_gives_up_after_ten_retries() -> None:
    calls: list[int] = []

    def post(url: str, body: bytes, headers: Any, timeout: float) -> tuple[int | None, dict[str, str]]:
        calls.append(json.loads(body)[0]["attemptNumber"])
        return None, {}

    dispatcher = WebhookDispatcher("s", 1, 2, lambda: 0, post=post, retry_scale=1e-7, seed=1)
    dispatcher.configure("http://127.0.0.1:9/hook", [{"subscriptionType": "contact.creation"}])
    dispatcher.start()
    try:
        dispatcher.enqueue({"action": "creation", "objectType": "contacts", "objectId": "5", "occurredAt": 1,
                            "changeSource": "CRM", "sourceId": None})
        wait_for(lambda: dispatcher.snapshot()["gave_up"] == 1, what="give up")
    finally:
        dispatcher.stop()
    assert calls == list(range(MAX_RETRIES + 1))


def test_retry_schedule_spans_24_hours_with_growing_random_delays() -> None:
    ceilings = retry_ceilings()
    assert len(ceilings) == 10 and abs(sum(ceilings) - 86_400) < 1e-6
    assert all(later == 2 * earlier for earlier, later in itertools.pairwise(ceilings))
    rng = random.Random(3)
    for attempt in range(1, 11):
        delay = retry_delay(attempt, rng, ceilings)
        assert (ceilings[attempt - 2] if attempt > 1 else 0) <= delay <= ceilings[attempt - 1]


def test_no_target_means_events_are_dropped(live: RunningServer, http: requests.Session) -> None:
    create(http, live, "/crm/v3/objects/contacts", {"properties": {"email": "d@example.com"}})
    snapshot = live.sandbox.webhooks.snapshot()
    assert snapshot["dropped"] == 2 and snapshot["waiting"] == 0


def test_subscription_validation() -> None:
    assert check_subscriptions([{"subscriptionType": "company.creation"}]) == [{"subscriptionType": "company.creation"}]
    for bad in ([{"subscriptionType": "contact.nonsense"}], [{"subscriptionType": "object.creation"}], {}):
        try:
            check_subscriptions(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")
