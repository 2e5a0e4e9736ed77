"""Customer sync end to end: crm-qb web, two workers and the scheduler, the QBO sandbox and a CRM, all real
processes.

Every test runs against both CRM kinds: the reference CRM (REST contract) and the local HubSpot. Webhooks travel
over HTTP as in production: the QBO sandbox posts signed CloudEvents to crm-qb's web process, the CRM posts
signed change hooks (HubSpot: its v3-signed webhooks to /webhooks/hubspot); the workers call both back over HTTP.
"""

from __future__ import annotations

import time

import pytest
import requests
from redis import Redis
from sqlalchemy import func, select

from crm_qb.app import create_app
from crm_qb.db import db
from crm_qb.models import AuditEntry, Connection, ContactLink, EventSource, InboundEvent, LinkState
from crm_qb.web.panel_tokens import make_panel_token
from tests.support import wait_for
from tests.support.e2e import World

pytestmark = pytest.mark.e2e


def test_changes_travel_both_ways_between_real_processes(world: World) -> None:
    started = time.monotonic()
    customer = world.create_customer(DisplayName="Hedy Lamarr", PrimaryEmailAddr={"Address": "hedy@example.com"})
    contact = wait_for(lambda: world.contact_with(email="hedy@example.com"), what="the contact to appear")
    qbo_to_crm = time.monotonic() - started

    started = time.monotonic()
    world.crm_user("PATCH", f"/contacts/{contact['id']}", {"phone": "+1 555 0100"})
    wait_for(lambda: (world.customer(customer["Id"]).get("PrimaryPhone") or {}).get("FreeFormNumber") == "+1 555 0100",
             what="the phone to reach QBO")
    crm_to_qbo = time.monotonic() - started

    world.edit_customer(customer["Id"], Notes="edited in QBO")
    wait_for(lambda: world.contact_with(notes="edited in QBO"), what="the notes to reach the CRM")

    contact = world.crm_user("POST", "/contacts", {"first_name": "Katherine", "last_name": "Johnson",
                                                   "email": "kj@example.com"})
    wait_for(lambda: _customer_by_email(world, "kj@example.com"), what="the customer to appear in QBO")
    print(f"latency qbo->crm {qbo_to_crm:.2f}s crm->qbo {crm_to_qbo:.2f}s")


def _customer_by_email(world: World, email: str) -> bool:
    for customer_id in range(1, 50):
        answer = requests.get(f"{world.qbo}/_sandbox/realms/{world.realm}/entities/Customer/{customer_id}",
                              timeout=10)
        if answer.status_code != 200:
            return False
        if (answer.json()["Customer"].get("PrimaryEmailAddr") or {}).get("Address") == email:
            return True
    return False


def test_concurrent_edits_on_both_sides_converge_with_two_workers(world: World) -> None:
    customer = world.create_customer(DisplayName="Busy Customer", PrimaryEmailAddr={"Address": "busy@example.com"})
    contact = wait_for(lambda: world.contact_with(email="busy@example.com"), what="the contact to appear")
    for n in range(6):
        world.edit_customer(customer["Id"], Notes=f"qbo note {n}")
        world.crm_user("PATCH", f"/contacts/{contact['id']}", {"website": f"https://crm.example/{n}"})

    def converged() -> bool:
        now = world.customer(customer["Id"])
        mine = world.contact_with(email="busy@example.com") or {}
        return (now.get("Notes") == mine.get("notes") == "qbo note 5"
                and (now.get("WebAddr") or {}).get("URI") == mine.get("website") == "https://crm.example/5")

    wait_for(converged, timeout=40, what="both sides to converge")
    assert len(world.contacts()) == 1


def test_a_lost_webhook_is_caught_by_the_cdc_poll(world: World, redis_client: Redis) -> None:
    from crm_qb.keys import RedisKeys
    from workers.queues import enqueue
    from workers.sync_jobs import poll_qbo_connection

    customer = world.create_customer(DisplayName="Lost Hook", PrimaryEmailAddr={"Address": "lost@example.com"})
    wait_for(lambda: world.contact_with(email="lost@example.com"), what="the contact to appear")
    # The CRM's echo of the new contact (HubSpot sends one per property) is a sync of the pair that reads QBO too;
    # let it settle, or it could carry the edit below instead of the poll.
    wait_for(world.settled, what="the CRM's echoes to settle")
    world.point_qbo_webhooks("http://127.0.0.1:9/nowhere")  # webhooks now go nowhere
    events_before = _qbo_events_of(world, customer["Id"])
    world.edit_customer(customer["Id"], Notes="only the poll can see this")
    enqueue(redis_client, RedisKeys(world.settings.queue_prefix), poll_qbo_connection, world.connection_id,
            job_id="cdc-poll-test")
    wait_for(lambda: world.contact_with(notes="only the poll can see this"), what="the poll to sync the change")
    # The poll did the work, not a webhook: its job wrote the change, and no QBO event for the customer came in.
    assert _sync_jobs_of(world, customer["Id"])[-1] == "cdc-poll-test"
    assert _qbo_events_of(world, customer["Id"]) == events_before


def _qbo_events_of(world: World, customer_id: str) -> int:
    """How many QBO inbound events crm-qb stored for the customer."""
    with create_app(world.settings).app_context():
        count = db.session.scalar(select(func.count()).select_from(InboundEvent).where(
            InboundEvent.source == EventSource.QBO, InboundEvent.entity_id == customer_id))
        db.session.remove()
    return int(count or 0)


def _sync_jobs_of(world: World, customer_id: str) -> list[str | None]:
    """The job ids of the audit entries that wrote the customer's changes to the CRM, oldest first."""
    with create_app(world.settings).app_context():
        jobs = list(db.session.scalars(select(AuditEntry.job_id).where(
            AuditEntry.entity_id == customer_id, AuditEntry.action == "customer.synced").order_by(AuditEntry.id)))
        db.session.remove()
    return jobs


def test_a_linked_contact_shows_in_the_panel_moves_on_a_merge_and_once_deleted_is_unlinked(world: World) -> None:
    """One world per CRM kind for three checks: the panel of a linked contact; a CRM merge of it into an unlinked
    contact moves the link to the survivor (the reference CRM's ``contact.merged`` hook keeps the survivor's id,
    HubSpot's ``contact.merge`` webhook names a new record); the survivor's deletion (HubSpot: archive) unlinks."""
    world.create_customer(DisplayName="Panel Person", GivenName="Panel", FamilyName="Person",
                          PrimaryEmailAddr={"Address": "panel@example.com"})
    contact = wait_for(lambda: world.contact_with(email="panel@example.com"), what="the contact to appear")
    wait_for(lambda: (world.link_of(contact["id"]) or ContactLink()).state == LinkState.LINKED,
             what="the contact to be linked")
    link = world.link_of(contact["id"])
    assert link is not None and link.qbo_customer_id
    with create_app(world.settings).app_context():
        connection = db.session.get(Connection, world.connection_id)
        assert connection is not None
        token = make_panel_token(world.settings.secret_key, connection, contact["id"])
        db.session.remove()
    page = requests.get(f"{world.web}/panel/{world.connection_id}/contacts/{contact['id']}", params={"token": token},
                        timeout=10)
    assert page.status_code == 200, page.text
    assert "Panel Person" in page.text and 'class="qb-link"' in page.text
    # The deep link goes through the web app's sign-in route with the page URL-encoded (qbo/deeplinks.py).
    assert f"pagereq=customerdetail%3FnameId%3D{link.qbo_customer_id}&amp;" in page.text

    # The survivor must be unlinked: with QuickBooks as the master, a new CRM contact matching no customer is left
    # alone (no customer is created for it).
    world.configure("sync", direction="qbo_to_crm")
    other = world.crm_user("POST", "/contacts", {"first_name": "Merge", "last_name": "Survivor",
                                                 "email": "survivor@example.com"})
    wait_for(world.settled, what="the new contact's hook to be handled")
    assert world.link_of(other["id"]) is None
    survivor = world.merge_contacts(contact["id"], into=other["id"])
    moved = wait_for(lambda: _linked(world, survivor), timeout=40, what="the link to move to the survivor")
    assert moved.qbo_customer_id == link.qbo_customer_id and world.link_of(contact["id"]) is None
    wait_for(lambda: world.contact_with(id=survivor, first_name="Panel", last_name="Person"), timeout=40,
             what="QuickBooks' name on the survivor (QuickBooks is the master now)")

    world.delete_contact(survivor)
    wait_for(lambda: (world.link_of(survivor) or ContactLink()).state == LinkState.UNLINKED, timeout=40,
             what="the deleted contact to be unlinked")


def _linked(world: World, contact_id: str) -> ContactLink | None:
    found = world.link_of(contact_id)
    return found if found is not None and found.state == LinkState.LINKED else None
