"""QBO → CRM: apply changed QBO customers (and QBO customer merges) to the CRM.

The caller fetched the customers in bulk (``QboClient.read_many``: one query for a batch's ids, or one CDC call);
here each customer is synced: a linked one is merged three ways, an unlinked one is matched before anything is
created, a customer under review or unlinked on purpose is left alone. Inactive customers mark their contact
inactive (never deleted) and are never used to create a contact.

Sub-customers ("jobs", docs/architecture.md §3): every customer seen is remembered in the hierarchy first. A job is
never linked to a contact of one of its ancestors. A job with an email of its own is matched like any customer.
A job without one (no email, or its parent's, as jobs usually inherit it) links only to a contact whose display
name is exactly the job's; otherwise no contact is made for it and it is shown under its parent's contact, whose
folder lists the job's transactions (and whose follow-ups cover its invoices).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update

from crm_qb.crm.errors import ContactNotFoundError, CrmUnrepresentableError
from crm_qb.crm.protocol import Contact
from crm_qb.db import db
from crm_qb.models import FolderItem, LinkState
from crm_qb.sync.context import SyncContext
from crm_qb.sync.customers import hierarchy, links
from crm_qb.sync.customers.identity import match_by_exact_name, match_in_crm, remember_crm_contact
from crm_qb.sync.customers.links import LinkRecord, Record
from crm_qb.sync.customers.reconcile import Sides, reconcile
from crm_qb.sync.rules.mapping import canonical_from_qbo, crm_create_body
from crm_qb.sync.rules.matching import AMBIGUOUS, LINKED, MatchOutcome, has_own_email

log = logging.getLogger(__name__)

QBO_MERGED = "QuickBooks merged"
CRM_MERGED = "the CRM merged"
UNDER_PARENT = "a sub-customer without an email or contact of its own: shown under its parent's contact"

def sync_customer(ctx: SyncContext, customer: dict[str, Any], events: Sequence[int]) -> str:
    """Sync one changed QBO customer to the CRM; return what happened (for the log)."""
    customer_id = str(customer["Id"])
    hierarchy.remember(ctx.connection_id, [customer])
    link = links.find_by_qbo(ctx.connection_id, customer_id)
    if link is None:
        return link_new_customer(ctx, customer, events)
    if link.state == LinkState.REVIEW and link.crm_contact_id is None:
        return link_new_customer(ctx, customer, events, existing=link)  # waiting for a match: look again
    if link.state != LinkState.LINKED:
        done(ctx, Record(f"skip.{link.state.value}", "qbo_to_crm", "Customer", customer_id), events)
        return f"skipped ({link.state.value})"
    sides = Sides(customer=customer)
    try:
        outcome = reconcile(ctx, link, sides)
    except ContactNotFoundError:
        return _contact_gone(ctx, link, events)
    record = Record("customer.synced" if outcome.wrote else "customer.unchanged", "qbo_to_crm", "Customer",
                    customer_id, outcome.diff(), conflicts=outcome.conflicts, intuit_tid=outcome.intuit_tid)
    # A poll re-reading an unchanged customer is not news: only webhook-driven or writing syncs are audited.
    done(ctx, record if outcome.wrote or events else None, events, [link])
    if outcome.wrote or events:  # its QBO-owned facts (balance, terms) may have changed: a summary to push
        ctx.customers_changed.add(customer_id)
    return "synced" if outcome.wrote else "unchanged"


@dataclass(frozen=True)
class NewContact:
    """An unlinked customer that matched nothing: the CRM contact to create for it (``body``), then link."""

    customer: dict[str, Any]
    body: dict[str, Any]


def link_new_customer(ctx: SyncContext, customer: dict[str, Any], events: Sequence[int],
                      existing: LinkRecord | None = None) -> str:
    """Match an unlinked customer among CRM contacts: link one, queue several for review, else create one.

    ``existing`` is the customer's row waiting for review when it is looked at again (it changed, a candidate
    changed, or a person asked): it is updated in place, or removed when the customer no longer waits.
    """
    planned = plan_new_customer(ctx, customer, events, existing)
    if isinstance(planned, str):
        return planned
    try:
        created = ctx.crm.create_contact(planned.body)
    except CrmUnrepresentableError as exc:  # the CRM cannot hold it as a contact: a person decides (mapping.md §3)
        return review(ctx, LinkRecord(ctx.connection_id, qbo_customer_id=str(customer["Id"])), [], str(exc), events)
    return link_created(ctx, customer, created, events)


def link_created(ctx: SyncContext, customer: dict[str, Any], created: Contact, events: Sequence[int]) -> str:
    """Link a customer to the contact just created for it (``NewContact``)."""
    remember_crm_contact(ctx, created)
    return link_pair(ctx, customer, created, events, "link.created_in_crm")


def plan_new_customer(ctx: SyncContext, customer: dict[str, Any], events: Sequence[int],
                      existing: LinkRecord | None = None) -> str | NewContact:
    """Everything of ``link_new_customer`` but the create: the outcome, or the contact still to create.

    A caller that creates contacts in batches (the backfill) creates ``NewContact.body`` and hands the result to
    ``link_created``; until then a later customer of the same email or name must wait for it.
    """
    customer_id = str(customer["Id"])
    gone = [existing.id] if existing is not None and existing.id is not None else []
    if not customer.get("Active", True):
        done(ctx, Record("skip.inactive", "qbo_to_crm", "Customer", customer_id,
                          message="inactive customers are not linked or created"), events, delete=gone)
        return "skipped (inactive)"
    record = canonical_from_qbo(customer)
    parent_id = hierarchy.parent_of(customer)
    job_without_email = parent_id is not None and _shares_parent_email(ctx, record, parent_id)
    if parent_id is not None:
        outcome, contacts = _match_job(ctx, record, parent_id, job_without_email)
    else:
        outcome, contacts = match_in_crm(ctx, record)
    if outcome.kind == AMBIGUOUS:
        waiting = with_version_seen(existing or LinkRecord(ctx.connection_id, qbo_customer_id=customer_id), customer)
        return review(ctx, waiting, list(outcome.ids), f"several CRM contacts match by {outcome.by}", events)
    if outcome.kind == LINKED:
        linked_id = str(outcome.linked_id)
        return link_pair(ctx, customer, contacts.get(linked_id, linked_id), events, f"link.matched_by_{outcome.by}")
    if job_without_email:
        # Like an unchanged customer, only a webhook-driven look is audited (a poll or backfill sees it again).
        note = Record("link.under_parent", "qbo_to_crm", "Customer", customer_id, {"parent_id": parent_id},
                      message=UNDER_PARENT)
        done(ctx, note if events or gone else None, events, delete=gone)
        return "under parent"
    if not ctx.settings.to_crm:
        done(ctx, Record("skip.direction", "qbo_to_crm", "Customer", customer_id,
                          message="no match; the direction does not allow creating CRM contacts"), events,
             delete=gone)
        return "skipped (direction)"
    return NewContact(customer, crm_create_body(record, folded=True))  # canonical_from_qbo's record


def _match_job(ctx: SyncContext, record: dict[str, Any], parent_id: str,
               without_email: bool) -> tuple[MatchOutcome, dict[str, Contact]]:
    """A job's match: never an ancestor's contact; by exact display name only when it has no email of its own."""
    chain = [parent_id, *(m.qbo_customer_id for m in hierarchy.ancestors(ctx.connection_id, parent_id))]
    ancestors_contacts = set(hierarchy.contacts_for(ctx.connection_id, chain).values())
    if without_email:
        return match_by_exact_name(ctx, record, exclude=ancestors_contacts)
    return match_in_crm(ctx, record, exclude=ancestors_contacts)


def _shares_parent_email(ctx: SyncContext, record: dict[str, Any], parent_id: str) -> bool:
    """Whether a job has no email of its own: none, or its parent's (read from the parent's link, else QBO)."""
    if not record.get("email"):
        return True
    base = links.base_by_qbo(ctx.connection_id, parent_id)
    if base is not None:
        parent_email = base.get("email")
    else:
        parent = ctx.qbo_customers_held.get(parent_id) or ctx.qbo.read("Customer", parent_id)
        parent_email = canonical_from_qbo(parent).get("email")
    return not has_own_email(record, parent_email if isinstance(parent_email, str) else None)


def link_pair(ctx: SyncContext, customer: dict[str, Any], contact: Contact | str, events: Sequence[int],
              action: str, *, direction: str = "qbo_to_crm", note: str | None = None) -> str:
    """First-link a customer and a contact (or queue a review if the contact is linked to another customer).

    ``contact`` may be given by id: it is then read only if it is linked (a review needs no read).
    """
    customer_id = str(customer["Id"])
    contact_id = contact if isinstance(contact, str) else contact.id
    by_contact = links.find_by_crm(ctx.connection_id, contact_id)
    by_customer = links.find_by_qbo(ctx.connection_id, customer_id)
    if _linked_elsewhere(by_contact, by_customer, customer_id, contact_id):
        record = LinkRecord(ctx.connection_id, qbo_customer_id=customer_id) if by_customer is None else by_customer
        if direction == "crm_to_qbo":
            record = by_contact or LinkRecord(ctx.connection_id, crm_contact_id=contact_id)
        else:
            with_version_seen(record, customer)
        return review(ctx, record, [customer_id, contact_id],
                      "the match is already linked to another record", events, direction)
    if isinstance(contact, str):
        contact = ctx.crm.get_contact(contact)
    link = by_contact or by_customer or LinkRecord(ctx.connection_id)
    delete = [by_customer.id] if by_contact and by_customer and by_customer.id not in (None, by_contact.id) else []
    audit = first_link(ctx, link, customer, contact, action, direction=direction, note=note)
    done(ctx, audit, events, [link], [i for i in delete if i is not None])
    log.info("linked customer connection=%s link=%s action=%s job=%s", ctx.connection_id, link.id, action,
             ctx.job_id)
    return action


def first_link(ctx: SyncContext, link: LinkRecord, customer: dict[str, Any], contact: Contact, action: str, *,
               direction: str = "qbo_to_crm", note: str | None = None) -> Record:
    """Make ``link`` the first link of the pair (both sides written as the merge says); return its audit record.

    Nothing is saved: ``link_pair`` saves it at once; the backfill, which knows neither side is linked (a
    contact it has just created for an unlinked customer), saves a batch of them together (``links.save_many``).
    """
    customer_id = str(customer["Id"])
    link.crm_contact_id, link.qbo_customer_id = contact.id, customer_id
    link.base = None  # first link: empty fields are filled from the other side, differing ones take QBO's
    outcome = reconcile(ctx, link, Sides(customer=customer, contact=contact))
    link.state, link.review_reason, link.review_candidates = LinkState.LINKED, None, []
    diff = {**outcome.diff(), "crm_contact_id": contact.id, **({"note": note} if note else {})}
    return Record(action, direction, "Customer", customer_id, diff, intuit_tid=outcome.intuit_tid)


def _linked_elsewhere(by_contact: LinkRecord | None, by_customer: LinkRecord | None, customer_id: str,
                      contact_id: str) -> bool:
    """Whether either record is already linked to a different partner (then a person decides)."""
    if by_contact is not None and by_contact.state == LinkState.LINKED and by_contact.qbo_customer_id != customer_id:
        return True
    return (by_customer is not None and by_customer.state == LinkState.LINKED
            and by_customer.crm_contact_id != contact_id)


def apply_qbo_merge(ctx: SyncContext, survivor: dict[str, Any] | None, survivor_id: str, deleted_id: str | None,
                    events: Sequence[int]) -> str:
    """Move the link of a merged-away customer to the survivor, or queue a review when both were linked."""
    gone = links.find_by_qbo(ctx.connection_id, deleted_id) if deleted_id else None
    if gone is None or gone.state != LinkState.LINKED or survivor is None:
        done(ctx, Record("merge.noted", "qbo_to_crm", "Customer", survivor_id, {"deleted_id": deleted_id}), events)
        return "merge noted"
    kept = links.find_by_qbo(ctx.connection_id, survivor_id)
    if kept is not None and kept.state == LinkState.LINKED:
        # QBO moved the transactions to the survivor: its contact's folder shows them from now on. What becomes
        # of the merged-away contact (merge it into the survivor's contact, or make it inactive) a person decides.
        moved = move_folder(ctx.connection_id, str(deleted_id), survivor_id)
        reason = f"{QBO_MERGED} customer {deleted_id} into {survivor_id}; both were linked"
        log.info("QBO merge of two linked customers connection=%s: %s folder item(s) moved", ctx.connection_id,
                 moved)
        return review(ctx, gone, [survivor_id], reason, events)
    try:
        contact = ctx.crm.get_contact(str(gone.crm_contact_id))
    except ContactNotFoundError:
        return _contact_gone(ctx, gone, events)
    gone.qbo_customer_id, gone.base = survivor_id, None
    outcome = reconcile(ctx, gone, Sides(customer=survivor, contact=contact))
    diff = {**outcome.diff(), "deleted_id": deleted_id, "crm_contact_id": contact.id}
    delete = [kept.id] if kept is not None and kept.id is not None else []
    done(ctx, Record("merge.link_moved", "qbo_to_crm", "Customer", survivor_id, diff), events, [gone], delete)
    return "link moved"


def move_folder(connection_id: int, from_customer: str, to_customer: str) -> int:
    """Re-point the folder items of a merged-away customer at the survivor (in the caller's transaction)."""
    result = db.session.execute(update(FolderItem).where(FolderItem.connection_id == connection_id,
                                                         FolderItem.qbo_customer_id == from_customer)
                                .values(qbo_customer_id=to_customer))
    return int(getattr(result, "rowcount", 0) or 0)


def with_version_seen(record: LinkRecord, customer: Mapping[str, Any]) -> LinkRecord:
    """``record``, waiting for review on the QBO side, with the version of its customer this decision saw (the
    SyncToken, as a linked record keeps the version last synced): a recheck may then take the customer from a CDC
    answer at least that new instead of reading it (``review._held_customer``)."""
    token = customer.get("SyncToken")
    record.qbo_sync_token = str(token) if token is not None else None
    return record


def review(ctx: SyncContext, link: LinkRecord, candidates: list[str], reason: str, events: Sequence[int],
           direction: str = "qbo_to_crm") -> str:
    """Store ``link`` in the review queue with its candidates and reason; nothing is written to either side."""
    link.state, link.review_reason, link.review_candidates = LinkState.REVIEW, reason, candidates
    entity_id = link.qbo_customer_id or link.crm_contact_id
    done(ctx, Record("link.review", direction, "Customer", entity_id, {"candidates": candidates},
                      message=reason), events, [link])
    log.info("link queued for review connection=%s link=%s job=%s", ctx.connection_id, link.id, ctx.job_id)
    return "review"


def _contact_gone(ctx: SyncContext, link: LinkRecord, events: Sequence[int]) -> str:
    link.state, link.review_reason = LinkState.UNLINKED, "the CRM contact no longer exists"
    done(ctx, Record("link.unlinked", "qbo_to_crm", "Contact", link.crm_contact_id,
                      message=link.review_reason), events, [link])
    return "unlinked (contact gone)"


def done(ctx: SyncContext, record: Record | None, events: Sequence[int], changed: Sequence[LinkRecord] = (),
         delete: Sequence[int] = ()) -> None:
    """Store the outcome of one unit of work: changed links, the audit record, the events processed.

    When the context collects outcomes (``ctx.deferred``, the backfill), one that only adds rows (new links
    without a contact, i.e. reviews; an audit record) for no event is kept there to be saved with others.
    """
    if ctx.deferred is not None and links.deferrable(record, events, changed, delete):
        if record is not None or changed:
            ctx.deferred.append((list(changed), record))
        return
    links.save(changed, record, events, job_id=ctx.job_id, connection_id=ctx.connection_id, delete=delete)

