"""Identity before any write: find the other side's candidates for an unlinked record.

CRM candidates for a QBO customer: by email through ``GET /contacts?email=``; then by name. The CRM contract
(docs/architecture.md §5) has no name search, so name candidates come from one walk over the CRM's contacts, made at
most once per job and only when some record needs it (kept on the SyncContext). A burst of new customers therefore
costs one walk, and a CRM with many contacts pays it only when a customer has no email match.

QBO candidates for a CRM contact: one query by ``PrimaryEmailAddr``, then by ``DisplayName`` and by
``CompanyName`` (QBO has no OR), values escaped; active customers only (an inactive customer is never linked
to a new contact, nor used to block one).

Whether a DisplayName is free (the 6240 rule, docs/qbo/facts.md §3): QBO keeps one namespace for customers,
vendors and employees, inactive ones included, so all three lists are asked (``display_name_taken``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm_qb.crm.protocol import Contact
from crm_qb.qbo.client import escape
from crm_qb.sync.context import SyncContext
from crm_qb.sync.customers.reconcile import contact_json
from crm_qb.sync.rules.canonical import CanonicalValue
from crm_qb.sync.rules.mapping import canonical_from_crm, canonical_from_qbo
from crm_qb.sync.rules.matching import Candidate, MatchOutcome, candidate, match

CRM_WALK_PAGE = 1000
NAME_HOLDERS: tuple[str, ...] = ("Customer", "Vendor", "Employee")  # one DisplayName namespace in QBO


def match_in_crm(ctx: SyncContext, record: Mapping[str, CanonicalValue]) -> tuple[MatchOutcome, dict[str, Contact]]:
    """How a QBO customer's canonical record matches CRM contacts, and the matched contacts by id."""
    email = record.get("email")
    if isinstance(email, str):
        by_email = ctx.crm.find_contacts_by_email(email)
        if by_email:
            contacts = {c.id: c for c in by_email}
            return match(record, [_crm_candidate(c) for c in by_email]), contacts
    outcome = match(record, _crm_pool(ctx))
    contacts = {contact_id: ctx.crm.get_contact(contact_id) for contact_id in outcome.ids[:1]}
    return outcome, contacts


def _crm_pool(ctx: SyncContext) -> list[Candidate]:
    if ctx.crm_pool is None:
        pages = ctx.crm.list_contacts_updated_since(None, page_size=CRM_WALK_PAGE)
        latest = {c.id: c for page in pages for c in page.contacts}
        ctx.crm_pool = [_crm_candidate(c) for c in latest.values() if c.active]
    return ctx.crm_pool


def _crm_candidate(contact: Contact) -> Candidate:
    return candidate(contact.id, canonical_from_crm(contact_json(contact)))


def remember_crm_contact(ctx: SyncContext, contact: Contact) -> None:
    """Add a contact created during this job to the name pool, if the pool was walked."""
    if ctx.crm_pool is not None:
        ctx.crm_pool.append(_crm_candidate(contact))


def match_in_qbo(ctx: SyncContext, record: Mapping[str, CanonicalValue]) -> tuple[MatchOutcome, dict[str, Any]]:
    """How a CRM contact's canonical record matches QBO customers, and the matched customers by id."""
    found: dict[str, dict[str, Any]] = {}
    email = record.get("email")
    if isinstance(email, str):
        found = _query(ctx, "PrimaryEmailAddr", email)
    if not found:
        for column, key in (("DisplayName", "display_name"), ("CompanyName", "company")):
            value = record.get(key)
            if isinstance(value, str):
                found.update(_query(ctx, column, value))
    outcome = match(record, [candidate(i, canonical_from_qbo(c)) for i, c in found.items()])
    return outcome, found


def customers_named(ctx: SyncContext, display_name: str) -> list[dict[str, Any]]:
    """Customers (active or not) whose DisplayName is ``display_name`` (QBO compares case-insensitively)."""
    return list(_query(ctx, "DisplayName", display_name, include_inactive=True).values())


def display_name_taken(ctx: SyncContext, display_name: str) -> bool:
    """Whether a customer, vendor or employee (active or not) already uses ``display_name`` in QBO."""
    return any(_query(ctx, "DisplayName", display_name, include_inactive=True, entity=entity)
               for entity in NAME_HOLDERS)


def _query(ctx: SyncContext, column: str, value: str, include_inactive: bool = False,
           entity: str = "Customer") -> dict[str, dict[str, Any]]:
    condition = f"{column} = '{escape(value)}'"
    if include_inactive:
        condition += " AND Active IN (true, false)"
    rows = ctx.qbo.query(f"SELECT * FROM {entity} WHERE {condition} MAXRESULTS 100").get("QueryResponse") or {}
    return {str(row["Id"]): row for row in rows.get(entity) or []}
