"""The CRM catch-up poll: find contact changes no change hook announced, as the CDC poll does for QBO.

A CRM's hooks can be lost (the CRM gave up retrying, crm-qb was unreachable for longer than the CRM retries, sync
was off). Every poll interval the connection's contacts changed since its cursor minus an overlap are listed
(``GET /contacts?updated_since=``, docs/architecture.md §5); each one whose version differs from the version the
link last agreed on is stored as an inbound event (``contact.updated``, keyed by contact and version, so a second
poll of the same version stores nothing) and drained like a hook's, with the same retries and outage handling.
The poll only reads the CRM and stores events, so it needs no connection lock and runs through a QBO outage.

A live poll reads at most ``LIVE_PAGES`` pages: one that finds more (the first poll after a first sync made
thousands of contacts, a mass edit in the CRM) stops there without moving its cursor (``LargePoll``), and its job
hands the whole poll to the bulk lane, which reads every page. What the live pages found is stored all the same;
reading it again stores nothing twice.

The cursor is the CRM's own ``updated_at`` of the latest change seen (its clock, not ours), so a CRM whose clock
differs from ours loses nothing; the overlap covers changes committed out of timestamp order. A connection whose
sync is off is not polled: its cursor stays where sync stopped, and the first poll after it is turned on catches
up every change made meanwhile (crm_qb.sync.settings).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select

from crm_qb.crm.protocol import Contact
from crm_qb.db import db, utcnow
from crm_qb.models import Connection, ContactLink, EventSource
from crm_qb.sync.context import SyncContext
from crm_qb.sync.pipeline import events
from crm_qb.sync.pipeline.events import CONTACT, Notice

log = logging.getLogger(__name__)

OVERLAP = timedelta(minutes=5)
FIRST_LOOK_BACK = timedelta(hours=1)
PAGE_SIZE = 100
LIVE_PAGES = 5  # a live poll reads at most this many pages (500 changes); more is bulk work


class LargePoll(Exception):
    """The poll found more pages than it may read (``page_limit``); ``stored`` events were stored meanwhile."""

    def __init__(self, stored: int, pages: int) -> None:
        super().__init__(f"more than {pages} pages of CRM changes: the poll is bulk work")
        self.stored = stored


def poll_crm_changes(ctx: SyncContext, now: datetime | None = None, *, page_limit: int | None = None) -> int:
    """Store an event for every contact changed since the cursor that sync has not seen; return how many.

    With ``page_limit``, raise LargePoll (cursor unmoved) instead of reading a page beyond it."""
    now = now or utcnow()
    cursor = _cursor(ctx.connection_id)
    since = cursor - OVERLAP if cursor else now - FIRST_LOOK_BACK
    stored, latest = 0, cursor
    for read, page in enumerate(ctx.crm.list_contacts_updated_since(since, page_size=PAGE_SIZE), 1):
        stored += _store_unseen(ctx.connection_id, page.contacts)
        for contact in page.contacts:
            latest = max(latest, contact.updated_at) if latest else contact.updated_at
        if page_limit is not None and read >= page_limit and page.next_cursor is not None:
            raise LargePoll(stored, page_limit)
    _advance(ctx.connection_id, latest or since, now)
    log.info("CRM poll connection=%s since=%s stored=%s job=%s", ctx.connection_id, since.isoformat(), stored,
             ctx.job_id)
    return stored


def _store_unseen(connection_id: int, contacts: Sequence[Contact]) -> int:
    """Store events for the contacts whose version the link does not know (committed); return how many."""
    if not contacts:
        return 0
    rows = db.session.execute(select(ContactLink.crm_contact_id, ContactLink.crm_version).where(
        ContactLink.connection_id == connection_id, ContactLink.crm_contact_id.in_([c.id for c in contacts]))).all()
    known = {row.crm_contact_id: row.crm_version for row in rows}
    notices = [_notice(connection_id, c) for c in contacts if known.get(c.id) != str(c.version)]
    stored = events.store(EventSource.CRM, notices, connection_id)
    db.session.commit()
    return len(stored)


def _notice(connection_id: int, contact: Contact) -> Notice:
    return Notice(dedupe_key=f"crm-poll:{connection_id}:{contact.id}:{contact.version}", realm_id=None,
                  entity=CONTACT, entity_id=contact.id, operation="updated", occurred_at=contact.updated_at,
                  payload={"via": "crm_poll", "contact_id": contact.id, "version": contact.version})


def _cursor(connection_id: int) -> datetime | None:
    cursor = db.session.scalar(select(Connection.crm_cursor).where(Connection.id == connection_id))
    db.session.rollback()
    return cursor


def _advance(connection_id: int, latest: datetime, now: datetime) -> None:
    connection = db.session.get(Connection, connection_id)
    if connection is not None:
        connection.crm_cursor = max(latest, connection.crm_cursor) if connection.crm_cursor else latest
        connection.crm_polled_at = now
    db.session.commit()
