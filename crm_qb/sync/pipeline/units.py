"""Turn a batch of pending inbound events into units of sync work, fetching QBO state in bulk first.

A QBO batch costs one query per entity type per 100 ids (customers, then each transaction type), never one read
per event: duplicate and out-of-order webhooks of one customer collapse into one unit that syncs its current
state. A CRM batch of several contacts costs one batch read per 100 when the connector has it (HubSpot), and
nothing for the echoes of crm-qb's own writes (crm_side). Merges run before customer updates, so a merged-away
customer's link has moved before its own update (now inactive) is seen. Each unit marks its own events processed
in the transaction that stores its result.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from crm_qb.crm.batch import read_many
from crm_qb.db import db, utcnow
from crm_qb.sync import references
from crm_qb.sync.context import SyncContext
from crm_qb.sync.customers import hierarchy, links
from crm_qb.sync.customers.crm_side import agreed, apply_contact_events, echo_record
from crm_qb.sync.customers.links import Record
from crm_qb.sync.customers.qbo_side import apply_qbo_merge, done, sync_customer
from crm_qb.sync.customers.review import any_waiting, recheck_naming
from crm_qb.sync.pipeline import events as inbox
from crm_qb.sync.pipeline.events import ACTIVITY, CUSTOMER, EventRef
from crm_qb.sync.pipeline.fetch import current_objects
from crm_qb.sync.rules.mapping import canonical_from_qbo
from crm_qb.sync.time import apply as time_apply
from crm_qb.sync.time import billing as time_billing
from crm_qb.sync.transactions import registry
from crm_qb.sync.transactions.mirror import mirror

INVOICE = "Invoice"
TIME_ACTIVITY = "TimeActivity"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unit:
    """One piece of sync work and the events it settles; ``run`` returns a short outcome for the log."""

    events: tuple[int, ...]
    label: str
    run: Callable[[], str]


def qbo_units(ctx: SyncContext, events: Sequence[EventRef]) -> list[Unit]:
    """The units for a batch of one realm's QBO events, after fetching what they need in bulk."""
    customer_events = [e for e in events if e.entity == CUSTOMER]
    merges = [e for e in customer_events if e.operation == "Merge"]
    changes = _grouped(e for e in customer_events if e.operation != "Merge")
    wanted = {**{str(e.entity_id): None for e in merges if e.entity_id}, **_latest_change(customer_events)}
    customers = current_objects(ctx.qbo, CUSTOMER, wanted, ctx.qbo_changes, include_inactive=True,
                                received=_latest_receipt(customer_events))
    ctx.qbo_customers_held = _with_parents(ctx, customers)
    units = [Unit((e.id,), f"merge {e.entity_id}",
                  partial(apply_qbo_merge, ctx, customers.get(str(e.entity_id)), str(e.entity_id),
                          _deleted_id(e), [e.id]))
             for e in merges]
    units += [Unit(ids, f"customer {cid}", partial(_customer_unit, ctx, cid, customers.get(cid), list(ids)))
              for cid, ids in changes.items()]
    units += _transaction_units(ctx, [e for e in events if e.entity in registry.NAMES])
    units += _reference_units(ctx, [e for e in events if references.is_reference(e.entity)])
    units += [Unit((e.id,), f"{e.entity} {e.entity_id}", partial(_noted, ctx, e)) for e in events
              if e.entity != CUSTOMER and e.entity not in registry.NAMES and not references.is_reference(e.entity)]
    return units + _time_after_qbo(ctx, events)


def crm_units(ctx: SyncContext, events: Sequence[EventRef]) -> list[Unit]:
    """The units for a batch of one connection's CRM events: one per contact, its events in arrival order; the
    contacts whose every event reports the version their link agreed on (echoes of crm-qb's own writes: a first
    sync's thousands of creates come back so) settle together in one unit."""
    by_contact: dict[str, list[EventRef]] = {}
    for event in events:
        if event.entity != ACTIVITY:
            by_contact.setdefault(str(event.entity_id), []).append(event)
    read = [cid for cid, group in by_contact.items()
            if group[-1].operation != "deleted" and not any(e.operation == "merged" for e in group)]
    shared = len(read) >= 2  # with one contact to read, its unit reads it (and its link) itself
    versions = links.agreed_crm_versions(ctx.connection_id, read) if shared else {}
    agreeing = [cid for cid in read if cid in versions and agreed(by_contact[cid], versions[cid])]
    # Several echoes settle together; one alone settles as a contact's unit does (crm_side.apply_contact_events).
    echoes = {cid: by_contact[cid] for cid in agreeing} if len(agreeing) >= 2 else {}
    rest = {cid: group for cid, group in by_contact.items() if cid not in echoes}
    # The contacts whose units will read them, when there are several (one batch read then serves them all).
    ctx.crm_contacts_held = read_many(ctx.crm, [cid for cid in read if cid not in agreeing] if shared else [])
    units = [Unit(tuple(e.id for group in echoes.values() for e in group), f"{len(echoes)} contacts' echoes",
                  partial(_echoes_unit, ctx, echoes, versions))] if echoes else []
    units += [Unit(tuple(e.id for e in group), f"contact {cid}", partial(_contact_unit, ctx, cid, group))
              for cid, group in rest.items()]
    return units + _time_units(ctx, [e for e in events if e.entity == ACTIVITY])


def _echoes_unit(ctx: SyncContext, echoes: dict[str, list[EventRef]], versions: dict[str, str | None]) -> str:
    """Settle the echoes of several contacts in one transaction: each contact's audit record, as its own unit
    would store it (``apply_contact_events``), and every event processed; then the records waiting for review that
    name one of them are looked at again, as after any contact's unit. It is the batch's first unit, run under
    the connection's lock that its planning held too, so the agreed versions read then are still the links'."""
    links.save_records([(echo_record(cid, versions[cid]), [e.id for e in group]) for cid, group in echoes.items()],
                       job_id=ctx.job_id, connection_id=ctx.connection_id)
    rechecked = sum(len(recheck_naming(ctx, "crm", cid)) for cid in echoes) if any_waiting(ctx.connection_id) else 0
    outcome = f"{len(echoes)} unchanged (versions already agreed)"
    return f"{outcome}; rechecked {rechecked}" if rechecked else outcome


def _time_units(ctx: SyncContext, activity_events: list[EventRef]) -> list[Unit]:
    """Billable time (sync/time): the batch's activity hooks in one unit (creates batched by 30), then held
    time whose contact was linked by the units before it."""
    units = [Unit(tuple(e.id for e in activity_events), f"time ({len(activity_events)} activities)",
                  partial(time_apply.apply_activity_events, ctx, activity_events))] if activity_events else []
    return [*units, Unit((), "time release", partial(time_apply.release, ctx))]


def _time_after_qbo(ctx: SyncContext, events: Sequence[EventRef]) -> list[Unit]:
    """After a QBO batch: billing status of time when invoices changed (TimeActivity is not in CDC), and held
    time of contacts the batch's customer changes linked. These units settle no events of their own."""
    invoices = [e for e in events if e.entity in (INVOICE, TIME_ACTIVITY)]
    units = [Unit((), "time billing", partial(_refresh_billing, ctx, invoices))] if invoices else []
    if any(e.entity == CUSTOMER for e in events):
        units.append(Unit((), "time release", partial(time_apply.release, ctx)))
    return units


def _refresh_billing(ctx: SyncContext, invoices: Sequence[EventRef]) -> str:
    known = [e.occurred_at for e in invoices if e.occurred_at is not None]
    since = min(known) if known else utcnow() - time_billing.UNKNOWN_CHANGE_TIME
    return f"{time_billing.refresh_since(ctx, since)} time billing change(s)"


def _contact_unit(ctx: SyncContext, contact_id: str, events: list[EventRef]) -> str:
    outcome = apply_contact_events(ctx, contact_id, events)
    rechecked = recheck_naming(ctx, "crm", contact_id)  # a record waiting on this contact may now be settled
    return f"{outcome}; rechecked {len(rechecked)}" if rechecked else outcome


def _grouped(events: Iterable[EventRef]) -> dict[str, tuple[int, ...]]:
    groups: dict[str, list[int]] = {}
    for event in events:
        if event.entity_id:
            groups.setdefault(event.entity_id, []).append(event.id)
    return {key: tuple(ids) for key, ids in groups.items()}


def _with_parents(ctx: SyncContext, customers: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The customers a job's match may look its parent up in (its e-mail is compared with the parent's): the
    batch's and those of the drain's CDC answers (in a burst the parents usually changed too), then the parents
    still missing, from the realm's other recent CDC answers (Redis) or else one query for the batch.

    Without that last step each such job read its parent alone (``GET /customer/{id}``), and how many did
    depended on which drain's answer a parent happened to be in: a burst's cost varied from run to run.
    """
    changes = ctx.qbo_changes
    held = {**(changes.held(ctx.qbo.realm_id, CUSTOMER) if changes else {}), **customers}
    missing = _parents_to_read(ctx, customers, held)
    if missing:
        found = changes.peek(ctx.qbo.realm_id, CUSTOMER, missing) if changes else {}
        rest = [i for i in missing if i not in found]
        if rest:
            found.update(ctx.qbo.read_many(CUSTOMER, rest, include_inactive=True))
        held = {**found, **held}
    return held


def _parents_to_read(ctx: SyncContext, customers: dict[str, dict[str, Any]],
                     held: dict[str, dict[str, Any]]) -> list[str]:
    """The parents that ``qbo_side._shares_parent_email`` would read: those of unlinked jobs with an e-mail, not
    held, whose parent has no link with an agreed base to take the e-mail from."""
    jobs = {cid: parent for cid, customer in customers.items()
            if (parent := hierarchy.parent_of(customer)) is not None and parent not in held
            and customer.get("Active", True) and canonical_from_qbo(customer).get("email")}
    if not jobs:
        return []
    based, linked = links.with_base_or_linked(ctx.connection_id, [*jobs, *jobs.values()])
    return sorted({parent for cid, parent in jobs.items() if cid not in linked and parent not in based})


def _latest_change(events: Iterable[EventRef]) -> dict[str, datetime | None]:
    """Each changed object's latest reported change time (None when an event of it reports none)."""
    latest: dict[str, datetime | None] = {}
    unknown: set[str] = set()
    for event in events:
        if not event.entity_id or event.operation == "Merge":
            continue
        key, changed = str(event.entity_id), event.occurred_at
        if changed is None:
            unknown.add(key)
        elif (seen := latest.get(key)) is None or changed > seen:
            latest[key] = changed
    return {key: None if key in unknown else latest.get(key) for key in latest.keys() | unknown}


def _latest_receipt(events: Iterable[EventRef]) -> dict[str, datetime]:
    """Each changed object's latest receipt time among its events (those that carry one)."""
    latest: dict[str, datetime] = {}
    for event in events:
        if event.entity_id and event.received_at is not None:
            key = str(event.entity_id)
            if key not in latest or event.received_at > latest[key]:
                latest[key] = event.received_at
    return latest


def _deleted_id(event: EventRef) -> str | None:
    value = event.payload.get("deleted_id")
    return str(value) if value else None


def _customer_unit(ctx: SyncContext, customer_id: str, customer: dict[str, Any] | None, events: list[int]) -> str:
    if customer is None:
        done(ctx, Record("skip.not_found", "qbo_to_crm", CUSTOMER, customer_id,
                         message="QuickBooks returned no such customer"), events)
        return "not found"
    outcome = sync_customer(ctx, customer, events)
    rechecked = recheck_naming(ctx, "qbo", customer_id)  # a record waiting on this customer may now be settled
    return f"{outcome}; rechecked {len(rechecked)}" if rechecked else outcome


def _noted(ctx: SyncContext, event: EventRef) -> str:
    done(ctx, Record("event.noted", "qbo_to_crm", event.entity, event.entity_id, {"operation": event.operation}),
         [event.id])
    return "noted"


def _transaction_units(ctx: SyncContext, events: Sequence[EventRef]) -> list[Unit]:
    units: list[Unit] = []
    for entity in registry.NAMES:
        of_type = [e for e in events if e.entity == entity]
        if not of_type:
            continue
        groups = _grouped(of_type)
        deleted = {str(e.entity_id) for e in of_type if e.operation == "Delete"}
        found = ctx.qbo.read_many(entity, set(groups) - deleted)
        units += [Unit(ids, f"{entity} {tid}", partial(_transaction_unit, ctx, entity, tid, found.get(tid),
                                                       list(ids)))
                  for tid, ids in groups.items()]
    return units


def _reference_units(ctx: SyncContext, events: Sequence[EventRef]) -> list[Unit]:
    """One unit per reference list (Term, PaymentMethod) that changed: its entries read in one query and stored."""
    units: list[Unit] = []
    for entity in references.ENTITIES:
        of_list = [e for e in events if e.entity == entity]
        if of_list:
            wanted = {str(e.entity_id) for e in of_list if e.entity_id} | {i for i in map(_deleted_id, of_list) if i}
            found = ctx.qbo.read_many(entity, wanted, include_inactive=True)
            ids = tuple(e.id for e in of_list)
            units.append(Unit(ids, f"{entity} list", partial(references.apply_references, ctx, entity, wanted,
                                                              found, list(ids))))
    return units


def _transaction_unit(ctx: SyncContext, entity: str, txn_id: str, txn: dict[str, Any] | None,
                      events: list[int]) -> str:
    """Mirror one transaction into the folder and commit it together with its events."""
    try:
        change = mirror(ctx, entity, txn_id, txn)
        inbox.mark_processed(events, ctx.connection_id)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return str(getattr(change, "action", "applied"))
