"""Failures (retry, dismiss) and settings (validated, audited, sync modes, "Sync now") from the console.

Each action is followed by a look at both sides: the QBO sandbox and the reference CRM over HTTP.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from crm_qb.db import db
from crm_qb.models import EventStatus, InboundEvent
from tests.support import sync as support
from tests.support.console import admin, post
from tests.support.sync import Harness

# What this file tests does not depend on the database: its SQLite variants run in CI, its PostgreSQL ones with the
# slow tests (tests/conftest.py), to keep CI under 15 minutes.
pytestmark = pytest.mark.postgresql_slow


qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness

LONG_NAME = "Ada " + "L" * 296  # QuickBooks takes 500 characters of DisplayName, the reference CRM 255


def _linked(harness: Harness, name: str) -> tuple[str, str]:
    customer = harness.qbo.create_customer(DisplayName=name)
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    return customer["Id"], str(harness.link_of_customer(customer["Id"]).crm_contact_id)


def _failed_rename(harness: Harness) -> tuple[str, str, int]:
    """A QBO rename the CRM refuses (too long for it), given up after its attempts."""
    customer_id, contact_id = _linked(harness, "Ada Lovelace")
    harness.qbo.edit_customer(customer_id, DisplayName=LONG_NAME)
    harness.qbo_hook(customer_id)
    harness.work()
    with harness.app.app_context():
        event_id = db.session.scalar(select(InboundEvent.id).where(InboundEvent.attempts > 0))
        assert event_id is not None
        # The attempts a worker would make over the next minutes, spent at once: the event has failed for good.
        db.session.execute(update(InboundEvent).where(InboundEvent.id == event_id)
                           .values(status=EventStatus.FAILED, attempts=8))
        db.session.commit()
    return customer_id, contact_id, event_id


def _event_status(harness: Harness, event_id: int) -> EventStatus:
    with harness.app.app_context():
        status = db.session.scalar(select(InboundEvent.status).where(InboundEvent.id == event_id))
        db.session.rollback()
        assert status is not None
        return status


def test_a_failure_is_shown_in_words_with_the_crms_error_and_retried_after_the_fix(harness: Harness) -> None:
    customer_id, contact_id, event_id = _failed_rename(harness)
    csrf = admin(harness, "failures")
    html = harness.client.get(f"/admin/connections/{harness.connection_id}/failures").get_data(as_text=True)
    assert "The CRM refused the data sent" in html and "CrmValidationError" in html and "display_name" in html
    assert harness.contact(contact_id)["display_name"] == "Ada Lovelace"
    harness.qbo.edit_customer(customer_id, DisplayName="Ada King")  # the bookkeeper fixes the name
    answer = post(harness, "failures/retry", csrf_token=csrf, kind="event", id=str(event_id))
    assert answer.status_code == 303
    harness.work()
    assert _event_status(harness, event_id) == EventStatus.PROCESSED
    assert harness.contact(contact_id)["display_name"] == "Ada King"
    assert harness.qbo.customer(customer_id)["DisplayName"] == "Ada King"
    assert harness.audit("failure.retried")[0].diff["ids"] == [event_id]
    after = harness.client.get(f"/admin/connections/{harness.connection_id}/failures").get_data(as_text=True)
    assert "No failures" in after


def test_dismiss_all_takes_failures_off_the_list_and_writes_nothing(harness: Harness) -> None:
    customer_id, contact_id, event_id = _failed_rename(harness)
    csrf = admin(harness, "failures")
    assert post(harness, "failures/dismiss", csrf_token=csrf, kind="all").status_code == 303
    harness.work()
    assert _event_status(harness, event_id) == EventStatus.IGNORED
    assert harness.contact(contact_id)["display_name"] == "Ada Lovelace"
    assert harness.qbo.customer(customer_id)["DisplayName"] == LONG_NAME
    [entry] = harness.audit("failure.dismissed")
    assert entry.diff["by"].startswith("admin session ") and entry.diff["ids"] == [event_id]
    assert post(harness, "failures/retry", csrf_token=csrf, kind="event", id=str(event_id)).status_code == 404


def test_a_field_turned_off_in_settings_stops_syncing_and_the_change_is_audited(harness: Harness) -> None:
    customer_id, contact_id = _linked(harness, "Alan Turing")
    csrf = admin(harness, "settings")
    form = _form(harness)
    form.update({"csrf_token": csrf, "sync.fields.notes": "off"})
    assert post(harness, "settings", **form).status_code == 303
    [entry] = harness.audit("settings.changed")
    assert entry.diff["changes"] == {"sync.fields.notes": {"before": "both", "after": "off"}}
    assert entry.diff["by"].startswith("admin session ")
    harness.qbo.edit_customer(customer_id, Notes="not for the CRM", PrimaryPhone={"FreeFormNumber": "555-0100"})
    harness.qbo_hook(customer_id)
    harness.work()
    contact = harness.contact(contact_id)
    assert contact["notes"] in (None, "") and contact["phone"] == "555-0100"
    assert harness.qbo.customer(customer_id)["Notes"] == "not for the CRM"


def test_a_bad_value_is_shown_beside_its_field_and_nothing_is_stored(harness: Harness) -> None:
    csrf = admin(harness, "settings")
    form = _form(harness)
    form.update({"csrf_token": csrf, "sync.poll_minutes": "0", "sync.mode": "manual"})
    answer = post(harness, "settings", **form)
    html = answer.get_data(as_text=True)
    assert answer.status_code == 400 and "Nothing was saved" in html
    assert 'aria-describedby="sync-poll_minutes-error"' in html and "poll every 1 to 1440 minutes" in html
    assert 'value="manual" selected' in html  # what was typed is kept
    form["sync.poll_minutes"] = "soon"
    html = post(harness, "settings", **form).get_data(as_text=True)
    assert 'aria-describedby="sync-poll_minutes-error"' in html and "enter a whole number" in html
    assert not harness.audit("settings.changed")


def test_manual_mode_holds_changes_until_sync_now(harness: Harness) -> None:
    customer_id, contact_id = _linked(harness, "Grace Hopper")
    csrf = admin(harness, "settings")
    form = _form(harness)
    form.update({"csrf_token": csrf, "sync.mode": "manual"})
    assert post(harness, "settings", **form).status_code == 303
    harness.qbo.edit_customer(customer_id, Notes="held")
    harness.qbo_hook(customer_id)
    edited = harness.crm_user("PATCH", f"/contacts/{contact_id}", {"phone": "555-0199"})
    harness.crm_hook("updated", edited)
    harness.work()
    assert harness.contact(contact_id)["notes"] in (None, "")  # waits: manual mode
    assert "PrimaryPhone" not in harness.qbo.customer(customer_id)
    assert post(harness, "sync-now", csrf_token=csrf).status_code == 303
    harness.work()
    assert harness.contact(contact_id)["notes"] == "held"
    assert harness.qbo.customer(customer_id)["PrimaryPhone"]["FreeFormNumber"] == "555-0199"


def _form(harness: Harness) -> dict[str, str]:
    """The settings form's current values, as a browser would post them back."""
    import re

    html = harness.client.get(f"/admin/connections/{harness.connection_id}/settings").get_data(as_text=True)
    values = {name: value for name, value in re.findall(r'<input id="[^"]*" name="([^"]+)"[^>]*value="([^"]*)"', html)}
    for name, body in re.findall(r'<select id="[^"]*" name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected>', body)
        values[name] = chosen.group(1) if chosen else ""
    for name in re.findall(r'<input type="checkbox" id="[^"]*" name="([^"]+)" value="on" checked>', html):
        values[name] = "on"
    return values


def test_turning_sync_back_on_catches_up_what_changed_meanwhile(harness: Harness) -> None:
    customer_id, contact_id = _linked(harness, "Barbara Liskov")
    csrf = admin(harness, "settings")
    form = _form(harness)
    form.update({"csrf_token": csrf})
    del form["sync.enabled"]  # the box unticked
    assert post(harness, "settings", **form).status_code == 303
    harness.qbo.edit_customer(customer_id, Notes="while off")
    harness.qbo_hook(customer_id)
    harness.work()
    assert harness.contact(contact_id)["notes"] in (None, "")
    form["sync.enabled"] = "on"
    assert post(harness, "settings", **form).status_code == 303
    harness.work()  # the "Sync now" the change asked for: a CDC poll finds the edit
    assert harness.contact(contact_id)["notes"] == "while off"
    assert harness.qbo.customer(customer_id)["Notes"] == "while off"
    [off, on] = harness.audit("settings.changed")
    assert off.diff["changes"]["sync.enabled"] == {"before": True, "after": False}
    assert on.diff["changes"]["sync.enabled"] == {"before": False, "after": True}
