""""Sync now" for one contact (API, CLI, console form): both sides re-read, reconciled, transactions re-mirrored.

Changes are made on both sides without any hook or poll, so only the one-contact sync can bring them across; each
test then looks at both sides (the QBO sandbox and the reference CRM over HTTP) and at the audit log.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from tests.integration.test_console_api_cli import _api, _cli
from tests.support import sync as support
from tests.support.console import admin, post
from tests.support.sync import Harness

# What this file tests does not depend on the database: its SQLite variants run in CI, its PostgreSQL ones with the
# slow tests (tests/conftest.py), to keep CI under 15 minutes.
pytestmark = pytest.mark.postgresql_slow


qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness


def _linked(harness: Harness, name: str) -> tuple[str, str]:
    customer = harness.qbo.create_customer(DisplayName=name)
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    return customer["Id"], str(harness.link_of_customer(customer["Id"]).crm_contact_id)


def _unannounced_changes(harness: Harness, customer_id: str, contact_id: str, number: str) -> None:
    """A note in QBO, a phone in the CRM and a new invoice in QBO: no hook tells crm-qb of any of them."""
    harness.qbo.edit_customer(customer_id, Notes="from QuickBooks")
    harness.crm_user("PATCH", f"/contacts/{contact_id}", {"phone": "555-0142"})
    line = {"Amount": "80.00", "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": "80.00"}}
    body = {"CustomerRef": {"value": customer_id}, "DocNumber": number, "TxnDate": date.today().isoformat(),
            "DueDate": (date.today() + timedelta(days=30)).isoformat(), "Line": [line]}
    harness.qbo.post(f"/_sandbox/realms/{harness.qbo.realm_id}/entities/Invoice", body)


def _assert_in_step(harness: Harness, customer_id: str, contact_id: str, number: str) -> None:
    assert harness.contact(contact_id)["notes"] == harness.qbo.customer(customer_id)["Notes"] == "from QuickBooks"
    assert harness.qbo.customer(customer_id)["PrimaryPhone"]["FreeFormNumber"] == "555-0142"
    assert harness.contact(contact_id)["phone"] == "555-0142"
    folder = harness.quickbooks(contact_id, harness.api_key())["folder"]["items"]
    assert [item["number"] for item in folder] == [number]


def _sync_now_entry(harness: Harness) -> dict[str, Any]:
    [entry] = harness.audit("contact.sync_now")
    return dict(entry.diff)


def test_one_contact_synced_over_the_api_reconciles_both_sides_and_its_transactions(harness: Harness) -> None:
    customer_id, contact_id = _linked(harness, "Nia Quinn")
    _unannounced_changes(harness, customer_id, contact_id, "INV-301")
    harness.work()
    assert harness.contact(contact_id)["notes"] in (None, "")  # nothing announced the changes
    key = harness.api_key()
    assert _api(harness, "POST", f"contacts/{contact_id}/sync-now", "wrong").status_code == 401
    answer = _api(harness, "POST", f"contacts/{contact_id}/sync-now", key)
    assert answer.status_code == 202, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["queued"] is True and body["job_id"] == f"sync-contact-now-{harness.connection_id}-{contact_id}"
    harness.work()
    _assert_in_step(harness, customer_id, contact_id, "INV-301")
    diff = _sync_now_entry(harness)
    assert diff["by"] == "api key" and diff["outcome"] == "synced" and diff["qbo_customer_id"] == customer_id
    assert diff["transactions"] == 1
    [synced] = harness.audit("contact.synced")
    assert synced.diff["to_qbo"] and synced.diff["to_crm"]


def test_one_contact_synced_in_the_cli(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    customer_id, contact_id = _linked(harness, "Oren Vale")
    _unannounced_changes(harness, customer_id, contact_id, "INV-302")
    printed = _cli(harness, monkeypatch, "connection", "sync-now", str(harness.connection_id), "--contact",
                   contact_id)
    assert printed == {"contact_id": contact_id, "outcome": "synced", "qbo_customer_id": customer_id,
                       "transactions": 1}
    _assert_in_step(harness, customer_id, contact_id, "INV-302")
    assert _sync_now_entry(harness)["by"].startswith("cli:")
    queued = _cli(harness, monkeypatch, "connection", "sync-now", str(harness.connection_id), "--contact",
                  contact_id, "--enqueue")
    assert queued["queued"] is True
    harness.work()
    assert [e.diff["outcome"] for e in harness.audit("contact.sync_now")] == ["synced", "unchanged"]


def test_a_new_contact_synced_from_the_console_form_is_created_in_quickbooks(harness: Harness) -> None:
    contact = harness.crm_user("POST", "/contacts", {"first_name": "Pia", "last_name": "Roth",
                                                    "email": "pia@example.com"})
    csrf = admin(harness, "settings")
    assert post(harness, "contacts/sync-now", csrf_token="forged", crm_contact_id=contact["id"]).status_code in (
        400, 403)
    answer = post(harness, "contacts/sync-now", csrf_token=csrf, crm_contact_id=contact["id"])
    assert answer.status_code == 303 and "done=syncing-contact" in answer.headers["Location"]
    harness.work()
    [link] = harness.links()
    assert link.crm_contact_id == contact["id"] and link.qbo_customer_id
    assert harness.qbo.customer(link.qbo_customer_id)["PrimaryEmailAddr"]["Address"] == "pia@example.com"
    diff = _sync_now_entry(harness)
    assert diff["by"] != "api key" and diff["qbo_customer_id"] == link.qbo_customer_id
    html = harness.client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "are being synced" in html and 'id="sync-contact-now"' in html


def test_the_sync_now_button_beside_a_contact_in_the_audit_log(harness: Harness) -> None:
    customer_id, contact_id = _linked(harness, "Rua Tane")
    harness.crm_hook("updated", harness.crm_user("PATCH", f"/contacts/{contact_id}", {"notes": "hooked"}))
    harness.work()  # a contact.synced entry for the contact
    csrf = admin(harness, "settings")
    html = harness.client.get(f"/admin/connections/{harness.connection_id}/audit?record={contact_id}") \
        .get_data(as_text=True)
    assert f'name="crm_contact_id" value="{contact_id}"' in html and "sync-contact" in html
    _unannounced_changes(harness, customer_id, contact_id, "INV-303")
    answer = post(harness, "contacts/sync-now", csrf_token=csrf, crm_contact_id=contact_id, back="audit")
    assert answer.status_code == 303 and f"/audit?record={contact_id}" in answer.headers["Location"]
    harness.work()
    _assert_in_step(harness, customer_id, contact_id, "INV-303")
    assert _sync_now_entry(harness)["outcome"] == "synced"
