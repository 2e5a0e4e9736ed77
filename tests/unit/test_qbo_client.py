"""The QBO client against recorded Intuit payloads: URLs, retries, refresh on 401, paging, CDC and batch."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from crm_qb.qbo.client import CDC_MAX_OBJECTS, BatchResult, CdcWindowTooDenseError, QboClient, dumps, escape
from crm_qb.qbo.faults import (
    AnswerTimeoutError,
    AuthenticationError,
    DuplicateNameError,
    NetworkError,
    ObjectNotFoundError,
    ServerError,
    StaleObjectError,
    ThrottledError,
)
from tests.support import QBO_FIXTURES

BASE = "https://sandbox-quickbooks.api.intuit.com"
REALM = "9130"
COMPANY = f"{BASE}/v3/company/{REALM}"


def fixture(name: str) -> bytes:
    return (QBO_FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture(name), parse_float=Decimal)


def params(call: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


def body(call: Any) -> Any:
    return json.loads(call.request.body, parse_float=Decimal)


class Recorder:
    """Fake sleep and token callbacks that remember how they were called."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.refreshed_with: list[str] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def refresh(self, stale: str) -> str:
        self.refreshed_with.append(stale)
        return f"new-token-{len(self.refreshed_with)}"


class RecordingBudget:
    """Stands in for RateBudget and records each slot taken."""

    def __init__(self) -> None:
        self.slots: list[tuple[str, int]] = []
        self.batches: list[bool] = []

    @contextmanager
    def slot(self, realm_id: str, timeout: float | None = None, cost: int = 1, batch: bool = False) -> Iterator[None]:
        self.slots.append((realm_id, cost))
        self.batches.append(batch)
        yield


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
def client(rec: Recorder) -> Iterator[QboClient]:
    with QboClient(BASE, REALM, lambda: "token-0", rec.refresh, None, sleep=rec.sleep,
                   rng=random.Random(7)) as qbo:
        yield qbo


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as mock:
        yield mock


def test_read_sends_minorversion_json_and_bearer_token(client: QboClient, mocked: responses.RequestsMock) -> None:
    mocked.get(f"{COMPANY}/customer/2", body=fixture("customer_read.json"), headers={"intuit_tid": "r-1"})

    customer = client.read("Customer", "2")

    call = mocked.calls[0]
    assert params(call) == {"minorversion": ["75"]}
    assert call.request.headers["Accept"] == "application/json"
    assert call.request.headers["Authorization"] == "Bearer token-0"
    assert customer["DisplayName"] == "Bill's Windsurf Shop"
    assert customer["Balance"] == Decimal("85.0")
    assert isinstance(customer["Balance"], Decimal)


def test_ids_are_url_encoded_and_entity_names_lowercased(client: QboClient, mocked: responses.RequestsMock) -> None:
    mocked.get(f"{COMPANY}/salesreceipt/a%2Fb", json={"SalesReceipt": {"Id": "a/b"}})

    assert client.read("SalesReceipt", "a/b") == {"Id": "a/b"}


def test_entity_names_are_checked(client: QboClient) -> None:
    with pytest.raises(ValueError, match="entity name"):
        client.read("customer/../x", "1")


def test_create_posts_json_with_a_requestid(client: QboClient, mocked: responses.RequestsMock) -> None:
    mocked.post(f"{COMPANY}/customer", body=fixture("customer_create_response.json"))
    request_body = fixture_json("customer_create_request.json")

    created = client.create("Customer", request_body)

    call = mocked.calls[0]
    assert call.request.headers["Content-Type"] == "application/json"
    assert body(call) == request_body
    assert params(call)["minorversion"] == ["75"]
    assert len(params(call)["requestid"][0]) == 36
    assert created["Id"] == "67"


def test_sparse_update_sends_id_synctoken_and_sparse(client: QboClient, mocked: responses.RequestsMock) -> None:
    mocked.post(f"{COMPANY}/customer", body=fixture("customer_sparse_update_response.json"))

    updated = client.sparse_update("Customer", "2", "0", {"MiddleName": "Mark"})

    assert body(mocked.calls[0]) == fixture_json("customer_sparse_update_request.json")
    assert updated["SyncToken"] == "1"


def test_delete_uses_operation_delete(client: QboClient, mocked: responses.RequestsMock) -> None:
    mocked.post(f"{COMPANY}/invoice", body=fixture("invoice_delete_response.json"))

    deleted = client.delete("Invoice", "33", "3")

    assert params(mocked.calls[0])["operation"] == ["delete"]
    assert body(mocked.calls[0]) == {"Id": "33", "SyncToken": "3"}
    assert deleted["status"] == "Deleted"


def test_customers_cannot_be_deleted(client: QboClient) -> None:
    with pytest.raises(ValueError, match="inactive"):
        client.delete("Customer", "1", "0")


@pytest.mark.parametrize("entity", ["Invoice", "SalesReceipt"])
def test_invoice_style_void(client: QboClient, mocked: responses.RequestsMock, entity: str) -> None:
    answer = fixture_json("invoice_void_response.json")["Invoice"]
    mocked.post(f"{COMPANY}/{entity.lower()}", json={entity: answer})

    voided = client.void(entity, "129", "0")

    assert params(mocked.calls[0])["operation"] == ["void"]
    assert body(mocked.calls[0]) == {"Id": "129", "SyncToken": "0"}
    assert voided["PrivateNote"] == "Voided"


def test_payment_void_is_a_sparse_update_including_void(client: QboClient, mocked: responses.RequestsMock) -> None:
    mocked.post(f"{COMPANY}/payment", body=fixture("payment_void_response.json"))

    voided = client.void("Payment", "33", "1")

    call = mocked.calls[0]
    assert params(call)["operation"] == ["update"]
    assert params(call)["include"] == ["void"]
    assert body(call) == {"Id": "33", "SyncToken": "1", "sparse": True}
    assert voided["TotalAmt"] == 0


def test_void_of_an_entity_without_void_is_refused(client: QboClient) -> None:
    with pytest.raises(ValueError, match="no void"):
        client.void("Estimate", "1", "0")


def test_query_returns_the_whole_answer(client: QboClient, mocked: responses.RequestsMock) -> None:
    mocked.get(f"{COMPANY}/query", body=fixture("customer_query_response.json"))

    answer = client.query("select * from Customer")

    assert params(mocked.calls[0])["query"] == ["select * from Customer"]
    assert [c["Id"] for c in answer["QueryResponse"]["Customer"]] == ["1", "29"]


def query_server(rows: list[dict[str, Any]]) -> Callable[[requests.PreparedRequest], tuple[int, dict, str]]:
    """A fake query endpoint honouring STARTPOSITION and MAXRESULTS over ``rows``."""

    def answer(request: requests.PreparedRequest) -> tuple[int, dict, str]:
        sql = parse_qs(urlsplit(request.url).query)["query"][0].split()
        start = int(sql[sql.index("STARTPOSITION") + 1])
        size = int(sql[sql.index("MAXRESULTS") + 1])
        page = rows[start - 1:start - 1 + size]
        response: dict[str, Any] = {"startPosition": start, "maxResults": len(page)}
        if page:
            response["Customer"] = page
        return 200, {}, json.dumps({"QueryResponse": response, "time": "2025-01-01T00:00:00Z"})

    return answer


def test_query_all_pages_with_startposition(client: QboClient, mocked: responses.RequestsMock) -> None:
    rows = [{"Id": str(i)} for i in range(1, 6)]
    mocked.add_callback(responses.GET, f"{COMPANY}/query", callback=query_server(rows))

    got = list(client.query_all("Customer", "Active IN (true, false)", page_size=2))

    assert got == rows
    sent = [params(call)["query"][0] for call in mocked.calls]
    assert sent == [
        "SELECT * FROM Customer WHERE Active IN (true, false) ORDERBY Id STARTPOSITION 1 MAXRESULTS 2",
        "SELECT * FROM Customer WHERE Active IN (true, false) ORDERBY Id STARTPOSITION 3 MAXRESULTS 2",
        "SELECT * FROM Customer WHERE Active IN (true, false) ORDERBY Id STARTPOSITION 5 MAXRESULTS 2",
    ]


def test_query_all_stops_on_an_empty_full_page_boundary(client: QboClient, mocked: responses.RequestsMock) -> None:
    mocked.add_callback(responses.GET, f"{COMPANY}/query", callback=query_server([{"Id": "1"}, {"Id": "2"}]))

    assert [r["Id"] for r in client.query_all("Customer", page_size=2)] == ["1", "2"]
    assert len(mocked.calls) == 2


def test_query_all_is_lazy(client: QboClient) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_callback(responses.GET, f"{COMPANY}/query",
                          callback=query_server([{"Id": str(i)} for i in range(10)]))
        rows = client.query_all("Customer", page_size=3)

        assert len(mock.calls) == 0
        assert next(rows) == {"Id": "0"}
        assert len(mock.calls) == 1


def test_query_all_checks_page_size(client: QboClient) -> None:
    with pytest.raises(ValueError, match="page_size"):
        next(client.query_all("Customer", page_size=1001))


@pytest.mark.parametrize(
    ("value", "escaped"),
    [("Adam's Candy Shop", "Adam\\'s Candy Shop"), ("a\\b", "a\\\\b"), ("x\\'y", "x\\\\\\'y"), ("plain", "plain")],
)
def test_escape_for_query_literals(value: str, escaped: str) -> None:
    assert escape(value) == escaped
    assert QboClient.escape(value) == escaped


def test_cdc_sends_entities_and_an_aware_changed_since(client: QboClient, mocked: responses.RequestsMock) -> None:
    mocked.get(f"{COMPANY}/cdc", body=fixture("cdc_response.json"))

    answer = client.cdc(["Customer", "Estimate"], datetime(2015, 12, 23, 10, 0, tzinfo=UTC))

    assert params(mocked.calls[0])["entities"] == ["customer,estimate"]
    assert params(mocked.calls[0])["changedSince"] == ["2015-12-23T10:00:00+00:00"]
    assert answer["CDCResponse"][0]["QueryResponse"][1]["Estimate"][2]["status"] == "Deleted"


def test_cdc_refuses_naive_times(client: QboClient) -> None:
    with pytest.raises(ValueError, match="timezone"):
        client.cdc(["Customer"], datetime(2025, 1, 1))


def test_cdc_all_without_changes(client: QboClient, mocked: responses.RequestsMock) -> None:
    mocked.get(f"{COMPANY}/cdc", body=fixture("cdc_response_no_changes.json"))
    since = datetime(2015, 12, 23, tzinfo=UTC)

    assert list(client.cdc_all(["Customer"], since, since + timedelta(days=1))) == []


def test_cdc_all_yields_the_documented_sample(client: QboClient, mocked: responses.RequestsMock) -> None:
    mocked.get(f"{COMPANY}/cdc", body=fixture("cdc_response.json"))
    since = datetime(2015, 12, 23, tzinfo=UTC)

    got = list(client.cdc_all(["Customer", "Estimate"], since, since + timedelta(days=1)))

    assert [(entity, obj["Id"]) for entity, obj in got] == [
        ("Customer", "63"), ("Customer", "99"), ("Estimate", "34"), ("Estimate", "123"), ("Estimate", "979")]


T0 = datetime(2025, 5, 1, tzinfo=UTC)


def changed(entity: str, index: int, at: datetime, deleted: bool = False) -> dict[str, Any]:
    obj: dict[str, Any] = {"Id": f"{entity[0]}{index}", "MetaData": {"LastUpdatedTime": at.isoformat()}}
    if deleted:
        obj.update(status="Deleted", domain="QBO")
    return obj


class FakeCdc:
    """Intuit's CDC rules: changes since changedSince, by type, by update time, deletions last, 1,000 at most."""

    def __init__(self, data: dict[str, list[dict[str, Any]]], *, strictly_after: bool = False) -> None:
        self.data = data
        self.requests: list[tuple[str, str]] = []
        # Whether changedSince is exclusive at one-second resolution (Intuit does not say; facts.md §6).
        self.strictly_after = strictly_after

    def __call__(self, request: requests.PreparedRequest) -> tuple[int, dict, str]:
        query = parse_qs(urlsplit(request.url).query)
        since = datetime.fromisoformat(query["changedSince"][0])
        self.requests.append((query["entities"][0], query["changedSince"][0]))
        groups, budget = [], CDC_MAX_OBJECTS
        for name in query["entities"][0].split(","):
            entity = next(key for key in self.data if key.lower() == name)
            objects = [o for o in self.data[entity] if self._after(datetime.fromisoformat(
                o["MetaData"]["LastUpdatedTime"]), since)]
            ordered = sorted(objects, key=lambda o: (o.get("status") == "Deleted", o["MetaData"]["LastUpdatedTime"]))
            taken = ordered[:budget]
            budget -= len(taken)
            if taken:
                groups.append({entity: taken, "startPosition": 1, "maxResults": len(taken)})
        answer = {"CDCResponse": [{"QueryResponse": groups or [{}]}], "time": "2025-05-02T00:00:00Z"}
        return 200, {}, json.dumps(answer)

    def _after(self, changed: datetime, since: datetime) -> bool:
        if self.strictly_after:
            return changed.replace(microsecond=0) > since.replace(microsecond=0)
        return changed >= since


def test_cdc_all_splits_entities_then_time_when_the_cap_is_reached(
    client: QboClient, mocked: responses.RequestsMock
) -> None:
    customers = [changed("Customer", i, T0 + timedelta(seconds=2 * i)) for i in range(2500)]
    customers += [changed("Customer", 9000 + i, T0 + timedelta(seconds=4990 + i), deleted=True) for i in range(5)]
    invoices = [changed("Invoice", i, T0 + timedelta(seconds=3 * i)) for i in range(300)]
    fake = FakeCdc({"Customer": customers, "Invoice": invoices})
    mocked.add_callback(responses.GET, f"{COMPANY}/cdc", callback=fake)

    got = list(client.cdc_all(["Customer", "Invoice"], T0, T0 + timedelta(days=1)))

    keys = [(entity, obj["Id"]) for entity, obj in got]
    assert len(keys) == len(set(keys))
    assert sorted(keys) == sorted([("Customer", o["Id"]) for o in customers] + [("Invoice", o["Id"]) for o in invoices])
    assert [entities for entities, _ in fake.requests] == ["customer,invoice", "customer", "customer", "customer",
                                                          "invoice"]


def test_a_split_window_reads_its_boundary_second_again(client: QboClient, mocked: responses.RequestsMock) -> None:
    """QBO stamps changes to the second: when the cap cuts a second in two, the next call must start before it.

    The fake answers only changes strictly after changedSince (to the second), the reading of Intuit's undocumented
    rule under which the client's one-second overlap matters; an inclusive server would hide a missing overlap.
    """
    customers = [changed("Customer", i, T0 + timedelta(seconds=i // 3)) for i in range(1500)]  # 3 per second
    fake = FakeCdc({"Customer": customers}, strictly_after=True)
    mocked.add_callback(responses.GET, f"{COMPANY}/cdc", callback=fake)

    got = [obj["Id"] for _, obj in client.cdc_all(["Customer"], T0 - timedelta(seconds=1), T0 + timedelta(hours=1))]

    assert sorted(got) == sorted(o["Id"] for o in customers) and len(got) == len(set(got))
    assert len(fake.requests) == 2


def test_cdc_all_stops_at_until(client: QboClient, mocked: responses.RequestsMock) -> None:
    customers = [changed("Customer", i, T0 + timedelta(seconds=2 * i)) for i in range(2500)]
    fake = FakeCdc({"Customer": customers})
    mocked.add_callback(responses.GET, f"{COMPANY}/cdc", callback=fake)
    until = T0 + timedelta(seconds=2 * 1200)

    got = [obj["Id"] for _, obj in client.cdc_all(["Customer"], T0, until)]

    assert got == [f"C{i}" for i in range(1201)]
    assert len(fake.requests) == 2


def test_cdc_all_gives_up_when_a_single_second_exceeds_the_cap(
    client: QboClient, mocked: responses.RequestsMock
) -> None:
    mocked.add_callback(responses.GET, f"{COMPANY}/cdc",
                        callback=FakeCdc({"Customer": [changed("Customer", i, T0) for i in range(1200)]}))

    with pytest.raises(CdcWindowTooDenseError):
        list(client.cdc_all(["Customer"], T0, T0 + timedelta(hours=1)))


def test_batch_parses_item_faults_without_raising(client: QboClient, mocked: responses.RequestsMock) -> None:
    mocked.post(f"{COMPANY}/batch", body=fixture("batch_response.json"), headers={"intuit_tid": "batch-1"})
    items = fixture_json("batch_request.json")["BatchItemRequest"]

    results = client.batch(items)

    assert body(mocked.calls[0]) == {"BatchItemRequest": items}
    assert "requestid" in params(mocked.calls[0])
    assert [r.bid for r in results] == ["bid1", "bid2", "bid3", "bid4"]
    assert [type(r.error) for r in results[:3]] == [DuplicateNameError, ObjectNotFoundError, StaleObjectError]
    assert all(r.error.intuit_tid == "batch-1" for r in results[:3])
    assert results[3].ok
    assert results[3].entity == "QueryResponse"
    assert results[3].data["SalesReceipt"][0]["TotalAmt"] == Decimal("337.5")


def batch_echo(request: requests.PreparedRequest) -> tuple[int, dict, str]:
    items = json.loads(request.body)["BatchItemRequest"]
    answer = [{"bId": item["bId"], "Customer": {"Id": item["bId"], "SyncToken": "0"}} for item in items]
    return 200, {}, json.dumps({"BatchItemResponse": answer, "time": "2025-01-01T00:00:00Z"})


def test_batch_splits_into_requests_of_thirty(client: QboClient, mocked: responses.RequestsMock) -> None:
    mocked.add_callback(responses.POST, f"{COMPANY}/batch", callback=batch_echo)
    budget = RecordingBudget()
    client._budget = budget  # type: ignore[assignment]  # the recording stand-in shows the slot costs
    items = [{"operation": "create", "Customer": {"DisplayName": f"N{i}"}} for i in range(65)]

    results = client.batch(items)

    assert [len(body(call)["BatchItemRequest"]) for call in mocked.calls] == [30, 30, 5]
    assert [r.bid for r in results] == [f"b{i}" for i in range(65)]
    assert all(r.ok and r.entity == "Customer" for r in results)
    assert budget.slots == [(REALM, 30), (REALM, 30), (REALM, 5)]
    assert budget.batches == [True, True, True]  # each also takes a place under the batch endpoint's own cap
    assert len({params(call)["requestid"][0] for call in mocked.calls}) == 3


def test_batch_item_left_unanswered_gets_a_transient_error(client: QboClient, mocked: responses.RequestsMock) -> None:
    mocked.post(f"{COMPANY}/batch", json={"BatchItemResponse": [{"bId": "a", "Customer": {"Id": "1"}}]})

    results = client.batch([{"bId": "a", "operation": "create", "Customer": {}},
                            {"bId": "b", "operation": "create", "Customer": {}}])

    assert results[0] == BatchResult("a", "Customer", {"Id": "1"}, None)
    assert isinstance(results[1].error, ServerError)


def test_batch_refuses_long_or_duplicate_ids(client: QboClient) -> None:
    with pytest.raises(ValueError, match="unique"):
        client.batch([{"bId": "x"}, {"bId": "x"}])
    with pytest.raises(ValueError, match="10 characters"):
        client.batch([{"bId": "x" * 11}])


def test_transient_errors_retry_with_the_same_requestid(
    client: QboClient, mocked: responses.RequestsMock, rec: Recorder
) -> None:
    mocked.post(f"{COMPANY}/customer", status=503, body=b"Service Unavailable")
    mocked.post(f"{COMPANY}/customer", status=500, json={"Fault": {"type": "SystemFault", "Error": [
        {"code": "10000", "Message": "An application error has occurred"}]}})
    mocked.post(f"{COMPANY}/customer", body=requests.ConnectionError("reset"))
    mocked.post(f"{COMPANY}/customer", body=fixture("customer_create_response.json"))

    created = client.create("Customer", {"DisplayName": "King's Groceries"})

    assert created["Id"] == "67"
    request_ids = {params(call)["requestid"][0] for call in mocked.calls}
    assert len(mocked.calls) == 4
    assert len(request_ids) == 1
    assert len(rec.sleeps) == 3
    assert [0 <= s <= ceiling for s, ceiling in zip(rec.sleeps, [1, 2, 4], strict=True)] == [True] * 3


def test_each_logical_write_gets_its_own_requestid(client: QboClient, mocked: responses.RequestsMock) -> None:
    mocked.post(f"{COMPANY}/customer", body=fixture("customer_create_response.json"))

    client.create("Customer", {"DisplayName": "A"})
    client.create("Customer", {"DisplayName": "A"})

    assert params(mocked.calls[0])["requestid"] != params(mocked.calls[1])["requestid"]


def test_reads_carry_no_requestid(client: QboClient, mocked: responses.RequestsMock) -> None:
    mocked.get(f"{COMPANY}/customer/2", body=fixture("customer_read.json"))

    client.read("Customer", "2")

    assert "requestid" not in params(mocked.calls[0])


def test_gives_up_after_max_retries(rec: Recorder, mocked: responses.RequestsMock) -> None:
    mocked.get(f"{COMPANY}/customer/2", status=502)
    qbo = QboClient(BASE, REALM, lambda: "t", rec.refresh, None, max_retries=2, sleep=rec.sleep)

    with pytest.raises(ServerError):
        qbo.read("Customer", "2")

    assert len(mocked.calls) == 3
    assert len(rec.sleeps) == 2


def test_network_errors_become_transient_network_errors(rec: Recorder, mocked: responses.RequestsMock) -> None:
    mocked.get(f"{COMPANY}/customer/2", body=requests.Timeout("slow"))
    qbo = QboClient(BASE, REALM, lambda: "t", rec.refresh, None, max_retries=0, sleep=rec.sleep)

    with pytest.raises(NetworkError):
        qbo.read("Customer", "2")


def test_a_call_without_an_answer_in_time_is_sent_again_unless_told_not_to(
        rec: Recorder, mocked: responses.RequestsMock) -> None:
    """A live drain's client (``retry_timeouts=False``) does not wait a second time for a company that did not
    answer within its short timeout; a refused connection is still retried; the slowest wait is noted."""
    mocked.get(f"{COMPANY}/customer/2", body=requests.ReadTimeout("slow"))
    mocked.get(f"{COMPANY}/customer/2", body=fixture("customer_read.json"))
    patient = QboClient(BASE, REALM, lambda: "t", rec.refresh, None, max_retries=1, sleep=rec.sleep)
    assert patient.read("Customer", "2")["Id"] == "2"  # retried
    assert len(mocked.calls) == 2 and patient.answer_times.count == 1 and patient.answer_times.slowest >= 0

    mocked.get(f"{COMPANY}/customer/3", body=requests.ReadTimeout("slow"))
    live = QboClient(BASE, REALM, lambda: "t", rec.refresh, None, max_retries=1, sleep=rec.sleep,
                     timeout=5, retry_timeouts=False)
    with pytest.raises(AnswerTimeoutError, match="within 5 s"):
        live.read("Customer", "3")
    assert len(mocked.calls) == 3 and live.answer_times.count == 0  # sent once

    mocked.get(f"{COMPANY}/customer/4", body=requests.ConnectionError("refused"))
    mocked.get(f"{COMPANY}/customer/4", body=fixture("customer_read.json"))
    assert live.read("Customer", "4")["Id"] == "2"  # not a timeout: retried as before
    assert len(mocked.calls) == 5


def test_throttling_waits_sixty_seconds(client: QboClient, mocked: responses.RequestsMock, rec: Recorder) -> None:
    mocked.get(f"{COMPANY}/customer/2", status=429, body=fixture("fault_throttle_3001_429.xml"))
    mocked.get(f"{COMPANY}/customer/2", body=fixture("customer_read.json"))

    client.read("Customer", "2")

    assert rec.sleeps == [60]


def test_throttling_honours_retry_after(client: QboClient, mocked: responses.RequestsMock, rec: Recorder) -> None:
    mocked.get(f"{COMPANY}/customer/2", status=429, headers={"Retry-After": "5"})
    mocked.get(f"{COMPANY}/customer/2", body=fixture("customer_read.json"))

    client.read("Customer", "2")

    assert rec.sleeps == [5]


def test_throttled_error_reaches_the_caller_with_retry_after(rec: Recorder, mocked: responses.RequestsMock) -> None:
    mocked.get(f"{COMPANY}/customer/2", status=429, body=fixture("fault_throttle_3001_429.xml"))
    qbo = QboClient(BASE, REALM, lambda: "t", rec.refresh, None, max_retries=0, sleep=rec.sleep)

    with pytest.raises(ThrottledError) as caught:
        qbo.read("Customer", "2")

    assert caught.value.retry_after == 60


def test_unauthorized_refreshes_once_then_succeeds(
    client: QboClient, mocked: responses.RequestsMock, rec: Recorder
) -> None:
    mocked.get(f"{COMPANY}/customer/2", status=401, body=fixture("fault_auth_3200_gateway_401.json"))
    mocked.get(f"{COMPANY}/customer/2", body=fixture("customer_read.json"))

    client.read("Customer", "2")

    assert rec.refreshed_with == ["token-0"]
    assert [c.request.headers["Authorization"] for c in mocked.calls] == ["Bearer token-0", "Bearer new-token-1"]
    assert rec.sleeps == []


def test_second_unauthorized_raises_authentication_error(
    client: QboClient, mocked: responses.RequestsMock, rec: Recorder
) -> None:
    mocked.get(f"{COMPANY}/customer/2", status=401, body=fixture("fault_auth_100_xml.xml"))

    with pytest.raises(AuthenticationError):
        client.read("Customer", "2")

    assert rec.refreshed_with == ["token-0"]
    assert len(mocked.calls) == 2


def test_permanent_faults_are_raised_at_once(client: QboClient, mocked: responses.RequestsMock, rec: Recorder) -> None:
    mocked.post(f"{COMPANY}/customer", status=400, body=fixture("fault_duplicate_name_6240.json"),
                headers={"intuit_tid": "dup-1"})

    with pytest.raises(DuplicateNameError) as caught:
        client.create("Customer", {"DisplayName": "Taken"})

    assert caught.value.intuit_tid == "dup-1"
    assert len(mocked.calls) == 1
    assert rec.sleeps == []


def test_a_fault_in_a_200_answer_is_raised(client: QboClient, mocked: responses.RequestsMock) -> None:
    mocked.post(f"{COMPANY}/customer", status=200, body=fixture("fault_stale_object_5010.json"))

    with pytest.raises(StaleObjectError):
        client.sparse_update("Customer", "2", "0", {"MiddleName": "M"})


def test_a_non_json_200_is_a_server_error(rec: Recorder, mocked: responses.RequestsMock) -> None:
    mocked.get(f"{COMPANY}/customer/2", body=b"<html>maintenance</html>")
    qbo = QboClient(BASE, REALM, lambda: "t", rec.refresh, None, max_retries=0, sleep=rec.sleep)

    with pytest.raises(ServerError):
        qbo.read("Customer", "2")


def test_a_number_no_decimal_holds_is_a_server_error(rec: Recorder, mocked: responses.RequestsMock) -> None:
    """decimal.InvalidOperation (an ArithmeticError, not a ValueError) is an unreadable answer, not a crash."""
    mocked.get(f"{COMPANY}/customer/2", body=b'{"Customer": {"Id": "2", "Balance": 10e999999999999999999}}')
    qbo = QboClient(BASE, REALM, lambda: "t", rec.refresh, None, max_retries=0, sleep=rec.sleep)

    with pytest.raises(ServerError):
        qbo.read("Customer", "2")


def test_every_call_takes_a_budget_slot(rec: Recorder, mocked: responses.RequestsMock) -> None:
    mocked.get(f"{COMPANY}/customer/2", status=503)
    mocked.get(f"{COMPANY}/customer/2", body=fixture("customer_read.json"))
    budget = RecordingBudget()
    qbo = QboClient(BASE, REALM, lambda: "t", rec.refresh, budget, sleep=rec.sleep)  # type: ignore[arg-type]

    qbo.read("Customer", "2")

    assert budget.slots == [(REALM, 1), (REALM, 1)]


def test_intuit_tid_of_every_call_is_logged(
    client: QboClient, mocked: responses.RequestsMock, caplog: pytest.LogCaptureFixture
) -> None:
    mocked.get(f"{COMPANY}/customer/2", status=503, headers={"intuit_tid": "tid-A"})
    mocked.get(f"{COMPANY}/customer/2", body=fixture("customer_read.json"), headers={"intuit_tid": "tid-B"})

    with caplog.at_level(logging.INFO, logger="crm_qb.qbo.client"):
        client.read("Customer", "2")

    text = caplog.text
    assert "intuit_tid=tid-A" in text
    assert "intuit_tid=tid-B" in text
    assert "token-0" not in text


def test_decimal_amounts_are_sent_as_exact_numbers() -> None:
    text = dumps({"Line": [{"Amount": Decimal("10.10")}], "Note": "keeps \"quotes\"", "Qty": Decimal("1E+2")})

    assert text == '{"Line": [{"Amount": 10.10}], "Note": "keeps \\"quotes\\"", "Qty": 1E+2}'
    assert json.loads(text, parse_float=Decimal)["Line"][0]["Amount"] == Decimal("10.10")


def test_non_finite_amounts_are_refused() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        dumps({"Amount": Decimal("NaN")})


class FakeTokens:
    """Stands in for TokenManager: a current token per connection, replaced on force_refresh."""

    def __init__(self) -> None:
        self.current = {"conn-1": "token-a"}
        self.forced: list[tuple[str, str]] = []

    def access_token(self, connection_id: str) -> str:
        return self.current[connection_id]

    def force_refresh(self, connection_id: str, stale_access_token: str) -> str:
        self.forced.append((connection_id, stale_access_token))
        self.current[connection_id] = "token-b"
        return "token-b"


def test_client_for_a_connection_takes_its_tokens_from_the_manager(mocked: responses.RequestsMock) -> None:
    mocked.get(f"{COMPANY}/customer/2", status=401, body=fixture("fault_auth_3200_gateway_401.json"))
    mocked.get(f"{COMPANY}/customer/2", body=fixture("customer_read.json"))
    tokens = FakeTokens()

    with QboClient.for_connection("conn-1", REALM, BASE, tokens, None) as qbo:
        qbo.read("Customer", "2")

    assert tokens.forced == [("conn-1", "token-a")]
    assert [c.request.headers["Authorization"] for c in mocked.calls] == ["Bearer token-a", "Bearer token-b"]
