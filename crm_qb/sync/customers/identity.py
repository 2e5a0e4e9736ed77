"""Identity before any write: find the other side's candidates for an unlinked record.

CRM candidates for a QBO customer: by email through ``GET /contacts?email=``; then by name. The CRM contract
(docs/architecture.md §5) has no name search, so name candidates come from one walk over the CRM's contacts, made at
most once per job and only when some record needs it (kept on the SyncContext). A burst of new customers therefore
costs one walk, and a CRM with many contacts pays it only when a customer has no email match.

QBO candidates for a CRM contact: one query by ``PrimaryEmailAddr``, then by ``DisplayName`` and by
``CompanyName`` (QBO has no OR), values escaped; active customers only (an inactive customer is never linked
to a new contact, nor used to block one). Sub-customers (docs/architecture.md §3): a job found beside its parent
shares the parent's email or company, so it is dropped unless the contact's display name is exactly the job's.

Whether a DisplayName is free (the 6240 rule, docs/qbo/facts.md §3): QBO keeps one namespace for customers,
vendors and employees, inactive ones included, so all three lists are asked (``display_name_taken``).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from crm_qb.crm.protocol import Contact
from crm_qb.qbo.client import escape
from crm_qb.sync.context import SyncContext
from crm_qb.sync.customers.hierarchy import parent_of
from crm_qb.sync.customers.reconcile import contact_json
from crm_qb.sync.rules.canonical import CanonicalValue
from crm_qb.sync.rules.mapping import canonical_from_crm, canonical_from_qbo
from crm_qb.sync.rules.matching import Candidate, MatchOutcome, candidate, match, match_exact_name, normalise_name

CRM_WALK_PAGE = 1000
NAME_HOLDERS: tuple[str, ...] = ("Customer", "Vendor", "Employee")  # one DisplayName namespace in QBO


def match_in_crm(ctx: SyncContext, record: Mapping[str, CanonicalValue],
                 exclude: Collection[str] = ()) -> tuple[MatchOutcome, dict[str, Contact]]:
    """How a QBO customer's canonical record matches CRM contacts (never those in ``exclude``), and the matches.

    The matches are the contacts the e-mail search returned; a match found among candidates (the name pool, the
    backfill's index) is not read here: the caller reads it only if it links it (``link_pair`` with an id).
    """
    email = record.get("email")
    if isinstance(email, str) and ctx.crm_email_matches is not None:
        known = [c for c in ctx.crm_email_matches if c.id not in exclude]
        if known:
            return match(record, known), {}
    elif isinstance(email, str):
        by_email = [c for c in ctx.crm.find_contacts_by_email(email) if c.id not in exclude]
        if by_email:
            contacts = {c.id: c for c in by_email}
            return match(record, [_crm_candidate(c) for c in by_email]), contacts
    return match(record, [c for c in _crm_pool(ctx) if c.id not in exclude]), {}


def match_by_exact_name(ctx: SyncContext, record: Mapping[str, CanonicalValue],
                        exclude: Collection[str] = ()) -> tuple[MatchOutcome, dict[str, Contact]]:
    """How a record matches CRM contacts by its exact (normalised) display name alone (matches not read)."""
    return match_exact_name(record, [c for c in _crm_pool(ctx) if c.id not in exclude]), {}


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
    found = _families_collapsed(record, found)
    outcome = match(record, [candidate(i, canonical_from_qbo(c)) for i, c in found.items()])
    return outcome, found


def _families_collapsed(record: Mapping[str, CanonicalValue], found: dict[str, Any]) -> dict[str, Any]:
    """A job found beside its own parent (jobs inherit the parent's email and company) is not a candidate of its
    own, unless the contact names exactly that job: then it is the only candidate."""
    jobs = [i for i, customer in found.items() if parent_of(customer) in found]
    if not jobs:
        return found
    name = normalise_name(str(record.get("display_name") or ""))
    named = [i for i in jobs if name and normalise_name(str(found[i].get("DisplayName") or "")) == name]
    if len(named) == 1:
        return {named[0]: found[named[0]]}
    return {i: customer for i, customer in found.items() if i not in jobs}


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
