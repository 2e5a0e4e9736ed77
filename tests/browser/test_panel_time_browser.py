"""The panel's Time section in headless Chromium: totals per currency, entries with deep links, held time, 360 px.

The contact's time entries are stored as the time sync stores them (``crm_qb.sync.time.store``); the flow that
makes them against both sandboxes is tests/integration/test_time_sync.py. The QBO links point at the local
sandbox host; the tests read them and never follow them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crm_qb.models import TimeState
from crm_qb.sync.time import store
from crm_qb.sync.time.store import EntryRecord
from tests.browser.conftest import LiveSite
from tests.support.folder import qbo_page

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def timed(live: LiveSite) -> LiveSite:
    """The live site's contact with three time entries: unbilled, billed (another currency) and held."""
    assert live.app is not None
    with live.app.app_context():
        store.save([
            _entry(live, "ac_1", "Kick-off call", TimeState.SYNCED, "41", date(2026, 11, 30), 90, "75.00", "112.50",
                   "USD"),
            _entry(live, "ac_2", "Design review", TimeState.BILLED, "42", date(2026, 11, 28), 30, "80.00", "40.00",
                   "EUR"),
            _entry(live, "ac_3", "Site visit", TimeState.HELD, None, None, 45, None, None, None,
                   hold=("user", "CRM user Riley Chen is not mapped to a QuickBooks employee or vendor")),
        ])
    return live


def _entry(live: LiveSite, activity_id: str, subject: str, state: TimeState, qbo_id: str | None,
           when: date | None, minutes: int, rate: str | None, amount: str | None, currency: str | None,
           hold: tuple[str, str] | None = None) -> EntryRecord:
    return EntryRecord(
        live.connection_id, activity_id, crm_contact_id=live.contact_id, crm_user_id="u1", crm_version=1,
        state=state, hold_kind=hold[0] if hold else None, hold_reason=hold[1] if hold else None,
        activity={"id": activity_id, "subject": subject, "type": "call", "duration_minutes": minutes,
                  "started_at": "2026-11-30T15:00:00Z"},
        qbo_id=qbo_id, qbo_customer_id="24", txn_date=when, minutes=minutes,
        hourly_rate=Decimal(rate) if rate else None, amount=Decimal(amount) if amount else None, currency=currency)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser page (1024 px wide) that may only reach 127.0.0.1."""
    context = browser.new_context(viewport={"width": 1024, "height": 900})
    context.route("**/*", lambda route: route.continue_() if "//127.0.0.1" in route.request.url else route.abort())
    opened = context.new_page()
    yield opened
    context.close()


def _time_rows(page: Any) -> list[dict[str, Any]]:
    return page.eval_on_selector_all("section.time table tbody tr", """rows => rows.map(r => ({
        cells: [...r.querySelectorAll('td, th')].map(c => c.innerText.replace(/\\s+/g, ' ').trim()),
        href: r.querySelector('th a') ? r.querySelector('th a').getAttribute('href') : null,
        target: r.querySelector('th a') ? r.querySelector('th a').getAttribute('target') : null}))""")


def test_the_time_section_shows_totals_per_currency_and_each_entry_with_its_deep_link(
        page: Any, timed: LiveSite, artifacts: Path) -> None:
    page.goto(timed.panel)
    section = page.locator("section.time")
    assert section.get_by_role("heading", name="Time").is_visible()
    totals = section.locator("dl.summary").inner_text()
    assert "Unbilled" in totals and "1.50 h, USD 112.50" in totals
    assert "Billed" in totals and "0.50 h, EUR 40.00" in totals
    found = _time_rows(page)
    assert [row["cells"][:3] for row in found] == [
        ["2026-11-30", "Kick-off call", "1:30"], ["2026-11-28", "Design review", "0:30"],
        ["2026-11-30", "Site visit", "0:45"]]
    assert found[0]["cells"][3] == "USD 112.50 at 75.00/h" and found[0]["cells"][4] == "Unbilled"
    assert found[1]["cells"][4] == "Billed"
    assert found[2]["cells"][4].startswith("Held") and "Riley Chen is not mapped" in found[2]["cells"][4]
    assert found[0]["href"] == qbo_page("timeactivity", "id", "41") and found[0]["target"] == "_blank"
    assert found[1]["href"] == qbo_page("timeactivity", "id", "42") and found[2]["href"] is None
    link = section.get_by_role("link", name="Open time for Kick-off call in QuickBooks (new tab)")
    link.focus()
    assert page.evaluate("document.activeElement.getAttribute('href')") == found[0]["href"]
    assert section.locator("caption").inner_text() == "3 billable activities logged in the CRM, as time in QuickBooks"
    page.screenshot(path=str(artifacts / "panel-time-1024.png"), full_page=True)


def test_the_time_section_fits_a_360_px_frame(browser: Any, timed: LiveSite, artifacts: Path) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 800})
    try:
        page = context.new_page()
        page.goto(timed.panel)
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0  # the table scrolls inside its region, the page does not
        assert page.locator("section.time").is_visible()
        page.screenshot(path=str(artifacts / "panel-time-360.png"), full_page=True)
    finally:
        context.close()
