"""Earlier activities (DESIGN §9, ``sync/time/earlier.py``) against both sandboxes: billable time the CRM logged
before the connection, or before its contact was linked, that no hook ever brought, reaches QBO exactly once,
whether the backfill's walk, a link made later or a late hook sees it first."""

from __future__ import annotations

from typing import Any

import pytest

from crm_qb.models import LinkState, TimeState
from crm_qb.runtime import runtime
from crm_qb.sync.customers import review
from crm_qb.sync.pipeline.backfill import TIME, run_backfill
from tests.integration.test_time_sync import _entries, _hook, _log, _query, _world
from tests.support import sync as support
from tests.support.sync import Harness

qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness


def _time_in_qbo(harness: Harness) -> list[dict[str, Any]]:
    return _query(harness, "select * from TimeActivity", "TimeActivity")


def _backfill(harness: Harness) -> dict[str, Any]:
    with harness.app.app_context():
        return run_backfill(runtime().sync_services(), harness.connection_id).to_json()["phases"][TIME]


@pytest.mark.postgresql_slow  # the SQLite variant keeps it in CI (tests/conftest.py)
def test_activities_logged_before_the_connection_are_sent_once_by_the_backfill(harness: Harness) -> None:
    world = _world(harness)
    customer = harness.qbo.create_customer(DisplayName="Ada Byron", PrimaryEmailAddr={"Address": "ada@example.com"})
    ada = harness.crm_user("POST", "/contacts", {"first_name": "Ada", "last_name": "Byron",
                                                 "email": "ada@example.com"})  # no hook reaches crm-qb
    stranger = harness.crm_user("POST", "/contacts", {"first_name": "Nobody", "email": "nobody@example.com"})
    logged = [_log(harness, ada["id"], subject="Design review", duration_minutes=50),
              _log(harness, ada["id"], subject="Follow-up", duration_minutes=25),
              _log(harness, world["contact_id"], subject="Before the hooks", duration_minutes=15)]
    _log(harness, ada["id"], subject="Not billable", billable=False)
    _log(harness, ada["id"], subject="An email", type="email", duration_minutes=None)
    harness.set_sync(direction="qbo_to_crm")  # the stranger stays unlinked: its time is not read yet
    unlinked = _log(harness, stranger["id"], subject="Not linked", duration_minutes=10)
    harness.qbo.reset_counts()

    counts = _backfill(harness)

    assert (counts["created"], counts["failed"]) == (3, 0)
    sent = {(t["CustomerRef"]["value"], t["Minutes"], t["Description"].split(" — ")[0]) for t in _time_in_qbo(harness)}
    assert sent == {(customer["Id"], 50, "Design review"), (customer["Id"], 25, "Follow-up"),
                    (world["customer"]["Id"], 15, "Before the hooks")}
    assert harness.qbo.requests_by_endpoint().get("POST /batch") == 1  # the page's three creates in one batch
    assert unlinked["id"] not in _entries(harness)  # read again when the stranger is linked

    for activity in logged:  # the CRM's hooks for them arrive late: nothing is made twice
        _hook(harness, "created", activity)
    harness.work()
    again = _backfill(harness)
    assert (again["created"], again["unchanged"]) == (0, 3)
    assert len(_time_in_qbo(harness)) == 3
    assert {_entries(harness)[a["id"]].state for a in logged} == {TimeState.SYNCED}
    assert harness.failed_events() == []


def test_a_contact_linked_later_gets_the_activities_no_hook_brought(harness: Harness) -> None:
    _world(harness)
    harness.set_sync(direction="qbo_to_crm")  # the contact stays unlinked until QBO has its customer
    contact = harness.crm_user("POST", "/contacts", {"first_name": "Grace", "last_name": "Hopper",
                                                     "email": "grace@example.com"})
    harness.crm_hook("created", contact)
    harness.work()
    logged = [_log(harness, contact["id"], subject=f"Call {n}", duration_minutes=20 + n) for n in range(2)]
    assert _time_in_qbo(harness) == []

    customer = harness.qbo.create_customer(DisplayName="Grace Hopper",
                                           PrimaryEmailAddr={"Address": "grace@example.com"})
    harness.qbo_hook(customer["Id"], "created")
    harness.work()  # the drain links the contact; the time release after it reads the contact's activities

    assert sorted((t["Minutes"], t["CustomerRef"]["value"]) for t in _time_in_qbo(harness)) == [
        (20, customer["Id"]), (21, customer["Id"])]
    for activity in logged:
        _hook(harness, "created", activity)
    harness.work()
    assert len(_time_in_qbo(harness)) == 2
    assert harness.failed_events() == []


def test_a_contact_chosen_in_review_gets_its_earlier_time_at_once(harness: Harness) -> None:
    _world(harness)
    first = harness.crm_user("POST", "/contacts", {"first_name": "Pat", "last_name": "Lee", "email": "pat@example.com"})
    second = harness.crm_user("POST", "/contacts", {"first_name": "Patricia", "last_name": "Lee",
                                                    "email": "PAT@example.com"})
    customer = harness.qbo.create_customer(DisplayName="Pat Lee", PrimaryEmailAddr={"Address": "pat@example.com"})
    harness.qbo_hook(customer["Id"], "created")
    harness.work()  # two contacts share the email: the customer waits for a person
    [waiting] = [link for link in harness.links() if link.state == LinkState.REVIEW]
    _log(harness, second["id"], subject="Site visit", duration_minutes=40)
    _log(harness, first["id"], subject="Not this one", duration_minutes=5)

    with harness.app.app_context():
        review.resolve(runtime().sync_services(), harness.connection_id, waiting.id, "link", second["id"])

    [time] = _time_in_qbo(harness)  # no drain ran: the choice itself sent it
    assert (time["CustomerRef"]["value"], time["Minutes"]) == (customer["Id"], 40)
