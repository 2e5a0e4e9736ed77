"""A HubSpot connection's CRM drain, with the local HubSpot and the QBO sandbox on threads and a real RQ worker.

What a drain spends of HubSpot's low rate limit (100 requests per 10 s): the echo of crm-qb's own write (its
``occurredAt`` is the version the link agreed on) is settled without reading the contact, and changes of several
contacts in one drain are read with one batch read, not one read each. Webhooks are posted signed with HubSpot's
v3 signature, with the ``occurredAt`` HubSpot gives them (the contact's ``updatedAt``).
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from redis import Redis
from sqlalchemy import select

from crm_qb.app import create_app
from crm_qb.connections import create_hubspot_connection
from crm_qb.db import db
from crm_qb.models import AuditEntry, ContactLink, EventStatus, InboundEvent, LinkState
from crm_qb.runtime import runtime
from crm_qb.sandbox.hubspot.server import RunningServer, start_server
from crm_qb.sandbox.hubspot.signatures import webhook_headers
from crm_qb.sandbox.hubspot.state import SandboxConfig
from tests.conftest import _migrate, _truncate, make_settings
from tests.support.sync import Harness, QboSandbox, connect_qbo, qbo_settings
from workers.worker import build_worker

TOKEN = "pat-na1-drain"
SECRET = "drain-app-secret"
PUBLIC = "https://crm-qb.example.com"
EVENT_IDS = itertools.count(1)


class World:
    """crm-qb (test client, burst worker) with one HubSpot connection, the local HubSpot and a QBO realm."""

    def __init__(self, app: Flask, hubspot: RunningServer, qbo: QboSandbox, connection_id: int) -> None:
        self.app, self.client, self.hubspot, self.qbo = app, app.test_client(), hubspot, qbo
        self.connection_id = connection_id
        self.portal = int(hubspot.sandbox.config.portal_id)

    def user_edit(self, method: str, path: str, properties: dict[str, str]) -> dict[str, Any]:
        """A HubSpot user's change in HubSpot's UI; the contact as stored."""
        answer = requests.request(method, f"{self.hubspot.url}/_sandbox/objects/contacts{path}", timeout=10,
                                  json={"properties": properties})
        answer.raise_for_status()
        return answer.json()  # type: ignore[no-any-return]

    def contact(self, contact_id: str) -> dict[str, Any]:
        """The contact through HubSpot's API (counted; the test resets the counts after)."""
        answer = requests.get(f"{self.hubspot.url}/crm/v3/objects/contacts/{contact_id}", timeout=10,
                              headers={"Authorization": f"Bearer {TOKEN}"}, params={"properties": "qb_notes"})
        answer.raise_for_status()
        return answer.json()  # type: ignore[no-any-return]

    def hook(self, kind: str, contact: dict[str, Any], **extra: Any) -> None:
        """Deliver HubSpot's webhook for a change of ``contact``, stamped with its ``updatedAt``."""
        updated_ms = int(_epoch(contact["updatedAt"]) * 1000)
        events = [{"eventId": next(EVENT_IDS), "subscriptionId": 1, "portalId": self.portal, "appId": 1,
                   "occurredAt": updated_ms, "subscriptionType": kind, "attemptNumber": 0,
                   "objectId": int(contact["id"]), "changeSource": "CRM", **extra}]
        body = json.dumps(events).encode()
        answer = self.client.post("/webhooks/hubspot", data=body, content_type="application/json",
                                  headers=webhook_headers(SECRET, "POST", PUBLIC + "/webhooks/hubspot", body,
                                                          int(time.time() * 1000)))
        assert answer.status_code == 200, answer.get_data(as_text=True)

    def qbo_hook(self, customer_id: str) -> None:
        """Deliver Intuit's signed webhook for a customer change (the harness's helper)."""
        Harness(self.app, self.client, self.qbo, self.hubspot, self.connection_id, "").qbo_hook(customer_id)

    def work(self) -> None:
        """Run every queued job with a real RQ worker in burst mode."""
        build_worker(self.app).work(burst=True)

    def hubspot_calls(self) -> dict[str, int]:
        """HubSpot API calls since the last reset, by endpoint."""
        return requests.get(f"{self.hubspot.url}/_sandbox/requests", timeout=10).json()[  # type: ignore[no-any-return]
            "by_endpoint"]

    def reset_calls(self) -> None:
        """Zero HubSpot's request counts."""
        requests.delete(f"{self.hubspot.url}/_sandbox/requests", timeout=10).raise_for_status()

    def link_of(self, contact_id: str) -> ContactLink:
        """The contact's link."""
        with self.app.app_context():
            row = db.session.scalars(select(ContactLink).where(ContactLink.crm_contact_id == contact_id)).one()
            db.session.expunge_all()
            return row

    def events_of(self, contact_id: str) -> list[EventStatus]:
        """The statuses of the contact's inbound events."""
        with self.app.app_context():
            return list(db.session.scalars(select(InboundEvent.status).where(InboundEvent.entity_id == contact_id)
                                           .order_by(InboundEvent.id)))

    def audit(self, contact_id: str) -> list[tuple[str, str | None]]:
        """(action, message) of the contact's audit entries."""
        with self.app.app_context():
            rows = db.session.execute(select(AuditEntry.action, AuditEntry.message).where(
                AuditEntry.entity_id == contact_id).order_by(AuditEntry.id)).all()
            return [(row.action, row.message) for row in rows]


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def world(tmp_path: Path, database_url: str, redis_client: Redis) -> Iterator[World]:
    """The local HubSpot (no webhook target: the test delivers them) and the QBO sandbox, connected."""
    hubspot = start_server("127.0.0.1", 0, SandboxConfig(token=TOKEN, client_secret=SECRET))
    qbo = QboSandbox()
    try:
        base = qbo_settings(tmp_path, database_url, qbo)
        settings = make_settings(tmp_path, database_url, **{
            **{name: getattr(base, name) for name in ("qbo_environment", "qbo_client_id", "qbo_client_secret",
                                                      "qbo_redirect_uri", "qbo_discovery_url", "qbo_api_base",
                                                      "qbo_app_base")},
            "public_url": PUBLIC, "hubspot_client_secret": SECRET, "hubspot_api_base": hubspot.url})
        app = create_app(settings)
        _migrate(app)
        if not settings.is_sqlite:
            _truncate(app)
        with app.app_context():
            made = create_hubspot_connection(runtime(app).secrets, api_base=hubspot.url, token=TOKEN,
                                             portal_id=str(hubspot.sandbox.config.portal_id))
            connection_id = made.connection.id
            db.session.remove()
        connect_qbo(app, connection_id, qbo.realm_id)
        yield World(app, hubspot, qbo, connection_id)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    finally:
        qbo.stop()
        hubspot.stop()


def _linked_contact(world: World, email: str) -> dict[str, Any]:
    """A HubSpot contact created by a user and linked to the QBO customer crm-qb created for it."""
    contact = world.user_edit("POST", "", {"email": email, "firstname": "Echo", "lastname": email.split("@")[0]})
    world.hook("contact.creation", contact)
    world.work()
    assert world.link_of(contact["id"]).state == LinkState.LINKED
    return contact


def test_the_echo_of_crm_qbs_own_write_is_settled_without_reading_hubspot(world: World) -> None:
    contact = _linked_contact(world, "echo@example.com")
    customer_id = str(world.link_of(contact["id"]).qbo_customer_id)
    world.qbo.edit_customer(customer_id, Notes="from the books")
    world.qbo_hook(customer_id)
    world.work()
    written = world.contact(contact["id"])
    assert written["properties"]["qb_notes"] == "from the books"
    assert world.link_of(contact["id"]).crm_version == str(int(_epoch(written["updatedAt"]) * 1000))

    world.reset_calls()
    world.hook("contact.propertyChange", written, propertyName="qb_notes", propertyValue="from the books")
    world.work()
    assert world.hubspot_calls() == {}  # the echo reported the agreed version: no read
    assert world.events_of(contact["id"])[-1] == EventStatus.PROCESSED
    assert world.audit(contact["id"])[-1][0] == "contact.unchanged"

    edited = world.user_edit("PATCH", f"/{contact['id']}", {"qb_notes": "from a HubSpot user"})
    world.hook("contact.propertyChange", edited, propertyName="qb_notes", propertyValue="from a HubSpot user")
    world.work()
    assert world.qbo.customer(customer_id)["Notes"] == "from a HubSpot user"  # a newer version is read and synced


def test_changes_of_several_contacts_in_one_drain_are_one_batch_read(world: World) -> None:
    contacts = [_linked_contact(world, f"batch{n}@example.com") for n in range(3)]
    world.reset_calls()
    for n, contact in enumerate(contacts):
        edited = world.user_edit("PATCH", f"/{contact['id']}", {"phone": f"+1 555 010{n}"})
        world.hook("contact.propertyChange", edited, propertyName="phone", propertyValue=f"+1 555 010{n}")
    world.work()
    calls = world.hubspot_calls()
    assert calls.get("POST /crm/v3/objects/<object_type>/batch/read") == 1
    assert "GET /crm/v3/objects/<object_type>/<object_id>" not in calls
    for n, contact in enumerate(contacts):
        customer = world.qbo.customer(str(world.link_of(contact["id"]).qbo_customer_id))
        assert customer["PrimaryPhone"]["FreeFormNumber"] == f"+1 555 010{n}"


def test_a_backfill_links_the_contacts_it_created_without_reading_each_again(world: World) -> None:
    """The backfill creates contacts on a second connector (its own thread); linking them on the first must not
    re-read each from HubSpot (it did: one GET per created contact, 267 of a 300-customer backfill's 278 calls)."""
    from crm_qb.sync.pipeline.backfill import run_backfill

    made = [world.qbo.create_customer(DisplayName=f"Backfilled {n}", GivenName="Back", FamilyName=f"Filled{n}",
                                      PrimaryEmailAddr={"Address": f"backfilled{n}@example.com"})
            for n in range(12)]
    world.reset_calls()
    with world.app.app_context():
        report = run_backfill(runtime(world.app).sync_services(), world.connection_id)
        db.session.remove()
    assert report.phases["customers"].created == len(made)
    calls = world.hubspot_calls()
    assert calls.get("POST /crm/v3/objects/<object_type>/batch/create") == 1
    assert "GET /crm/v3/objects/<object_type>/<object_id>" not in calls, calls
    for customer in made:
        link = world.link_of(world_contact_id(world, customer["Id"]))
        assert link.state == LinkState.LINKED and link.qbo_customer_id == customer["Id"]


def world_contact_id(world: World, customer_id: str) -> str:
    """The CRM contact linked to a QBO customer."""
    with world.app.app_context():
        contact_id = db.session.scalars(select(ContactLink.crm_contact_id).where(
            ContactLink.qbo_customer_id == customer_id)).one()
        db.session.rollback()
        return str(contact_id)
