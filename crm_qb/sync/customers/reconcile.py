"""Reconcile one linked pair over HTTP: merge three ways, write each side, retry on a lost race.

A side that was not read is assumed to still equal the base: its write carries the stored version (CRM
If-Match) or SyncToken (QBO), so if it changed meanwhile the write is refused (412 / fault 5010) and the pair is
read again and merged again. That keeps a one-sided change to one write and no extra read (QBO reads are
metered), and makes the echo of our own write a no-op: the echo equals the base, so nothing is written.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crm_qb.crm.errors import VersionConflictError
from crm_qb.crm.protocol import Contact
from crm_qb.errors import TransientError
from crm_qb.qbo.client import last_updated
from crm_qb.qbo.faults import DuplicateNameError, StaleObjectError
from crm_qb.sync.context import SyncContext
from crm_qb.sync.customers.links import LinkRecord, json_record, json_value
from crm_qb.sync.rules.canonical import CanonicalValue
from crm_qb.sync.rules.mapping import (
    canonical_from_crm,
    canonical_from_qbo,
    crm_patch,
    derive_display_name,
    qbo_owned_fields,
    qbo_sparse_update,
)
from crm_qb.sync.rules.merge import Conflict, MergeResult, first_link, merge

log = logging.getLogger(__name__)

MAX_ROUNDS = 5
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class StillRacingError(TransientError):
    """Both sides kept changing while we wrote; the job retries later."""


@dataclass
class Sides:
    """The current state of each side when known (None: assumed equal to the base)."""

    customer: dict[str, Any] | None = None
    contact: Contact | None = None


@dataclass
class Outcome:
    """What a reconcile did: values written to each side, conflicts decided, first-link overwrites."""

    to_crm: dict[str, Any] = field(default_factory=dict)
    to_qbo: dict[str, Any] = field(default_factory=dict)
    conflicts: list[Conflict] = field(default_factory=list)
    overwritten: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    intuit_tid: str | None = None
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)  # canonical field -> before, after

    @property
    def wrote(self) -> bool:
        """Whether anything was written to either side."""
        return bool(self.to_crm or self.to_qbo)

    def diff(self) -> dict[str, Any]:
        """The audit diff: fields written to each side and first-link overwrites."""
        diff: dict[str, Any] = {"to_crm": self.to_crm, "to_qbo": self.to_qbo}
        if self.overwritten:
            diff["overwritten"] = self.overwritten
        if self.notes:
            diff["notes"] = self.notes
        if self.changes:
            diff["changes"] = self.changes
        return diff


def reconcile(ctx: SyncContext, link: LinkRecord, sides: Sides) -> Outcome:
    """Bring both sides of ``link`` in line (writing where the merge says) and update ``link`` in place."""
    outcome = Outcome()
    keep_qbo_name = False
    for _ in range(MAX_ROUNDS):
        _require_known(ctx, link, sides)
        result = _merge(ctx, link, sides, keep_qbo_name)
        try:
            _write_crm(ctx, link, sides, result, outcome)
            _write_qbo(ctx, link, sides, result, outcome)
        except VersionConflictError:
            sides.contact = ctx.crm.get_contact(str(link.crm_contact_id))
            continue
        except StaleObjectError:
            sides.customer = ctx.qbo.read("Customer", str(link.qbo_customer_id))
            continue
        except DuplicateNameError as exc:
            # The CRM's new display name is taken in QBO: QBO's name stays and goes back to the CRM (audited).
            keep_qbo_name, outcome.intuit_tid = True, exc.intuit_tid
            outcome.notes.append("display name refused by QuickBooks (6240): kept QuickBooks' name")
            continue
        _remember(outcome.conflicts, result.conflicts)
        _changes(outcome, link.base or {}, result)
        outcome.overwritten.extend({"field": o.field, "side": o.side, "old": json_value(o.old_value),
                                    "new": json_value(o.new_value)} for o in result.overwritten)
        _settle(ctx, link, sides, result)
        return outcome
    raise StillRacingError(f"link {link.id}: both sides kept changing over {MAX_ROUNDS} rounds")


def _changes(outcome: Outcome, base: Mapping[str, Any], result: MergeResult) -> None:
    """Each field written, as the audit log shows it: the agreed value before and the one after."""
    for name in sorted({*result.to_crm, *result.to_qbo}):
        outcome.changes[name] = {"before": base.get(name), "after": json_value(result.new_base.get(name))}


def _require_known(ctx: SyncContext, link: LinkRecord, sides: Sides) -> None:
    """A first link, or a link missing a version or token, needs both sides read."""
    if sides.contact is None and (link.base is None or link.crm_version is None):
        sides.contact = ctx.crm.get_contact(str(link.crm_contact_id))
    if sides.customer is None and (link.base is None or link.qbo_sync_token is None):
        sides.customer = ctx.qbo.read("Customer", str(link.qbo_customer_id))


def _merge(ctx: SyncContext, link: LinkRecord, sides: Sides, keep_qbo_name: bool) -> MergeResult:
    directions = ctx.settings.field_directions()
    base = link.base or {}
    q = canonical_from_qbo(sides.customer) if sides.customer is not None else dict(base)
    c = _crm_canonical(sides.contact, link.base) if sides.contact is not None else dict(base)
    if keep_qbo_name:
        c["display_name"] = q.get("display_name")
    if link.base is None:  # both sides as canonical_from_qbo / _crm_canonical fold them: not folded again
        return first_link(q, c, directions=directions, folded=sides.customer is not None and sides.contact is not None)
    return merge(base, q, c, qbo_changed_at=_qbo_time(link, sides), crm_changed_at=_crm_time(link, sides),
                 policy=ctx.settings.conflict_policy, window=ctx.settings.window, directions=directions)


def _crm_canonical(contact: Contact, base: Mapping[str, Any] | None) -> dict[str, CanonicalValue]:
    """The CRM side as the merge compares it; an empty CRM display name is never a rename (docs/architecture.md §3).

    At first link (no base) it stays empty, so QBO's name fills it. Later, an empty one counts as unchanged: a
    name derived from the company would change whenever the company does and rename the QBO customer.
    """
    record = canonical_from_crm(contact_json(contact), derive=False)
    if record["display_name"] is None and base is not None:
        record["display_name"] = base.get("display_name") or derive_display_name(record)
    return record


def contact_json(contact: Contact) -> dict[str, Any]:
    """A Contact as its section 6 wire fields (what ``canonical_from_crm`` reads)."""
    names = ("first_name", "last_name", "company", "display_name", "email", "phone", "mobile", "notes", "website")
    data: dict[str, Any] = {name: getattr(contact, name) for name in names}
    data["billing_address"] = contact.billing_address.to_json()
    data["shipping_address"] = contact.shipping_address.to_json()
    return data


def _qbo_time(link: LinkRecord, sides: Sides) -> datetime:
    changed = last_updated(sides.customer) if sides.customer is not None else None
    return changed or link.qbo_updated_at or EPOCH


def _crm_time(link: LinkRecord, sides: Sides) -> datetime:
    return sides.contact.updated_at if sides.contact is not None else (link.crm_updated_at or EPOCH)


def _write_crm(ctx: SyncContext, link: LinkRecord, sides: Sides, result: MergeResult, outcome: Outcome) -> None:
    changes = crm_patch(result.to_crm) if ctx.settings.to_crm else {}
    active = _wanted_active(link, sides)
    if active is not None and ctx.settings.to_crm:
        changes["active"] = active
    if not changes:
        return
    version = sides.contact.version if sides.contact is not None else int(str(link.crm_version))
    sides.contact = ctx.crm.update_contact(str(link.crm_contact_id), version, changes)
    outcome.to_crm.update(changes)
    log.info("sync wrote CRM contact connection=%s link=%s fields=%s job=%s", ctx.connection_id, link.id,
             ",".join(sorted(changes)), ctx.job_id)


def _wanted_active(link: LinkRecord, sides: Sides) -> bool | None:
    """The CRM ``active`` flag to write when QBO's Active differs from what the CRM shows, else None."""
    if sides.customer is None:
        return None
    active = bool(sides.customer.get("Active", True))
    shown = sides.contact.active if sides.contact is not None else link.qbo_active
    return active if active != shown else None


def _write_qbo(ctx: SyncContext, link: LinkRecord, sides: Sides, result: MergeResult, outcome: Outcome) -> None:
    if not result.to_qbo or not ctx.settings.to_qbo:
        return
    token = (sides.customer or {}).get("SyncToken") or link.qbo_sync_token
    body = qbo_sparse_update(result.to_qbo, str(link.qbo_customer_id), str(token))
    fields = {key: value for key, value in body.items() if key not in ("Id", "SyncToken", "sparse")}
    sides.customer = ctx.qbo.sparse_update("Customer", str(link.qbo_customer_id), str(token), fields)
    outcome.to_qbo.update(json_record(result.to_qbo))
    log.info("sync wrote QBO customer connection=%s link=%s fields=%s job=%s", ctx.connection_id, link.id,
             ",".join(sorted(result.to_qbo)), ctx.job_id)


def _remember(kept: list[Conflict], new: tuple[Conflict, ...]) -> None:
    fields = {conflict.field for conflict in new}
    kept[:] = [c for c in kept if c.field not in fields] + list(new)


def _settle(ctx: SyncContext, link: LinkRecord, sides: Sides, result: MergeResult) -> None:
    """Record the agreement on ``link``: new base, versions, tokens, QBO-owned facts."""
    link.base = json_record(result.new_base)
    if sides.contact is not None:
        link.crm_version, link.crm_updated_at = str(sides.contact.version), sides.contact.updated_at
    if sides.customer is not None:
        apply_customer_facts(ctx, link, sides.customer)


def apply_customer_facts(ctx: SyncContext, link: LinkRecord, customer: Mapping[str, Any]) -> None:
    """Copy a customer's SyncToken, update time, Active and QBO-owned facts onto ``link``."""
    link.qbo_sync_token = str(customer.get("SyncToken")) if customer.get("SyncToken") is not None else None
    link.qbo_updated_at = last_updated(customer) or link.qbo_updated_at
    link.qbo_active = bool(customer.get("Active", True))
    owned = qbo_owned_fields(customer, ctx.term_names, ctx.payment_method_names, home_currency=ctx.home_currency)
    link.qbo_owned = {**vars(owned), "balance": str(owned.balance)}
