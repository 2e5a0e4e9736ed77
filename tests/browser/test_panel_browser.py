"""The contact panel in headless Chromium: rows, badges, deep links, filters, a 360 px frame, and the CRM embed.

The QBO links point at the local sandbox host; the tests read them and never follow them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import LiveSite
from tests.support.folder import qbo_page

pytestmark = pytest.mark.browser


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser page (1024 px wide) that may only reach 127.0.0.1."""
    context = browser.new_context(viewport={"width": 1024, "height": 900})
    context.route("**/*", lambda route: route.continue_() if "//127.0.0.1" in route.request.url else route.abort())
    opened = context.new_page()
    yield opened
    context.close()


def rows(page: Any) -> list[dict[str, str]]:
    """Each body row: its header text, status badge and QBO link."""
    return page.eval_on_selector_all("table tbody tr", """rows => rows.map(r => ({
        name: r.querySelector('th[scope=row]').innerText.replace(/\\s+/g, ' ').trim(),
        badge: r.querySelector('.badge').innerText.trim(),
        href: r.querySelector('a.open-link').getAttribute('href'),
        target: r.querySelector('a.open-link').getAttribute('target'),
        rel: r.querySelector('a.open-link').getAttribute('rel'),
        label: r.querySelector('a.open-link').getAttribute('aria-label')}))""")


def test_rows_badges_and_deep_links(page: Any, live: LiveSite, artifacts: Path) -> None:
    page.goto(live.panel)
    assert page.title() == f"QuickBooks · Contact {live.contact_id}"
    found = rows(page)
    assert [r["name"] for r in found] == ["Invoice EU-2024-07", "Sales receipt SR-3", "Estimate E-17",
                                          "Payment CHK-881", "Invoice 1004", "Invoice 1003", "Invoice 1002",
                                          "Invoice 1001"]
    assert [r["badge"] for r in found] == ["Open", "Paid", "Pending", "Applied", "Voided", "Paid",
                                           "Overdue", "Overdue"]
    assert found[3]["href"] == qbo_page("recvpayment", "txnId", "5")
    assert found[0]["href"] == qbo_page("invoice", "txnId", "8")
    assert all(r["target"] == "_blank" and "noopener" in r["rel"] for r in found)
    assert found[1]["label"] == "Open sales receipt SR-3 in QuickBooks (new tab)"
    customer = page.get_by_role("link", name=f"Open Contact {live.contact_id} in QuickBooks (new tab)")
    assert customer.get_attribute("href") == qbo_page("customerdetail", "nameId", "24")
    eur = page.locator("table tbody tr").first.inner_text()
    assert "EUR 1,234.56" in eur and "USD 1,339.88" in eur and "1 EUR = 1.0853 USD" in eur
    summary = page.locator("dl.summary").inner_text()
    assert "Net 30" in summary and "Check" in summary and "Email" in summary and "USD 275.00" in summary
    assert page.get_by_role("table").locator("caption").inner_text().startswith("8 transactions")
    page.screenshot(path=str(artifacts / "panel-desktop.png"), full_page=True)


def test_type_filter_link_without_javascript(browser: Any, live: LiveSite) -> None:
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(live.panel)
        page.get_by_role("navigation", name="Filter by type").get_by_role("link", name="Payments (1)").click()
        page.wait_for_url(lambda url: "type=Payment" in url)  # a link: the filtered page, fully loaded
        page.wait_for_load_state()
        assert [r.inner_text().split("\n")[0] for r in page.locator("tbody th").all()] == ["Payment"]
        page.select_option("#status-filter", "Applied")
        page.get_by_role("button", name="Show").click()
        page.wait_for_url(lambda url: "status=Applied" in url)  # a form GET: the filtered page, fully loaded
        page.wait_for_load_state()
        assert page.locator("tbody tr").count() == 1 and "status=Applied" in page.url and "type=Payment" in page.url
    finally:
        context.close()


def test_narrow_frame_of_360_px(browser: Any, live: LiveSite, artifacts: Path) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 800})
    page = context.new_page()
    try:
        page.goto(live.panel)
        widths = page.evaluate("""() => ({doc: document.documentElement.scrollWidth,
            table: document.querySelector('table').scrollWidth,
            region: document.querySelector('.scroll').clientWidth})""")
        assert widths["doc"] <= 360 and widths["table"] <= widths["region"], widths
        assert not page.locator("thead th.balance-col").is_visible()
        assert page.locator("tbody tr").nth(6).locator(".balance-line").inner_text() == "Balance USD 120.00"
        page.screenshot(path=str(artifacts / "panel-narrow-360.png"), full_page=True)
    finally:
        context.close()


def test_panel_embedded_in_the_crm_contact_page(page: Any, live: LiveSite, artifacts: Path) -> None:
    page.goto(f"{live.crm.url}/ui/contacts/{live.contact_id}")
    frame = page.frame_locator("iframe")
    frame.locator("table caption").wait_for()
    assert frame.locator("tbody tr").count() == 8
    assert frame.get_by_role("heading", name="Payment & Billing").is_visible()
    page.screenshot(path=str(artifacts / "crm-contact-with-panel.png"), full_page=True)


def test_empty_and_denied_states(page: Any, live: LiveSite, artifacts: Path) -> None:
    page.goto(live.unlinked_panel)
    assert page.get_by_role("heading", name="Not linked to QuickBooks").is_visible()
    page.screenshot(path=str(artifacts / "panel-unlinked.png"), full_page=True)
    response = page.goto(live.panel.replace("token=", "token=x"))
    assert response is not None and response.status == 403
    assert page.get_by_role("alert").inner_text().startswith("This panel cannot be opened")
    page.screenshot(path=str(artifacts / "panel-denied.png"), full_page=True)
