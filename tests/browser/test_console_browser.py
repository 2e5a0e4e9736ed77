"""The admin console in headless Chromium: every page by keyboard, every field labelled, one screenshot each.

crm-qb is served on 127.0.0.1 with a connection to the QBO sandbox and the reference CRM (both on threads),
seeded through signed webhooks and a real worker: a customer waiting for review with two candidates, a
conflict, a failed event, a record the first sync failed (the CRM refused its name), audit entries. Actions
taken in the browser are applied by a burst worker and then checked on both sides.
Screenshots: tests/artifacts/console-*.png.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from sqlalchemy import select, update
from werkzeug.serving import make_server

from crm_qb.db import db
from crm_qb.models import EventStatus, InboundEvent, LinkState, SyncRunRecord
from crm_qb.runtime import runtime
from crm_qb.sandbox.crm.server import start_server
from crm_qb.sandbox.crm.state import SandboxConfig as CrmConfig
from crm_qb.sync.firstsync import service
from crm_qb.web import signing
from tests.conftest import REDIS_TEST_URL
from tests.integration.test_time_sync import _entity, _entries, _hook, _log, _time_activity
from tests.support.browser import tab_misses as _tab_misses
from tests.support.browser import unlabelled as _unlabelled
from tests.support.sync import CRM_TOKEN, Harness, QboSandbox, running_harness

pytestmark = pytest.mark.browser


@dataclass
class Console:
    """The served app, its harness and the seeded records."""

    base: str
    harness: Harness
    waiting_customer: str
    candidates: tuple[str, str]
    conflict_customer: str
    sync_failed_customer: str


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """crm-qb with a seeded connection, served over HTTP for the browser."""
    redis = Redis.from_url(REDIS_TEST_URL)
    redis.flushdb()
    qbo, crm = QboSandbox(), start_server(config=CrmConfig(token=CRM_TOKEN))
    tmp = tmp_path_factory.mktemp("console")
    try:
        with running_harness(tmp, f"sqlite:///{tmp / 'crm_qb.sqlite3'}", qbo, crm) as harness:
            server = make_server("127.0.0.1", 0, harness.app, threaded=True)
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            thread.start()
            try:
                yield _seed(harness, f"http://127.0.0.1:{server.server_port}")
            finally:
                server.shutdown()
                thread.join(5)
    finally:
        crm.stop()
        qbo.stop()
        redis.flushdb()
        redis.close()


def _seed(h: Harness, base: str) -> Console:
    first = h.crm_user("POST", "/contacts", {"first_name": "Pat", "last_name": "Lee", "email": "pat@example.com",
                                             "company": "Lee Tools"})
    second = h.crm_user("POST", "/contacts", {"first_name": "Patricia", "last_name": "Lee",
                                              "email": "pat@example.com"})
    waiting = h.qbo.create_customer(DisplayName="Pat Lee", PrimaryEmailAddr={"Address": "pat@example.com"})
    h.qbo_hook(waiting["Id"], "created")
    conflicted = h.qbo.create_customer(DisplayName="Grace Hopper", Notes="first")
    h.qbo_hook(conflicted["Id"], "created")
    failing = h.qbo.create_customer(DisplayName="Ada Lovelace")
    h.qbo_hook(failing["Id"], "created")
    h.work()
    too_long = h.qbo.create_customer(DisplayName="Mary " + "S" * 300)  # no webhook: the first sync meets it
    contact = str(h.link_of_customer(conflicted["Id"]).crm_contact_id)
    h.qbo.edit_customer(conflicted["Id"], Notes="from QuickBooks")
    h.crm_hook("updated", h.crm_user("PATCH", f"/contacts/{contact}", {"notes": "from the CRM"}))
    h.qbo_hook(conflicted["Id"])
    h.qbo.edit_customer(failing["Id"], DisplayName="Ada " + "L" * 300)  # the CRM refuses it: a failure
    h.qbo_hook(failing["Id"])
    h.work()
    with h.app.app_context():
        db.session.execute(update(InboundEvent).where(InboundEvent.attempts > 0)
                           .values(status=EventStatus.FAILED, attempts=8))
        db.session.commit()
        run_id = service.open_first_sync(runtime(h.app).jobs, h.connection_id).id
    h.work()  # its preview
    with h.app.app_context():
        service.start(runtime(h.app).jobs, run_id)
    h.work()  # the run: the CRM refuses the contact of the customer whose name is too long for it
    return Console(base, h, waiting["Id"], (first["id"], second["id"]), conflicted["Id"], too_long["Id"])


@pytest.fixture
def page(browser: Any, console: Console) -> Iterator[Any]:
    """A page signed in to the connection's admin console (only 127.0.0.1 reachable)."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.route("**/*", lambda route: route.continue_() if "//127.0.0.1" in route.request.url else route.abort())
    opened = context.new_page()
    token = signing.link_token(console.harness.app.config["SECRET_KEY"], console.harness.connection_id)
    opened.goto(f"{console.base}/admin/connections/{console.harness.connection_id}?token={token}")
    yield opened
    context.close()


def _go(page: Any, console: Console, path: str) -> None:
    page.goto(f"{console.base}/admin/connections/{console.harness.connection_id}/{path}")


def _tab_to(page: Any, name: str, limit: int = 120) -> None:
    """Press Tab until the focused element's text or label is ``name`` (keyboard only)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        focused = page.evaluate("() => (document.activeElement.getAttribute('aria-label') || "
                                "document.activeElement.innerText || document.activeElement.value || '').trim()")
        if focused == name:
            return
    raise AssertionError(f"{name!r} is not reachable with Tab")


def test_navigation_marks_the_current_page_and_works_by_keyboard(page: Any, console: Console,
                                                                  artifacts: Path) -> None:
    nav = page.get_by_role("navigation", name="Connection pages")
    assert [a.inner_text() for a in nav.get_by_role("link").all()] == [
        "Overview", "First sync", "Import history", "Health", "Review", "Conflicts", "Failures", "Settings",
        "Audit log"]
    assert nav.get_by_role("link", name="Overview").get_attribute("aria-current") == "page"
    assert "1 record(s) waiting for review" in page.locator("#attention").inner_text()
    page.screenshot(path=str(artifacts / "console-overview.png"), full_page=True)
    _tab_to(page, "Health")
    page.keyboard.press("Enter")
    page.wait_for_url("**/health")
    assert page.get_by_role("heading", level=1).inner_text() == "Health"
    assert _unlabelled(page) == []
    assert page.locator("svg.chart").get_attribute("role") == "img"
    assert "events and" in str(page.locator("svg.chart desc").text_content())
    page.screenshot(path=str(artifacts / "console-health.png"), full_page=True)


def test_review_shows_candidates_side_by_side_and_links_by_keyboard(page: Any, console: Console,
                                                                    artifacts: Path) -> None:
    _go(page, console, "review")
    article = page.get_by_role("article")
    assert "Why it waits: several CRM contacts match by email." in article.inner_text()
    cards = article.get_by_role("region").all()
    assert [c.get_attribute("aria-label") for c in cards] == [
        "This QuickBooks customer", "Candidate 1: Pat Lee", "Candidate 2: Patricia Lee"]
    assert "Lee Tools" in cards[1].inner_text() and "pat@example.com" in cards[2].inner_text()
    assert _unlabelled(page) == []
    page.screenshot(path=str(artifacts / "console-review.png"), full_page=True)
    _tab_to(page, "Link to Patricia Lee")
    page.keyboard.press("Enter")
    page.wait_for_url("**/review?done=resolving")
    assert "being applied" in page.get_by_role("status").inner_text()
    console.harness.work()
    link = console.harness.link_of_customer(console.waiting_customer)
    assert link.state == LinkState.LINKED and link.crm_contact_id == console.candidates[1]
    assert console.harness.contact(console.candidates[1])["display_name"] == "Pat Lee"
    page.reload()
    assert page.locator("#nothing-waiting").is_visible()


def test_conflicts_show_contact_names_and_plain_rules(page: Any, console: Console, artifacts: Path) -> None:
    _go(page, console, "conflicts")
    row = page.locator("table tbody tr").first
    text = row.inner_text()
    assert "Grace Hopper" in text and "Notes" in text
    assert "within 120 s of each other, so QuickBooks won" in text
    assert "link " not in text
    assert _unlabelled(page) == []
    page.screenshot(path=str(artifacts / "console-conflicts.png"), full_page=True)


def test_failures_in_words_and_retry_by_keyboard(page: Any, console: Console, artifacts: Path) -> None:
    h = console.harness
    _go(page, console, "failures")
    row = page.locator("table tbody tr").first
    assert "The CRM refused the data sent" in row.inner_text() and "CrmValidationError" in row.inner_text()
    with h.app.app_context():
        event_id = db.session.scalar(select(InboundEvent.id).where(InboundEvent.status == EventStatus.FAILED))
        record_id = db.session.scalar(select(SyncRunRecord.id).where(
            SyncRunRecord.action == "failed", SyncRunRecord.object_id == console.sync_failed_customer))
        db.session.rollback()
    synced = page.locator(f"#failure-sync_record-{record_id}").inner_text()  # Mary's
    assert "first sync" in synced and "The CRM refused the values" in synced and "display_name" in synced
    assert _unlabelled(page) == []
    page.screenshot(path=str(artifacts / "console-failures.png"), full_page=True)
    h.qbo.edit_customer(console.sync_failed_customer, DisplayName="Mary Shelley")  # the bookkeeper fixes it
    _tab_to(page, f"Retry first-sync record {record_id}")
    page.keyboard.press("Enter")
    page.wait_for_url("**/failures?done=retried")
    h.work()
    link = h.link_of_customer(console.sync_failed_customer)
    assert link.state == LinkState.LINKED and h.contact(str(link.crm_contact_id))["display_name"] == "Mary Shelley"
    page.reload()
    assert page.locator(f"#failure-sync_record-{record_id}").count() == 0
    _tab_to(page, f"Dismiss event {event_id}")
    page.keyboard.press("Enter")
    page.wait_for_url("**/failures?done=dismissed")
    # Left: the first sync's record of the customer whose rename the CRM refused (Ada's long name) as well.
    [left] = page.locator("table tbody tr").all()
    assert "first sync" in left.inner_text() and "Ada LLL" in left.inner_text()
    _tab_to(page, "Dismiss all")
    with page.expect_navigation():  # to the same address as before: wait for the new page itself
        page.keyboard.press("Enter")
    assert page.locator("#no-failures").is_visible()
    assert h.client.get("/healthz").get_json()["status"] == "ok"


def test_settings_by_keyboard_with_the_error_beside_the_field(page: Any, console: Console, artifacts: Path) -> None:
    _go(page, console, "settings")
    assert _unlabelled(page) == []
    page.screenshot(path=str(artifacts / "console-settings.png"), full_page=True)
    page.get_by_label("Poll every (minutes)").focus()
    page.keyboard.press("Control+A")
    page.keyboard.type("soon")
    page.keyboard.press("Enter")
    error = page.locator("#sync-poll_minutes-error")
    assert "enter a whole number" in error.inner_text()
    assert page.get_by_label("Poll every (minutes)").get_attribute("aria-describedby") == "sync-poll_minutes-error"
    page.get_by_label("Poll every (minutes)").fill("10")
    page.get_by_label("Notes").focus()
    page.keyboard.press("End")  # the last choice: Off
    _tab_to(page, "Save settings")
    page.keyboard.press("Enter")
    page.wait_for_url("**/settings?done=saved")
    [entry] = console.harness.audit("settings.changed")
    assert entry.diff["changes"]["sync.fields.notes"] == {"before": "both", "after": "off"}
    assert entry.diff["changes"]["sync.cdc_poll_seconds"] == {"before": 300, "after": 600}


def test_audit_filters_and_readable_rows(page: Any, console: Console, artifacts: Path) -> None:
    _go(page, console, "audit")
    assert _unlabelled(page) == []
    page.get_by_label("Record (name or id)").fill("Grace")
    page.get_by_label("Kind").select_option("link")
    page.get_by_label("Record (name or id)").press("Enter")
    page.wait_for_url("**/audit?*record=Grace*")
    rows = page.locator("table tbody tr")
    assert rows.count() >= 1
    assert all("Grace Hopper" in r.inner_text() for r in rows.all())
    assert "customer.unchanged" not in page.locator("table").inner_text()
    page.screenshot(path=str(artifacts / "console-audit.png"), full_page=True)


def test_billable_time_settings_by_keyboard_with_the_error_beside_the_field(page: Any, console: Console,
                                                                           artifacts: Path) -> None:
    h = console.harness
    contact = str(h.link_of_customer(console.conflict_customer).crm_contact_id)
    activity = _log(h, contact, owner_id="u3", service=None)  # Riley Chen: no employee or vendor matches
    _hook(h, "created", activity)
    h.work()
    vendor = _entity(h, "Vendor", DisplayName="Riley C. Contracting")
    _go(page, console, "settings")
    time_form = page.locator("form", has=page.get_by_role("group", name="Billable time"))
    assert "Riley Chen" in time_form.locator("#time-users").inner_text()
    assert "1 entry" in time_form.locator("#time-users").inner_text()
    assert _unlabelled(page) == []
    page.screenshot(path=str(artifacts / "console-settings-time.png"), full_page=True)

    page.get_by_label("QuickBooks person for Riley Chen").focus()
    page.keyboard.type("Boss:1")
    _tab_to(page, "Save billable time")
    page.keyboard.press("Enter")
    page.wait_for_selector("[id^=time-user-][id$=-error]")  # the page answered 400 with the error
    person = page.get_by_label("QuickBooks person for Riley Chen")
    error_id = person.get_attribute("aria-describedby")
    assert error_id and "expected Employee:ID or Vendor:ID" in page.locator(f"#{error_id}").inner_text()
    person.focus()
    page.keyboard.press("Control+A")
    page.keyboard.type(f"Vendor:{vendor['Id']}")
    page.keyboard.press("Enter")  # submits the form the field is in
    page.wait_for_url("**/settings?done=time-saved")
    assert "Billable time saved" in page.get_by_role("status").inner_text()
    entry = _entries(h)[activity["id"]]
    time = _time_activity(h, str(entry.qbo_id))
    assert time is not None and (time["NameOf"], time["VendorRef"]["value"]) == ("Vendor", vendor["Id"])
    changes = h.audit("settings.changed")[-1].diff["changes"]
    assert changes == {"time.users.u3": {"before": None, "after": f"Vendor:{vendor['Id']}"}}


PAGES = ("", "sync/preview", "sync/progress", "sync/report", "history", "health", "review", "conflicts", "failures",
         "settings", "audit")
def test_every_page_has_a_heading_labelled_controls_and_is_walked_by_keyboard(page: Any, console: Console) -> None:
    for path in PAGES:
        _go(page, console, path)
        headings = page.get_by_role("heading", level=1)
        assert headings.count() == 1 and headings.is_visible() and headings.inner_text().strip(), path
        assert _unlabelled(page) == [], path
        assert _tab_misses(page) == [], path
        assert "Traceback" not in page.content(), path


BAD = (("sync/preview?page=abc", 400, "Bad page number"), ("sync/preview?page=-1", 400, "Bad page number"),
       ("sync/preview?list=nope", 400, "No such list"), ("sync/report?outcome=nope", 400, "No such outcome"),
       ("history/report?page=0", 400, "Bad page number"), ("conflicts?page=abc", 400, "Bad page number"),
       ("audit?since=2026-02-30", 400, "Bad filter"), ("audit?since=2026-02-01&until=2026-01-01", 400, "Bad filter"),
       ("audit?kind=" + "k" * 300, 400, "Bad filter"), ("audit?record=Ada%00", 400, "Bad filter"),
       ("nope", 404, "Not Found"), ("review/1", 405, "Method Not Allowed"))


def test_bad_addresses_answer_a_readable_page_with_its_status(page: Any, console: Console, artifacts: Path) -> None:
    for path, status, title in BAD:
        answer = page.goto(f"{console.base}/admin/connections/{console.harness.connection_id}/{path}")
        assert answer is not None and answer.status == status, path
        assert page.get_by_role("heading", level=1).inner_text() == title, path
        alert = page.get_by_role("alert").inner_text()
        assert alert and len(alert) < 300 and "Traceback" not in page.content(), path
        assert page.get_by_role("link", name="Back to the connection's page").count() <= 1
        assert _unlabelled(page) == []
    _go(page, console, "audit?since=2026-02-30")
    page.screenshot(path=str(artifacts / "console-error-400.png"), full_page=True)
