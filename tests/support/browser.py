"""Checks every browser test of the console makes on a page: controls have names, and Tab reaches each one."""

from __future__ import annotations

from typing import Any


def unlabelled(page: Any) -> list[str]:
    """Form controls without a label, and buttons and links without a name."""
    return page.eval_on_selector_all(
        "input:not([type=hidden]), select, button, a", """els => els.filter(e => {
            if (e.tagName === 'INPUT' || e.tagName === 'SELECT') return !(e.labels && e.labels.length);
            return !(e.innerText.trim() || e.getAttribute('aria-label'));
        }).map(e => e.outerHTML.slice(0, 80))""")


FOCUSABLE = "a[href], button, input:not([type=hidden]), select, textarea, summary"


def tab_misses(page: Any) -> list[str]:
    """The visible controls that pressing Tab from the top of the page never focuses (radios: the checked one)."""
    total = page.eval_on_selector_all(FOCUSABLE, """els => {
        const shown = els.filter(e => !e.disabled && e.tabIndex >= 0 && e.getClientRects().length
                                      && !(e.type === 'radio' && !e.checked));
        shown.forEach((e, i) => e.dataset.walk = String(i));
        return shown.length; }""")
    page.evaluate("() => document.activeElement && document.activeElement.blur()")
    seen: set[str] = set()
    for _ in range(3 * total + 3):  # a date input takes three stops (day, month, year)
        page.keyboard.press("Tab")
        seen.add(page.evaluate("() => (document.activeElement && document.activeElement.dataset.walk) || ''"))
    return page.eval_on_selector_all("[data-walk]", "(els, seen) => els.filter(e => !seen.includes(e.dataset.walk))"
                                     ".map(e => e.outerHTML.slice(0, 80))", sorted(seen))
