"""Records a first sync could not write are failures like any other: listed on the Failures page, in the API and
the CLI with the reason in words, the other side's error, its code and intuit_tid; counted in /healthz and the
health panel; retried (one, or all) by a worker as the report's "Retry failed" does, or dismissed; each audited.

The failures are real refusals over HTTP, nothing is stubbed: the reference CRM refuses the contacts the first
sync creates for two QBO customers whose names are too long for it (QBO takes 500 characters, the CRM 255).
Each retry or dismissal is followed by a look at both sides.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from crm_qb.db import db
from crm_qb.models import LinkState, SyncRunRecord
from crm_qb.runtime import EXTENSION_KEY, runtime
from crm_qb.sync.firstsync import service, store
from tests.integration.test_console_api_cli import _api, _cli
from tests.support import sync as support
from tests.support.console import admin, post
from tests.support.sync import Harness

# What this file tests does not depend on the database: its SQLite variants run in CI, its PostgreSQL ones with the
# slow tests (tests/conftest.py), to keep CI under 15 minutes.
pytestmark = pytest.mark.postgresql_slow


qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness

OPERATOR = "operator-token-" + "z" * 24
LONG, OTHER = "Ivy " + "S" * 300, "Kay " + "T" * 300


def _first_sync_with_two_failures(h: Harness) -> dict[str, Any]:
    """A first sync that fails two records (the CRM refuses both contacts); the ids involved."""
    customer = h.qbo.create_customer(DisplayName=LONG)
    other = h.qbo.create_customer(DisplayName=OTHER)
    with h.app.app_context():
        run_id = service.open_first_sync(runtime(h.app).jobs, h.connection_id).id
    h.work()  # the preview
    with h.app.app_context():
        assert service.start(runtime(h.app).jobs, run_id)
    h.work()  # the run
    with h.app.app_context():
        failed = {r.object_id: r.id for r in store.failed_records(run_id)}
        assert store.run_of(run_id).state == "done"  # type: ignore[union-attr]
        db.session.rollback()
    assert set(failed) == {customer["Id"], other["Id"]}
    return {"run": run_id, "customer": customer["Id"], "other": other["Id"], "failed": failed}


def _record(h: Harness, record_id: int) -> SyncRunRecord:
    with h.app.app_context():
        row = db.session.scalar(select(SyncRunRecord).where(SyncRunRecord.id == record_id))
        assert row is not None
        db.session.expunge(row)
        db.session.rollback()
        return row


def _with_operator(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    rt = runtime(h.app)
    monkeypatch.setitem(h.app.extensions, EXTENSION_KEY,
                        replace(rt, settings=replace(rt.settings, operator_token=OPERATOR)))


def _failed_records_count(h: Harness) -> int:
    details = h.client.get("/healthz/details", headers={"Authorization": f"Bearer {OPERATOR}"}).get_json()
    return int(details["checks"]["records"]["failed"])


def test_sync_failures_are_listed_counted_and_retried_one_then_all(harness: Harness,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness
    _with_operator(h, monkeypatch)
    seeded = _first_sync_with_two_failures(h)
    key = h.api_key()
    failures = {f["entity_id"]: f for f in _api(h, "GET", "failures", key).get_json()["failures"]}
    first, second = failures[seeded["customer"]], failures[seeded["other"]]
    assert (first["kind"], first["id"], first["run_id"]) == ("sync_record", seeded["failed"][seeded["customer"]],
                                                            seeded["run"])
    assert (first["source"], first["entity"], first["state"]) == ("qbo", "Customer", "failed")
    assert first["operation"] == f"first sync {seeded['run']}" and first["attempts"] == 1 and first["last_try"]
    assert first["words"].startswith("The CRM refused the values") and "display_name" in first["error"]
    assert first["code"] == "invalid_field" and first["intuit_tid"] is None

    # Counted wherever failures are counted.
    assert h.client.get("/healthz").get_json()["status"] == "degraded"
    assert _failed_records_count(h) == 2
    health = _api(h, "GET", "health", key).get_json()
    assert health["failed_records"] == 2 and health["failures"] == 2
    # The chart counts them in the hour of their last try (no audit entry is written for them).
    assert sum(hour["failures"] for hour in health["hourly"]) == 2 and health["hourly"][-1]["failures"] == 2
    admin(h, "health")
    health_page = h.client.get(f"/admin/connections/{h.connection_id}/health").get_data(as_text=True)
    assert '<dd id="failed-records">2</dd>' in health_page and "and 2 failures in 48 hours" in health_page
    listed = _cli(h, monkeypatch, "failures", "list", str(h.connection_id))["failures"]
    assert {(f["kind"], f["id"]) for f in listed} == {("sync_record", i) for i in seeded["failed"].values()}

    # The bookkeeper shortens one name; retry that one record over the API.
    h.qbo.edit_customer(seeded["customer"], DisplayName="Ivy Stone")
    h.qbo.edit_customer(seeded["other"], DisplayName="Kay Tools")
    answer = _api(h, "POST", "failures/retry", key, {"kind": "sync_record", "id": first["id"]})
    assert answer.status_code == 200 and answer.get_json()["retried"] == 1
    h.work()
    link = h.link_of_customer(seeded["customer"])
    assert link.state == LinkState.LINKED and h.contact(str(link.crm_contact_id))["display_name"] == "Ivy Stone"
    assert h.qbo.customer(seeded["customer"])["DisplayName"] == "Ivy Stone"
    record = _record(h, first["id"])
    assert (record.action, record.attempts) == ("create_in_crm", 2)
    assert _record(h, second["id"]).attempts == 1  # only the chosen record was retried
    assert [c for c in h.contacts() if c["display_name"] == "Kay Tools"] == []
    [retried] = h.audit("failure.retried")
    assert retried.diff == {"by": "api key", "kind": "sync_record", "ids": [first["id"]]}
    assert [f["id"] for f in _api(h, "GET", "failures", key).get_json()["failures"]] == [second["id"]]

    # "Retry all" on the Failures page.
    csrf = admin(h, "failures")
    page = h.client.get(f"/admin/connections/{h.connection_id}/failures").get_data(as_text=True)
    assert f'id="failure-sync_record-{second["id"]}"' in page and f"first sync {seeded['run']}" in page
    assert post(h, "failures/retry", csrf_token=csrf, kind="all").status_code == 303
    h.work()
    link = h.link_of_customer(seeded["other"])
    assert link.state == LinkState.LINKED and h.contact(str(link.crm_contact_id))["display_name"] == "Kay Tools"
    assert _record(h, second["id"]).action == "create_in_crm"
    assert _api(h, "GET", "failures", key).get_json()["failures"] == []
    assert h.client.get("/healthz").get_json()["status"] == "ok" and _failed_records_count(h) == 0
    assert h.audit("failure.retried")[-1].diff["by"].startswith("admin session ")


def test_a_dismissed_sync_failure_leaves_the_list_but_not_the_report(harness: Harness,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness
    _with_operator(h, monkeypatch)
    seeded = _first_sync_with_two_failures(h)
    one, two = seeded["failed"][seeded["customer"]], seeded["failed"][seeded["other"]]
    contacts = len(h.contacts())
    dismissed = _cli(h, monkeypatch, "failures", "dismiss", str(h.connection_id), "--sync-record", str(one))
    assert dismissed == {"dismissed": 1}
    key = h.api_key()
    assert [f["id"] for f in _api(h, "GET", "failures", key).get_json()["failures"]] == [two]
    assert _failed_records_count(h) == 1 and _api(h, "GET", "health", key).get_json()["failed_records"] == 1
    with h.app.app_context():
        assert {r.id for r in store.failed_records(seeded["run"])} == {one, two}  # the report still lists both
        db.session.rollback()
    assert _api(h, "POST", "failures/dismiss", key, {"kind": "sync_record", "id": one}).status_code == 404
    assert _api(h, "POST", "failures/dismiss", key, {"kind": "sync_record"}).get_json()["dismissed"] == 1
    assert _api(h, "GET", "failures", key).get_json()["failures"] == []
    assert h.client.get("/healthz").get_json()["status"] == "ok"
    entries = h.audit("failure.dismissed")
    assert [e.diff["ids"] for e in entries] == [[one], [two]]
    assert entries[0].diff["by"] != "api key" and entries[1].diff["by"] == "api key"
    # Dismissing writes to neither side.
    assert len(h.contacts()) == contacts
    assert len(h.qbo.customer(seeded["customer"])["DisplayName"]) == len(LONG)
