"""Records waiting for a person: what each one is, its candidates side by side, and the actions that resolve it.

A contact link in state ``review`` is one of (docs/architecture.md §3):
- **match** — a QBO customer with several CRM candidates (``qbo_customer_id`` only), or a CRM contact with
  several QBO candidates (``crm_contact_id`` only). Actions: *link* to one candidate, *create* the record on the
  other side, *ignore* (leave it unlinked). It is also looked at again whenever it or a candidate changes
  (``recheck`` / ``recheck_naming``): one match left links it, none creates it, and a sub-customer sharing its
  parent's email goes under its parent (it never waits).
- **qbo_merge** — QuickBooks merged a linked customer into another linked customer. The transactions already
  moved to the survivor's contact (``qbo_side.move_folder``). Actions: *merge* the merged-away contact into the
  survivor's contact in the CRM (when the CRM offers merging), *deactivate* it, or *ignore* (unlink, keep it).
- **crm_merge** — the CRM merged a linked contact into another linked contact; the merged-away contact is gone.
  Actions: *deactivate* its QBO customer (QuickBooks cannot merge customers through its API), or *ignore*.

Resolving writes to QBO or the CRM, so it runs in a worker under the connection's lock (``resolve``); the web
and the CLI check the action first (``check_action``) so a wrong one is refused at once, with the reason.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Text, cast, exists, func, or_, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB

from crm_qb.crm.errors import ContactNotFoundError, CrmError, CrmNotFoundError
from crm_qb.db import db
from crm_qb.errors import PermanentError, TransientError
from crm_qb.models import ContactLink, LinkState
from crm_qb.qbo.faults import QboFault
from crm_qb.qbo.tokens import NeedsReconnectError
from crm_qb.sync.context import SyncContext, build_context
from crm_qb.sync.customers import links
from crm_qb.sync.customers.crm_side import DIRECTION as CRM_TO_QBO
from crm_qb.sync.customers.crm_side import _create_customer, _deactivate, link_new_contact
from crm_qb.sync.customers.identity import remember_crm_contact
from crm_qb.sync.customers.links import LinkRecord, Record
from crm_qb.sync.customers.qbo_side import CRM_MERGED, QBO_MERGED, done, link_new_customer, link_pair
from crm_qb.sync.customers.reconcile import apply_customer_facts, contact_json
from crm_qb.sync.pipeline.events import change_pending
from crm_qb.sync.rules.mapping import canonical_from_crm, canonical_from_qbo, crm_create_body
from crm_qb.sync.services import SyncServices
from crm_qb.sync.time import apply as time_apply

log = logging.getLogger(__name__)

MATCH, QBO_MERGE, CRM_MERGE = "match", "qbo_merge", "crm_merge"
ACTIONS: dict[str, tuple[str, ...]] = {
    MATCH: ("link", "create", "ignore", "recheck"),
    QBO_MERGE: ("merge", "deactivate", "ignore"),
    CRM_MERGE: ("deactivate", "ignore"),
}
LABELS = {"link": "Link to this one", "create": "Create new", "ignore": "Ignore", "recheck": "Look again",
          "merge": "Merge the contacts in the CRM", "deactivate": "Make inactive"}


class ReviewError(PermanentError):
    """The action cannot be taken on this record (the message says why)."""


@dataclass(frozen=True)
class Party:
    """One side's record as a person compares it: name, email, balance, and what it is linked to."""

    side: str  # "qbo" or "crm"
    id: str
    name: str | None = None
    email: str | None = None
    company: str | None = None
    balance: str | None = None
    currency: str | None = None
    linked_to: str | None = None
    active: bool = True
    problem: str | None = None  # why it could not be read


@dataclass(frozen=True)
class Waiting:
    """A record waiting for review, its candidates and the actions it offers."""

    link_id: int
    kind: str
    reason: str
    record: Party
    candidates: list[Party] = field(default_factory=list)
    actions: tuple[str, ...] = ()
    since: datetime | None = None

    def as_json(self) -> dict[str, Any]:
        """The JSON object of ``GET /api/v1/connections/<id>/review``."""
        return {"link_id": self.link_id, "kind": self.kind, "reason": self.reason, "record": vars(self.record),
                "candidates": [vars(c) for c in self.candidates], "actions": list(self.actions),
                "since": self.since.isoformat() if self.since else None}


def kind_of(link: LinkRecord | ContactLink) -> str:
    """Which kind of waiting record ``link`` is (see the module docstring)."""
    reason = link.review_reason or ""
    if reason.startswith(QBO_MERGED):
        return QBO_MERGE
    if reason.startswith(CRM_MERGED):
        return CRM_MERGE
    return MATCH


def waiting_side(link: LinkRecord | ContactLink) -> str:
    """The side the waiting record is on: "qbo" (its candidates are CRM contacts) or "crm"."""
    if kind_of(link) == CRM_MERGE:
        return "crm"
    if kind_of(link) == QBO_MERGE:
        return "qbo"
    return "qbo" if link.qbo_customer_id and not link.crm_contact_id else "crm"


def waiting_rows(connection_id: int, *, offset: int = 0, limit: int | None = None) -> list[LinkRecord]:
    """The connection's records waiting for review, oldest first (``limit`` of them after ``offset``, when given);
    ends the read."""
    return _waiting(connection_id, offset=offset, limit=limit)


def _waiting(connection_id: int, *where: Any, offset: int = 0, limit: int | None = None) -> list[LinkRecord]:
    """The connection's waiting records matching ``where``, oldest first; ends the read."""
    query = select(ContactLink).where(ContactLink.connection_id == connection_id,
                                      ContactLink.state == LinkState.REVIEW, *where).order_by(ContactLink.id)
    if limit is not None:
        query = query.offset(offset).limit(limit)
    found = [LinkRecord.of(row) for row in db.session.scalars(query).all()]
    db.session.rollback()
    return found


def any_waiting(connection_id: int) -> bool:
    """Whether any of the connection's records waits for review (by index); ends the read."""
    found = db.session.scalar(select(exists().where(ContactLink.connection_id == connection_id,
                                                    ContactLink.state == LinkState.REVIEW)))
    db.session.rollback()
    return bool(found)


def count_waiting(connection_id: int) -> int:
    """How many of the connection's records wait for review; ends the read."""
    total = db.session.scalar(select(func.count()).select_from(ContactLink).where(
        ContactLink.connection_id == connection_id, ContactLink.state == LinkState.REVIEW))
    db.session.rollback()
    return int(total or 0)


def describe(ctx: SyncContext, link: LinkRecord) -> Waiting:
    """A waiting record with both sides read now (QBO customers in one query, CRM contacts one by one)."""
    kind = kind_of(link)
    qbo_ids, crm_ids = _ids_by_side(link)
    customers = _customers(ctx, qbo_ids)
    contacts = {contact_id: _contact(ctx, contact_id) for contact_id in crm_ids}
    parties = {**{("qbo", i): customers[i] for i in qbo_ids}, **{("crm", i): contacts[i] for i in crm_ids}}
    side = waiting_side(link)
    own_id = str(link.qbo_customer_id if side == "qbo" else link.crm_contact_id)
    other = "crm" if side == "qbo" else "qbo"
    candidates = [parties[(other, str(c))] for c in link.review_candidates if (other, str(c)) in parties]
    if kind == QBO_MERGE and link.crm_contact_id:
        candidates = [parties[("qbo", str(c))] for c in link.review_candidates if ("qbo", str(c)) in parties]
    return Waiting(int(link.id or 0), kind, link.review_reason or "several possible matches",
                   parties[(side, own_id)], candidates, ACTIONS[kind])


def _ids_by_side(link: LinkRecord) -> tuple[list[str], list[str]]:
    kind, side = kind_of(link), waiting_side(link)
    qbo = [str(link.qbo_customer_id)] if link.qbo_customer_id else []
    crm = [str(link.crm_contact_id)] if link.crm_contact_id else []
    candidates = [str(c) for c in link.review_candidates]
    if kind == QBO_MERGE:
        qbo += candidates  # the survivor customer
    elif kind == CRM_MERGE:
        crm += candidates  # the survivor contact
    elif side == "qbo":
        crm += [c for c in candidates if c not in qbo]
    else:
        qbo += [c for c in candidates if c not in crm]
    return list(dict.fromkeys(qbo)), list(dict.fromkeys(crm))


def _customers(ctx: SyncContext, ids: list[str]) -> dict[str, Party]:
    try:
        found = ctx.qbo.read_many("Customer", set(ids), include_inactive=True) if ids else {}
    except (QboFault, NeedsReconnectError, TransientError) as exc:  # shown on the card; the actions still check
        return {i: Party("qbo", i, problem=f"could not be read from QuickBooks: {exc}") for i in ids}
    return {i: _customer_party(ctx, i, found.get(i)) for i in ids}


def _customer_party(ctx: SyncContext, customer_id: str, customer: dict[str, Any] | None) -> Party:
    if customer is None:
        return Party("qbo", customer_id, problem="QuickBooks has no such customer (deleted or merged)")
    record = canonical_from_qbo(customer)
    link = links.find_by_qbo(ctx.connection_id, customer_id)
    linked = link.crm_contact_id if link is not None and link.state == LinkState.LINKED else None
    return Party("qbo", customer_id, _text(record.get("display_name")), _text(record.get("email")),
                 _text(record.get("company")), str(customer.get("Balance", "0")),
                 (customer.get("CurrencyRef") or {}).get("value") or ctx.home_currency, linked,
                 bool(customer.get("Active", True)))


def _contact(ctx: SyncContext, contact_id: str) -> Party:
    try:
        contact = ctx.crm.get_contact(contact_id)
    except ContactNotFoundError:
        return Party("crm", contact_id, problem="the CRM has no such contact (deleted or merged)")
    except CrmError as exc:
        return Party("crm", contact_id, problem=f"could not be read from the CRM: {exc}")
    record = canonical_from_crm(contact_json(contact))
    link = links.find_by_crm(ctx.connection_id, contact_id)
    linked = link.qbo_customer_id if link is not None and link.state == LinkState.LINKED else None
    balance = str((link.qbo_owned or {}).get("balance")) if linked and link is not None and link.qbo_owned else None
    person = " ".join(part for part in (contact.first_name, contact.last_name) if part)
    name = contact.display_name or person or _text(record.get("display_name"))
    return Party("crm", contact_id, name, _text(record.get("email")),
                 _text(record.get("company")), balance, None, linked, contact.active)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def check_action(connection_id: int, link_id: int, action: str, candidate: str | None) -> LinkRecord:
    """The waiting record if ``action`` (with ``candidate``) may be taken on it; ReviewError saying why not."""
    row = db.session.get(ContactLink, link_id)
    record = LinkRecord.of(row) if row is not None and row.connection_id == connection_id else None
    db.session.rollback()
    if record is None or record.state != LinkState.REVIEW:
        raise ReviewError(f"record {link_id} is not waiting for review on connection {connection_id}")
    kind = kind_of(record)
    if action not in ACTIONS[kind]:
        raise ReviewError(f"{action!r} is not an action for this record; choose one of {', '.join(ACTIONS[kind])}")
    if action == "link" and str(candidate) not in {str(c) for c in record.review_candidates}:
        raise ReviewError(f"{candidate!r} is not one of this record's candidates")
    return record


def resolve(services: SyncServices, connection_id: int, link_id: int, action: str, candidate: str | None,
            job_id: str | None = None, who: str = "admin") -> str:
    """Take ``action`` on a waiting record under the connection's lock (checked again: it may have changed)."""
    ctx = build_context(services, connection_id, job_id)
    try:
        with services.connection_lock(connection_id):
            record = check_action(connection_id, link_id, action, candidate)
            outcome = _ACTIONS[action](ctx, record, candidate, who)
            _time_of_linked(ctx)
    finally:
        ctx.close()
    log.info("review %s connection=%s link=%s action=%s job=%s: %s", link_id, connection_id, link_id, action,
             job_id, outcome)
    return outcome


def _time_of_linked(ctx: SyncContext) -> None:
    """A contact the choice linked gets its earlier and held billable time now (DESIGN §9), not at the next drain;
    when QBO or the CRM fails for now, the drains that follow send it."""
    try:
        log.info("review connection=%s time: %s", ctx.connection_id, time_apply.release(ctx))
    except (PermanentError, TransientError) as exc:
        db.session.rollback()
        log.warning("review connection=%s: time not sent yet (%s)", ctx.connection_id, type(exc).__name__)


def _link(ctx: SyncContext, record: LinkRecord, candidate: str | None, who: str) -> str:
    if waiting_side(record) == "qbo":
        customer = ctx.qbo.read("Customer", str(record.qbo_customer_id))
        contact = ctx.crm.get_contact(str(candidate))
        return link_pair(ctx, customer, contact, [], "link.chosen", note=f"chosen by {who}")
    customer = ctx.qbo.read("Customer", str(candidate))
    contact = ctx.crm.get_contact(str(record.crm_contact_id))
    return link_pair(ctx, customer, contact, [], "link.chosen", direction=CRM_TO_QBO, note=f"chosen by {who}")


def _create(ctx: SyncContext, record: LinkRecord, candidate: str | None, who: str) -> str:
    if waiting_side(record) == "qbo":
        customer = ctx.qbo.read("Customer", str(record.qbo_customer_id))
        created = ctx.crm.create_contact(crm_create_body(canonical_from_qbo(customer)))
        remember_crm_contact(ctx, created)
        return link_pair(ctx, customer, created, [], "link.created_in_crm", note=f"chosen by {who}")
    contact = ctx.crm.get_contact(str(record.crm_contact_id))
    return _create_customer(ctx, canonical_from_crm(contact_json(contact)), contact, [])


def _ignore(ctx: SyncContext, record: LinkRecord, candidate: str | None, who: str) -> str:
    return _unlink(ctx, record, "review.ignored", f"ignored by {who}: left unlinked")


def _recheck(ctx: SyncContext, record: LinkRecord, candidate: str | None, who: str) -> str:
    return recheck(ctx, record)


def _merge(ctx: SyncContext, record: LinkRecord, candidate: str | None, who: str) -> str:
    survivor = links.find_by_qbo(ctx.connection_id, str(record.review_candidates[0]))
    if survivor is None or survivor.state != LinkState.LINKED or not survivor.crm_contact_id:
        raise ReviewError("the surviving customer is no longer linked to a contact; make this one inactive instead")
    merge_contacts = getattr(ctx.crm, "merge_contacts", None)
    if merge_contacts is None:
        raise ReviewError("this CRM does not offer merging contacts; make the contact inactive instead")
    try:
        merge_contacts(str(record.crm_contact_id), survivor.crm_contact_id)
    except CrmNotFoundError:
        raise ReviewError("the CRM does not offer merging contacts (404); make the contact inactive instead") \
            from None
    done(ctx, Record("review.contacts_merged", "qbo_to_crm", "Contact", record.crm_contact_id,
                     {"into": survivor.crm_contact_id, "by": who}), [], delete=[int(record.id or 0)])
    return "merged"


def _deactivate_record(ctx: SyncContext, record: LinkRecord, candidate: str | None, who: str) -> str:
    if kind_of(record) == QBO_MERGE:
        contact = ctx.crm.get_contact(str(record.crm_contact_id))
        ctx.crm.update_contact(contact.id, contact.version, {"active": False})
        return _unlink(ctx, record, "review.contact_deactivated", f"contact made inactive by {who}")
    apply_customer_facts(ctx, record, _deactivate(ctx, record))
    return _unlink(ctx, record, "review.customer_deactivated", f"customer made inactive by {who}")


def _unlink(ctx: SyncContext, record: LinkRecord, action: str, message: str) -> str:
    record.state, record.review_reason, record.review_candidates = LinkState.UNLINKED, message, []
    entity, entity_id = ("Customer", record.qbo_customer_id) if record.qbo_customer_id else \
        ("Contact", record.crm_contact_id)
    done(ctx, Record(action, "admin", entity, entity_id, message=message), [], [record])
    return action.removeprefix("review.")


_ACTIONS = {"link": _link, "create": _create, "ignore": _ignore, "recheck": _recheck, "merge": _merge,
            "deactivate": _deactivate_record}


def recheck(ctx: SyncContext, record: LinkRecord, *, candidate_changed: bool = False) -> str:
    """Match a waiting record again as it is now (a merge review is left for a person).

    When a candidate changed (``recheck_naming``) and the waiting customer has a change of its own in the inbox,
    that change's unit looks at the record again, with QBO's state: nothing is read or done here.
    """
    if record.state != LinkState.REVIEW or kind_of(record) != MATCH:
        return "not waiting for a match"
    if waiting_side(record) == "qbo":
        customer = _held_customer(ctx, record)
        if customer is None and candidate_changed and change_pending(ctx.qbo.realm_id, "Customer",
                                                                     str(record.qbo_customer_id)):
            return "left to its own change"
        customer = customer or ctx.qbo.read("Customer", str(record.qbo_customer_id))
        return link_new_customer(ctx, customer, [], existing=record)
    try:
        contact = ctx.crm.get_contact(str(record.crm_contact_id))
    except ContactNotFoundError:
        done(ctx, Record("review.left", CRM_TO_QBO, "Contact", record.crm_contact_id,
                         message="the CRM contact no longer exists"), [], delete=[int(record.id or 0)])
        return "contact gone"
    return link_new_contact(ctx, contact, [], existing=record)


def _held_customer(ctx: SyncContext, record: LinkRecord) -> dict[str, Any] | None:
    """The customer of a record waiting on the QBO side, as QBO has it now, when a drain holds it (else None).

    In a drain it is taken from the realm's recent CDC answers (``fetch.ChangeCache``) when that state is no older
    than the one the record was last decided on: its SyncToken is at least the one the decision saw
    (``qbo_side.with_version_seen``; a record decided before that was kept has none, and is read). A change made
    after the CDC call comes with its own webhook, whose unit looks at the record again with QBO's state. So the
    echoes of a burst (its candidate contacts updated) look at the burst's waiting customers without a read each.
    """
    customer_id = str(record.qbo_customer_id)
    if ctx.qbo_changes is not None:
        held = ctx.qbo_changes.peek(ctx.qbo.realm_id, "Customer", [customer_id]).get(customer_id)
        if held is not None and _no_older(held, record.qbo_sync_token):
            return held
    return None


def _no_older(customer: Mapping[str, Any], decided_token: str | None) -> bool:
    """Whether ``customer`` is the version a decision saw (``decided_token``) or a later one."""
    token = customer.get("SyncToken")
    if decided_token is None or token is None:
        return False
    try:
        return int(str(token)) >= int(decided_token)
    except ValueError:
        return False


def recheck_naming(ctx: SyncContext, side: str, record_id: str) -> list[str]:
    """Look again at every record waiting for a match that names ``record_id`` (a ``side`` record) as candidate.

    Called after a customer or contact changed: its change may settle a record that waits on it.
    """
    waiting = [r for r in waiting_naming(ctx.connection_id, record_id) if kind_of(r) == MATCH
               and waiting_side(r) != side]
    return [recheck(ctx, record, candidate_changed=True) for record in waiting]


def _containing(needle: str) -> str:
    """A LIKE pattern (escape character backslash) matching text that contains ``needle``."""
    return "%" + needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def waiting_naming(connection_id: int, record_id: str) -> list[LinkRecord]:
    """The connection's records waiting for review that name ``record_id`` among their candidates, oldest first;
    ends the read.

    Every unit of a drain asks this, so the database finds the rows: on PostgreSQL the candidates' GIN index
    answers which lists contain the id (``@>``); elsewhere the waiting rows (index on connection and state) whose
    candidates' text holds the id are loaded. The candidates are then checked exactly. Loading every waiting record
    took about a second per unit with the 24,000 a 100,000-customer first sync leaves waiting; comparing their
    text in the database, about 10 ms on PostgreSQL (migration 0006_review_idx).
    """
    ident = str(record_id)
    if db.session.get_bind().dialect.name == "postgresql":
        # Candidates are stored as strings (``review``, ``join_review``), as the text search below finds them.
        found = _waiting(connection_id, type_coerce(ContactLink.review_candidates, JSONB).contains([ident]))
    else:
        text = cast(ContactLink.review_candidates, Text)
        # As the candidates' JSON text holds the id: quoted (so "1" does not find "10"), its non-ASCII letters
        # escaped as Python wrote them, or as themselves.
        needles = {json.dumps(ident), json.dumps(ident, ensure_ascii=False)}
        found = _waiting(connection_id, or_(*(text.like(_containing(needle), escape="\\")
                                              for needle in sorted(needles))))
    return [r for r in found if ident in {str(c) for c in r.review_candidates}]
