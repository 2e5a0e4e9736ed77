"""The admin console's navigation: one list of the connection's pages, shown by the shared layout.

A page added to the console adds one entry here (endpoint, label); ``connection_base.html`` renders the list
for every page that has a ``connection`` and marks the current one (``aria-current="page"``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

NAV: list[tuple[str, str]] = [
    ("connection_page.show", "Overview"),
    ("sync_pages.overview", "First sync"),
    ("sync_pages.history_overview", "Import history"),
    ("admin_pages.health", "Health"),
    ("admin_pages.review", "Review"),
    ("review_pages.conflicts", "Conflicts"),
    ("admin_pages.failures", "Failures"),
    ("admin_pages.settings", "Settings"),
    ("review_pages.audit", "Audit log"),
]


def install_nav(blueprint: Blueprint) -> None:
    """Give every template of the app ``admin_nav`` (the entries) and ``admin_current`` (this request's endpoint)."""

    @blueprint.app_context_processor
    def _nav() -> dict[str, Any]:
        return {"admin_nav": NAV, "admin_current": request.endpoint if request else None}
