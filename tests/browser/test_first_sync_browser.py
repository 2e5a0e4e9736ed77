"""The first-sync and history-import pages in headless Chromium: preview, live progress, report, history form.

Everything is real and on 127.0.0.1: crm-qb served by werkzeug on a thread, the QBO sandbox (a seeded realm, with
injected latency while the run is watched) and the reference CRM. The preview is computed by an RQ worker in
burst mode; the run is executed on a thread so the page can be watched while it goes. Pages are operated with
the keyboard (Tab to a control, Enter), controls are found by their accessible names, and each page leaves one
screenshot in tests/artifacts/.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from redis import Redis
from werkzeug.serving import make_server

from crm_qb.runtime import runtime
from crm_qb.sandbox.crm.server import start_server
from crm_qb.sandbox.crm.state import SandboxConfig as CrmConfig
from crm_qb.sync.context import build_context
from crm_qb.sync.firstsync import service, store
from crm_qb.web.signing import admin_url
from tests.conftest import REDIS_TEST_URL
from tests.support import wait_for
from tests.support.browser import tab_misses, unlabelled
from tests.support.sync import CRM_TOKEN, Harness, QboSandbox, running_harness

pytestmark = pytest.mark.browser

PAGE = 2


@dataclass
class Site:
    """crm-qb serving a harness connected to a seeded realm, and the admin link of that connection."""

    h: Harness
    base: str
    admin: str

    @property
    def pages(self) -> str:
        return f"{self.base}/admin/connections/{self.h.connection_id}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    redis = Redis.from_url(REDIS_TEST_URL)
    redis.flushdb()
    qbo, crm = QboSandbox(), start_server(config=CrmConfig(token=CRM_TOKEN))
    qbo.realm_id = qbo.post("/_sandbox/realms", {"customers": 12, "transactions": 30, "multicurrency": False,
                                                 "seed": 7})["realm_id"]
    tmp = tmp_path_factory.mktemp("first-sync-browser")
    try:
        with running_harness(tmp, f"sqlite:///{tmp / 'crm_qb.sqlite3'}", qbo, crm) as h:
            server = make_server("127.0.0.1", 0, h.app, threaded=True)
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
            thread.start()
            base = f"http://127.0.0.1:{server.server_port}"
            link = admin_url(base, h.app.config["SECRET_KEY"], h.connection_id)
            _crm_contacts(h)
            try:
                yield Site(h, base, link)
            finally:
                server.shutdown()
                thread.join(5)
    finally:
        crm.stop()
        qbo.stop()
        redis.flushdb()
        redis.close()


@pytest.fixture(scope="module")
def page(browser: Any, site: Site) -> Iterator[Any]:
    """One signed-in browser page for the module (the admin session is a cookie), 1200 px wide."""
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.route("**/*", lambda route: route.continue_() if "//127.0.0.1" in route.request.url else route.abort())
    opened = context.new_page()
    opened.goto(site.admin)
    yield opened
    context.close()


def _crm_contacts(h: Harness) -> None:
    """CRM contacts that make every list of the preview worth a look: one shares a customer's email (a pair to
    link), two share another customer's company (a review with two candidates), one is new (created in QBO)."""
    with h.app.app_context():
        ctx = build_context(runtime(h.app).sync_services(), h.connection_id)
        try:
            customers = list(ctx.qbo.query_all("Customer", "Active IN (true, false)"))
        finally:
            ctx.close()
    parents = {(c.get("ParentRef") or {}).get("value") for c in customers}
    companies = [c.get("CompanyName") for c in customers]
    plain = [c for c in customers if not c.get("ParentRef") and c["Id"] not in parents and len(c["DisplayName"]) < 80]
    with_email = next(c for c in plain if (c.get("PrimaryEmailAddr") or {}).get("Address"))
    shared = next(c for c in plain if c is not with_email and c.get("CompanyName")
                  and companies.count(c["CompanyName"]) == 1)
    h.crm_user("POST", "/contacts", {"first_name": "Dana", "last_name": "Scully",
                                     "email": with_email["PrimaryEmailAddr"]["Address"]})
    for first in ("Ann", "Bob"):
        h.crm_user("POST", "/contacts", {"first_name": first, "last_name": "Twin", "company": shared["CompanyName"],
                                         "email": f"{first.lower()}@twins.example.com"})
    h.crm_user("POST", "/contacts", {"first_name": "Grace", "last_name": "Hopper", "email": "grace@example.com"})


def tab_to(page: Any, element_id: str, limit: int = 60) -> None:
    """Press Tab until the element with ``element_id`` has the focus (fails if it is not reachable)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
    raise AssertionError(f"#{element_id} cannot be reached with the keyboard")


def run_id(site: Site) -> int:
    with site.h.app.app_context():
        run = store.latest(site.h.connection_id, store.FIRST)
        assert run is not None
        return run.id


def test_preview_page_appears_by_itself_and_its_lists_work_by_keyboard(page: Any, site: Site, artifacts: Path) -> None:
    with site.h.app.app_context():
        service.open_first_sync(runtime(site.h.app).jobs, site.h.connection_id)
    page.goto(f"{site.pages}/sync")
    assert page.get_by_role("status").inner_text().startswith("The preview is being computed")
    site.h.work()  # the worker computes the preview; the page notices and shows it without a manual reload
    page.get_by_role("list", name="What the run will do").wait_for(timeout=20000)
    assert page.title().startswith("First sync")
    assert "Nothing has been written" in page.locator("main").inner_text()
    transactions = page.get_by_role("link", name="30 Transactions to mirror")
    assert transactions.is_visible()
    tab_to(page, "count-transaction")
    page.keyboard.press("Enter")
    page.wait_for_url("**list=transaction**")
    assert page.locator("table caption").inner_text().startswith("Transactions to mirror: 30 record(s)")
    assert page.locator("table tbody tr").count() == 30
    page.goto(f"{site.pages}/sync/preview?list=review")
    review = page.locator("table tbody tr").first.inner_text()
    assert "ann@twins.example.com" in review and "bob@twins.example.com" in review  # both candidates
    page.screenshot(path=str(artifacts / "first-sync-preview-review.png"), full_page=True)
    page.goto(f"{site.pages}/sync/preview?list=link")
    assert "CRM contact" in page.locator("table tbody").inner_text()  # the pair names its contact
    assert page.get_by_role("button", name="Start the first sync").is_visible()
    assert unlabelled(page) == [] and tab_misses(page) == []
    page.screenshot(path=str(artifacts / "first-sync-preview.png"), full_page=True)


def test_progress_updates_without_reloading_and_ends_on_the_report(page: Any, site: Site, artifacts: Path) -> None:
    h = site.h
    requests.post(f"{h.qbo.url}/_sandbox/faults", json={"realm": h.qbo.realm_id, "latency_ms": 250},
                  timeout=10).raise_for_status()
    page.goto(f"{site.pages}/sync/preview")
    tab_to(page, "start")
    page.keyboard.press("Enter")  # the form posts; a worker would take the job: here a thread runs it
    page.wait_for_url("**/sync/progress**")
    page.evaluate("window.__notReloaded = true")
    assert page.get_by_role("progressbar", name="QuickBooks customers").is_visible()
    assert page.get_by_role("progressbar", name="All phases").is_visible()
    worker = threading.Thread(target=_execute, args=(h, run_id(site)), daemon=True)
    worker.start()
    try:
        wait_for(lambda: int(page.locator("#progress-done").inner_text()) > 4, timeout=60,
                 what="the progress to move on the page")
        assert page.evaluate("window.__notReloaded === true")  # updated in place, not reloaded
        assert page.get_by_role("heading", level=1).is_visible() and unlabelled(page) == []
        page.screenshot(path=str(artifacts / "first-sync-progress.png"), full_page=True)
        page.wait_for_url("**/sync/report", timeout=120000)  # the script moves on when the run is done
    finally:
        worker.join(120)
        requests.delete(f"{h.qbo.url}/_sandbox/faults", timeout=10).raise_for_status()


def _history_state(site: Site) -> str | None:
    with site.h.app.app_context():
        run = store.latest(site.h.connection_id, store.HISTORY)
        return run.state if run is not None else None


def _execute(h: Harness, run: int) -> None:
    with h.app.app_context():
        service.execute(runtime(h.app).sync_services(), run, page_size=PAGE)


def test_report_page_shows_failures_with_their_reason(page: Any, site: Site, artifacts: Path) -> None:
    page.goto(f"{site.pages}/sync/report")
    assert "Done" in page.locator("#report-state").inner_text()
    assert page.get_by_role("link", name="Download the report (CSV)").get_attribute("download") is not None
    tab_to(page, "retry-failed")
    failed = page.get_by_role("navigation", name="Filter by outcome").get_by_role("link", name=re.compile(r"^failed"))
    count = int(re.findall(r"\d+", failed.inner_text())[0])
    failed.focus()
    page.keyboard.press("Enter")
    page.wait_for_url("**outcome=failed**")
    rows = page.locator("table").nth(1).locator("tbody tr")
    assert count >= 1 and rows.count() == count, page.locator("main").inner_text()
    assert "The CRM refused the values of this record" in rows.first.inner_text()
    assert unlabelled(page) == [] and tab_misses(page) == []
    page.screenshot(path=str(artifacts / "first-sync-report.png"), full_page=True)


def test_history_form_labels_and_the_page_without_javascript(browser: Any, site: Site, artifacts: Path) -> None:
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1200, "height": 900})
    page = context.new_page()
    try:
        page.goto(site.admin)
        page.goto(f"{site.pages}/history")
        page.get_by_label("From (first transaction date)").fill("2000-01-01")
        page.get_by_label("To (last transaction date)").fill("1999-01-01")
        page.get_by_role("button", name="Preview the import").click()
        assert "ends (1999-01-01) before it starts" in page.get_by_role("alert").inner_text()
        assert page.get_by_label("From (first transaction date)").get_attribute("aria-invalid") == "true"
        page.screenshot(path=str(artifacts / "history-import-form.png"), full_page=True)
        page.get_by_label("To (last transaction date)").fill("2100-01-01")
        page.get_by_label("To (last transaction date)").press("Enter")
        page.wait_for_url("**/history/preview**")
        # Without JavaScript the waiting page refreshes itself.
        assert page.locator('meta[http-equiv="refresh"]').count() == 1
        site.h.work()
        wait_for(lambda: _history_state(site) == "previewed", what="the history preview to be computed")
        page.reload()
        assert page.get_by_role("list", name="What the run will do").is_visible(), page.locator("main").inner_text()
        page.screenshot(path=str(artifacts / "history-import-preview.png"), full_page=True)
    finally:
        context.close()
