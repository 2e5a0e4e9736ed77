"""Conflicts are reviewable: the admin page lists them, keeps a decision, or flips it to the other value."""

from __future__ import annotations

import re

import pytest

from crm_qb.models import AuditEntry, ConflictStatus, ContactLink
from crm_qb.web import signing
from tests.support import sync as support
from tests.support.sync import Harness
from workers.worker import build_worker

# What this file tests does not depend on the database: its SQLite variants run in CI, its PostgreSQL ones with the
# slow tests (tests/conftest.py), to keep CI under 15 minutes.
pytestmark = pytest.mark.postgresql_slow


qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness


def _conflict(harness: Harness) -> tuple[str, str]:
    """A linked pair whose notes were changed on both sides in one window (QBO wins by default)."""
    customer = harness.qbo.create_customer(DisplayName="Grace Hopper")
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    contact_id = str(harness.link_of_customer(customer["Id"]).crm_contact_id)
    harness.qbo.edit_customer(customer["Id"], Notes="from QBO")
    edited = harness.crm_user("PATCH", f"/contacts/{contact_id}", {"notes": "from CRM"})
    harness.crm_hook("updated", edited)
    harness.qbo_hook(customer["Id"])
    harness.work()
    return customer["Id"], contact_id


def _admin(harness: Harness) -> str:
    """Start an admin session for the harness connection; return its CSRF token from the conflicts page."""
    secret = harness.app.config["SECRET_KEY"]
    token = signing.link_token(secret, harness.connection_id)
    assert harness.client.get(f"/admin/connections/{harness.connection_id}?token={token}").status_code == 303
    page = harness.client.get(f"/admin/connections/{harness.connection_id}/conflicts")
    assert page.status_code == 200
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert found, "the conflicts page offers actions"
    return found.group(1)


def test_a_conflict_is_listed_and_flipped_to_the_crm_value_on_both_sides(harness: Harness) -> None:
    customer_id, contact_id = _conflict(harness)
    [conflict] = harness.conflicts()
    csrf = _admin(harness)
    page = harness.client.get(f"/admin/connections/{harness.connection_id}/conflicts").get_data(as_text=True)
    assert "from QBO" in page and "from CRM" in page and "window_qbo_wins" in page

    flipped = harness.client.post(f"/admin/connections/{harness.connection_id}/conflicts/{conflict.id}/flip",
                                  data={"csrf_token": csrf})
    assert flipped.status_code == 303
    build_worker(harness.app).work(burst=True)

    assert harness.qbo.customer(customer_id)["Notes"] == harness.contact(contact_id)["notes"] == "from CRM"
    [after] = harness.conflicts()
    assert after.status == ConflictStatus.FLIPPED
    with harness.app.app_context():
        from crm_qb.db import db

        link = db.session.query(ContactLink).filter_by(qbo_customer_id=customer_id).one()
        assert link.base["notes"] == "from CRM"  # the echo of the flip is a no-op
        assert db.session.query(AuditEntry).filter_by(action="conflict.flipped").count() == 1
    harness.qbo_hook(customer_id)
    harness.work()
    assert harness.contact(contact_id)["notes"] == "from CRM"


def test_a_decision_can_be_kept_and_then_neither_kept_nor_flipped_again(harness: Harness) -> None:
    _conflict(harness)
    [conflict] = harness.conflicts()
    csrf = _admin(harness)
    base = f"/admin/connections/{harness.connection_id}/conflicts/{conflict.id}"
    assert harness.client.post(f"{base}/confirm", data={"csrf_token": csrf}).status_code == 303
    assert harness.conflicts()[0].status == ConflictStatus.CONFIRMED
    again = harness.client.post(f"{base}/flip", data={"csrf_token": csrf})
    assert again.status_code == 409 and "already confirmed" in again.get_data(as_text=True)


def test_review_actions_need_the_session_and_its_csrf_token(harness: Harness) -> None:
    _conflict(harness)
    [conflict] = harness.conflicts()
    base = f"/admin/connections/{harness.connection_id}/conflicts"
    assert harness.client.get(base).status_code == 403
    _admin(harness)
    assert harness.client.post(f"{base}/{conflict.id}/flip", data={"csrf_token": "forged"}).status_code == 403
    assert harness.client.get(f"{base}?page=0").status_code == 400
    assert harness.client.get(f"/admin/connections/{harness.connection_id}/audit").status_code == 200
