""""Sync now" for one contact (DESIGN §11): re-read a CRM contact and its linked QBO customer and reconcile them.

A person looking at one record (Review, the audit) may want it brought in line at once, without waiting for a
hook or a poll. Both sides are read as they are now and merged three ways under the connection's lock, as a
change of either side would be; a contact not linked yet is matched as a new contact is. The linked customer's
transactions are then read with one query per transaction type (``WHERE CustomerRef = '<id>'``; query syntax in
docs/qbo/facts.md) and mirrored into the folder, so its billing summary is current too. Transactions of its
sub-customers, and ones deleted in QBO, are left to the webhooks and the CDC poll. Every run is audited with who
asked for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from crm_qb.crm.errors import ContactNotFoundError
from crm_qb.db import db
from crm_qb.models import LinkState
from crm_qb.sync.context import SyncContext, build_context
from crm_qb.sync.customers import links
from crm_qb.sync.customers.crm_side import sync_contact
from crm_qb.sync.customers.links import Record
from crm_qb.sync.customers.qbo_side import done
from crm_qb.sync.customers.reconcile import Sides, reconcile
from crm_qb.sync.services import SyncServices
from crm_qb.sync.transactions import registry
from crm_qb.sync.transactions.mirror import mirror

log = logging.getLogger(__name__)

ACTION = "contact.sync_now"


@dataclass(frozen=True)
class ContactSynced:
    """What a one-contact sync did: the outcome of the reconcile, the customer, and transactions mirrored."""

    contact_id: str
    outcome: str
    qbo_customer_id: str | None
    transactions: int

    def as_json(self) -> dict[str, Any]:
        return {"contact_id": self.contact_id, "outcome": self.outcome, "qbo_customer_id": self.qbo_customer_id,
                "transactions": self.transactions}


def sync_contact_now(services: SyncServices, connection_id: int, contact_id: str, job_id: str | None = None,
                     who: str = "admin") -> ContactSynced:
    """Reconcile one contact with its customer now and re-mirror that customer's transactions (audited)."""
    ctx = build_context(services, connection_id, job_id)
    try:
        if not ctx.settings.enabled:
            result = ContactSynced(contact_id, "skipped (sync off)", None, 0)
        else:
            with services.connection_lock(connection_id):
                outcome = _reconcile(ctx, contact_id)
                link = links.find_by_crm(connection_id, contact_id)
                customer_id = link.qbo_customer_id if link and link.state == LinkState.LINKED else None
                mirrored = _remirror(ctx, customer_id) if customer_id else 0
                if customer_id:
                    ctx.customers_changed.add(customer_id)  # its summary from the folder just re-read
            result = ContactSynced(contact_id, outcome, customer_id, mirrored)
        done(ctx, Record(ACTION, "both", "Contact", contact_id, {"by": who, **result.as_json()}), [])
    finally:
        ctx.close()
        services.jobs.check_followups(connection_id, ctx.invoices_changed)
        services.jobs.push_summaries(connection_id, ctx.summaries_to_push())
    log.info("sync now connection=%s contact=%s outcome=%s job=%s", connection_id, contact_id, result.outcome,
             job_id)
    return result


def _reconcile(ctx: SyncContext, contact_id: str) -> str:
    """Both sides read now and merged; a contact without a link goes the way of a new contact."""
    link = links.find_by_crm(ctx.connection_id, contact_id)
    if link is None or link.state != LinkState.LINKED or link.qbo_customer_id is None:
        return sync_contact(ctx, contact_id, [])
    try:
        contact = ctx.crm.get_contact(contact_id)
    except ContactNotFoundError:
        return sync_contact(ctx, contact_id, [])  # records that the contact is gone
    customer = ctx.qbo.read("Customer", link.qbo_customer_id)
    outcome = reconcile(ctx, link, Sides(customer=customer, contact=contact))
    record = Record("contact.synced" if outcome.wrote else "contact.unchanged", "crm_to_qbo", "Contact", contact_id,
                    outcome.diff(), conflicts=outcome.conflicts, intuit_tid=outcome.intuit_tid)
    done(ctx, record, [], [link])
    return "synced" if outcome.wrote else "unchanged"


def _remirror(ctx: SyncContext, customer_id: str) -> int:
    """Every transaction of the customer read again (one query per type) and mirrored; how many were read."""
    where = f"CustomerRef = '{_quoted(customer_id)}'"
    count = 0
    for entity in registry.NAMES:
        try:
            for txn in ctx.qbo.query_all(entity, where):
                mirror(ctx, entity, str(txn["Id"]), txn)
                count += 1
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
    return count


def _quoted(value: str) -> str:
    """A QBO query literal: a quote inside is escaped with a backslash (QBO ids are digits, so rarely needed)."""
    return value.replace("\\", "\\\\").replace("'", "\\'")
