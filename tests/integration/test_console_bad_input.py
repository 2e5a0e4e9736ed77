"""Bad input on the admin console and its JSON API: a readable page (HTML) or the contract's JSON error with a
4xx status, never a 500, a stack trace, or an action on more records than asked for.

Each case is what an operator (or a script) can type: a failure id that is not a number, or one of another
connection; filters longer than their columns or with a NUL; a date range that ends before it starts; a CRM
user or contact id no row could hold; a settings body of the wrong shape; a page that does not exist.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from crm_qb.db import db, utcnow
from crm_qb.models import AuditEntry, SyncRun, SyncRunRecord
from crm_qb.web import admin_pages
from tests.integration.test_console_api_cli import _api
from tests.support import sync as support
from tests.support.connections import add_connection
from tests.support.console import admin, post
from tests.support.sync import Harness

qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness


def _failed_record(h: Harness) -> int:
    """A record a poll could not apply (an audit entry with outcome ``failed``), as the Failures page lists it."""
    with h.app.app_context():
        entry = AuditEntry(connection_id=h.connection_id, action="customer.update", direction="qbo_to_crm",
                           entity="Customer", entity_id="1", outcome="failed", message="CRM answered 400")
        db.session.add(entry)
        db.session.commit()
        return entry.id


def _outcome(h: Harness, entry_id: int) -> str:
    with h.app.app_context():
        outcome = db.session.scalar(select(AuditEntry.outcome).where(AuditEntry.id == entry_id))
        db.session.rollback()
        return str(outcome)


def _page_text(response: object) -> str:
    html = response.get_data(as_text=True)  # type: ignore[attr-defined]
    assert "Traceback" not in html and "sqlalchemy" not in html.lower() and "<h1>" in html
    return str(html)


def test_a_bad_failure_id_on_the_page_is_a_400_and_dismisses_nothing(harness: Harness) -> None:
    h = harness
    entry = _failed_record(h)
    csrf = admin(h, "failures")
    for bad in ("abc", "99999999999", "0", "-1", "1.5"):
        answer = post(h, "failures/dismiss", csrf_token=csrf, kind="record", id=bad)
        assert answer.status_code == 400, bad
        assert "id must be a failure&#39;s number" in _page_text(answer)
    assert _outcome(h, entry) == "failed"  # before, a bad id was read as "all" and dismissed it
    assert post(h, "failures/dismiss", csrf_token=csrf, kind="record", id=str(entry)).status_code == 303
    assert _outcome(h, entry) == "failed_dismissed"


def test_an_id_too_large_for_a_row_is_a_400_in_the_api(harness: Harness) -> None:
    h = harness
    key = h.api_key()
    for bad in (10**30, 2**31, 0, -4):
        answer = _api(h, "POST", "failures/dismiss", key, {"kind": "sync_record", "id": bad})
        assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "invalid_id", bad


def test_a_sync_record_of_another_connection_is_not_found(harness: Harness) -> None:
    h = harness
    other = add_connection(h.app)
    with h.app.app_context():
        run = SyncRun(connection_id=other.id, kind="first", state="done")
        db.session.add(run)
        db.session.flush()
        record = SyncRunRecord(run_id=run.id, stage="run", phase="customers", entity="Customer", object_id="7",
                               action="failed", reason="refused", updated_at=utcnow())
        db.session.add(record)
        db.session.commit()
        record_id = record.id
    key = h.api_key()
    for verb in ("retry", "dismiss"):
        answer = _api(h, "POST", f"failures/{verb}", key, {"kind": "sync_record", "id": record_id})
        assert answer.status_code == 404 and answer.get_json()["error"]["code"] == "failure_not_found"
    csrf = admin(h, "settings")  # the Failures page has no form while nothing failed here
    answer = post(h, "failures/dismiss", csrf_token=csrf, kind="sync_record", id=str(record_id))
    assert answer.status_code == 404 and "no failed sync record" in _page_text(answer)
    with h.app.app_context():
        assert db.session.get(SyncRunRecord, record_id).dismissed_at is None  # type: ignore[union-attr]
        db.session.rollback()


@pytest.mark.parametrize(("query", "field"), [
    ("kind=" + "k" * 100, "kind"), ("outcome=" + "o" * 40, "outcome"), ("kind=a%00b", "kind"),
    ("outcome=failed%00", "outcome"), ("record=Ann%00", "record"), ("since=2026-02-01&until=2026-01-01", "until"),
    ("since=2026-02-30", "since"), ("page=" + "9" * 300, "page"),
])
def test_bad_audit_filters_are_400_on_the_page_and_in_the_api(harness: Harness, query: str, field: str) -> None:
    h = harness
    admin(h, "audit")
    page = h.client.get(f"/admin/connections/{h.connection_id}/audit?{query}")
    assert page.status_code == 400 and "<h1>Bad filter</h1>" in _page_text(page)
    assert len(page.get_data(as_text=True)) < 20_000  # the bad value is quoted short, not echoed whole
    answer = _api(h, "GET", f"audit?{query}", h.api_key())
    assert answer.status_code == 400 and answer.get_json()["error"]["code"] == f"invalid_{field}"


def test_a_record_filter_longer_than_an_id_searches_names(harness: Harness) -> None:
    h = harness
    admin(h, "audit")
    for record in ("x" * 129, "y" * 300):
        page = h.client.get(f"/admin/connections/{h.connection_id}/audit?record={record}")
        assert page.status_code == 200 and "No entries" in _page_text(page), record
        answer = _api(h, "GET", f"audit?record={record}", h.api_key())
        assert answer.status_code == 200 and answer.get_json()["entries"] == []


def test_the_audit_dates_are_inclusive_and_may_be_one_day(harness: Harness) -> None:
    h = harness
    _failed_record(h)
    today = utcnow().date()
    answer = _api(h, "GET", f"audit?outcome=failed&since={today}&until={today}", h.api_key())
    assert answer.status_code == 200 and len(answer.get_json()["entries"]) == 1
    yesterday = today - timedelta(days=1)
    assert _api(h, "GET", f"audit?outcome=failed&until={yesterday}", h.api_key()).get_json()["entries"] == []


def test_a_crm_user_id_no_row_can_hold_is_refused_beside_the_form(harness: Harness) -> None:
    h = harness
    csrf = admin(h, "settings")
    long_user = "u" * 300
    page = post(h, "settings/time", csrf_token=csrf, **{f"time.users.{long_user}": "Vendor:1"})
    assert page.status_code == 400 and "Nothing was saved: no CRM user has this id" in _page_text(page)
    answer = _api(h, "PATCH", "time", h.api_key(), {"users": {"v" * 200: "Vendor:1"}})
    assert answer.status_code == 400 and answer.get_json()["error"]["field"] == "time.users." + "v" * 200


def test_a_contact_id_no_row_can_hold_is_refused_not_queued(harness: Harness) -> None:
    h = harness
    csrf = admin(h, "settings")
    for bad in ("a\x00b", "c" * 200):
        page = post(h, "contacts/sync-now", csrf_token=csrf, crm_contact_id=bad)
        assert page.status_code == 400 and "cannot be a CRM contact id" in _page_text(page)
    answer = _api(h, "POST", f"contacts/{'c' * 200}/sync-now", h.api_key())
    assert answer.status_code == 404 and answer.get_json()["error"]["code"] == "contact_not_found"
    assert _queued(h) == []


def _queued(h: Harness) -> list[str]:
    from crm_qb.runtime import runtime

    with h.app.app_context():
        return [key.decode() for key in runtime(h.app).redis.keys("rq:job:sync-contact-now*")]


def test_settings_of_the_wrong_shape_are_400(harness: Harness) -> None:
    h = harness
    key = h.api_key()
    for body in ({"sync": []}, {"followups": "on"}, {"sync": 5}):
        answer = _api(h, "PATCH", "settings", key, body)
        assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "invalid_body", body
    assert _api(h, "PATCH", "settings", key, {"sync": None}).status_code == 200  # null: nothing to change


def test_unknown_console_pages_and_errors_are_console_pages(harness: Harness,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness
    admin(h, "health")
    base = f"/admin/connections/{h.connection_id}"
    missing = h.client.get(f"{base}/nope")
    assert missing.status_code == 404 and missing.mimetype == "text/html" and "<h1>Not Found</h1>" in missing.text
    wrong = h.client.get(f"{base}/review/1")
    assert wrong.status_code == 405 and "<h1>Method Not Allowed</h1>" in wrong.text
    for answer in (missing, wrong):
        assert answer.headers["Cache-Control"] == "no-store" and "Error" in answer.text

    def broken(*_: object, **__: object) -> object:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(admin_pages.failure_store, "list_failures", broken)
    failed = h.client.get(f"{base}/failures")
    assert failed.status_code == 500 and failed.mimetype == "text/html"
    assert "<h1>Something went wrong</h1>" in failed.text and "secret internals" not in failed.text
    api = _api(h, "GET", "failures", h.api_key())  # the API answers in JSON, as before
    assert api.status_code == 500 and api.get_json()["error"]["code"] == "internal_error"
    assert "secret internals" not in api.text
