"""Merges of two linked records leave review through the console; both sides are checked after each action.

A QBO merge of two linked customers moves the merged-away customer's folder to the survivor's contact at once
and offers to merge the merged-away contact into the survivor's contact, or to make it inactive. A CRM merge of
two linked contacts offers to make the merged-away contact's customer inactive.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from crm_qb.models import LinkState
from tests.support import sync as support
from tests.support.console import admin, post, waiting
from tests.support.sync import Harness

# What this file tests does not depend on the database: its SQLite variants run in CI, its PostgreSQL ones with the
# slow tests (tests/conftest.py), to keep CI under 15 minutes.
pytestmark = pytest.mark.postgresql_slow


qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness


def _linked(harness: Harness, name: str, email: str) -> tuple[str, str]:
    customer = harness.qbo.create_customer(DisplayName=name, PrimaryEmailAddr={"Address": email})
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    return customer["Id"], str(harness.link_of_customer(customer["Id"]).crm_contact_id)


def _invoice(harness: Harness, customer_id: str, number: str) -> str:
    line = {"Amount": "250.00", "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": "250.00"}}
    due = date.today() + timedelta(days=30)
    body = {"CustomerRef": {"value": customer_id}, "DocNumber": number, "DueDate": due.isoformat(),
            "TxnDate": date.today().isoformat(), "Line": [line]}
    invoice_id = str(harness.qbo.post(f"/_sandbox/realms/{harness.qbo.realm_id}/entities/Invoice", body)
                     ["Invoice"]["Id"])
    harness.qbo_hook(invoice_id, "created", entity="invoice")
    harness.work()
    return invoice_id


def _qbo_merge(harness: Harness) -> tuple[str, str, str, str]:
    """Two linked customers, the first with an invoice; QuickBooks merges the first into the second."""
    gone, gone_contact = _linked(harness, "Dana Old", "dana.old@example.com")
    kept, kept_contact = _linked(harness, "Dana Scott", "dana@example.com")
    _invoice(harness, gone, "INV-77")
    harness.qbo.post(f"/_sandbox/realms/{harness.qbo.realm_id}/customers/merge", {"from": gone, "into": kept})
    harness.qbo_hook(kept, "merged", deleted_id=gone)
    harness.work()
    return gone, gone_contact, kept, kept_contact


def _folder_numbers(harness: Harness, contact_id: str, key: str) -> list[str]:
    return [item["number"] for item in harness.quickbooks(contact_id, key)["folder"]["items"]]


def test_a_qbo_merge_of_two_linked_customers_moves_the_folder_and_waits(harness: Harness) -> None:
    gone, gone_contact, kept, kept_contact = _qbo_merge(harness)
    [link] = waiting(harness)
    assert (link.qbo_customer_id, link.crm_contact_id, link.review_candidates) == (gone, gone_contact, [kept])
    key = harness.api_key()
    assert _folder_numbers(harness, kept_contact, key) == ["INV-77"]  # the survivor's contact shows it now
    admin(harness)
    html = harness.client.get(f"/admin/connections/{harness.connection_id}/review").get_data(as_text=True)
    assert "QuickBooks merged customer" in html and "Dana Old" in html and "Dana Scott" in html
    assert "Merge this contact into the survivor" in html and "Make the CRM contact inactive" in html


def test_merge_the_contacts_in_the_crm(harness: Harness) -> None:
    gone, gone_contact, kept, kept_contact = _qbo_merge(harness)
    csrf = admin(harness)
    [link] = waiting(harness)
    assert post(harness, f"review/{link.id}", csrf_token=csrf, action="merge").status_code == 303
    harness.work()
    assert gone_contact not in {c["id"] for c in harness.contacts()}  # merged away in the CRM
    assert harness.contact(kept_contact)["email"] == "dana@example.com"
    assert not waiting(harness) and gone not in {lk.qbo_customer_id for lk in harness.links()}
    assert harness.link_of_customer(kept).crm_contact_id == kept_contact
    assert harness.qbo.customer(kept)["Active"] is True
    harness.crm_hook("merged", contact_id=gone_contact, merged_into=kept_contact)  # the CRM's own hook for it
    harness.work()
    assert harness.link_of_customer(kept).state == LinkState.LINKED and not waiting(harness)


def test_make_the_merged_away_contact_inactive(harness: Harness) -> None:
    gone, gone_contact, kept, kept_contact = _qbo_merge(harness)
    csrf = admin(harness)
    [link] = waiting(harness)
    assert post(harness, f"review/{link.id}", csrf_token=csrf, action="deactivate").status_code == 303
    harness.work()
    assert harness.contact(gone_contact)["active"] is False
    assert harness.contact(kept_contact)["active"] is True
    assert harness.link_of_customer(gone).state == LinkState.UNLINKED
    assert harness.link_of_customer(kept).crm_contact_id == kept_contact
    assert harness.qbo.customer(kept)["Active"] is True


def test_a_crm_merge_of_two_linked_contacts_offers_to_make_the_customer_inactive(harness: Harness) -> None:
    gone_customer, gone_contact = _linked(harness, "Lee Away", "lee.away@example.com")
    kept_customer, kept_contact = _linked(harness, "Lee Stay", "lee@example.com")
    harness.crm_user("POST", f"/contacts/{gone_contact}/merge", {"into": kept_contact})
    harness.crm_hook("merged", contact_id=gone_contact, merged_into=kept_contact)
    harness.work()
    [link] = waiting(harness)
    csrf = admin(harness)
    html = harness.client.get(f"/admin/connections/{harness.connection_id}/review").get_data(as_text=True)
    assert "the CRM merged contact" in html and "Make the QuickBooks customer inactive" in html
    assert post(harness, f"review/{link.id}", csrf_token=csrf, action="deactivate").status_code == 303
    harness.work()
    assert harness.qbo.customer(gone_customer)["Active"] is False
    assert harness.qbo.customer(kept_customer)["Active"] is True
    assert harness.link_of_customer(gone_customer).state == LinkState.UNLINKED
    assert harness.link_of_customer(kept_customer).crm_contact_id == kept_contact
    assert harness.contact(kept_contact)["active"] is True
