"""Earlier activities: billable time logged before its contact was linked, or before the connection existed.

Hooks bring only what changes while crm-qb listens, and time of an unlinked contact that did arrive by hook waits
as ``held`` (``apply.py``). What no hook ever brought (activities logged before the connection, or before the CRM's
hooks were pointed at crm-qb) is read from the CRM's activity list instead (DESIGN §9: "a contact linked later
gets its earlier billable activities"). Each contact link carries ``time_walked_at``: None until its contact's
earlier activities were read (a new link, or a link moved to another contact).

- **The backfill and the first sync** walk every activity of the CRM once, in pages (``walk_all``): a page's time
  of linked contacts (walked before or not: a hook lost on the way is made up for too), and any activity crm-qb
  already knows, goes through the same ``TimeSync.apply`` as hooks
  (creates in batches of 30), then every link that was linked when the walk began is marked walked. One walk,
  not a read per contact, so a first sync of 100k contacts costs pages, not contacts.
- **Any other link** (a drain's match, a review's choice, a contact created later) is caught up after the drain
  (``catch_up``, called from ``apply.release``): a few links per run, each contact's activities read with
  ``list_activities(contact_id=…)``, so a drain never stalls on a long catch-up; the rest go in the next runs.
- **Once, whatever arrives first.** An activity's entry is unique per connection and ``apply`` skips a version
  already applied, so an activity seen by the walk and by its hook is created once (and a create cut short is
  resent under its stored request id).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from crm_qb.crm.errors import CrmNotFoundError
from crm_qb.crm.protocol import Activity
from crm_qb.sync.context import SyncContext
from crm_qb.sync.rules import time as rules
from crm_qb.sync.time import store

log = logging.getLogger(__name__)

WALK_PAGE = 100  # activities per page of the whole-CRM walk (the REST contract's page size)
CATCH_UP_LINKS = 5  # links caught up per run after a drain: a HubSpot contact costs up to 4 calls

Outcomes = Callable[[Sequence[tuple[str, str]]], None]


class TimeSyncLike(Protocol):
    """What the walks need of ``apply.TimeSync`` (which calls them, so this module does not import it)."""

    ctx: SyncContext

    def apply_activities(self, activities: Sequence[Activity]) -> list[tuple[str, str]]:
        """Apply activities as the CRM has them now; return each one's (activity id, outcome)."""
        ...


def wanted(activities: Iterable[Activity], linked: set[str], known: set[str]) -> list[Activity]:
    """The activities the time sync must see: time of a linked contact, and any activity it already knows (its
    entry may need the change); the rest (no time, or a contact not linked yet) is read again when linked."""
    return [a for a in activities if a.id in known or (str(a.contact_id) in linked and rules.not_time_reason(
        a.billable, a.duration_minutes, a.contact_id, a.type) is None)]


def walk_all(sync: TimeSyncLike, on_page: Outcomes | None = None) -> Counter[str]:
    """Apply the time of every linked contact's activities, page by page; mark the links walked; return counts.

    ``on_page`` receives each page's (activity id, outcome) pairs (the first sync records them). Run it under the
    connection's sync lock, so no link appears meanwhile that the final mark would wrongly cover.
    """
    connection_id = sync.ctx.connection_id
    links = store.unwalked_links(connection_id, limit=None)
    counts: Counter[str] = Counter()
    try:
        for page in sync.ctx.crm.list_activities(page_size=WALK_PAGE):
            linked = set(store.linked_customers(connection_id, (str(a.contact_id) for a in page.activities
                                                                if a.contact_id)))
            counts += _apply_page(sync, page.activities, linked, on_page)
    except CrmNotFoundError:
        log.info("time walk connection=%s: the CRM keeps no activities", connection_id)
    store.mark_walked(connection_id, [link for link, _contact in links])
    log.info("time walk connection=%s job=%s: %d links, %s", connection_id, sync.ctx.job_id, len(links),
             dict(counts))
    return counts


def catch_up(sync: TimeSyncLike, limit: int = CATCH_UP_LINKS) -> Counter[str]:
    """Apply the earlier activities of up to ``limit`` linked contacts not walked yet; mark them walked."""
    connection_id = sync.ctx.connection_id
    counts: Counter[str] = Counter()
    for link_id, contact_id in store.unwalked_links(connection_id, limit=limit):
        try:
            activities = [a for page in sync.ctx.crm.list_activities(contact_id=contact_id, page_size=WALK_PAGE)
                          for a in page.activities if a.contact_id == contact_id]
        except CrmNotFoundError:
            activities = []  # a CRM without activities: nothing earlier to send
        counts += _apply_page(sync, activities, {contact_id}, None)
        store.mark_walked(connection_id, [link_id])
    return counts


def _apply_page(sync: TimeSyncLike, activities: Sequence[Activity], linked: set[str],
                on_page: Outcomes | None) -> Counter[str]:
    known = set(store.entries(sync.ctx.connection_id, [a.id for a in activities]))
    chosen = wanted(activities, linked, known)
    outcomes = sync.apply_activities(chosen) if chosen else []
    if on_page is not None:
        on_page(outcomes)
    return Counter(outcome for _activity, outcome in outcomes)

