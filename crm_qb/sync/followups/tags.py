"""The overdue tag: kept on every linked contact that has an overdue invoice, and off the others.

One GET per contact, and a PATCH only when the tag is wrong, at the contact's current version; a version
conflict (someone edited the contact meanwhile) re-reads and tries again, a few times.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from crm_qb.crm.errors import ContactNotFoundError, VersionConflictError
from crm_qb.crm.protocol import CrmConnector
from crm_qb.sync.pacing import no_pace
from crm_qb.sync.rules.followups import tags_with

log = logging.getLogger(__name__)

TAG_ATTEMPTS = 3


class TagCounts(Protocol):
    """Where the keeper counts what it did (a scan's result)."""

    tagged: int
    untagged: int


class TagKeeper:
    """Puts ``tag`` on contacts and takes it off, through one CRM connector, counting into ``counts``; ``pace`` is
    called before each contact (bulk work gives way to live work: crm_qb.sync.pacing)."""

    def __init__(self, crm: CrmConnector, tag: str, counts: TagCounts, pace: Callable[[], None] = no_pace) -> None:
        self.crm, self.tag, self.counts, self.pace = crm, tag, counts, pace

    def reconcile(self, contact_ids: Sequence[str], overdue: set[str], connection_id: int) -> None:
        """Tag each of ``contact_ids`` in ``overdue`` and untag the rest; a contact that is gone is skipped."""
        for contact_id in contact_ids:
            self.pace()
            try:
                self.set(contact_id, contact_id in overdue)
            except ContactNotFoundError:
                log.info("connection %s: contact %s is gone; no tag to keep", connection_id, contact_id)

    def set(self, contact_id: str, wanted: bool) -> None:
        """Add or remove the tag at the contact's current version, re-reading after a version conflict."""
        for attempt in range(TAG_ATTEMPTS):
            contact = self.crm.get_contact(contact_id)
            if (self.tag in contact.tags) == wanted:
                return
            tags = tags_with(contact.tags, self.tag, wanted)
            try:
                self.crm.update_contact(contact_id, contact.version, {"tags": tags})
            except VersionConflictError:
                if attempt == TAG_ATTEMPTS - 1:
                    raise
                continue
            if wanted:
                self.counts.tagged += 1
            else:
                self.counts.untagged += 1
            return
