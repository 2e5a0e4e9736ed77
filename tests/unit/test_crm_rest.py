"""RestConnector against canned HTTP answers (responses): retries, Retry-After, typed errors, paging."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
import requests
import responses

from crm_qb.crm.errors import (
    ContactNotFoundError,
    CrmAnswerTimeoutError,
    CrmAuthError,
    CrmPermanentError,
    CrmProtocolError,
    CrmRateLimitedError,
    CrmUnavailableError,
    CrmValidationError,
    TaskNotFoundError,
    VersionConflictError,
)
from crm_qb.crm.protocol import Address, NewTask
from crm_qb.crm.rest import RestConnector, backoff_delay, parse_retry_after
from crm_qb.errors import PermanentError, TransientError

BASE = "https://crm.example.com/api"
TOKEN = "secret-token-123"


def contact_json(contact_id: str = "c1", version: int = 3, **fields: Any) -> dict[str, Any]:
    """A section 6 contact body."""
    return {"id": contact_id, "version": version, "updated_at": "2024-05-01T12:00:00.000001Z",
            "first_name": "Ada", "last_name": "Lovelace", "company": None, "display_name": None,
            "email": "ada@example.com", "phone": None, "mobile": None, "notes": None, "website": None,
            "owner_id": "u1", "billing_address": {"line1": "1 Main St", "line2": None, "city": "Springfield",
                                                  "region": None, "postal_code": None, "country": "US"},
            "shipping_address": {}, "tags": ["vip"], "active": True, "quickbooks": None, **fields}


def task_json(task_id: str = "t1", **fields: Any) -> dict[str, Any]:
    """A section 6 task body."""
    return {"id": task_id, "contact_id": "c1", "title": "Call", "description": None, "due_date": "2024-06-01",
            "status": "open", "owner_id": None, "created_at": "2024-05-01T12:00:00Z", "completed_at": None,
            **fields}


def error_json(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """A section 6 error body."""
    return {"error": {"code": code, "message": message, **({"field": field} if field else {})}}


class Sleeps(list[float]):
    """Records the delays the connector asked for instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    """Intercept requests; every registered answer need not be used."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def sleeps() -> Sleeps:
    """The delays slept."""
    return Sleeps()


@pytest.fixture
def crm(sleeps: Sleeps) -> Iterator[RestConnector]:
    """A connector that does not really sleep."""
    connector = RestConnector(BASE + "/", TOKEN, sleep=sleeps)
    yield connector
    connector.close()


def test_get_contact_sends_the_token_and_returns_a_typed_contact(mocked: responses.RequestsMock,
                                                                 crm: RestConnector) -> None:
    mocked.get(f"{BASE}/contacts/a%2Fb", json=contact_json("a/b"))
    contact = crm.get_contact("a/b")
    assert contact.id == "a/b" and contact.version == 3 and contact.owner_id == "u1"
    assert contact.updated_at == datetime(2024, 5, 1, 12, 0, 0, 1, tzinfo=UTC)
    assert contact.billing_address == Address(line1="1 Main St", city="Springfield", country="US")
    assert contact.shipping_address == Address() and contact.tags == ("vip",) and contact.active is True
    request = mocked.calls[0].request
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in repr(crm)


def test_404_is_contact_not_found_with_the_crm_code_and_not_retried(mocked: responses.RequestsMock,
                                                                    crm: RestConnector, sleeps: Sleeps) -> None:
    mocked.get(f"{BASE}/contacts/c9", status=404, json=error_json("not_found", "no contact with id 'c9'"))
    with pytest.raises(ContactNotFoundError) as caught:
        crm.get_contact("c9")
    assert isinstance(caught.value, PermanentError)
    assert (caught.value.status, caught.value.code) == (404, "not_found")
    assert "no contact with id 'c9'" in str(caught.value)
    assert len(mocked.calls) == 1 and sleeps == []


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failures_are_permanent_with_a_clear_message(mocked: responses.RequestsMock, crm: RestConnector,
                                                          status: int) -> None:
    mocked.get(f"{BASE}/contacts/c1", status=status, json=error_json("unauthorized", "bad token"))
    with pytest.raises(CrmAuthError) as caught:
        crm.get_contact("c1")
    message = str(caught.value)
    assert isinstance(caught.value, PermanentError) and caught.value.code == "unauthorized"
    assert "API token" in message and "bad token" in message and TOKEN not in message
    assert len(mocked.calls) == 1


def test_update_sends_if_match_and_412_is_a_version_conflict(mocked: responses.RequestsMock,
                                                             crm: RestConnector) -> None:
    mocked.patch(f"{BASE}/contacts/c1", json=contact_json(version=4, phone="123"))
    updated = crm.update_contact("c1", 3, {"phone": "123", "billing_address": {"city": "X"}})
    request = mocked.calls[0].request
    assert request.headers["If-Match"] == "3"
    assert json.loads(request.body) == {"phone": "123", "billing_address": {"city": "X"}}
    assert (updated.version, updated.phone) == (4, "123")

    mocked.patch(f"{BASE}/contacts/c2", status=412, json=error_json("version_conflict", "now at version 5"))
    with pytest.raises(VersionConflictError) as caught:
        crm.update_contact("c2", 3, {"phone": "1"})
    assert isinstance(caught.value, TransientError) and caught.value.code == "version_conflict"
    assert len(mocked.calls) == 2, "a conflict is never retried blindly"


def test_5xx_is_retried_with_growing_jittered_backoff(mocked: responses.RequestsMock, crm: RestConnector,
                                                      sleeps: Sleeps) -> None:
    url = f"{BASE}/contacts/c1"
    mocked.get(url, status=503, json=error_json("unavailable", "try later"))
    mocked.get(url, status=502, body="<html>bad gateway</html>")
    mocked.get(url, json=contact_json())
    assert crm.get_contact("c1").id == "c1"
    assert len(mocked.calls) == 3
    assert 0.25 <= sleeps[0] <= 0.5 and 0.5 <= sleeps[1] <= 1.0


def test_retries_stop_after_max_retries(mocked: responses.RequestsMock, sleeps: Sleeps) -> None:
    mocked.get(f"{BASE}/contacts/c1", status=500, json=error_json("boom", "internal"))
    with pytest.raises(CrmUnavailableError) as caught:
        RestConnector(BASE, TOKEN, max_retries=2, sleep=sleeps).get_contact("c1")
    assert isinstance(caught.value, TransientError)
    assert (caught.value.status, caught.value.code, len(mocked.calls), len(sleeps)) == (500, "boom", 3, 2)
    with pytest.raises(CrmUnavailableError):
        RestConnector(BASE, TOKEN, max_retries=0, sleep=sleeps).get_contact("c1")
    assert len(mocked.calls) == 4 and len(sleeps) == 2


def test_429_honours_retry_after(mocked: responses.RequestsMock, crm: RestConnector, sleeps: Sleeps) -> None:
    url = f"{BASE}/contacts/c1"
    mocked.get(url, status=429, headers={"Retry-After": "7"}, json=error_json("rate_limited", "slow down"))
    mocked.get(url, json=contact_json())
    assert crm.get_contact("c1").id == "c1"
    assert sleeps == [7.0]


def test_a_window_full_of_its_own_requests_is_waited_out_before_the_next(mocked: responses.RequestsMock) -> None:
    now = [50.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        now[0] += seconds

    crm = RestConnector(BASE, TOKEN, sleep=sleep, clock=lambda: now[0])
    url = f"{BASE}/contacts/c1"
    for remaining in ("1", "0", "0"):  # HubSpot's names for the same three figures
        mocked.get(url, json=contact_json(), headers={"X-HubSpot-RateLimit-Max": "2",
                                                      "X-HubSpot-RateLimit-Remaining": remaining,
                                                      "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"})
    crm.get_contact("c1")
    now[0] += 1.0
    crm.get_contact("c1")
    assert sleeps == []
    now[0] += 3.0
    crm.get_contact("c1")
    assert sleeps == [pytest.approx(6.02)], "until the first answer (at 50 s) is 10 s old, and a little"


def test_a_long_retry_after_is_raised_for_the_job_to_reschedule(mocked: responses.RequestsMock,
                                                                crm: RestConnector, sleeps: Sleeps) -> None:
    mocked.get(f"{BASE}/contacts/c1", status=429, headers={"Retry-After": "120"})
    with pytest.raises(CrmRateLimitedError) as caught:
        crm.get_contact("c1")
    assert caught.value.retry_after == 120.0 and sleeps == [] and len(mocked.calls) == 1


def test_a_retry_after_counts_as_a_wait_for_the_answer_and_live_work_sleeps_none_past_its_bound(
        mocked: responses.RequestsMock, crm: RestConnector, sleeps: Sleeps) -> None:
    """A CRM's Retry-After is a wait for its answer (pipeline/slowlane.py): counted as the slowest wait whether it is
    slept (the default bound, 30 s) or not (live work's ``max_retry_after``, 5 s: raised at once)."""
    url = f"{BASE}/contacts/c1"
    mocked.get(url, status=429, headers={"Retry-After": "10"})
    mocked.get(url, json=contact_json())
    assert crm.get_contact("c1").id == "c1"
    assert sleeps == [10.0] and crm.answer_times.slowest >= 10.0 and crm.answer_times.count == 2

    live = RestConnector(BASE, TOKEN, sleep=sleeps, max_retry_after=5.0)
    mocked.replace(responses.GET, url, status=429, headers={"Retry-After": "10"})
    with pytest.raises(CrmRateLimitedError) as limited:
        live.get_contact("c1")
    assert limited.value.retry_after == 10.0 and sleeps == [10.0]  # not slept
    assert live.answer_times.slowest == 10.0 and len(mocked.calls) == 3
    mocked.replace(responses.GET, url, status=429, headers={"Retry-After": "1"})
    mocked.add(responses.GET, url, json=contact_json())
    assert live.get_contact("c1").id == "c1" and sleeps == [10.0, 1.0]  # a short one is slept as before


def test_connection_errors_and_timeouts_are_retried_for_reads(mocked: responses.RequestsMock, crm: RestConnector,
                                                              sleeps: Sleeps) -> None:
    url = f"{BASE}/contacts/c1/tasks"
    mocked.get(url, body=requests.ConnectionError("reset"))
    mocked.get(url, body=requests.ReadTimeout("slow"))
    mocked.get(url, json={"tasks": [task_json()]})
    tasks = crm.list_tasks("c1")
    assert [t.id for t in tasks] == ["t1"] and tasks[0].due_date == date(2024, 6, 1)
    assert len(sleeps) == 2


def test_a_live_connector_does_not_wait_twice_for_a_crm_that_did_not_answer(mocked: responses.RequestsMock,
                                                                             sleeps: Sleeps) -> None:
    """Live work's connector (``retry_timeouts=False``, pipeline/slowlane.py) sends a call that timed out once; a
    refused connection is still retried; the connector counts its answers and its slowest wait."""
    url = f"{BASE}/contacts/c1/tasks"
    live = RestConnector(BASE, TOKEN, sleep=sleeps, timeout=(3.05, 5), retry_timeouts=False)
    mocked.get(url, body=requests.ReadTimeout("slow"))
    with pytest.raises(CrmAnswerTimeoutError, match="ReadTimeout"):  # sent, no answer: slow, not necessarily down
        live.list_tasks("c1")
    assert len(mocked.calls) == 1 and not sleeps and live.answer_times.count == 0
    assert live.answer_times.slowest > 0  # a wait that got no answer counts toward the slowest

    mocked.replace(responses.GET, url, body=requests.ConnectionError("refused"))
    mocked.add(responses.GET, url, json={"tasks": [task_json()]})
    assert [t.id for t in live.list_tasks("c1")] == ["t1"]
    assert len(mocked.calls) == 3 and len(sleeps) == 1 and live.answer_times.count == 1


def test_post_is_retried_only_when_the_crm_cannot_have_acted(mocked: responses.RequestsMock, crm: RestConnector,
                                                             sleeps: Sleeps) -> None:
    url = f"{BASE}/contacts"
    mocked.post(url, body=requests.ConnectTimeout("no connection"))
    mocked.post(url, status=503)
    mocked.post(url, status=429, headers={"Retry-After": "1"})
    mocked.post(url, status=201, json=contact_json())
    assert crm.create_contact({"first_name": "Ada"}).id == "c1"
    assert len(mocked.calls) == 4 and len(sleeps) == 3

    mocked.replace(responses.POST, url, body=requests.ReadTimeout("sent, no answer"))
    with pytest.raises(CrmAnswerTimeoutError):
        crm.create_contact({"first_name": "Ada"})
    mocked.replace(responses.POST, url, status=500)
    with pytest.raises(CrmUnavailableError) as failed:
        crm.create_contact({"first_name": "Ada"})
    assert not isinstance(failed.value, CrmAnswerTimeoutError)  # an answer came: a 5xx
    assert len(mocked.calls) == 6 and len(sleeps) == 3, "a POST that may have been applied is not repeated"


def test_400_carries_the_field_and_other_4xx_are_permanent(mocked: responses.RequestsMock,
                                                           crm: RestConnector) -> None:
    mocked.post(f"{BASE}/contacts", status=400, json=error_json("invalid_field", "email: not an email", "email"))
    with pytest.raises(CrmValidationError) as caught:
        crm.create_contact({"email": "x"})
    assert (caught.value.field, caught.value.code, caught.value.status) == ("email", "invalid_field", 400)
    mocked.patch(f"{BASE}/contacts/c1", status=428, json=error_json("precondition_required", "If-Match"))
    with pytest.raises(CrmPermanentError) as other:
        crm.update_contact("c1", 1, {})
    assert other.value.status == 428 and len(mocked.calls) == 2


def test_answers_outside_the_contract_are_protocol_errors(mocked: responses.RequestsMock,
                                                          crm: RestConnector) -> None:
    mocked.get(f"{BASE}/contacts/c1", body="<html>login</html>", status=200)
    mocked.get(f"{BASE}/contacts/c2", json={"id": "c2"})
    mocked.get(f"{BASE}/contacts/c3", json=contact_json("c3", updated_at="2024-05-01T12:00:00"))
    mocked.get(f"{BASE}/contacts", json={"items": []})
    for contact_id in ("c1", "c2", "c3"):
        with pytest.raises(CrmProtocolError):
            crm.get_contact(contact_id)
    with pytest.raises(CrmProtocolError):
        crm.find_contacts_by_email("a@example.com")


def test_paging_is_lazy_and_follows_the_cursor(mocked: responses.RequestsMock, crm: RestConnector) -> None:
    url = f"{BASE}/contacts"
    mocked.get(url, json={"contacts": [contact_json("c1"), contact_json("c2")], "next_cursor": "k1"})
    mocked.get(url, json={"contacts": [contact_json("c3")], "next_cursor": "k2"})
    mocked.get(url, json={"contacts": [], "next_cursor": None})
    since = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    pages = crm.list_contacts_updated_since(since, page_size=2)
    assert len(mocked.calls) == 0
    first = next(pages)
    assert [c.id for c in first.contacts] == ["c1", "c2"] and first.next_cursor == "k1"
    assert len(mocked.calls) == 1
    rest = list(pages)
    assert [[c.id for c in page.contacts] for page in rest] == [["c3"], []]
    params = [mocked.calls[n].request.params for n in range(3)]
    assert params[0] == {"limit": "2", "updated_since": "2024-05-01T12:00:00Z"}
    assert [p.get("cursor") for p in params] == [None, "k1", "k2"]


def test_paging_resumes_from_a_saved_cursor_and_refuses_a_stuck_one(mocked: responses.RequestsMock,
                                                                    crm: RestConnector) -> None:
    mocked.get(f"{BASE}/contacts", json={"contacts": [contact_json()], "next_cursor": "same"})
    pages = crm.list_contacts_updated_since(None, cursor="same")
    with pytest.raises(CrmProtocolError):
        list(pages)
    assert mocked.calls[0].request.params == {"limit": "100", "cursor": "same"}
    with pytest.raises(ValueError, match="timezone-aware"):
        crm.list_contacts_updated_since(datetime(2024, 1, 1))


def test_find_by_email_collects_every_page(mocked: responses.RequestsMock, crm: RestConnector) -> None:
    url = f"{BASE}/contacts"
    mocked.get(url, json={"contacts": [contact_json("c1")], "next_cursor": "k"})
    mocked.get(url, json={"contacts": [contact_json("c2")], "next_cursor": None})
    assert [c.id for c in crm.find_contacts_by_email("Ada@Example.com")] == ["c1", "c2"]
    assert mocked.calls[0].request.params["email"] == "Ada@Example.com"


def test_tasks_and_quickbooks_summary(mocked: responses.RequestsMock, crm: RestConnector) -> None:
    mocked.post(f"{BASE}/contacts/c1/tasks", status=201, json=task_json())
    mocked.patch(f"{BASE}/tasks/t1", json=task_json(status="done", completed_at="2024-06-02T08:00:00+00:00"))
    mocked.patch(f"{BASE}/tasks/gone", status=404, json=error_json("not_found", "no task"))
    mocked.put(f"{BASE}/contacts/c1/quickbooks", json=contact_json())
    created = crm.create_task("c1", NewTask("Call", "Invoice 1001 overdue", date(2024, 6, 1), "u1"))
    assert json.loads(mocked.calls[0].request.body) == {"title": "Call", "description": "Invoice 1001 overdue",
                                                        "due_date": "2024-06-01", "owner_id": "u1"}
    assert created.status == "open" and created.created_at == datetime(2024, 5, 1, 12, tzinfo=UTC)
    done = crm.update_task("t1", {"status": "done", "due_date": date(2024, 7, 1)})
    assert json.loads(mocked.calls[1].request.body) == {"status": "done", "due_date": "2024-07-01"}
    assert done.completed_at == datetime(2024, 6, 2, 8, tzinfo=UTC)
    with pytest.raises(TaskNotFoundError):
        crm.update_task("gone", {"status": "done"})
    assert crm.put_quickbooks_summary("c1", {"open_balance": "10.00"}) is None
    assert json.loads(mocked.calls[3].request.body) == {"open_balance": "10.00"}


def test_parse_retry_after_and_backoff_bounds() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert parse_retry_after("12", now) == 12.0
    assert parse_retry_after("Wed, 01 May 2024 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None
    for attempt, ceiling in [(0, 0.5), (1, 1.0), (3, 4.0), (9, 8.0)]:
        assert ceiling / 2 <= backoff_delay(attempt) <= ceiling


def test_max_retries_must_be_non_negative() -> None:
    with pytest.raises(ValueError, match="max_retries"):
        RestConnector(BASE, TOKEN, max_retries=-1)


def test_a_refused_connection_is_retried_even_for_post(sleeps: Sleeps) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    session = requests.Session()
    session.trust_env = False
    crm = RestConnector(f"http://127.0.0.1:{port}", TOKEN, session=session, max_retries=2, sleep=sleeps)
    with pytest.raises(CrmUnavailableError) as caught:
        crm.create_contact({"first_name": "Ada"})
    crm.close()
    assert isinstance(caught.value.__cause__, requests.ConnectionError) and len(sleeps) == 2


# -- batch creates (DESIGN.md §6, optional POST /contacts/batch) -------------------------------------------------


def test_contacts_are_created_a_hundred_per_batch_with_results_in_order(mocked: responses.RequestsMock,
                                                                         crm: RestConnector) -> None:
    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        creates = json.loads(request.body)["create"]
        results = [{"index": i, "status": 201, "contact": contact_json(f"c{body['email']}")}
                   for i, body in enumerate(creates)]
        return 200, {}, json.dumps({"results": list(reversed(results))})  # any order: index decides

    mocked.add_callback(responses.POST, f"{BASE}/contacts/batch", callback=answer)
    made = crm.create_contacts([{"email": str(n)} for n in range(150)])
    assert [c.id for c in made] == [f"c{n}" for n in range(150)]  # type: ignore[union-attr]
    assert [len(json.loads(call.request.body)["create"]) for call in mocked.calls] == [100, 50]


def test_an_item_the_crm_refuses_fails_alone(mocked: responses.RequestsMock, crm: RestConnector) -> None:
    mocked.add(responses.POST, f"{BASE}/contacts/batch", json={"results": [
        {"index": 0, "status": 201, "contact": contact_json("c1")},
        {"index": 1, "status": 400, "error": {"code": "invalid", "message": "too long", "field": "display_name"}}]})
    made, refused = crm.create_contacts([{"email": "a@x.test"}, {"display_name": "x" * 300}])
    assert not isinstance(made, Exception) and made.id == "c1"
    assert isinstance(refused, CrmValidationError) and refused.field == "display_name" and refused.status == 400


@pytest.mark.parametrize("status", [404, 405])
def test_a_crm_without_the_batch_endpoint_gets_single_creates_from_then_on(mocked: responses.RequestsMock,
                                                                          crm: RestConnector, status: int) -> None:
    mocked.add(responses.POST, f"{BASE}/contacts/batch", status=status, json={"error": {"message": "no"}})
    mocked.add(responses.POST, f"{BASE}/contacts", json=contact_json("c1"))
    mocked.add(responses.POST, f"{BASE}/contacts", status=400, json={"error": {"message": "bad", "field": "email"}})
    first, second = crm.create_contacts([{"email": "a"}, {"email": "b"}])
    assert not isinstance(first, Exception) and isinstance(second, CrmValidationError)
    mocked.add(responses.POST, f"{BASE}/contacts", json=contact_json("c3"))
    crm.create_contacts([{"email": "c"}])
    batch_calls = [call for call in mocked.calls if call.request.url.endswith("/contacts/batch")]
    assert len(batch_calls) == 1  # remembered: never asked again


def test_a_batch_answer_that_does_not_index_every_item_is_a_protocol_error(mocked: responses.RequestsMock,
                                                                           crm: RestConnector) -> None:
    mocked.add(responses.POST, f"{BASE}/contacts/batch", json={"results": [
        {"index": 0, "status": 201, "contact": contact_json("c1")}, {"index": 0, "status": 201,
                                                                     "contact": contact_json("c2")}]})
    with pytest.raises(CrmProtocolError):
        crm.create_contacts([{"email": "a"}, {"email": "b"}])


def test_an_auth_failure_of_the_batch_raises(mocked: responses.RequestsMock, crm: RestConnector) -> None:
    mocked.add(responses.POST, f"{BASE}/contacts/batch", status=401, json={"error": {"message": "bad token"}})
    with pytest.raises(CrmAuthError):
        crm.create_contacts([{"email": "a"}])


# -- batch task creates (our extension: optional POST /tasks/batch, crm_qb/sandbox/crm/API.md) ---------------------


def _new_tasks(count: int) -> list[tuple[str, NewTask]]:
    return [(f"c{n % 7}", NewTask(title=f"T{n}", description=f"d\n[m{n}]", due_date=date(2026, 12, 4),
                                  owner_id="u1")) for n in range(count)]


def test_tasks_are_created_a_hundred_per_batch_with_results_in_order(mocked: responses.RequestsMock,
                                                                      crm: RestConnector) -> None:
    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        creates = json.loads(request.body)["create"]
        results = [{"index": i, "status": 201, "task": task_json(f"t-{item['title']}", contact_id=item["contact_id"])}
                   for i, item in enumerate(creates)]
        return 200, {}, json.dumps({"results": list(reversed(results))})  # any order: index decides

    mocked.add_callback(responses.POST, f"{BASE}/tasks/batch", callback=answer)
    made = crm.create_tasks(_new_tasks(130))
    assert [t.id for t in made] == [f"t-T{n}" for n in range(130)]  # type: ignore[union-attr]
    bodies = [json.loads(call.request.body)["create"] for call in mocked.calls]
    assert [len(body) for body in bodies] == [100, 30]
    assert bodies[0][8] == {"contact_id": "c1", "title": "T8", "description": "d\n[m8]", "due_date": "2026-12-04",
                            "owner_id": "u1"}


def test_a_task_the_crm_refuses_fails_alone_and_a_gone_contact_says_so(mocked: responses.RequestsMock,
                                                                       crm: RestConnector) -> None:
    mocked.add(responses.POST, f"{BASE}/tasks/batch", json={"results": [
        {"index": 0, "status": 201, "task": task_json("t1")},
        {"index": 1, "status": 404, "error": {"code": "not_found", "message": "no contact c1"}},
        {"index": 2, "status": 400, "error": {"code": "invalid_field", "message": "too long", "field": "title"}}]})
    made, gone, refused = crm.create_tasks(_new_tasks(3))
    assert not isinstance(made, Exception) and made.id == "t1"
    assert isinstance(gone, ContactNotFoundError) and gone.status == 404
    assert isinstance(refused, CrmValidationError) and refused.field == "title"


@pytest.mark.parametrize("status", [404, 405])
def test_a_crm_without_the_task_batch_gets_single_creates_from_then_on(mocked: responses.RequestsMock,
                                                                       crm: RestConnector, status: int) -> None:
    mocked.add(responses.POST, f"{BASE}/tasks/batch", status=status, json={"error": {"message": "no"}})
    mocked.add(responses.POST, f"{BASE}/contacts/c0/tasks", json=task_json("t0"))
    mocked.add(responses.POST, f"{BASE}/contacts/c1/tasks", status=404, json={"error": {"message": "gone"}})
    first, second = crm.create_tasks(_new_tasks(2))
    assert not isinstance(first, Exception) and first.id == "t0" and isinstance(second, ContactNotFoundError)
    mocked.add(responses.POST, f"{BASE}/contacts/c0/tasks", json=task_json("t2"))
    assert [t.id for t in crm.create_tasks(_new_tasks(1))] == ["t2"]  # type: ignore[union-attr]
    assert len([call for call in mocked.calls if call.request.url.endswith("/tasks/batch")]) == 1  # remembered


def test_a_task_batch_that_fails_as_a_whole_raises(mocked: responses.RequestsMock, crm: RestConnector) -> None:
    mocked.add(responses.POST, f"{BASE}/tasks/batch", status=401, json={"error": {"message": "bad token"}})
    with pytest.raises(CrmAuthError):
        crm.create_tasks(_new_tasks(1))
    mocked.add(responses.POST, f"{BASE}/tasks/batch", json={"results": []})
    with pytest.raises(CrmProtocolError):
        crm.create_tasks(_new_tasks(1))


def test_tasks_are_read_by_id_a_hundred_per_call(mocked: responses.RequestsMock, crm: RestConnector) -> None:
    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        ids = json.loads(request.body)["ids"]
        return 200, {}, json.dumps({"tasks": [task_json(i) for i in ids if i != "t7"]})

    mocked.add_callback(responses.POST, f"{BASE}/tasks/batch/read", callback=answer)
    found = crm.read_tasks([f"t{n}" for n in range(130)])
    assert found is not None and [t.id for t in found] == [f"t{n}" for n in range(130) if n != 7]
    assert [len(json.loads(call.request.body)["ids"]) for call in mocked.calls] == [100, 30]


@pytest.mark.parametrize("status", [404, 405])
def test_a_crm_that_cannot_read_tasks_by_id_says_so_once(mocked: responses.RequestsMock, crm: RestConnector,
                                                         status: int) -> None:
    mocked.add(responses.POST, f"{BASE}/tasks/batch/read", status=status, json={"error": {"message": "no"}})
    assert crm.read_tasks(["t1"]) is None
    assert crm.read_tasks(["t2"]) is None
    assert len(mocked.calls) == 1  # remembered: never asked again
    mocked.add(responses.POST, f"{BASE}/tasks/batch/read", status=400, json={"error": {"message": "bad"}})
    fresh = RestConnector(BASE, TOKEN, max_retries=0)
    with pytest.raises(CrmValidationError):
        fresh.read_tasks(["t3"])  # any other refusal is the CRM's answer, raised
    fresh.close()
