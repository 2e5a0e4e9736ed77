"""The catch-up poll of a CRM's changed contacts: what webhooks missed becomes inbound events like any other.

HubSpot retries a failed webhook delivery for a day and then drops it (docs/hubspot/facts.md §8.2), so a HubSpot
connection also asks, every poll interval, for the contacts whose ``lastmodifieddate`` is at or after its cursor
(the connector's ``list_contacts_updated_since``: HubSpot's search). Each contact found is stored as an
``updated`` event keyed by its id and version, so a version seen twice (the overlap, a repeated poll) is stored
once, and the drain reads the contact as it is now: a change a webhook already synced is an "unchanged" no-op.

The walk starts OVERLAP before the cursor because HubSpot's search is eventually consistent (a contact changed a
moment before the cursor may not have been found yet), and the cursor only moves to the latest stamp actually
seen, never to "now". The first poll of a connection only sets the cursor: the backfill covered what came before.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from crm_qb.crm.protocol import CrmConnector
from crm_qb.db import db, utcnow
from crm_qb.models import Connection, EventSource
from crm_qb.sync.pipeline import events
from crm_qb.sync.pipeline.events import CONTACT, Notice

log = logging.getLogger(__name__)

OVERLAP = timedelta(minutes=2)
MAX_CONTACTS = 10_000  # one poll's share; the next poll goes on from the cursor


def poll_crm_contacts(connection_id: int, crm: CrmConnector, now: datetime | None = None) -> list[Notice]:
    """Store an event per contact changed since the connection's cursor; return the new ones (the caller wakes)."""
    connection = db.session.get(Connection, connection_id)
    if connection is None:
        db.session.rollback()
        return []
    if connection.crm_cursor is None:
        connection.crm_cursor = now or utcnow()
        db.session.commit()
        return []
    since, latest = connection.crm_cursor - OVERLAP, connection.crm_cursor
    db.session.rollback()  # no transaction stays open while the CRM is called
    notices: list[Notice] = []
    for page in crm.list_contacts_updated_since(since, page_size=100):
        for contact in page.contacts:
            latest = max(latest, contact.updated_at)
            notices.append(Notice(dedupe_key=f"crm-poll:{connection_id}:{contact.id}:{contact.version}",
                                  realm_id=None, entity=CONTACT, entity_id=contact.id, operation="updated",
                                  occurred_at=contact.updated_at, payload={"poll": True}))
        if len(notices) >= MAX_CONTACTS:
            break
    new = events.store(EventSource.CRM, notices, connection_id)
    found = db.session.get(Connection, connection_id)
    if found is not None:
        found.crm_cursor = latest
    db.session.commit()
    log.info("CRM poll connection=%s: %d changed contact(s), %d new event(s)", connection_id, len(notices), len(new))
    return new
