"""Reviewing conflicts: confirming the automatic decision, or flipping it to the other side's value.

A conflict was decided by the connection's policy and the winner's value was written to both sides. Flipping it
writes the *losing* value to both sides instead and makes it the link's base, so the change is settled and its
echo is a no-op. It runs under the connection's sync lock (like every sync write) with fresh reads: a QBO sparse
update with the current SyncToken and a CRM update with the current version. Only the latest conflict of a field
can be flipped: an older one was overtaken by later changes and flipping it would undo them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from crm_qb.db import db, utcnow
from crm_qb.errors import PermanentError
from crm_qb.models import AuditEntry, Conflict, ConflictStatus, ContactLink
from crm_qb.sync.context import build_context
from crm_qb.sync.rules.canonical import canonicalise
from crm_qb.sync.rules.mapping import crm_patch, qbo_sparse_update
from crm_qb.sync.services import SyncServices

log = logging.getLogger(__name__)


class ConflictReviewError(PermanentError):
    """The conflict cannot be confirmed or flipped; the message says why."""


@dataclass(frozen=True)
class FlipPlan:
    """What flipping a conflict writes: ``value`` of ``field`` to the customer and the contact of a link."""

    conflict_id: int
    connection_id: int
    link_id: int
    field: str
    value: Any
    qbo_customer_id: str
    crm_contact_id: str


def confirm(connection_id: int, conflict_id: int) -> None:
    """Mark a decided conflict as reviewed and kept."""
    conflict = _decided(connection_id, conflict_id)
    conflict.status, conflict.resolved_at = ConflictStatus.CONFIRMED, utcnow()
    _audit(conflict, "conflict.confirmed", {"field": conflict.field, "kept": conflict.winner})
    db.session.commit()


BILLED_TIME = "billed_time"  # crm_qb/sync/time: QBO billed the time; nothing crm-qb writes may change it


def plan_flip(connection_id: int, conflict_id: int) -> FlipPlan:
    """Check that a conflict can be flipped and say what the flip writes; ends the read transaction."""
    conflict = _decided(connection_id, conflict_id)
    if conflict.field == BILLED_TIME:
        raise ConflictReviewError("billed time is never changed by crm-qb; change the invoice in QuickBooks, "
                                  "or keep the billed time")
    link = db.session.get(ContactLink, conflict.contact_link_id) if conflict.contact_link_id else None
    if link is None or not link.qbo_customer_id or not link.crm_contact_id:
        raise ConflictReviewError("the contact and the customer are no longer linked")
    newer = db.session.scalar(select(Conflict.id).where(
        Conflict.contact_link_id == link.id, Conflict.field == conflict.field, Conflict.id > conflict.id).limit(1))
    if newer is not None:
        raise ConflictReviewError("a later conflict on this field exists; review that one instead")
    value = conflict.crm_value if conflict.winner == "qbo" else conflict.qbo_value
    plan = FlipPlan(conflict.id, connection_id, link.id, conflict.field, value, link.qbo_customer_id,
                    link.crm_contact_id)
    db.session.rollback()
    return plan


def flip(services: SyncServices, plan: FlipPlan, job_id: str | None = None) -> None:
    """Write the losing value to both sides under the sync lock, then record it as the agreed base."""
    ctx = build_context(services, plan.connection_id, job_id)
    try:
        with services.connection_lock(plan.connection_id):
            canonical = canonicalise(plan.field, plan.value)
            customer = ctx.qbo.read("Customer", plan.qbo_customer_id)
            body = qbo_sparse_update({plan.field: canonical}, plan.qbo_customer_id, str(customer["SyncToken"]))
            fields = {k: v for k, v in body.items() if k not in ("Id", "SyncToken", "sparse")}
            customer = ctx.qbo.sparse_update("Customer", plan.qbo_customer_id, str(customer["SyncToken"]), fields)
            contact = ctx.crm.get_contact(plan.crm_contact_id)
            contact = ctx.crm.update_contact(plan.crm_contact_id, contact.version, crm_patch({plan.field: canonical}))
            _settle(plan, customer, contact.version, contact.updated_at)
    finally:
        ctx.close()
    log.info("conflict %s flipped connection=%s field=%s job=%s", plan.conflict_id, plan.connection_id, plan.field,
             job_id)


def _settle(plan: FlipPlan, customer: dict[str, Any], crm_version: int, crm_updated_at: Any) -> None:
    link = db.session.get(ContactLink, plan.link_id)
    conflict = db.session.get(Conflict, plan.conflict_id)
    if link is None or conflict is None:
        db.session.rollback()
        raise ConflictReviewError("the link or the conflict disappeared while flipping")
    link.base = {**(link.base or {}), plan.field: plan.value}
    link.qbo_sync_token = str(customer.get("SyncToken")) if customer.get("SyncToken") is not None else None
    link.crm_version, link.crm_updated_at = str(crm_version), crm_updated_at
    conflict.status, conflict.resolved_at = ConflictStatus.FLIPPED, utcnow()
    was = conflict.qbo_value if conflict.winner == "qbo" else conflict.crm_value
    _audit(conflict, "conflict.flipped", {"field": plan.field, "value": plan.value, "was": was})
    db.session.commit()


def _decided(connection_id: int, conflict_id: int) -> Conflict:
    conflict = db.session.get(Conflict, conflict_id)
    if conflict is None or conflict.connection_id != connection_id:
        raise ConflictReviewError(f"there is no conflict {conflict_id} on this connection")
    if conflict.status != ConflictStatus.DECIDED:
        raise ConflictReviewError(f"this conflict was already {conflict.status.value}")
    return conflict


def _audit(conflict: Conflict, action: str, diff: dict[str, Any]) -> None:
    db.session.add(AuditEntry(connection_id=conflict.connection_id, action=action, direction="admin",
                              entity="Conflict", entity_id=str(conflict.id), diff=diff, outcome="ok"))
