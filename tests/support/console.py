"""Helpers for the admin console tests: an admin session on the test client, CSRF tokens, the review queue."""

from __future__ import annotations

import re
from typing import Any

from crm_qb.db import db
from crm_qb.models import ContactLink, LinkState
from crm_qb.web import signing
from tests.support.sync import Harness


def admin(harness: Harness, page: str = "review") -> str:
    """Start an admin session for the harness connection on its test client; return the CSRF token."""
    token = signing.link_token(harness.app.config["SECRET_KEY"], harness.connection_id)
    assert harness.client.get(f"/admin/connections/{harness.connection_id}?token={token}").status_code == 303
    html = harness.client.get(f"/admin/connections/{harness.connection_id}/{page}").get_data(as_text=True)
    return csrf(html) if "csrf_token" in html else ""


def csrf(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page offers actions"
    return found.group(1)


def post(harness: Harness, path: str, **form: Any) -> Any:
    """POST a console form (the CSRF token is taken from a fresh session if not given)."""
    return harness.client.post(f"/admin/connections/{harness.connection_id}/{path}", data=form)


def waiting(harness: Harness) -> list[ContactLink]:
    """The links waiting for review."""
    return [link for link in harness.links() if link.state == LinkState.REVIEW]


def set_link(harness: Harness, link_id: int, **values: Any) -> None:
    """Change a stored link (to set up a state that older versions left behind)."""
    with harness.app.app_context():
        row = db.session.get(ContactLink, link_id)
        assert row is not None
        for key, value in values.items():
            setattr(row, key, value)
        db.session.commit()
