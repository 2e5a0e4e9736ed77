"""CRM → QBO: apply CRM contact changes (created, updated, deleted, merged) to QuickBooks.

The events of one contact are coalesced: the contact is read once, as it is now (so duplicate and out-of-order
hooks converge on the current state), and synced once. Events that all report the version the link already
agreed on (the echo of crm-qb's own write, or of a contact the backfill created: HubSpot's hooks carry it) settle
without reading the contact: nothing in them is new, and the read would spend the CRM's rate limit, which HubSpot
keeps low. A deleted contact unlinks (and, by setting, makes the QBO customer inactive); a merged contact moves
its link to the survivor.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from crm_qb.crm.errors import ContactNotFoundError
from crm_qb.crm.protocol import Contact
from crm_qb.errors import PermanentError
from crm_qb.models import LinkState
from crm_qb.qbo.faults import DuplicateNameError, StaleObjectError
from crm_qb.sync.context import SyncContext
from crm_qb.sync.customers import links
from crm_qb.sync.customers.identity import customers_named, display_name_taken, match_in_qbo
from crm_qb.sync.customers.links import LinkRecord, Record
from crm_qb.sync.customers.qbo_side import CRM_MERGED, done, link_pair, review
from crm_qb.sync.customers.reconcile import Sides, StillRacingError, apply_customer_facts, contact_json, reconcile
from crm_qb.sync.pipeline.events import EventRef, reported_version
from crm_qb.sync.rules.mapping import canonical_from_crm, canonical_from_qbo, qbo_create_body
from crm_qb.sync.rules.matching import AMBIGUOUS, LINKED, distinct_display_name, same_person

log = logging.getLogger(__name__)

DIRECTION = "crm_to_qbo"
NAME_ATTEMPTS = 5


class DisplayNameUnavailableError(PermanentError):
    """QBO kept refusing every distinct display name tried for a new customer (6240)."""


def apply_contact_events(ctx: SyncContext, contact_id: str, events: Sequence[EventRef]) -> str:
    """Apply every pending event of one contact (in arrival order) as one sync; return what happened."""
    ids = [event.id for event in events]
    merged = [event for event in events if event.operation == "merged"]
    if merged:
        return apply_crm_merge(ctx, contact_id, str(merged[-1].payload.get("merged_into") or ""), ids)
    if events[-1].operation == "deleted":
        return apply_crm_delete(ctx, contact_id, ids)
    link = links.find_by_crm(ctx.connection_id, contact_id)
    if link is not None and link.state == LinkState.LINKED and agreed(events, link.crm_version):
        done(ctx, echo_record(contact_id, link.crm_version), ids)
        return "unchanged (version already agreed)"
    return sync_contact(ctx, contact_id, ids)


def agreed(events: Sequence[EventRef], version: str | None) -> bool:
    """Whether every event reports exactly ``version`` (the link's agreed CRM version): nothing to read."""
    return version is not None and all(reported_version(event) == version for event in events)


def echo_record(contact_id: str, version: str | None) -> Record:
    """The audit record of a contact's events that report the version its link agreed on (an echo)."""
    return Record("contact.unchanged", DIRECTION, "Contact", contact_id,
                  message=f"the change hook reports version {version}, already agreed")


def sync_contact(ctx: SyncContext, contact_id: str, events: Sequence[int]) -> str:
    """Sync one CRM contact, as it is now (read by the drain's batch read, or now), to QBO."""
    try:
        contact = ctx.crm_contacts_held.pop(contact_id, None) or ctx.crm.get_contact(contact_id)
    except ContactNotFoundError:
        done(ctx, Record("skip.contact_gone", DIRECTION, "Contact", contact_id), events)
        return "skipped (contact gone)"
    link = links.find_by_crm(ctx.connection_id, contact_id)
    if link is None:
        return link_new_contact(ctx, contact, events)
    if link.state == LinkState.REVIEW and link.qbo_customer_id is None:
        return link_new_contact(ctx, contact, events, existing=link)  # waiting for a match: look again
    if link.state != LinkState.LINKED:
        done(ctx, Record(f"skip.{link.state.value}", DIRECTION, "Contact", contact_id), events)
        return f"skipped ({link.state.value})"
    outcome = reconcile(ctx, link, Sides(contact=contact))
    record = Record("contact.synced" if outcome.wrote else "contact.unchanged", DIRECTION, "Contact", contact_id,
                    outcome.diff(), conflicts=outcome.conflicts, intuit_tid=outcome.intuit_tid)
    done(ctx, record, events, [link])
    return "synced" if outcome.wrote else "unchanged"


def link_new_contact(ctx: SyncContext, contact: Contact, events: Sequence[int],
                     existing: LinkRecord | None = None) -> str:
    """Match an unlinked contact among QBO customers: link one, review several, else create a customer.

    ``existing`` is the contact's row waiting for review when it is looked at again: updated in place, or
    removed when the contact no longer waits.
    """
    gone = [existing.id] if existing is not None and existing.id is not None else []
    if not contact.active:
        done(ctx, Record("skip.inactive", DIRECTION, "Contact", contact.id), events, delete=gone)
        return "skipped (inactive)"
    record = canonical_from_crm(contact_json(contact))
    outcome, customers = match_in_qbo(ctx, record)
    if outcome.kind == AMBIGUOUS:
        return review(ctx, existing or LinkRecord(ctx.connection_id, crm_contact_id=contact.id), list(outcome.ids),
                      f"several QuickBooks customers match by {outcome.by}", events, DIRECTION)
    if outcome.kind == LINKED:
        waiting = _waiting_customer(ctx, str(outcome.linked_id))
        if waiting is not None:
            return join_review(ctx, waiting, contact, outcome.by or "name", events, gone)
        return link_pair(ctx, customers[str(outcome.linked_id)], contact, events,
                         f"link.matched_by_{outcome.by}", direction=DIRECTION)
    if not ctx.settings.to_qbo:
        done(ctx, Record("skip.direction", DIRECTION, "Contact", contact.id,
                         message="no match; the direction does not allow creating QuickBooks customers"), events,
             delete=gone)
        return "skipped (direction)"
    return _create_customer(ctx, record, contact, events)


def _waiting_customer(ctx: SyncContext, customer_id: str) -> LinkRecord | None:
    """The customer's row when it waits for a person to pick its contact (None: it does not)."""
    link = links.find_by_qbo(ctx.connection_id, customer_id)
    return link if link is not None and link.state == LinkState.REVIEW and link.crm_contact_id is None else None


def join_review(ctx: SyncContext, waiting: LinkRecord, contact: Contact, by: str, events: Sequence[int],
                gone: Sequence[int] = ()) -> str:
    """A new contact matching a customer that waits for review joins its candidates; nothing is linked.

    The person reviewing the customer decides among every contact that matches it, the new one included: linking
    the new contact on its own would take the decision from them (and the customer may well belong to another
    candidate). The review is stored again with the candidates as they are now, and audited; the contact's own
    row waiting for a match (``gone``), if it had one, is replaced by its place among the candidates.
    """
    candidates = [str(c) for c in waiting.review_candidates or []]
    if contact.id not in candidates:
        candidates.append(contact.id)
    waiting.review_candidates = candidates
    waiting.review_reason = waiting.review_reason or f"several CRM contacts match by {by}"
    done(ctx, Record("link.review", DIRECTION, "Customer", waiting.qbo_customer_id,
                     {"candidates": candidates, "crm_contact_id": contact.id}, message=waiting.review_reason),
         events, [waiting], delete=[i for i in gone if i != waiting.id])
    log.info("new contact joined a review connection=%s link=%s job=%s", ctx.connection_id, waiting.id, ctx.job_id)
    return "review"


def _create_customer(ctx: SyncContext, record: dict[str, Any], contact: Contact, events: Sequence[int]) -> str:
    body = qbo_create_body(record)
    try:
        customer = ctx.qbo.create("Customer", body)
    except DuplicateNameError:
        return _after_duplicate_name(ctx, record, body, contact, events)
    return link_pair(ctx, customer, contact, events, "link.created_in_qbo", direction=DIRECTION)


def _after_duplicate_name(ctx: SyncContext, record: dict[str, Any], body: dict[str, Any], contact: Contact,
                          events: Sequence[int]) -> str:
    """6240: link to the customer holding the name when it is the same person, else create under a distinct name."""
    wanted = str(body["DisplayName"])
    for existing in customers_named(ctx, wanted):
        if same_person(canonical_from_qbo(existing), record):
            return link_pair(ctx, existing, contact, events, "link.matched_after_6240", direction=DIRECTION,
                             note=f"display name {wanted!r} was taken by the same person")
    customer, name = _create_under_distinct_name(ctx, body, wanted)
    note = f"display name {wanted!r} is taken in QuickBooks (6240); created as {name!r}"
    log.info("6240 on create connection=%s: created under a distinct name job=%s", ctx.connection_id, ctx.job_id)
    return link_pair(ctx, customer, contact, events, "link.created_in_qbo_renamed", direction=DIRECTION, note=note)


def _create_under_distinct_name(ctx: SyncContext, body: dict[str, Any], wanted: str) -> tuple[dict[str, Any], str]:
    """Create the customer as "wanted (n)", the first n no customer, vendor or employee uses (docs/architecture.md §3).

    A name taken between the check and the create (or by a list QBO does not let us query) is refused again with
    6240; the next number is tried, a few times, before the refusal is reported as permanent.
    """
    refused: set[str] = {wanted.casefold()}
    for _ in range(NAME_ATTEMPTS):
        name = distinct_display_name(
            wanted, lambda candidate: candidate.casefold() in refused or display_name_taken(ctx, candidate))
        try:
            return ctx.qbo.create("Customer", {**body, "DisplayName": name}), name
        except DuplicateNameError:
            refused.add(name.casefold())
    raise DisplayNameUnavailableError(
        f"QuickBooks refused {NAME_ATTEMPTS} distinct display names for {wanted!r} (6240); rename the contact")


def apply_crm_delete(ctx: SyncContext, contact_id: str, events: Sequence[int]) -> str:
    """Unlink a deleted contact's link; by setting, also make its QBO customer inactive."""
    link = links.find_by_crm(ctx.connection_id, contact_id)
    if link is None or link.state != LinkState.LINKED:
        done(ctx, Record("skip.not_linked", DIRECTION, "Contact", contact_id), events)
        return "skipped (not linked)"
    deactivate = ctx.settings.on_crm_delete == "unlink_and_deactivate" and ctx.settings.to_qbo
    if deactivate:
        apply_customer_facts(ctx, link, _deactivate(ctx, link))
    link.state, link.review_reason = LinkState.UNLINKED, "the CRM contact was deleted"
    done(ctx, Record("link.unlinked", DIRECTION, "Contact", contact_id,
                     {"qbo_customer_id": link.qbo_customer_id, "deactivated": deactivate}), events, [link])
    return "unlinked"


def _deactivate(ctx: SyncContext, link: LinkRecord) -> dict[str, Any]:
    customer_id, token = str(link.qbo_customer_id), link.qbo_sync_token
    for _ in range(3):
        if token is None:
            token = str(ctx.qbo.read("Customer", customer_id)["SyncToken"])
        try:
            return ctx.qbo.sparse_update("Customer", customer_id, token, {"Active": False})
        except StaleObjectError:
            token = None  # changed meanwhile: read the current SyncToken and try again
    raise StillRacingError(f"customer {customer_id} kept changing while we made it inactive")


def apply_crm_merge(ctx: SyncContext, contact_id: str, survivor_id: str, events: Sequence[int]) -> str:
    """Move the merged contact's link to the survivor, or queue a review when both were linked."""
    gone = links.find_by_crm(ctx.connection_id, contact_id)
    if gone is None or gone.state != LinkState.LINKED or not survivor_id:
        done(ctx, Record("merge.noted", DIRECTION, "Contact", contact_id, {"merged_into": survivor_id}), events)
        return "merge noted"
    kept = links.find_by_crm(ctx.connection_id, survivor_id)
    if kept is not None and kept.state == LinkState.LINKED:
        reason = f"{CRM_MERGED} contact {contact_id} into {survivor_id}; both were linked"
        return review(ctx, gone, [survivor_id], reason, events, DIRECTION)
    try:
        survivor = ctx.crm.get_contact(survivor_id)
    except ContactNotFoundError:
        done(ctx, Record("merge.survivor_gone", DIRECTION, "Contact", survivor_id), events)
        return "skipped (survivor gone)"
    customer = ctx.qbo.read("Customer", str(gone.qbo_customer_id))
    gone.crm_contact_id, gone.base = survivor_id, None
    outcome = reconcile(ctx, gone, Sides(customer=customer, contact=survivor))
    delete = [kept.id] if kept is not None and kept.id is not None else []
    done(ctx, Record("merge.link_moved", DIRECTION, "Contact", survivor_id,
                     {**outcome.diff(), "merged_contact_id": contact_id}), events, [gone], delete)
    return "link moved"
