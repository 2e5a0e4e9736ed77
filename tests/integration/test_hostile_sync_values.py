"""A NUL in a value one side sends syncs on every backend, and does not bounce between the sides (issue 11 item 2).

Before the fix a QBO customer's Notes with a NUL failed its events on PostgreSQL (the base could not be stored) and
aborted every later poll of the connection.
"""

from __future__ import annotations

from sqlalchemy import select

from crm_qb.db import db
from crm_qb.models import EventStatus, InboundEvent
from tests.support import sync as support
from tests.support.sync import Harness

qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness


def _statuses(harness: Harness) -> list[EventStatus]:
    with harness.app.app_context():
        return list(db.session.scalars(select(InboundEvent.status).order_by(InboundEvent.id)))


def test_a_nul_in_a_qbo_customers_notes_syncs_and_its_echo_is_a_no_op(harness: Harness) -> None:
    customer = harness.qbo.create_customer(DisplayName="Nul Notes", PrimaryEmailAddr={"Address": "nul@example.com"})
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    contact_id = str(harness.link_of_customer(customer["Id"]).crm_contact_id)

    harness.qbo.edit_customer(customer["Id"], Notes="before\x00after")
    harness.qbo_hook(customer["Id"])
    harness.work()
    assert harness.contact(contact_id)["notes"] == "beforeafter"
    assert harness.link_of_customer(customer["Id"]).base["notes"] == "beforeafter"
    assert EventStatus.FAILED not in _statuses(harness)

    # The CRM's echo, and another QBO webhook of the unchanged customer, write nothing.
    contact = harness.contact(contact_id)
    token = harness.qbo.customer(customer["Id"])["SyncToken"]
    harness.crm_hook("updated", contact)
    harness.qbo_hook(customer["Id"])
    harness.work()
    assert harness.qbo.customer(customer["Id"])["SyncToken"] == token
    assert harness.contact(contact_id)["version"] == contact["version"]


def test_a_nul_in_a_crm_contacts_notes_reaches_qbo_without_it(harness: Harness) -> None:
    contact = harness.crm_user("POST", "/contacts", {"first_name": "Nul", "last_name": "Crm",
                                                     "email": "nulcrm@example.com", "notes": "a\x00b"})
    harness.crm_hook("created", contact)
    harness.work()
    link = next(lk for lk in harness.links() if lk.crm_contact_id == contact["id"])
    assert harness.qbo.customer(str(link.qbo_customer_id)).get("Notes") == "ab"
    assert EventStatus.FAILED not in _statuses(harness)


def test_a_nul_in_notes_does_not_stop_the_cdc_poll(harness: Harness) -> None:
    from crm_qb.models import AuditEntry, Connection
    from workers.sync_jobs import poll_qbo_connection

    customer = harness.qbo.create_customer(DisplayName="Poll Nul", Notes="x\x00y")
    with harness.app.app_context():
        assert poll_qbo_connection(harness.connection_id) >= 1
        assert db.session.get(Connection, harness.connection_id).cdc_cursor is not None  # type: ignore[union-attr]
        assert not list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == "sync.failed")))
    link = harness.link_of_customer(customer["Id"])
    assert harness.contact(str(link.crm_contact_id))["notes"] == "xy"
