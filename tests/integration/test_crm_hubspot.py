"""The HubSpot connector against the local HubSpot (a real server on 127.0.0.1) and a real Redis.

Each test runs the connector's calls as the sync makes them and checks what HubSpot then holds, through
HubSpot's own API (not through the connector), so a mapping mistake on both paths cannot cancel out.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import requests
from redis import Redis

from crm_qb.address import Address
from crm_qb.crm.errors import (
    ActivityNotFoundError,
    ContactNotFoundError,
    CrmAnswerTimeoutError,
    CrmAuthError,
    CrmDuplicateError,
    CrmRateLimitedError,
    CrmUnavailableError,
    CrmUnrepresentableError,
    CrmValidationError,
    TaskNotFoundError,
    VersionConflictError,
)
from crm_qb.crm.hubspot.api import HubSpotApi, StaticToken
from crm_qb.crm.hubspot.config import HubSpotConfig
from crm_qb.crm.hubspot.connector import HubSpotConnector
from crm_qb.crm.hubspot.limits import HubSpotLimiter
from crm_qb.crm.protocol import NewTask
from crm_qb.keys import RedisKeys
from crm_qb.sandbox.hubspot.server import RunningServer, start_server
from crm_qb.sandbox.hubspot.state import SandboxConfig

TOKEN = "pat-na1-connector-test"


@pytest.fixture
def hubspot() -> Iterator[RunningServer]:
    """A local HubSpot with a fixed private-app token."""
    running = start_server("127.0.0.1", 0, SandboxConfig(token=TOKEN, client_secret="s3cret"))
    yield running
    running.stop()


def connector(server: RunningServer, redis: Redis | None = None, config: HubSpotConfig | None = None,
              **options: object) -> HubSpotConnector:
    """A connector for the sandbox's portal (paced through ``redis`` when given)."""
    limiter = (HubSpotLimiter(redis, RedisKeys("test"), str(server.sandbox.portal_id), config or HubSpotConfig())
               if redis is not None else None)
    return HubSpotConnector(HubSpotApi(server.url, StaticToken(TOKEN), limiter, sleep=lambda _: None,
                                       **options))  # type: ignore[arg-type]


def hs_get(server: RunningServer, path: str, **params: str) -> dict:  # type: ignore[type-arg]
    """GET from HubSpot's API directly."""
    response = requests.get(server.url + path, params=params, headers={"Authorization": f"Bearer {TOKEN}"},
                            timeout=10)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def control(server: RunningServer, method: str, path: str, **body: object) -> dict:  # type: ignore[type-arg]
    """Call the sandbox's control API."""
    response = requests.request(method, f"{server.url}/_sandbox{path}", json=body or None, timeout=10)
    assert response.ok, response.text
    return response.json() if response.content else {}  # type: ignore[no-any-return]


def test_create_maps_every_field_and_reads_back_as_written(hubspot: RunningServer) -> None:
    crm = connector(hubspot)
    created = crm.ensure_properties()
    assert "qb_notes" in created and {"calls.qb_billable", "meetings.qb_hourly_rate"} <= set(created)
    assert crm.ensure_properties() == []  # a second connect creates nothing
    contact = crm.create_contact({
        "first_name": "Ada", "last_name": "Lovelace", "company": "Analytical Ltd", "display_name": "ignored",
        "email": "ada@example.com", "phone": "555-1", "mobile": "555-2", "notes": "likes engines",
        "website": "https://ada.example", "tags": ["vip"],
        "billing_address": {"line1": "1 Main St", "line2": "Suite 2", "city": "London", "region": "LDN",
                            "postal_code": "01234", "country": "UK"},
        "shipping_address": {"line1": "Dock 4", "city": "Bristol", "postal_code": "BS1"},
    })
    props = hs_get(hubspot, f"/crm/v3/objects/contacts/{contact.id}",
                   properties="firstname,mobilephone,qb_notes,address,qb_address_line2,zip,state,"
                              "qb_shipping_address")["properties"]
    assert props["firstname"] == "Ada" and props["mobilephone"] == "555-2" and props["qb_notes"] == "likes engines"
    assert (props["address"], props["qb_address_line2"], props["state"], props["zip"]) == (
        "1 Main St", "Suite 2", "LDN", "01234")
    again = crm.get_contact(contact.id)
    assert again == contact
    assert again.display_name is None and again.tags == ()
    assert again.shipping_address == Address(line1="Dock 4", city="Bristol", postal_code="BS1")
    assert again.billing_address.line2 == "Suite 2"
    crm.close()


def test_update_checks_the_version_and_clears_with_none(hubspot: RunningServer) -> None:
    crm = connector(hubspot)
    crm.ensure_properties()
    contact = crm.create_contact({"email": "b@example.com", "first_name": "Bo", "notes": "n"})
    hubspot.sandbox.clock.advance(2)  # a later stamp than the create's
    updated = crm.update_contact(contact.id, contact.version, {"first_name": "Bob", "notes": None,
                                                               "display_name": "x"})
    assert (updated.first_name, updated.notes) == ("Bob", None)
    assert updated.version > contact.version
    with pytest.raises(VersionConflictError):
        crm.update_contact(contact.id, contact.version, {"first_name": "Stale"})
    assert crm.update_contact(contact.id, updated.version, {"tags": ["x"]}) == updated  # nothing to write
    with pytest.raises(ContactNotFoundError):
        crm.update_contact("999999", 1, {"first_name": "x"})


def test_find_by_email_is_exact_and_case_insensitive(hubspot: RunningServer) -> None:
    crm = connector(hubspot)
    contact = crm.create_contact({"email": "Case@Example.com", "last_name": "Case"})
    assert [c.id for c in crm.find_contacts_by_email("case@example.COM")] == [contact.id]
    assert crm.find_contacts_by_email("nobody@example.com") == []
    assert crm.find_contacts_by_email("  ") == []


def test_a_duplicate_email_answers_the_existing_contact(hubspot: RunningServer) -> None:
    crm = connector(hubspot)
    first = crm.create_contact({"email": "dup@example.com", "first_name": "One"})
    assert crm.create_contact({"email": "DUP@example.com", "first_name": "Two"}).id == first.id


def test_a_company_only_record_is_refused_with_a_reason(hubspot: RunningServer) -> None:
    with pytest.raises(CrmUnrepresentableError, match="a company name alone"):
        connector(hubspot).create_contact({"company": "Just A Company"})


def test_walks_list_everything_and_search_by_lastmodifieddate(hubspot: RunningServer) -> None:
    crm = connector(hubspot)
    control(hubspot, "POST", "/seed", contacts=250, seed=3)
    pages = list(crm.list_contacts_updated_since(None, page_size=100))
    assert [len(p.contacts) for p in pages] == [100, 100, 50] and pages[-1].next_cursor is None
    hubspot.sandbox.clock.advance(60)
    since = datetime.now(UTC) + timedelta(seconds=30)
    changed = [crm.create_contact({"email": f"late{i}@example.com", "first_name": "Late"}) for i in range(3)]
    found = [c.id for p in crm.list_contacts_updated_since(since, page_size=2) for c in p.contacts]
    assert found == [c.id for c in changed]
    cursor = next(iter(crm.list_contacts_updated_since(since, page_size=2))).next_cursor
    assert cursor is not None
    resumed = [c.id for p in crm.list_contacts_updated_since(since, cursor=cursor, page_size=2) for c in p.contacts]
    assert resumed == [changed[2].id]


def test_batches_read_create_and_update_a_hundred_per_call(hubspot: RunningServer) -> None:
    crm = connector(hubspot)
    control(hubspot, "DELETE", "/requests")
    created = crm.create_contacts([{"email": f"b{i}@example.com", "first_name": f"B{i}"} for i in range(150)])
    assert len(created) == 150
    updated = crm.update_contacts({c.id: {"last_name": "Batch"} for c in created})
    assert {c.last_name for c in updated} == {"Batch"}
    read = crm.read_contacts([c.id for c in created] + ["424242"])
    assert len(read) == 150
    counts = control(hubspot, "GET", "/requests")
    assert counts["total"] == 6, counts  # two calls each for 150 creates, updates and reads


def test_a_contact_batch_matches_each_result_to_its_record_and_a_duplicate_fails_alone(
        hubspot: RunningServer) -> None:
    """A backfill links each created contact to the customer it was made for by place: HubSpot's answer order is
    not the inputs' (facts §3), so results are matched by trace id; a taken e-mail fails alone, naming the owner."""
    crm = connector(hubspot)
    taken = crm.create_contact({"email": "taken@example.com", "first_name": "Taken"})
    made = crm.create_contacts([{"email": f"m{i}@example.com", "first_name": f"M{i}"} for i in range(3)]
                               + [{"email": "TAKEN@example.com", "first_name": "Again"}])
    assert [getattr(c, "email", None) for c in made[:3]] == [f"m{i}@example.com" for i in range(3)]
    assert isinstance(made[3], CrmDuplicateError) and made[3].existing_id == taken.id
    assert len(hs_get(hubspot, "/crm/v3/objects/contacts", limit="100")["results"]) == 4


def test_tasks_are_associated_with_the_contact_and_complete(hubspot: RunningServer) -> None:
    crm = connector(hubspot)
    contact = crm.create_contact({"email": "t@example.com", "first_name": "T"})
    task = crm.create_task(contact.id, NewTask("Invoice 1001 is 14 days overdue", "Balance 10.00 USD",
                                               date(2026, 12, 1), "1001"))
    assert (task.status, task.due_date, task.owner_id, task.contact_id) == ("open", date(2026, 12, 1), "1001",
                                                                            contact.id)
    assert [t.id for t in crm.list_tasks(contact.id)] == [task.id]
    done = crm.update_task(task.id, {"status": "done"})
    assert done.status == "done"
    props = hs_get(hubspot, f"/crm/v3/objects/tasks/{task.id}", properties="hs_task_status")["properties"]
    assert props["hs_task_status"] == "COMPLETED"
    with pytest.raises(TaskNotFoundError):
        crm.update_task("987654", {"status": "done"})


def test_tasks_are_created_a_hundred_per_call_each_with_its_contact_and_a_refusal_alone(
        hubspot: RunningServer) -> None:
    crm = connector(hubspot)
    contacts = crm.create_contacts([{"email": f"k{i}@example.com", "first_name": f"K{i}"} for i in range(3)])
    ids = [c.id for c in contacts]  # type: ignore[union-attr]
    wanted = [(ids[n % 3], NewTask(f"Invoice {n} is overdue", f"Balance\n[m{n}]", date(2026, 12, 4), "1001"))
              for n in range(120)]
    wanted[7] = ("424242", NewTask("No such contact", "x\n[m7]"))
    control(hubspot, "DELETE", "/requests")
    made = crm.create_tasks(wanted)
    assert control(hubspot, "GET", "/requests")["total"] == 2  # 100 + 20
    assert isinstance(made[7], CrmValidationError), made[7]
    good = [(n, task) for n, task in enumerate(made) if n != 7]
    assert all(not isinstance(task, Exception) for _, task in good)
    for n, task in good:
        assert not isinstance(task, Exception)
        assert (task.title, task.contact_id, task.description) == (f"Invoice {n} is overdue", ids[n % 3],
                                                                    f"Balance\n[m{n}]")
    listed = {contact_id: sorted(t.id for t in crm.list_tasks(contact_id)) for contact_id in ids}
    for n, task in good:
        assert not isinstance(task, Exception) and task.id in listed[ids[n % 3]], "associated with its contact"
    assert sum(len(found) for found in listed.values()) == 119


def test_tasks_are_read_by_id_and_an_archived_one_is_left_out(hubspot: RunningServer) -> None:
    crm = connector(hubspot)
    contact = crm.create_contact({"email": "r@example.com", "first_name": "R"})
    made = crm.create_tasks([(contact.id, NewTask(f"T{n}", f"body {n}")) for n in range(3)])
    ids = [task.id for task in made if not isinstance(task, Exception)]
    gone = requests.delete(f"{hubspot.url}/crm/v3/objects/tasks/{ids[1]}",
                           headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert gone.status_code == 204
    control(hubspot, "DELETE", "/requests")
    found = crm.read_tasks([*ids, "987654"])
    assert sorted(t.id for t in found) == sorted([ids[0], ids[2]])
    assert {t.status for t in found} == {"open"}
    assert control(hubspot, "GET", "/requests")["total"] == 1


def test_the_summary_goes_to_the_quickbooks_group_created_on_demand(hubspot: RunningServer) -> None:
    crm = connector(hubspot)
    contact = crm.create_contact({"email": "s@example.com", "first_name": "S"})
    crm.put_quickbooks_summary(contact.id, {
        "currency": "USD", "qbo_balance": "120.50", "open_balance": {"home": "120.50"},
        "overdue_balance": {"home": "20.00"}, "terms": "Net 30", "customer_url": "https://qbo/c?nameId=5",
        "last_payment": {"date": "2026-11-30", "amount": "10.00"}, "updated_at": "2026-12-01T10:00:00+00:00"})
    props = hs_get(hubspot, f"/crm/v3/objects/contacts/{contact.id}",
                   properties="qb_balance,qb_overdue_balance,qb_payment_terms,qb_last_payment_date")["properties"]
    assert (Decimal(props["qb_balance"]), Decimal(props["qb_overdue_balance"])) == (Decimal("120.50"), 20)
    assert props["qb_payment_terms"] == "Net 30"
    assert props["qb_last_payment_date"].startswith("2026-11-30")
    groups = [g["name"] for g in hs_get(hubspot, "/crm/v3/properties/contacts/groups")["results"]]
    assert "quickbooks" in groups


def test_a_company_name_is_associated_with_one_hubspot_company(hubspot: RunningServer) -> None:
    crm = connector(hubspot)
    first = crm.create_contact({"email": "c1@example.com", "first_name": "C", "company": "Acme"})
    second = crm.create_contact({"email": "c2@example.com", "first_name": "D", "company": "ACME "})
    firsts = hs_get(hubspot, f"/crm/v4/objects/contacts/{first.id}/associations/companies")["results"]
    seconds = hs_get(hubspot, f"/crm/v4/objects/contacts/{second.id}/associations/companies")["results"]
    assert len(firsts) == 1 and [r["toObjectId"] for r in seconds] == [firsts[0]["toObjectId"]]


def test_merge_and_archive_as_hubspot_does_them(hubspot: RunningServer) -> None:
    crm = connector(hubspot)
    a = crm.create_contact({"email": "m1@example.com", "first_name": "A"})
    b = crm.create_contact({"email": "m2@example.com", "first_name": "B"})
    merged = control(hubspot, "POST", "/objects/contacts/merge", primaryObjectId=a.id, objectIdToMerge=b.id)
    assert crm.get_contact(a.id).id == merged["id"] != a.id
    control(hubspot, "DELETE", f"/objects/contacts/{merged['id']}")
    with pytest.raises(ContactNotFoundError):
        crm.get_contact(merged["id"])


def test_users_are_the_portals_owners(hubspot: RunningServer) -> None:
    users = connector(hubspot).list_users()
    assert {u.email for u in users} >= {"jsmith@example.com", "ada@example.com"}
    assert all(u.active and u.id and u.name for u in users)


def hs_post(server: RunningServer, path: str, body: dict) -> dict:  # type: ignore[type-arg]
    """POST to HubSpot's API directly."""
    response = requests.post(server.url + path, json=body, headers={"Authorization": f"Bearer {TOKEN}"},
                             timeout=10)
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


def _logged(server: RunningServer, objects: str, props: dict[str, str], contact_id: str | None,
            type_id: int) -> str:
    """Log a call or meeting through HubSpot's API, associated with the contact when given; return its id."""
    body: dict[str, object] = {"properties": props}
    if contact_id:
        body["associations"] = [{"to": {"id": contact_id}, "types": [
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}]}]
    return str(hs_post(server, f"/crm/v3/objects/{objects}", body)["id"])


def test_calls_and_meetings_are_activities_with_durations_and_contacts(hubspot: RunningServer) -> None:
    crm = connector(hubspot)
    before = datetime.now(UTC) - timedelta(minutes=5)
    ada = crm.create_contact({"email": "time-ada@example.com", "first_name": "Ada"})
    bob = crm.create_contact({"email": "time-bob@example.com", "first_name": "Bob"})
    owner = crm.list_users()[0].id
    start = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
    call = _logged(hubspot, "calls", {
        "hs_timestamp": start.isoformat().replace("+00:00", "Z"), "hs_call_title": "Scoping call",
        "hs_call_body": "<p>Discussed <b>scope</b></p><p>Next: quote &amp; plan</p>",
        "hs_call_duration": str(30 * 60_000 + 20_000), "hubspot_owner_id": owner}, ada.id, 194)
    meeting = _logged(hubspot, "meetings", {
        "hs_timestamp": str(mapping_ms(start)), "hs_meeting_title": "Workshop",
        "hs_meeting_start_time": str(mapping_ms(start)),
        "hs_meeting_end_time": str(mapping_ms(start + timedelta(minutes=45))), "hubspot_owner_id": owner},
        ada.id, 200)
    short = _logged(hubspot, "calls", {"hs_timestamp": str(mapping_ms(start)), "hs_call_title": "No answer"},
                    bob.id, 194)

    every = [a for page in crm.list_activities(page_size=1) for a in page.activities]
    by_id = {a.id: a for a in every}
    assert set(by_id) == {f"call-{call}", f"meeting-{meeting}", f"call-{short}"}
    logged_call, logged_meeting = by_id[f"call-{call}"], by_id[f"meeting-{meeting}"]
    assert (logged_call.type, logged_call.duration_minutes, logged_call.contact_id) == ("call", 30, ada.id)
    assert logged_call.started_at == start and logged_call.owner_id == owner and logged_call.billable
    assert logged_call.subject == "Scoping call" and logged_call.notes == "Discussed scope\nNext: quote & plan"
    assert (logged_meeting.type, logged_meeting.duration_minutes, logged_meeting.contact_id) == (
        "meeting", 45, ada.id)
    assert logged_meeting.started_at == start and logged_meeting.billable
    assert by_id[f"call-{short}"].duration_minutes is None and not by_id[f"call-{short}"].billable
    assert by_id[f"call-{short}"].contact_id == bob.id

    changed = [a for page in crm.list_activities(since=before) for a in page.activities]
    assert {a.id: (a.duration_minutes, a.contact_id) for a in changed} == {
        a.id: (a.duration_minutes, a.contact_id) for a in every}
    assert [a for page in crm.list_activities(since=datetime.now(UTC) + timedelta(hours=1))
            for a in page.activities] == []
    adas = [a for page in crm.list_activities(contact_id=ada.id) for a in page.activities]
    assert sorted(a.id for a in adas) == sorted([f"call-{call}", f"meeting-{meeting}"])
    assert all(a.contact_id == ada.id for a in adas)

    assert crm.get_activity(f"meeting-{meeting}") == logged_meeting
    requests.delete(f"{hubspot.url}/crm/v3/objects/calls/{call}", headers={"Authorization": f"Bearer {TOKEN}"},
                    timeout=10).raise_for_status()
    with pytest.raises(ActivityNotFoundError):
        crm.get_activity(f"call-{call}")
    with pytest.raises(ActivityNotFoundError):
        crm.get_activity("note-1")


def test_qb_billable_false_keeps_a_call_out_of_billable_time(hubspot: RunningServer) -> None:
    crm = connector(hubspot)
    hs_post(hubspot, "/crm/v3/properties/calls", {"name": "qb_billable", "label": "Billable", "type": "bool",
                                                  "fieldType": "booleancheckbox", "groupName": "call",
                                                  "options": [{"label": "Yes", "value": "true"},
                                                              {"label": "No", "value": "false"}]})
    contact = crm.create_contact({"email": "nb@example.com", "first_name": "N"})
    call = _logged(hubspot, "calls", {"hs_timestamp": "1764511200000", "hs_call_duration": "600000",
                                      "qb_billable": "false"}, contact.id, 194)
    activity = crm.get_activity(f"call-{call}")
    assert activity.duration_minutes == 10 and activity.contact_id == contact.id and not activity.billable


def mapping_ms(moment: datetime) -> int:
    """Epoch milliseconds, as HubSpot stores times."""
    return round(moment.timestamp() * 1000)


def test_a_live_connector_waits_once_for_a_portal_that_answers_slowly(hubspot: RunningServer) -> None:
    """Live work's connector (a short read timeout, ``retry_timeouts=False``: pipeline/slowlane.py) sends a call
    HubSpot did not answer in time once; a patient one waits for it. Both count their slowest wait."""
    control(hubspot, "POST", "/faults", latency_ms=600)
    try:
        live = connector(hubspot, timeout=(3.05, 0.2), retry_timeouts=False, max_retries=2)
        before = control(hubspot, "GET", "/requests")["total"]
        with pytest.raises(CrmAnswerTimeoutError, match="ReadTimeout"):
            live.get_contact("1")
        assert control(hubspot, "GET", "/requests")["total"] - before == 1
        assert live.answer_times.count == 0 and live.answer_times.slowest >= 0.2
        patient = connector(hubspot)
        with pytest.raises(ContactNotFoundError):  # an answer, after the latency
            patient.get_contact("999999")
        assert patient.answer_times.count == 1 and patient.answer_times.slowest >= 0.6
    finally:
        control(hubspot, "DELETE", "/faults")


def test_errors_carry_hubspots_category_and_correlation_id(hubspot: RunningServer) -> None:
    bad = HubSpotConnector(HubSpotApi(hubspot.url, StaticToken("wrong"), sleep=lambda _: None))
    with pytest.raises(CrmAuthError) as refused:
        bad.get_contact("1")
    assert refused.value.code == "INVALID_AUTHENTICATION" and refused.value.correlation_id
    control(hubspot, "POST", "/faults", count=10, status=502)
    with pytest.raises(CrmUnavailableError) as down:
        connector(hubspot, max_retries=1).get_contact("1")
    assert down.value.status == 502 and str(down.value.correlation_id) in str(down.value)
    control(hubspot, "DELETE", "/faults")


def test_the_burst_limit_is_paced_and_429s_are_retried(hubspot: RunningServer, redis_client: Redis) -> None:
    control(hubspot, "POST", "/limits", burst=5, window_seconds=10)
    crm = connector(hubspot, redis_client, HubSpotConfig(burst_per_10s=5), max_retries=0)
    contact = crm.create_contact({"email": "r@example.com", "first_name": "R"})
    for _ in range(4):
        crm.get_contact(contact.id)
    with pytest.raises(CrmRateLimitedError):  # our own pacing: HubSpot is not asked a sixth time
        HubSpotLimiter(redis_client, RedisKeys("test"), str(hubspot.sandbox.portal_id),
                       HubSpotConfig(burst_per_10s=5)).slot(timeout=0.2).__enter__()
    live = connector(hubspot, redis_client, HubSpotConfig(burst_per_10s=5), max_retries=1, slot_wait=0.2,
                     max_retry_after=0.2)
    started = time.monotonic()
    with pytest.raises(CrmRateLimitedError):  # live work waits for a slot no longer than it would for an answer
        live.get_contact(contact.id)
    assert time.monotonic() - started < 2.0 and live.answer_times.count == 0
    assert live.answer_times.slowest > 0.2  # the wait the limits ask for counts as a wait for HubSpot's answer
    assert control(hubspot, "GET", "/requests")["throttled"] == 0


def test_the_daily_limit_is_counted_per_portal(hubspot: RunningServer, redis_client: Redis) -> None:
    crm = connector(hubspot, redis_client, HubSpotConfig(daily_limit=3))
    contact = crm.create_contact({"email": "d@example.com", "first_name": "D"})
    crm.get_contact(contact.id)
    crm.get_contact(contact.id)
    with pytest.raises(CrmRateLimitedError) as daily:
        crm.get_contact(contact.id)
    assert daily.value.code == "DAILY" and daily.value.retry_after and daily.value.retry_after > 0


def test_hubspots_429_waits_its_window_and_keeps_the_correlation_id(hubspot: RunningServer) -> None:
    control(hubspot, "POST", "/limits", burst=2, window_seconds=10)
    waits: list[float] = []

    def wait(seconds: float) -> None:  # HubSpot's window passes on the sandbox's clock, not in real time
        waits.append(seconds)
        hubspot.sandbox.clock.advance(seconds)

    crm = HubSpotConnector(HubSpotApi(hubspot.url, StaticToken(TOKEN), sleep=wait))
    contact = crm.create_contact({"email": "w@example.com", "first_name": "W"})
    assert crm.get_contact(contact.id).id == contact.id  # the 2nd call of the window
    assert crm.get_contact(contact.id).id == contact.id  # the 3rd: 429, a 10 s wait, then served
    assert waits == [10.0]
    assert control(hubspot, "GET", "/requests")["throttled"] == 1
    impatient = HubSpotConnector(HubSpotApi(hubspot.url, StaticToken(TOKEN), max_retries=0))
    crm.get_contact(contact.id)
    with pytest.raises(CrmRateLimitedError) as limited:
        impatient.get_contact(contact.id)
    assert limited.value.status == 429 and limited.value.code == "RATE_LIMIT"
    assert limited.value.correlation_id and limited.value.correlation_id in str(limited.value)
    assert limited.value.retry_after == 10.0
    assert impatient.answer_times.slowest == 10.0  # HubSpot's wait counts as a wait for its answer (slowlane)
    live = HubSpotConnector(HubSpotApi(hubspot.url, StaticToken(TOKEN), max_retry_after=5.0, sleep=wait))
    with pytest.raises(CrmRateLimitedError):  # live work sleeps no Retry-After past its bound
        live.get_contact(contact.id)
    assert waits == [10.0] and live.answer_times.slowest == 10.0
