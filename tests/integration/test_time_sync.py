"""Billable time end to end against both sandboxes (DESIGN §9): CRM activity hooks → QBO TimeActivity.

Hooks are posted to crm-qb's own endpoint, signed as the CRM signs them, and a real RQ worker drains them; QBO and
the reference CRM answer over HTTP. Covers: create, update, delete, billable turned off, billed time frozen (a
conflict and a CRM task), a user with no match (held, mapped by hand, created), a contact linked after its
activities were logged, and duplicate / out-of-order hooks.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import event, select, update

from crm_qb.cli import main
from crm_qb.db import db, utcnow
from crm_qb.models import Conflict, Connection, ContactLink, InboundEvent, TimeEntry, TimeState
from crm_qb.qbo import timeactivity as qbo_time
from crm_qb.qbo.faults import NetworkError
from crm_qb.runtime import runtime
from crm_qb.sync.context import build_context
from crm_qb.sync.pipeline.backfill import run_backfill
from crm_qb.sync.time import admin
from crm_qb.sync.time import apply as time_apply
from crm_qb.sync.time import store as time_store
from tests.conftest import settings_env
from tests.support import sync as support
from tests.support.connections import crm_body, post_crm
from tests.support.sync import Harness
from workers import jobs
from workers.sync_jobs import poll_qbo_connection

qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness

STARTED = "2026-11-30T23:30:00Z"  # 30 Nov in UTC, still 30 Nov in New York; the realm's zone decides


def _entity(harness: Harness, entity: str, **fields: Any) -> dict[str, Any]:
    return harness.qbo.post(f"/_sandbox/realms/{harness.qbo.realm_id}/entities/{entity}", fields)[entity]  # type: ignore[no-any-return]


def _time_activity(harness: Harness, time_id: str) -> dict[str, Any] | None:
    answer = requests.get(f"{harness.qbo.url}/_sandbox/realms/{harness.qbo.realm_id}/entities/TimeActivity/{time_id}",
                          timeout=10)
    return answer.json()["TimeActivity"] if answer.status_code == 200 else None


def _query(harness: Harness, sql: str, entity: str) -> list[dict[str, Any]]:
    """Rows of a QBO query, asked with the connection's own client."""
    with harness.app.app_context():
        connection = db.session.get(Connection, harness.connection_id)
        assert connection is not None
        with runtime().sync_services().qbo.client_for(connection) as client:
            rows = client.query(sql).get("QueryResponse", {}).get(entity, [])
        db.session.rollback()
    return rows  # type: ignore[no-any-return]


def _world(harness: Harness) -> dict[str, Any]:
    """The seeded realm's Employee Emily Platt (the CRM's user u1, matched by name), its Design item (75.00) and
    a linked contact."""
    [employee] = _query(harness, "select * from Employee where DisplayName = 'Emily Platt'", "Employee")
    [item] = _query(harness, "select * from Item where Name = 'Design'", "Item")
    customer = harness.qbo.create_customer(DisplayName="Amy's Bird Sanctuary",
                                           PrimaryEmailAddr={"Address": "amy@example.com"})
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    contact_id = str(harness.link_of_customer(customer["Id"]).crm_contact_id)
    return {"employee": employee, "item": item, "customer": customer, "contact_id": contact_id}


def _log(harness: Harness, contact_id: str, **fields: Any) -> dict[str, Any]:
    body = {"contact_id": contact_id, "owner_id": "u1", "type": "call", "subject": "Kick-off call",
            "started_at": STARTED, "duration_minutes": 90, "billable": True, "service": "Design", **fields}
    return harness.crm_user("POST", "/activities", body)  # type: ignore[no-any-return]


def _edit(harness: Harness, activity_id: str, **fields: Any) -> dict[str, Any]:
    return harness.crm_user("PATCH", f"/activities/{activity_id}", fields)  # type: ignore[no-any-return]


def _hook(harness: Harness, kind: str, activity: dict[str, Any] | None = None, activity_id: str | None = None,
          event_id: str | None = None) -> None:
    event = {"id": event_id or str(uuid.uuid4()), "type": f"activity.{kind}",
             "occurred_at": datetime.now(UTC).isoformat(),
             **({"activity": activity} if activity else {"activity_id": activity_id})}
    answer = post_crm(harness.client, harness.connection_id, harness.hook_secret, crm_body(event))
    assert answer.status_code == 202, answer.get_data(as_text=True)


def _entries(harness: Harness) -> dict[str, TimeEntry]:
    with harness.app.app_context():
        rows = list(db.session.scalars(select(TimeEntry).order_by(TimeEntry.id)))
        db.session.expunge_all()
    return {row.crm_activity_id: row for row in rows}


def _all_time(harness: Harness) -> list[dict[str, Any]]:
    with harness.app.app_context():
        ids = [row.qbo_id for row in db.session.scalars(select(TimeEntry)) if row.qbo_id]
        db.session.rollback()
    return [found for found in (_time_activity(harness, i) for i in ids) if found]


def _bill(harness: Harness, time_id: str) -> dict[str, Any]:
    return harness.qbo.post(f"/_sandbox/realms/{harness.qbo.realm_id}/time/bill",  # type: ignore[no-any-return]
                            {"time_activity_ids": [time_id]})["Invoice"]


def test_a_billable_call_becomes_time_follows_edits_and_goes_when_billable_is_turned_off(harness: Harness) -> None:
    world = _world(harness)
    activity = _log(harness, world["contact_id"])
    _hook(harness, "created", activity)
    harness.work()

    entry = _entries(harness)[activity["id"]]
    assert entry.state == TimeState.SYNCED, entry.hold_reason
    time = _time_activity(harness, str(entry.qbo_id))
    assert time is not None
    assert (time["NameOf"], time["EmployeeRef"]["value"]) == ("Employee", world["employee"]["Id"])
    assert time["CustomerRef"]["value"] == world["customer"]["Id"]
    assert (time["ItemRef"]["value"], Decimal(str(time["HourlyRate"]))) == (world["item"]["Id"], Decimal(75))
    assert (time["Hours"], time["Minutes"], time["BillableStatus"]) == (1, 30, "Billable")
    assert time["Description"].startswith("Kick-off call — http") and activity["id"] in time["Description"]
    assert entry.amount == Decimal("112.50") and entry.currency == "USD"
    shown = harness.quickbooks(world["contact_id"], harness.api_key())["time"]
    assert shown["totals"] == {"unbilled": {"USD": {"hours": "1.50", "minutes": 90, "amount": "112.50"}},
                               "billed": {}}
    [listed] = shown["entries"]
    assert (listed["subject"], listed["duration"], listed["status"], listed["amount"]) == (
        "Kick-off call", "1:30", "unbilled", "112.50")
    assert listed["date"] == "2026-11-30" and f"pagereq=timeactivity%3Fid%3D{entry.qbo_id}" in listed["url"]
    panel = harness.panel_html(world["contact_id"])
    assert 'id="time-title"' in panel and "USD 112.50" in panel and "timeactivity%3Fid%3D" in panel

    edited = _edit(harness, activity["id"], duration_minutes=45, hourly_rate="120.00", subject="Scope call")
    _hook(harness, "updated", edited)
    harness.work()
    time = _time_activity(harness, str(entry.qbo_id))
    assert time is not None and (time["Hours"], time["Minutes"]) == (0, 45)
    assert Decimal(str(time["HourlyRate"])) == Decimal("120.00") and time["Description"].startswith("Scope call")

    off = _edit(harness, activity["id"], billable=False)
    _hook(harness, "updated", off)
    harness.work()
    assert _time_activity(harness, str(entry.qbo_id)) is None, [(a.action, a.diff) for a in harness.audit()]
    assert _entries(harness)[activity["id"]].state == TimeState.REMOVED
    assert harness.failed_events() == []


def _billed_tasks(harness: Harness, contact_id: str) -> list[str]:
    """Titles of the contact's tasks about billed time (the invoice may also get an overdue follow-up)."""
    tasks = harness.crm_api("GET", f"/contacts/{contact_id}/tasks")["tasks"]
    return [t["title"] for t in tasks if t["title"].startswith("Billed time")]


def test_billed_time_is_never_changed_and_a_later_edit_is_a_conflict_and_a_crm_task(harness: Harness) -> None:
    world = _world(harness)
    activity = _log(harness, world["contact_id"])
    _hook(harness, "created", activity)
    harness.work()
    entry = _entries(harness)[activity["id"]]
    invoice = _bill(harness, str(entry.qbo_id))
    harness.qbo_hook(invoice["Id"], "created", entity="invoice")
    harness.work()
    assert _entries(harness)[activity["id"]].state == TimeState.BILLED
    totals = harness.quickbooks(world["contact_id"], harness.api_key())["time"]["totals"]
    assert totals == {"unbilled": {}, "billed": {"USD": {"hours": "1.50", "minutes": 90, "amount": "112.50"}}}

    edited = _edit(harness, activity["id"], duration_minutes=240)
    _hook(harness, "updated", edited)
    harness.work()
    time = _time_activity(harness, str(entry.qbo_id))
    assert time is not None and (time["Hours"], time["Minutes"], time["BillableStatus"]) == (1, 30, "HasBeenBilled")
    with harness.app.app_context():
        [conflict] = db.session.scalars(select(Conflict)).all()
        assert (conflict.field, conflict.winner, conflict.rule) == ("billed_time", "qbo", "billed_time")
        assert conflict.crm_value["Hours"] == 4 and conflict.qbo_value["Hours"] == 1
        db.session.rollback()
    assert _billed_tasks(harness, world["contact_id"]) == ["Billed time not changed in QuickBooks: Kick-off call"]

    _hook(harness, "updated", edited)  # the same change again (a redelivery under another id): nothing new
    harness.work()
    assert len(harness.conflicts()) == 1
    assert len(_billed_tasks(harness, world["contact_id"])) == 1
    harness.crm_user("DELETE", f"/activities/{activity['id']}")
    _hook(harness, "deleted", activity_id=activity["id"])
    harness.work()
    assert _time_activity(harness, str(entry.qbo_id)) is not None  # billed time is never deleted
    assert len(harness.conflicts()) == 2 and harness.failed_events() == []


def test_a_user_with_no_match_is_held_until_mapped_by_hand(harness: Harness) -> None:
    world = _world(harness)
    vendor = _entity(harness, "Vendor", DisplayName="Riley C. Contracting")
    activity = _log(harness, world["contact_id"], owner_id="u3")  # Riley Chen: no employee or vendor matches
    _hook(harness, "created", activity)
    harness.work()
    entry = _entries(harness)[activity["id"]]
    assert entry.state == TimeState.HELD and entry.hold_kind == "user"
    assert "Riley Chen" in str(entry.hold_reason) and _all_time(harness) == []

    with harness.app.app_context():
        result = admin.configure(runtime().sync_services(), harness.connection_id,
                                 map_users={"u3": f"Vendor:{vendor['Id']}"})
    assert result["mapped"] == {"u3": f"Vendor:{vendor['Id']}"}
    entry = _entries(harness)[activity["id"]]
    assert entry.state == TimeState.SYNCED
    time = _time_activity(harness, str(entry.qbo_id))
    assert time is not None and (time["NameOf"], time["VendorRef"]["value"]) == ("Vendor", vendor["Id"])


def test_a_contact_linked_after_its_activities_were_logged_gets_its_time(harness: Harness) -> None:
    _world(harness)
    contact = harness.crm_user("POST", "/contacts", {"first_name": "Grace", "last_name": "Hopper",
                                                     "email": "grace@example.com"})
    harness.set_sync(direction="qbo_to_crm")  # the contact stays unlinked until QBO has its customer
    activities = [_log(harness, contact["id"], subject=f"Call {n}", duration_minutes=30 + n) for n in range(3)]
    for activity in activities:
        _hook(harness, "created", activity)
    harness.crm_hook("created", contact)
    harness.work()
    assert {e.state for e in _entries(harness).values()} == {TimeState.HELD}

    customer = harness.qbo.create_customer(DisplayName="Grace Hopper",
                                           PrimaryEmailAddr={"Address": "grace@example.com"})
    harness.qbo_hook(customer["Id"], "created")
    harness.work()  # the QBO drain links the contact; the time release after it sends the held time
    entries = _entries(harness)
    assert {e.state for e in entries.values()} == {TimeState.SYNCED}
    assert sorted((t["Minutes"], t["CustomerRef"]["value"]) for t in _all_time(harness)) == [
        (30, customer["Id"]), (31, customer["Id"]), (32, customer["Id"])]


def test_duplicate_and_out_of_order_hooks_create_once_and_keep_the_newest(harness: Harness) -> None:
    world = _world(harness)
    activity = _log(harness, world["contact_id"])
    newer = _edit(harness, activity["id"], duration_minutes=60)
    event_id = str(uuid.uuid4())
    _hook(harness, "updated", newer)
    _hook(harness, "created", activity, event_id=event_id)
    _hook(harness, "created", activity, event_id=event_id)  # the same delivery twice: stored once
    harness.work()
    _hook(harness, "created", activity)  # a late, older copy under a new id
    harness.work()
    [entry] = _entries(harness).values()
    time = _time_activity(harness, str(entry.qbo_id))
    assert time is not None and (time["Hours"], time["Minutes"]) == (1, 0)
    assert len(_all_time(harness)) == 1
    counts = harness.qbo.requests_by_endpoint()
    assert counts.get("POST /batch") == 1 and not counts.get("POST /timeactivity")


def _cli_env(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A CLI runner whose environment is the harness app's settings (database, Redis, the QBO sandbox)."""
    with harness.app.app_context():
        settings = runtime().settings
    env = {**settings_env(settings), "CRM_QB_QBO_ENVIRONMENT": "local",
           "CRM_QB_QBO_CLIENT_ID": settings.qbo_client_id, "CRM_QB_QBO_CLIENT_SECRET": settings.qbo_client_secret,
           "CRM_QB_QBO_DISCOVERY_URL": str(settings.qbo_discovery_url),
           "CRM_QB_QBO_API_BASE": str(settings.qbo_api_base),
           "CRM_QB_QBO_APP_BASE": str(settings.qbo_app_base), "CRM_QB_QBO_REDIRECT_URI": settings.qbo_redirect_uri}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return CliRunner()


def test_time_configure_and_status_from_the_command_line(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    world = _world(harness)
    activity = _log(harness, world["contact_id"], owner_id="u3", service=None)
    _hook(harness, "created", activity)
    harness.work()
    runner, connection = _cli_env(harness, monkeypatch), str(harness.connection_id)

    held = json.loads(runner.invoke(main, ["time", "status", connection]).output)
    assert held["entries"]["held"] == 1 and held["held"][0]["kind"] == "user"
    assert {u["crm_user_id"]: u["qbo"] for u in held["users"]} == {"u3": None}

    bad = runner.invoke(main, ["time", "configure", connection, "--map-user", "u3=Boss:1"])
    assert bad.exit_code == 2 and bad.output.strip().endswith("expected Employee:ID or Vendor:ID, got 'Boss:1'")
    missing = runner.invoke(main, ["time", "configure", connection, "--default-item", "999"])
    assert missing.exit_code == 2 and "QuickBooks has no item '999'" in missing.output
    bad_url = runner.invoke(main, ["time", "configure", connection, "--activity-url", "https://crm.example/x"])
    assert bad_url.exit_code == 2 and "time.activity_url: invalid value" in bad_url.output

    done = runner.invoke(main, ["time", "configure", connection, "--default-item", world["item"]["Id"],
                                "--map-user", f"u3=Employee:{world['employee']['Id']}"])
    assert done.exit_code == 0, done.output
    shown = json.loads(done.output)
    assert shown["settings"]["default_item"] == world["item"]["Id"]
    assert shown["entries"]["synced"] == 1 and shown["totals"]["unbilled"] == {
        "USD": {"hours": "1.50", "minutes": 90, "amount": "112.50"}}
    time = _time_activity(harness, str(_entries(harness)[activity["id"]].qbo_id))
    assert time is not None and time["ItemRef"]["value"] == world["item"]["Id"]  # no service: the default item


def test_a_create_whose_answer_was_lost_is_resent_with_its_request_id_and_made_once(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    world = _world(harness)
    real, lost = qbo_time.create_batch, []

    def answer_lost(client: Any, items: Any, request_id: str) -> Any:
        answer = real(client, items, request_id)  # QBO made the time ...
        if not lost:
            lost.append(request_id)
            raise NetworkError("the answer never arrived")  # ... but the worker never heard (or was killed)
        return answer

    monkeypatch.setattr(time_apply.qbo_time, "create_batch", answer_lost)
    harness.qbo.reset_counts()
    activity = _log(harness, world["contact_id"])
    _hook(harness, "created", activity)
    harness.work()  # the unit fails (its attempt counted): QBO did not answer, so the drain waits for it
    assert lost
    [entry] = _entries(harness).values()
    assert entry.state == TimeState.CREATING and entry.request_id  # the request is stored before it is sent
    with harness.app.app_context():  # the backoff ends: the next attempt resends the stored request
        db.session.execute(update(InboundEvent).values(next_attempt_at=utcnow()))
        db.session.commit()
        jobs.sweep_inbound_events()
    harness.work()
    [entry] = _entries(harness).values()
    assert entry.state == TimeState.SYNCED and entry.request_id is None
    assert harness.qbo.requests_by_endpoint().get("POST /batch") == 2  # the same request id twice
    assert len(_query(harness, "select * from TimeActivity", "TimeActivity")) == 1

    _hook(harness, "updated", activity)  # the CRM's next delivery of the same version: nothing more
    harness.work()
    assert len(_query(harness, "select * from TimeActivity", "TimeActivity")) == 1


def test_the_cdc_poll_reads_billing_by_query_and_a_deleted_invoice_releases_the_time(harness: Harness) -> None:
    world = _world(harness)
    activity = _log(harness, world["contact_id"])
    _hook(harness, "created", activity)
    harness.work()
    entry = _entries(harness)[activity["id"]]
    invoice = _bill(harness, str(entry.qbo_id))  # no webhook reaches crm-qb: only the poll can tell
    with harness.app.app_context():
        poll_qbo_connection(harness.connection_id)
    assert _entries(harness)[activity["id"]].state == TimeState.BILLED

    requests.delete(f"{harness.qbo.url}/_sandbox/realms/{harness.qbo.realm_id}/entities/Invoice/{invoice['Id']}",
                    timeout=10).raise_for_status()
    with harness.app.app_context():
        poll_qbo_connection(harness.connection_id)
    assert _entries(harness)[activity["id"]].state == TimeState.SYNCED  # billable again: edits follow again
    edited = _edit(harness, activity["id"], duration_minutes=30)
    _hook(harness, "updated", edited)
    harness.work()
    time = _time_activity(harness, str(entry.qbo_id))
    assert time is not None and (time["Hours"], time["Minutes"], time["BillableStatus"]) == (0, 30, "Billable")


def test_a_contact_linked_by_the_backfill_gets_the_time_logged_before(harness: Harness) -> None:
    _world(harness)
    customer = harness.qbo.create_customer(DisplayName="Ada Byron", PrimaryEmailAddr={"Address": "ada@example.com"})
    contact = harness.crm_user("POST", "/contacts", {"first_name": "Ada", "last_name": "Byron",
                                                     "email": "ada@example.com"})  # no hook reaches crm-qb
    activity = _log(harness, contact["id"], subject="Design review", duration_minutes=50)
    _hook(harness, "created", activity)
    harness.work()
    assert _entries(harness)[activity["id"]].hold_kind == "contact"

    with harness.app.app_context():
        run_backfill(runtime().sync_services(), harness.connection_id)
    entry = _entries(harness)[activity["id"]]
    assert entry.state == TimeState.SYNCED and harness.link_of_customer(customer["Id"]).crm_contact_id == contact["id"]
    time = _time_activity(harness, str(entry.qbo_id))
    assert time is not None and (time["CustomerRef"]["value"], time["Minutes"]) == (customer["Id"], 50)


def test_an_edit_after_a_bookkeeper_changed_the_time_in_qbo_rereads_it_on_5010(harness: Harness) -> None:
    world = _world(harness)
    activity = _log(harness, world["contact_id"])
    _hook(harness, "created", activity)
    harness.work()
    entry = _entries(harness)[activity["id"]]
    requests.patch(f"{harness.qbo.url}/_sandbox/realms/{harness.qbo.realm_id}/entities/TimeActivity/{entry.qbo_id}",
                   json={"Description": "edited by the bookkeeper"}, timeout=10).raise_for_status()
    harness.qbo.reset_counts()

    edited = _edit(harness, activity["id"], duration_minutes=120)
    _hook(harness, "updated", edited)
    harness.work()
    time = _time_activity(harness, str(entry.qbo_id))
    assert time is not None and (time["Hours"], time["Minutes"]) == (2, 0)
    assert time["Description"] == "edited by the bookkeeper"  # only the fields the CRM changed are written
    counts = harness.qbo.requests_by_endpoint()
    assert counts.get("POST /timeactivity") == 2 and counts.get("GET /timeactivity/{id}") == 1  # 5010, read, retry
    assert harness.failed_events() == []


def test_a_release_with_nothing_waiting_asks_two_questions_and_each_kind_of_waiting_time_is_seen(
        harness: Harness) -> None:
    """Every drain of contacts or customers ends with a release; nearly always nothing can go, and then it reads
    the time setting and asks whether anything could (it read the user mappings and each kind of waiting time,
    five statements, before)."""
    world = _world(harness)  # linked, and its earlier activities read by that drain's release
    with harness.app.app_context():
        ctx = build_context(runtime().sync_services(), harness.connection_id, "test-release")
        statements: list[str] = []

        def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", note)
        try:
            outcome = time_apply.release(ctx)
        finally:
            event.remove(db.engine, "before_cursor_execute", note)
            ctx.close()
        assert outcome == "nothing held can go"
        assert len(statements) == 2, statements

        cid, kinds = harness.connection_id, time_apply.RELEASED_KINDS
        assert not time_store.releasable(cid, kinds)
        link = db.session.scalars(select(ContactLink).where(
            ContactLink.connection_id == cid, ContactLink.crm_contact_id == world["contact_id"])).one()
        link.time_walked_at = None
        db.session.commit()
        assert time_store.releasable(cid, kinds)  # a link whose earlier activities were not read
        link.time_walked_at = utcnow()
        entry = TimeEntry(connection_id=cid, crm_activity_id="a-waiting", state=TimeState.CREATING)
        db.session.add(entry)
        db.session.commit()
        assert time_store.releasable(cid, kinds)  # a create left unanswered
        entry.state, entry.hold_kind = TimeState.HELD, "qbo"
        db.session.commit()
        assert not time_store.releasable(cid, kinds)  # QBO's refusals wait for a retry asked for
        assert time_store.releasable(cid, (*kinds, "qbo"))
        entry.hold_kind = "user"
        db.session.commit()
        assert time_store.releasable(cid, kinds)
        assert not time_store.releasable(cid + 1, kinds)
