"""The sandbox webhook emitter: payload shapes against Intuit's samples, batching, ordering, retries, HTTP."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from crm_qb.sandbox.qbo import webhooks
from crm_qb.sandbox.qbo.webhooks import Event, WebhookDispatcher, cloudevents_body, legacy_body
from crm_qb.signatures import verify_qbo

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "qbo"
TOKEN = "sandbox-verifier-token"
WHEN = datetime(2025, 9, 8, 13, 52, 31, 657000, tzinfo=timezone(timedelta(hours=-7)))
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def load(name: str):
    return json.loads((FIXTURES / name).read_text())


def shape(value):
    """Keys, value types and nesting of a JSON value (list items merged), without the values."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A ``post`` that records each delivery and answers with the next scripted status (then 200)."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.calls: list[tuple[str, bytes, dict[str, str]]] = []

    def __call__(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        self.calls.append((url, body, dict(headers)))
        return self.statuses.pop(0) if self.statuses else 200

    def entity_ids(self, index: int) -> list[str]:
        body = json.loads(self.calls[index][1])
        return [e["id"] for n in body["eventNotifications"] for e in n["dataChangeEvent"]["entities"]]


def event(entity_id: str = "1", operation: str = "Create", realm: str = "310687", **kwargs) -> Event:
    return Event(realm, kwargs.pop("name", "Customer"), entity_id, operation, WHEN, **kwargs)


def dispatcher(recorder: Recorder, clock: FakeClock, **kwargs) -> WebhookDispatcher:
    return WebhookDispatcher(TOKEN, clock=clock, post=recorder, retry_schedule=(10.0, 20.0, 300.0), **kwargs)


# --- payload builders -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["webhook_legacy.json", "webhook_legacy_2025_blog.json"])
def test_legacy_body_has_the_shape_of_intuit_samples(fixture):
    body = legacy_body({"310687": [event("1234"), event("7", "Update", name="Vendor")]})
    assert shape(body) == shape(load(fixture))
    entity = body["eventNotifications"][0]["dataChangeEvent"]["entities"][0]
    assert entity == {"name": "Customer", "id": "1234", "operation": "Create",
                      "lastUpdated": "2025-09-08T20:52:31.657Z"}


def test_legacy_body_one_notification_per_realm_in_order():
    body = legacy_body({"1": [event("5"), event("6")], "2": [event("9", realm="2")]})
    assert [n["realmId"] for n in body["eventNotifications"]] == ["1", "2"]
    assert [e["id"] for e in body["eventNotifications"][0]["dataChangeEvent"]["entities"]] == ["5", "6"]


def test_legacy_merge_carries_deleted_id():
    entity = legacy_body({"1": [event("123", "Merge", deleted_id="27")]})["eventNotifications"][0]
    assert entity["dataChangeEvent"]["entities"][0]["deletedId"] == "27"


def test_legacy_last_updated_parses_back_to_the_same_instant():
    stamp = legacy_body({"1": [event()]})["eventNotifications"][0]["dataChangeEvent"]["entities"][0]
    assert datetime.fromisoformat(stamp["lastUpdated"]) == WHEN


def test_cloudevents_body_has_the_shape_of_intuit_sample():
    body = cloudevents_body([event("1234")])
    assert shape(body) == shape(load("webhook_cloudevents_customer_created.json"))
    sample = load("webhook_cloudevents_customer_created.json")[0]
    item = body[0]
    assert list(item) == list(sample)
    assert {k: item[k] for k in ("specversion", "type", "datacontenttype", "data")} == {
        k: sample[k] for k in ("specversion", "type", "datacontenttype", "data")}
    assert (item["intuitentityid"], item["intuitaccountid"]) == ("1234", "310687")
    assert item["time"] == "2025-09-08T20:52:31.657Z"
    assert datetime.fromisoformat(item["time"]) == WHEN
    assert UUID_RE.match(item["id"])
    assert re.fullmatch(r"intuit\.[A-Za-z0-9+/]{43}=", item["source"])


def test_cloudevents_merge_matches_intuit_sample():
    item = cloudevents_body([event("123", "Merge", deleted_id="27")])[0]
    sample = load("webhook_cloudevents_customer_merged.json")[0]
    assert shape(item) == shape(sample)
    assert (item["type"], item["data"]) == (sample["type"], sample["data"])


@pytest.mark.parametrize(("entity", "operation", "expected"), [
    ("Customer", "Create", "qbo.customer.created.v1"),
    ("Customer", "Update", "qbo.customer.updated.v1"),
    ("Invoice", "Delete", "qbo.invoice.deleted.v1"),
    ("Customer", "Merge", "qbo.customer.merged.v1"),
    ("SalesReceipt", "Void", "qbo.salesreceipt.voided.v1"),
    ("CreditMemo", "Emailed", "qbo.creditmemo.emailed.v1"),
    ("Account", "Create", "qbo.account.created.v1"),
])
def test_cloudevents_type(entity, operation, expected):
    assert webhooks.cloudevents_type(entity, operation) == expected


def test_cloudevents_ids_are_unique_and_stable_per_event():
    events = [event(str(n)) for n in range(50)]
    first, again = cloudevents_body(events), cloudevents_body(events)
    assert len({item["id"] for item in first}) == 50
    assert [item["id"] for item in first] == [item["id"] for item in again]


def test_utc_timestamp_of_whole_second_keeps_milliseconds():
    assert webhooks.utc_timestamp(datetime(2025, 12, 4, 15, 25, 5, tzinfo=UTC)) == "2025-12-04T15:25:05.000Z"


# --- validation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"fmt": "xml", "delay_ms": 0}, "fmt must be 'legacy' or 'cloudevents', got 'xml'"),
    ({"fmt": "legacy", "delay_ms": -1}, "delay_ms must be a non-negative integer, got -1"),
    ({"fmt": "legacy", "delay_ms": 0, "content_type": "application/cloudevents+json"},
     "content_type for legacy"),
    ({"fmt": "cloudevents", "delay_ms": 0, "content_type": "text/plain"}, "content_type for cloudevents"),
])
def test_register_rejects_bad_subscriptions(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        WebhookDispatcher(TOKEN, post=Recorder()).register("http://127.0.0.1:1/hook", **kwargs)


@pytest.mark.parametrize(("operation", "moment", "deleted_id", "message"), [
    ("Upsert", WHEN, None, "operation must be one of"),
    ("Create", datetime(2025, 1, 1), None, "last_updated must be timezone-aware"),
    ("Merge", WHEN, None, "deleted_id is required for Merge"),
    ("Update", WHEN, "3", "deleted_id is required for Merge and only for Merge"),
])
def test_emit_rejects_bad_events(operation, moment, deleted_id, message):
    hooks = WebhookDispatcher(TOKEN, post=Recorder())
    hooks.register("http://127.0.0.1:1/hook", "legacy", 0)
    with pytest.raises(ValueError, match=message):
        hooks.emit("1", "Customer", "1", operation, moment, deleted_id)


# --- batching, ordering, retries (injected clock, no thread) ----------------------------------------------


def test_events_are_batched_over_the_aggregation_delay_and_signed():
    clock, recorder = FakeClock(), Recorder()
    hooks = dispatcher(recorder, clock)
    hooks.register("http://127.0.0.1:9/hook", "legacy", 1000)
    hooks.emit("1", "Customer", "1", "Create", WHEN)
    clock.now += 0.5
    hooks.emit("1", "Invoice", "130", "Update", WHEN)
    clock.now += 0.49
    assert hooks.deliver_due() == 0
    clock.now += 0.01
    assert hooks.deliver_due() == 1
    url, body, headers = recorder.calls[0]
    assert url == "http://127.0.0.1:9/hook"
    assert recorder.entity_ids(0) == ["1", "130"]
    assert headers["Content-Type"] == "application/json"
    assert verify_qbo(body, headers["intuit-signature"], TOKEN)
    assert (hooks.pending(), hooks.delivered()) == (0, 2)


def test_each_delivery_carries_one_realm():
    clock, recorder = FakeClock(), Recorder()
    hooks = dispatcher(recorder, clock)
    hooks.register("http://127.0.0.1:9/hook", "legacy", 0)
    for realm in ("1", "2", "1"):
        hooks.emit(realm, "Customer", realm, "Update", WHEN)
    assert hooks.deliver_due() == 2
    realms = [json.loads(body)["eventNotifications"][0]["realmId"] for _, body, _ in recorder.calls]
    assert sorted(realms) == ["1", "2"]
    assert all(len(json.loads(body)["eventNotifications"]) == 1 for _, body, _ in recorder.calls)


def test_failed_delivery_is_retried_unchanged_and_later_events_wait_behind_it():
    clock, recorder = FakeClock(), Recorder([500, 0])
    hooks = dispatcher(recorder, clock)
    hooks.register("http://127.0.0.1:9/hook", "cloudevents", 0)
    hooks.emit("1", "Customer", "1", "Create", WHEN)
    assert hooks.deliver_due() == 1
    hooks.emit("1", "Customer", "2", "Create", WHEN)
    clock.now += 9.99
    assert hooks.deliver_due() == 0
    clock.now += 0.01
    assert hooks.deliver_due() == 1
    assert recorder.calls[1][1] == recorder.calls[0][1]
    clock.now += 19.99
    assert hooks.deliver_due() == 0
    clock.now += 0.01
    hooks.deliver_due()
    hooks.deliver_due()
    sent = [[item["intuitentityid"] for item in json.loads(body)] for _, body, _ in recorder.calls]
    assert sent == [["1"], ["1"], ["1"], ["2"]]
    assert (hooks.pending(), hooks.delivered()) == (0, 2)


def test_backoff_stays_at_the_last_interval():
    clock, recorder = FakeClock(), Recorder([503] * 5)
    hooks = dispatcher(recorder, clock)
    hooks.register("http://127.0.0.1:9/hook", "legacy", 0)
    hooks.emit("1", "Customer", "1", "Create", WHEN)
    attempts_at = []
    for _ in range(400):
        if hooks.deliver_due():
            attempts_at.append(clock.now - 1000.0)
        clock.now += 5.0
    assert attempts_at[:6] == [0.0, 10.0, 30.0, 330.0, 630.0, 930.0]
    assert hooks.delivered() == 1


def test_large_bursts_are_split_into_deliveries_of_at_most_max_events():
    clock, recorder = FakeClock(), Recorder()
    hooks = dispatcher(recorder, clock, max_events=100)
    hooks.register("http://127.0.0.1:9/hook", "legacy", 0)
    for n in range(250):
        hooks.emit("1", "Invoice", str(n), "Update", WHEN)
    while hooks.deliver_due():
        pass
    assert [len(recorder.entity_ids(i)) for i in range(len(recorder.calls))] == [100, 100, 50]
    assert [eid for i in range(3) for eid in recorder.entity_ids(i)] == [str(n) for n in range(250)]


def test_realm_subscription_overrides_the_all_realms_one_and_registration_replaces():
    clock, recorder = FakeClock(), Recorder()
    hooks = dispatcher(recorder, clock)
    assert hooks.emit("1", "Customer", "1", "Create", WHEN) is False
    hooks.register("http://127.0.0.1:9/all", "legacy", 0)
    hooks.register("http://127.0.0.1:9/one", "legacy", 0, realm="1")
    hooks.register("http://127.0.0.1:9/one-v2", "cloudevents", 0, realm="1",
                   content_type="application/cloudevents+json")
    hooks.emit("1", "Customer", "1", "Create", WHEN)
    hooks.emit("2", "Customer", "1", "Create", WHEN)
    hooks.deliver_due()
    sent = {url: headers["Content-Type"] for url, _, headers in recorder.calls}
    assert sent == {"http://127.0.0.1:9/one-v2": "application/cloudevents+json",
                    "http://127.0.0.1:9/all": "application/json"}
    assert hooks.subscription("3").url == "http://127.0.0.1:9/all"


def test_new_registration_retries_a_stuck_batch_at_once():
    clock, recorder = FakeClock(), Recorder([500])
    hooks = dispatcher(recorder, clock)
    hooks.register("http://127.0.0.1:9/broken", "legacy", 0)
    hooks.emit("1", "Customer", "1", "Create", WHEN)
    hooks.deliver_due()
    hooks.register("http://127.0.0.1:9/fixed", "legacy", 0)
    assert hooks.deliver_due() == 1
    assert [url for url, _, _ in recorder.calls] == ["http://127.0.0.1:9/broken", "http://127.0.0.1:9/fixed"]


def test_start_twice_is_refused_and_stop_without_start_is_harmless():
    hooks = WebhookDispatcher(TOKEN, post=Recorder())
    hooks.stop()
    hooks.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            hooks.start()
    finally:
        hooks.stop()


# --- real HTTP on 127.0.0.1 through the delivery thread ---------------------------------------------------


class Receiver:
    """A local HTTP endpoint that fails the first ``failures`` requests, then records and acknowledges."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.received: list[tuple[bytes, dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.failures:
                    receiver.failures -= 1
                    self.send_response(500)
                else:
                    receiver.received.append((body, dict(self.headers)))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/qbo"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_delivery_thread_posts_signed_batches_and_retries_over_http():
    with Receiver(failures=2) as receiver:
        hooks = WebhookDispatcher(TOKEN, retry_schedule=(0.02, 0.04))
        hooks.register(receiver.url, "legacy", 50)
        hooks.start()
        try:
            for n in range(5):
                hooks.emit("9341", "Customer", str(n), "Update", WHEN)
            wait_for(lambda: hooks.delivered() == 5)
            hooks.emit("9341", "Invoice", "77", "Void", WHEN)
            wait_for(lambda: hooks.delivered() == 6)
        finally:
            hooks.stop()
    bodies = [json.loads(body) for body, _ in receiver.received]
    ids = [e["id"] for b in bodies for e in b["eventNotifications"][0]["dataChangeEvent"]["entities"]]
    assert ids == ["0", "1", "2", "3", "4", "77"]
    assert len(bodies) == 2
    for body, headers in receiver.received:
        assert verify_qbo(body, headers["intuit-signature"], TOKEN)
        assert headers["Content-Type"] == "application/json"
    assert hooks.pending() == 0


def test_default_post_reports_status_and_unreachable_endpoints():
    with Receiver(failures=1) as receiver:
        assert webhooks.post_with_requests(receiver.url, b"[]", {"Content-Type": "application/json"}) == 500
        assert webhooks.post_with_requests(receiver.url, b"[]", {"Content-Type": "application/json"}) == 200
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert webhooks.post_with_requests(f"http://127.0.0.1:{port}/", b"[]", {}) == 0
