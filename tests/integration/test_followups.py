"""Follow-ups against the reference CRM on a real port, on SQLite and PostgreSQL, with a controlled clock."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from crm_qb.crm.errors import CrmPermanentError, CrmUnavailableError
from crm_qb.crm.protocol import NewTask, Task
from crm_qb.crm.rest import RestConnector
from crm_qb.db import db
from crm_qb.keys import JobIds, RedisKeys
from crm_qb.models import FollowUp, FollowUpStatus
from crm_qb.runtime import runtime
from crm_qb.sync.followups import scan as scan_module
from crm_qb.sync.followups.service import (
    UnknownConnectionError,
    close_followups,
    configure_followups,
    followup_settings,
    scan_connection,
    scan_invoice,
)
from crm_qb.sync.followups.settings import InvalidFollowupSettings
from crm_qb.sync.rules.followups import task_marker
from tests.support import followups
from tests.support.connections import add_connection
from tests.support.folder import qbo_page
from tests.support.followups import APP_BASE, CRM_TOKEN, DUE, TAG, World, at, overdue_by

settings, crm, world = followups.settings_fixture, followups.crm_fixture, followups.world_fixture



def test_an_overdue_invoice_gets_a_task_then_a_second_one_fourteen_days_later(world: World) -> None:
    contact = world.contact("c1")
    world.invoice("101", "c1")
    assert world.scan(overdue_by(0))["created"] == 0  # due today is not overdue
    assert world.scan(overdue_by(1))["created"] == 1
    [task] = world.tasks(contact)
    assert task["status"] == "open" and task["owner_id"] == "u2" and task["due_date"] == "2025-02-01"
    assert "INV-101" in task["title"] and "USD 1,234.50" in task["title"]
    description = task["description"]
    assert task["title"] == "Overdue invoice INV-101: USD 1,234.50 (1 day overdue)"
    # The customer is named as QuickBooks names it (the mirrored invoice's CustomerRef), not as the CRM does.
    for expected in ("for QBO customer c1", "Amount: USD 1,234.50", "Balance due: USD 1,234.50",
                     "Due date: 2025-01-31", "1 days overdue", qbo_page("invoice", "txnId", "101", base=APP_BASE)):
        assert expected in description
    assert description.endswith(task_marker(world.connection_id, "101", 1))
    assert world.scan(overdue_by(1))["created"] == 0
    assert world.scan(overdue_by(13))["created"] == 0
    assert world.scan(overdue_by(14))["created"] == 1
    assert [t["title"].endswith("(14 days overdue)") for t in world.tasks(contact)] == [False, True]
    assert world.rows() == [("101", 1, "open", None), ("101", 14, "open", None)]


def test_an_invoice_first_seen_long_overdue_gets_one_task_for_the_rule_it_reached(world: World) -> None:
    contact = world.contact("c1")
    world.invoice("101", "c1")
    assert world.scan(overdue_by(37))["created"] == 1
    [task] = world.tasks(contact)
    assert task["title"] == "Overdue invoice INV-101: USD 1,234.50 (30 days overdue)"
    assert "is 37 days overdue" in task["description"]
    assert task["description"].endswith(task_marker(world.connection_id, "101", 30))
    for day in (38, 60):
        assert world.scan(overdue_by(day))["created"] == 0  # the skipped rules 1 and 14 never fire
    assert world.rows() == [("101", 30, "open", None)]


def test_rules_fire_one_at_a_time_as_the_invoice_ages(world: World) -> None:
    contact = world.contact("c1")
    world.invoice("101", "c1")
    world.scan(overdue_by(2))
    assert world.scan(overdue_by(31))["created"] == 1  # missed scans: only the most advanced rule, not 14 and 30
    titles = [t["title"] for t in world.tasks(contact)]
    assert titles == ["Overdue invoice INV-101: USD 1,234.50 (1 day overdue)",
                      "Overdue invoice INV-101: USD 1,234.50 (30 days overdue)"]


def test_today_is_the_companys_date_in_its_time_zone(world: World, app: Flask) -> None:
    contact = world.contact("c1")
    world.invoice("101", "c1")
    with app.app_context():
        from crm_qb.models import Connection

        row = db.session.get(Connection, world.connection_id)
        assert row is not None
        row.company_timezone = "America/Los_Angeles"
        db.session.commit()
    # 2025-02-01 05:00 UTC is still January 31 in Los Angeles: due today, not overdue.
    assert world.scan(at(date(2025, 2, 1), hour=5))["created"] == 0
    assert world.scan(at(date(2025, 2, 1), hour=8))["created"] == 1
    assert len(world.tasks(contact)) == 1


def test_a_partly_paid_invoice_keeps_its_rules_and_shows_its_balance_in_its_currency(world: World) -> None:
    contact = world.contact("c1")
    world.invoice("101", "c1", total="250000", balance="1000", currency="JPY")
    world.scan(overdue_by(1))
    world.scan(overdue_by(30))
    tasks = world.tasks(contact)
    assert len(tasks) == 2
    assert "Amount: JPY 250,000" in tasks[0]["description"] and "Balance due: JPY 1,000" in tasks[0]["description"]


def test_paying_the_invoice_completes_its_tasks_with_the_reason(world: World) -> None:
    contact = world.contact("c1")
    world.invoice("101", "c1")
    world.invoice("102", "c1")
    world.scan(overdue_by(1))
    world.scan(overdue_by(14))
    world.pay_invoice("101")
    result = world.scan(overdue_by(15))
    assert result["completed"] == 2 and result["created"] == 0
    by_marker = {t["description"].split("[crm-qb follow-up ")[1].split("]")[0]: t for t in world.tasks(contact)}
    for rule in (1, 14):
        task = by_marker[f"{world.connection_id}:101:{rule}"]
        assert task["status"] == "done"
        assert "Completed by crm-qb on 2025-02-15: the invoice was paid in full." in task["description"]
        assert by_marker[f"{world.connection_id}:102:{rule}"]["status"] == "open"
    assert world.rows()[:2] == [("101", 1, "completed", "the invoice was paid in full"),
                                ("101", 14, "completed", "the invoice was paid in full")]
    assert world.scan(overdue_by(30))["created"] == 1  # only invoice 102's 30-day rule


@pytest.mark.parametrize(("change", "reason"), [
    ("voided", "the invoice was voided in QuickBooks"),
    ("deleted", "the invoice was deleted in QuickBooks"),
    ("moved", "the invoice was moved to another customer"),
])
def test_voided_deleted_or_moved_invoices_complete_their_tasks(world: World, change: str, reason: str) -> None:
    contact = world.contact("c1")
    other = world.contact("c2")
    world.invoice("101", "c1")
    world.scan(overdue_by(1))
    if change == "voided":
        world.void_invoice("101")
    elif change == "deleted":
        world.delete_invoice("101")
    else:
        world.move_invoice("101", "c2")
    assert world.scan(overdue_by(2))["completed"] == 1
    [task] = world.tasks(contact)
    assert task["status"] == "done" and reason in task["description"]
    assert world.rows() == [("101", 1, "completed", reason)]
    assert world.tasks(other) == []  # the rule already fired for this invoice


def test_close_followups_completes_at_once_when_the_sync_reports_a_change(world: World, app: Flask) -> None:
    contact = world.contact("c1")
    world.invoice("101", "c1")
    world.scan(overdue_by(1))
    with app.app_context():
        services = runtime(app).sync_services()
        result = close_followups(services, world.connection_id, "101", "paid", now=overdue_by(1))
        again = close_followups(services, world.connection_id, "101", "paid", now=overdue_by(1))
    assert (result.completed, again.completed) == (1, 0)
    [task] = world.tasks(contact)
    assert task["status"] == "done" and task["description"].count("paid in full") == 1
    with app.app_context(), pytest.raises(ValueError, match="needs a reason"):
        close_followups(services, world.connection_id, "101", " ")


@pytest.mark.parametrize("user_action", ["complete", "delete"])
def test_a_task_the_user_closed_is_never_created_again(world: World, user_action: str) -> None:
    contact = world.contact("c1")
    world.invoice("101", "c1")
    world.scan(overdue_by(1))
    [task] = world.tasks(contact)
    if user_action == "complete":
        assert world.as_user("PATCH", f"/tasks/{task['id']}", json={"status": "done"}).status_code == 200
    else:
        assert world.as_user("DELETE", f"/tasks/{task['id']}").status_code == 204
    assert world.scan(overdue_by(2))["closed_by_user"] == 1
    for day in (3, 14):
        world.scan(overdue_by(day))
    rule_one = [t for t in world.tasks(contact) if t["description"].endswith(":101:1]")]
    assert [(t["id"], t["status"]) for t in rule_one] == ([(task["id"], "done")] if user_action == "complete" else [])
    assert world.rows()[0][:3] == ("101", 1, "closed_by_user")
    world.pay_invoice("101")
    world.scan(overdue_by(15))
    assert world.rows()[0][:3] == ("101", 1, "closed_by_user")


def test_the_hourly_check_reads_open_tasks_a_hundred_per_call_and_sees_what_users_closed(world: World) -> None:
    """2,000 open follow-ups on 700 contacts were 700 task lists an hour; they are read by id, 100 per call
    (``POST /tasks/batch/read``). A task a user completed or deleted closes its row, the others stay open."""
    world.unlimited()
    contacts = _tasks_for_many_contacts(world, 150)
    world.scan(overdue_by(1))
    done, gone = world.tasks(contacts[3])[0], world.tasks(contacts[140])[0]
    assert world.as_user("PATCH", f"/tasks/{done['id']}", json={"status": "done"}).status_code == 200
    assert world.as_user("DELETE", f"/tasks/{gone['id']}").status_code == 204
    before = world.crm_requests()
    result = world.scan(overdue_by(2))
    assert world.crm_requests_since(before) == {"POST /tasks/batch/read": 2}
    assert (result["created"], result["closed_by_user"]) == (0, 2)
    reasons = {row[0]: (row[2], row[3]) for row in world.rows()}
    assert reasons["5003"] == ("closed_by_user", "completed in the CRM")
    assert reasons["5140"] == ("closed_by_user", "deleted in the CRM")
    assert sum(status == "open" for status, _ in reasons.values()) == 148


def test_a_task_created_before_a_crash_is_found_by_its_marker_not_created_twice(world: World, app: Flask) -> None:
    contact = world.contact("c1")
    world.invoice("101", "c1")
    marker = task_marker(world.connection_id, "101", 1)
    with app.app_context():  # the crashed run reserved the row, wrote its create ahead, created, never recorded
        db.session.add(FollowUp(connection_id=world.connection_id, qbo_invoice_id="101", rule_days=1,
                                crm_contact_id=contact, status=FollowUpStatus.PENDING,
                                task_attempted_at=overdue_by(1)))
        db.session.commit()
    made = world.as_user("POST", f"/contacts/{contact}/tasks", json={"title": "x", "description": f"y\n\n{marker}"})
    result = world.scan(overdue_by(1))
    assert result["created"] == 0
    assert [t["id"] for t in world.tasks(contact)] == [made.json()["id"]]
    with app.app_context():
        row = db.session.scalars(select(FollowUp)).one()
        assert (row.status, row.crm_task_id) == (FollowUpStatus.OPEN, made.json()["id"])


class _CrashAfterCreate(RestConnector):
    """A connector whose run dies right after the CRM made the tasks (in a batch, or one by one), before the scan
    could record them."""

    def create_task(self, contact_id: str, task: NewTask) -> Task:
        super().create_task(contact_id, task)
        raise RuntimeError("the worker died here")

    def create_tasks(self, tasks: Sequence[tuple[str, NewTask]]) -> list[Task | CrmPermanentError]:
        super().create_tasks(tasks)
        raise RuntimeError("the worker died here")


def test_a_run_that_dies_between_create_and_record_leaves_tasks_the_next_scan_finds(world: World) -> None:
    contact = world.contact("c1")
    world.invoice("101", "c1")
    world.invoice("102", "c1")
    with pytest.raises(RuntimeError, match="died"):
        world.scan(overdue_by(1), crm=_CrashAfterCreate(world.crm.url, CRM_TOKEN))
    assert [row[:3] for row in world.rows()] == [("101", 1, "pending"), ("102", 1, "pending")]
    assert len(world.tasks(contact)) == 2
    before = world.crm_requests()
    assert world.scan(overdue_by(1))["created"] == 0
    assert world.crm_requests_since(before) == {"GET /contacts/<contact_id>/tasks": 2}, "found, not made again"
    assert len(world.tasks(contact)) == 2
    assert [row[:3] for row in world.rows()] == [("101", 1, "open"), ("102", 1, "open")]


def test_tasks_no_run_has_tried_are_created_in_one_batch_without_reading_the_contacts_tasks(world: World) -> None:
    """A row whose create was never sent cannot have a task in the CRM: a first sync's thousands of tasks are
    created a hundred per call (``POST /tasks/batch``), with no read of the contact's tasks before them."""
    contact = world.contact("c1")
    world.invoice("101", "c1")
    world.invoice("102", "c1")
    before = world.crm_requests()
    assert world.scan(overdue_by(1))["created"] == 2
    made = world.crm_requests_since(before)
    assert made == {"POST /tasks/batch": 1, "GET /contacts/<contact_id>": 1}
    titles = sorted(t["title"][:23] for t in world.tasks(contact))
    assert titles == ["Overdue invoice INV-101", "Overdue invoice INV-102"]
    assert [row[:3] for row in world.rows()] == [("101", 1, "open"), ("102", 1, "open")]


class _NoTaskBatch(RestConnector):
    """A connector of a CRM kind that creates and reads tasks only one contact at a time (no batches of tasks)."""

    create_tasks = None  # type: ignore[assignment]  # a method set to None is not offered (typing.Protocol)
    read_tasks = None  # type: ignore[assignment]


def test_a_connector_without_a_task_batch_creates_one_task_per_call_each_paced(world: World) -> None:
    contact = world.contact("c1")
    world.invoice("101", "c1")
    world.invoice("102", "c1")
    pauses: list[int] = []
    before = world.crm_requests()
    with world.app.app_context():
        services = replace(runtime(world.app).sync_services(), pace=lambda: pauses.append(len(world.tasks(contact))))
        crm = _NoTaskBatch(world.crm.url, CRM_TOKEN)
        result = scan_connection(services, world.connection_id, now=overdue_by(1), crm=crm).to_json()
    assert result["created"] == 2 and pauses == [0, 1]
    assert world.crm_requests_since(before) == {"POST /contacts/<contact_id>/tasks": 2, "GET /contacts/<contact_id>": 1}
    assert [row[:3] for row in world.rows()] == [("101", 1, "open"), ("102", 1, "open")]
    before = world.crm_requests()
    with world.app.app_context():
        scan_connection(services, world.connection_id, now=overdue_by(2), crm=crm)
    assert world.crm_requests_since(before) == {"GET /contacts/<contact_id>/tasks": 1}, "the contact's list, once"


def test_hundreds_of_new_tasks_go_a_hundred_per_request(world: World) -> None:
    world.unlimited()
    contacts = _tasks_for_many_contacts(world, 250)
    before = world.crm_requests()
    assert world.scan(overdue_by(1))["created"] == 250
    made = world.crm_requests_since(before)
    assert made == {"GET /contacts": 1, "POST /tasks/batch": 3}
    marks = [world.tasks(c)[0]["description"].rsplit("\n", 1)[-1] for c in contacts]
    assert len(set(marks)) == 250, "each contact got its own invoice's task"
    assert [row[2] for row in world.rows()] == ["open"] * 250
    with world.app.app_context():
        recorded = {row.crm_task_id for row in db.session.scalars(select(FollowUp))}
        db.session.rollback()
    assert recorded == {world.tasks(c)[0]["id"] for c in contacts}


class _DeletesContactBeforeBatch(RestConnector):
    """A connector during whose scan a CRM user deletes one contact just before the tasks are sent."""

    doomed = ""

    def create_tasks(self, tasks: Sequence[tuple[str, NewTask]]) -> list[Task | CrmPermanentError]:
        requests.delete(f"{self._base}/_sandbox/contacts/{self.doomed}", timeout=5).raise_for_status()
        return super().create_tasks(tasks)


def test_a_task_the_crm_refuses_in_a_batch_fails_alone(world: World) -> None:
    kept, gone = world.contact("c1"), world.contact("c2")
    world.invoice("101", "c1")
    world.invoice("102", "c2")
    crm = _DeletesContactBeforeBatch(world.crm.url, CRM_TOKEN)
    crm.doomed = gone
    result = world.scan(overdue_by(1), crm=crm)
    assert (result["created"], result["closed_by_user"]) == (1, 1)
    assert [t["title"][:23] for t in world.tasks(kept)] == ["Overdue invoice INV-101"]
    assert [row[:3] for row in world.rows()] == [("101", 1, "open"), ("102", 1, "closed_by_user")]


class _RowClosedDuringTheBatch(RestConnector):
    """A connector during whose batch another process finishes one of the rows (as a user's close would, had the
    row's lock been lost meanwhile)."""

    app: Flask
    invoice: str

    def create_tasks(self, tasks: Sequence[tuple[str, NewTask]]) -> list[Task | CrmPermanentError]:
        made = super().create_tasks(tasks)
        with self.app.app_context():
            row = db.session.scalars(select(FollowUp).where(FollowUp.qbo_invoice_id == self.invoice)).one()
            row.status = FollowUpStatus.CLOSED_BY_USER
            db.session.commit()
        return made


def test_a_batchs_tasks_are_recorded_together_but_only_on_rows_still_pending(world: World, app: Flask) -> None:
    contact = world.contact("c1")
    for invoice in ("101", "102", "103"):
        world.invoice(invoice, "c1")
    crm = _RowClosedDuringTheBatch(world.crm.url, CRM_TOKEN)
    crm.app, crm.invoice = app, "102"
    result = world.scan(overdue_by(1), crm=crm)
    assert result["created"] == 2
    assert [row[:3] for row in world.rows()] == [("101", 1, "open"), ("102", 1, "closed_by_user"),
                                                 ("103", 1, "open")]
    titles = {t["id"]: t["title"] for t in world.tasks(contact)}
    with app.app_context():
        recorded = {row.qbo_invoice_id: row.crm_task_id for row in db.session.scalars(select(FollowUp))}
    assert recorded["102"] is None
    assert [titles[str(recorded[invoice])][:23] for invoice in ("101", "103")] == [
        "Overdue invoice INV-101", "Overdue invoice INV-103"], "each row its own task"


class _CrmDownForTheBatch(RestConnector):
    """A connector whose CRM answers 503 to the batch and to its one retry (the gateway's fault plan)."""

    def create_tasks(self, tasks: Sequence[tuple[str, NewTask]]) -> list[Task | CrmPermanentError]:
        requests.post(f"{self._base}/_sandbox/faults", json={"count": 2, "status": 503}, timeout=5).raise_for_status()
        return super().create_tasks(tasks)


def test_a_batch_that_fails_as_a_whole_is_made_good_by_the_next_scan_without_duplicates(world: World) -> None:
    """The CRM is down for the batch (it and its retry answered 503): the scan fails, its rows stay pending and
    written ahead; the next scan looks for their tasks, finds none, and creates each once."""
    contact = world.contact("c1")
    world.invoice("101", "c1")
    world.invoice("102", "c1")
    crm = _CrmDownForTheBatch(world.crm.url, CRM_TOKEN, max_retries=1, sleep=lambda _: None)
    with pytest.raises(CrmUnavailableError):
        world.scan(overdue_by(1), crm=crm)
    assert world.tasks(contact) == []
    assert [row[:3] for row in world.rows()] == [("101", 1, "pending"), ("102", 1, "pending")]
    assert world.scan(overdue_by(1))["created"] == 2
    assert len(world.tasks(contact)) == 2
    assert [row[:3] for row in world.rows()] == [("101", 1, "open"), ("102", 1, "open")]


def _tasks_for_many_contacts(world: World, count: int) -> list[str]:
    contacts = [world.contact(f"m{n}", owner_id=f"u{n % 3 + 1}") for n in range(count)]
    for n in range(count):
        world.invoice(f"5{n:03d}", f"m{n}")
    return contacts


def test_a_scan_with_many_new_tasks_reads_their_contacts_from_the_contact_list(world: World) -> None:
    """A first sync's scan makes thousands of tasks for about as many contacts: their owners are read from a few
    pages of the contact list, not one read per contact; each task still goes to its contact's owner."""
    contacts = _tasks_for_many_contacts(world, scan_module.PAGED_CONTACTS_FROM)
    before = world.crm_requests()
    assert world.scan(overdue_by(1))["created"] == len(contacts)
    made = world.crm_requests_since(before)
    assert made == {"GET /contacts": 1, "POST /tasks/batch": 1}
    assert [world.tasks(c)[0]["owner_id"] for c in contacts] == [f"u{n % 3 + 1}" for n in range(len(contacts))]


def test_the_contact_list_is_walked_only_while_it_costs_a_tenth_of_the_reads_it_saves(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """A CRM with far more contacts than the scan needs: the walk stops after one page per ten reads it would
    replace, and the rest are read one by one."""
    monkeypatch.setattr(scan_module, "CONTACT_PAGE", 5)
    world.unlimited()
    for n in range(40):  # older contacts, first in the list, that no task needs
        world.http.post(f"{world.crm.url}/_sandbox/contacts", json={"display_name": f"Other {n}"}, timeout=5)
    contacts = _tasks_for_many_contacts(world, 60)
    before = world.crm_requests()
    assert world.scan(overdue_by(1))["created"] == 60
    made = world.crm_requests_since(before)
    assert made == {"GET /contacts": 6, "GET /contacts/<contact_id>": 60, "POST /tasks/batch": 1}
    assert all(world.tasks(c)[0]["owner_id"] for c in contacts)


def test_concurrent_scans_never_make_two_tasks_for_one_rule(world: World, app: Flask) -> None:
    contacts = [world.contact(f"c{i}") for i in range(3)]
    for i in range(3):
        world.invoice(f"10{i}", f"c{i}")
    world.faults(latency_ms=20)  # widen the window between listing and creating
    errors: list[BaseException] = []

    def scan() -> None:
        try:
            world.scan(overdue_by(30))
        except BaseException as exc:  # collected and re-raised by the test below
            errors.append(exc)

    threads = [threading.Thread(target=scan) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    world.scan(overdue_by(30))  # finishes any row a busy lock made a scan skip
    for contact in contacts:
        markers = [t["description"].rsplit(":", 1)[1] for t in world.tasks(contact)]
        assert markers == ["30]"]
    assert {status for _, _, status, _ in world.rows()} == {"open"}


def test_a_crm_outage_leaves_rows_pending_and_the_next_scan_creates_the_tasks(world: World) -> None:
    contact = world.contact("c1")
    world.invoice("101", "c1")
    world.invoice("102", "c1")
    world.faults(count=1000, status=503)
    with pytest.raises(CrmUnavailableError):
        world.scan(overdue_by(14), crm=world.connector())
    assert [row[1:3] for row in world.rows()] == [(14, "pending"), (14, "pending")]
    world.faults(count=0)
    assert world.scan(overdue_by(14), crm=world.connector())["created"] == 2
    assert len(world.tasks(contact)) == 2
    assert world.scan(overdue_by(14))["created"] == 0


def test_the_tag_follows_whether_the_contact_has_an_overdue_invoice(world: World) -> None:
    contact = world.contact("c1", tags=["vip"])
    world.invoice("101", "c1")
    world.invoice("102", "c1", due=DUE + timedelta(days=10))
    world.scan(overdue_by(1))
    assert world.crm_contact(contact)["tags"] == ["vip"]  # the tag is off by default
    world.configure(tag_enabled=True)
    assert world.scan(overdue_by(1))["tagged"] == 1
    assert world.crm_contact(contact)["tags"] == ["vip", TAG]
    assert world.scan(overdue_by(1))["tagged"] == 0
    world.pay_invoice("101")
    assert world.scan(overdue_by(2))["untagged"] == 1  # invoice 102 is not yet due
    assert world.crm_contact(contact)["tags"] == ["vip"]
    assert world.scan(overdue_by(11))["tagged"] == 1


def test_a_bulk_scan_gives_way_to_live_work_before_each_batch_of_tasks_and_each_tag(world: World) -> None:
    """The first sync's scan makes a task (and a tag) for thousands of invoices: bulk work, paced before each
    batch of new tasks and each contact (crm_qb.sync.pacing), so it never makes a long run of CRM calls while live
    work waits."""
    contacts = [world.contact(f"c{n}") for n in range(3)]
    for n in range(3):
        world.invoice(f"10{n}", f"c{n}")
    world.configure(tag_enabled=True)
    seen: list[tuple[int, int]] = []  # (tasks, tagged contacts) in the CRM at each pause

    def pace() -> None:
        seen.append((sum(len(world.tasks(c)) for c in contacts),
                     sum(TAG in world.crm_contact(c)["tags"] for c in contacts)))

    with world.app.app_context():
        services = replace(runtime(world.app).sync_services(), pace=pace)
        result = scan_connection(services, world.connection_id, now=overdue_by(1)).to_json()
    assert (result["created"], result["tagged"]) == (3, 3)
    assert seen == [(0, 0), (3, 0), (3, 1), (3, 2)]  # one pause before the batch of three, then each contact


def test_a_tag_write_that_meets_a_concurrent_edit_rereads_and_keeps_both(world: World, app: Flask) -> None:
    contact = world.contact("c1", tags=["vip"])
    world.invoice("101", "c1")
    world.configure(tag_enabled=True, enabled=False)

    class EditedMeanwhile(RestConnector):
        """A real connector; a CRM user adds a tag between our first read and our write."""

        edits = 0

        def get_contact(self, contact_id: str) -> Any:
            contact_now = super().get_contact(contact_id)
            if not self.edits:
                self.edits += 1
                world.http.patch(f"{world.crm.url}/_sandbox/contacts/{contact_id}", json={"tags": ["vip", "new"]},
                                 timeout=5)
            return contact_now

    result = world.scan(overdue_by(1), crm=EditedMeanwhile(world.crm.url, CRM_TOKEN))
    assert result["tagged"] == 1 and result["created"] == 0
    assert world.crm_contact(contact)["tags"] == ["vip", "new", TAG]


def test_scan_invoice_handles_only_that_invoice(world: World, app: Flask) -> None:
    contact = world.contact("c1")
    world.invoice("101", "c1")
    world.invoice("102", "c1")
    with app.app_context():
        assert scan_invoice(runtime(app).sync_services(), world.connection_id, "101", now=overdue_by(14)).created == 1
    assert len(world.tasks(contact)) == 1
    world.pay_invoice("101")
    with app.app_context():
        assert scan_invoice(runtime(app).sync_services(), world.connection_id, "101",
                            now=overdue_by(14)).completed == 1


def test_no_tasks_while_disabled_or_for_unlinked_customers_but_paid_still_completes(world: World) -> None:
    contact = world.contact("c1")
    world.invoice("101", "c1")
    world.invoice("900", "not-linked")
    world.scan(overdue_by(1))
    world.configure(enabled=False)
    assert world.scan(overdue_by(14))["created"] == 0
    world.pay_invoice("101")
    assert world.scan(overdue_by(15))["completed"] == 1
    assert [t["status"] for t in world.tasks(contact)] == ["done"]
    assert [row[0] for row in world.rows()] == ["101"]


def test_custom_rules_and_templates_are_used(world: World) -> None:
    contact = world.contact("c1")
    world.invoice("101", "c1")
    world.configure(rule_days=[7], title_template="Chase {customer}: {balance} {{late}}",
                    description_template="See {deep_link}")
    assert world.scan(overdue_by(6))["created"] == 0
    assert world.scan(overdue_by(7))["created"] == 1
    [task] = world.tasks(contact)
    assert task["title"] == "Chase QBO customer c1: USD 1,234.50 {late}"
    assert task["description"] == f"See {qbo_page('invoice', 'txnId', '101', base=APP_BASE)}\n\n" + task_marker(
        world.connection_id, "101", 7)


def test_bad_settings_are_refused_with_a_clear_error_and_nothing_is_stored(world: World, app: Flask) -> None:
    with app.app_context():
        with pytest.raises(InvalidFollowupSettings, match=r"title_template: unknown placeholder \{amout\}"):
            configure_followups(world.connection_id, {"title_template": "Pay {amout}", "rule_days": [2]})
        with pytest.raises(InvalidFollowupSettings, match=r"rule_days\[0\]: must be a whole number >= 1"):
            configure_followups(world.connection_id, {"rule_days": [0, 5]})
        with pytest.raises(InvalidFollowupSettings, match="colour: unknown setting"):
            configure_followups(world.connection_id, {"colour": "red"})
        with pytest.raises(UnknownConnectionError, match="no connection 999"):
            configure_followups(999, {})
        assert followup_settings(world.connection_id).rule_days == (1, 14, 30)
        assert configure_followups(world.connection_id, {"rule_days": [30, 7, 7]}).rule_days == (7, 30)
        assert configure_followups(world.connection_id, {}, reset=True).rule_days == (1, 14, 30)


def test_the_hourly_job_enqueues_one_scan_per_connection_that_a_worker_runs(world: World, app: Flask,
                                                                              redis_client: Any) -> None:
    from workers import followup_jobs
    from workers.queues import BACKFILL, LIVE_QUEUE_NAMES, queue
    from workers.schedule import PERIODIC, tick
    from workers.worker import build_worker

    contact = world.contact("c1")
    world.invoice("101", "c1", due=datetime.now(UTC).date() - timedelta(days=2))
    second = add_connection(app, crm_url=world.crm.url).id
    assert [p.every for p in PERIODIC if p.func is followup_jobs.enqueue_followup_scans] == [3600]
    now = datetime.now(UTC).timestamp()
    assert f"followup-scans-{int(now // 3600)}" in tick(app, now)
    with app.app_context():
        assert followup_jobs.enqueue_followup_scans() == 2
        assert followup_jobs.enqueue_followup_scans() == 0  # this period's scans are already waiting
    period = int(datetime.now(UTC).timestamp() // 3600)
    scans = {JobIds.followup_scan(world.connection_id, period), JobIds.followup_scan(second, period)}
    assert set(queue(redis_client, BACKFILL, RedisKeys("crm_qb_test")).job_ids) == scans  # bulk work
    build_worker(app, queues=LIVE_QUEUE_NAMES).work(burst=True)
    assert world.tasks(contact) == []  # a live-only worker never takes a connection's scan
    build_worker(app).work(burst=True)
    assert len(world.tasks(contact)) == 1
    with app.app_context():
        assert followup_jobs.enqueue_invoice_scan(redis_client, RedisKeys("crm_qb_test"), world.connection_id, "1/01") \
            is not None
    build_worker(app).work(burst=True)
    assert len(world.tasks(contact)) == 1
