"""The Payment & Billing summary read model of one contact, and pushing it to CRMs that store it natively.

Customer facts come from ``ContactLink.qbo_owned`` as the customer sync writes them (keys of
``mapping.QboOwned``: ``payment_terms``, ``preferred_payment_method``, ``delivery_preference``, ``currency``,
``balance``; plus, when known, the reference ids ``payment_terms_id`` and ``payment_method_id``). A name is taken
from the QboReference row of that id (kind TERM/PAYMENT_METHOD as crm_qb.qbo.company writes them, or the
entity names "Term"/"PaymentMethod") first, so a term renamed in QBO shows its
new name as soon as the reference list is refreshed, and from the stored name otherwise.

Figures come from the folder of the contact's customer and its sub-customers (voided transactions count in
``counts`` only), each type's role in them from its ``SummaryRole`` in the transaction registry:
- open: what the customer owes, as QBO's customer Balance counts it (BalanceWithJobs when it has jobs): the
  balances of types whose balance is owed (invoices) less money received or credited and not applied yet
  (``unapplied_payments``: payments' UnappliedAmt; ``unapplied_credits``: credit memos' remaining credit), which
  are also shown on their own; per currency and in home currency;
- overdue: the balances of owed types whose status is Overdue;
- a total metric per type: invoiced (invoices), received (payments and sales receipts), credited (credit memos),
  refunded (refund receipts), per currency and in home currency;
- last payment: the newest transaction of the last-payment type (payments) by date, then id: date, amount, home
  amount, link.

``push_summary(rt, connection_id, crm_contact_id) -> bool`` PUTs it to the CRM (through the connection's
connector) when the connection's ``settings["panel"]["push_summary"]`` is true; CRM errors propagate so the
calling job retries transient ones.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from crm_qb.db import db, utcnow
from crm_qb.models import Connection, ContactLink, FolderItem, QboReference
from crm_qb.qbo.company import PAYMENT_METHOD, TERM
from crm_qb.qbo.deeplinks import AppLinks
from crm_qb.runtime import Runtime
from crm_qb.sync.customers import hierarchy
from crm_qb.sync.rules import status as st
from crm_qb.sync.transactions import registry
from crm_qb.web.readmodels.folder import app_base, customer_url, find_link, link_status, money_text

log = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("open", "overdue", *registry.summary_unapplied(), *registry.summary_totals())
ZERO = Decimal(0)


@dataclass(frozen=True)
class SummaryRow:
    """The folder columns a summary reads."""

    txn_type: str
    qbo_id: str
    status: str
    currency: str
    txn_date: date | None
    total: Decimal
    balance: Decimal
    home_total: Decimal
    home_balance: Decimal
    qbo_customer_id: str = ""


@dataclass(frozen=True)
class LastPayment:
    """The newest payment of a customer."""

    qbo_id: str
    date: date | None
    currency: str
    amount: Decimal
    home_amount: Decimal


@dataclass(frozen=True)
class Figures:
    """Counts per type, metric totals per currency and in home currency, and the last payment."""

    counts: dict[str, int] = field(default_factory=dict)
    by_currency: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    home: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(METRICS, ZERO))
    last_payment: LastPayment | None = None


@dataclass(frozen=True)
class CustomerFacts:
    """What QBO says about the customer: terms, payment method, delivery preference, currency, balance."""

    terms: str | None
    payment_method: str | None
    delivery_preference: str | None
    currency: str | None
    balance: Decimal | None


def summarize(rows: Iterable[SummaryRow]) -> Figures:
    """Return the figures of a customer's folder rows (pure)."""
    figures = Figures()
    last: SummaryRow | None = None
    for row in rows:
        figures.counts[row.txn_type] = figures.counts.get(row.txn_type, 0) + 1
        if row.status == st.VOIDED:
            continue
        _add(figures, row)
        if registry.get(row.txn_type).summary.last_payment and (last is None or _newer(row, last)):
            last = row
    payment = LastPayment(last.qbo_id, last.txn_date, last.currency, last.total, last.home_total) if last else None
    return Figures(figures.counts, figures.by_currency, figures.home, payment)


def customer_facts(connection_id: int, qbo_owned: Mapping[str, Any] | None) -> CustomerFacts:
    """Return the customer's QBO-owned facts, reference names resolved from the current QboReference rows."""
    owned = qbo_owned or {}
    balance = owned.get("balance")
    return CustomerFacts(
        terms=_reference_name(connection_id, (TERM,), owned.get("payment_terms_id"),
                              owned.get("payment_terms")),
        payment_method=_reference_name(connection_id, (PAYMENT_METHOD,),
                                       owned.get("payment_method_id"), owned.get("preferred_payment_method")),
        delivery_preference=owned.get("delivery_preference"),
        currency=owned.get("currency"),
        balance=Decimal(str(balance)) if balance not in (None, "") else None,
    )


def load_rows(connection_id: int, qbo_customer_ids: list[str]) -> list[SummaryRow]:
    """The summary columns of these customers' folder items (one query)."""
    result = db.session.execute(select(
        FolderItem.txn_type, FolderItem.qbo_id, FolderItem.status, FolderItem.currency, FolderItem.txn_date,
        FolderItem.total, FolderItem.balance, FolderItem.home_total, FolderItem.home_balance,
        FolderItem.qbo_customer_id,
    ).where(FolderItem.connection_id == connection_id, FolderItem.qbo_customer_id.in_(qbo_customer_ids)))
    return [SummaryRow(**row._mapping) for row in result]  # the columns are named as the fields


def summary_json(connection: Connection, link: ContactLink, base: AppLinks) -> dict[str, Any]:
    """The summary of a linked contact as JSON: facts, figures as exact strings, the hierarchy, deep links."""
    home = connection.home_currency or ""
    facts = customer_facts(connection.id, link.qbo_owned)
    customer_id = str(link.qbo_customer_id)
    members = hierarchy.family(connection.id, customer_id)
    rows = load_rows(connection.id, [m.qbo_customer_id for m in members])
    figures = summarize(rows)
    currency = facts.currency or home
    return {
        "terms": facts.terms, "preferred_payment_method": facts.payment_method,
        "delivery_preference": facts.delivery_preference, "currency": currency, "home_currency": home,
        "qbo_balance": money_text(facts.balance, currency),
        "open_balance": _metric(figures, "open", home), "overdue_balance": _metric(figures, "overdue", home),
        **{f"{name}": _metric(figures, name, home) for name in registry.summary_unapplied()},
        "last_payment": _last_payment_json(figures.last_payment, base, home),
        "counts": figures.counts,
        "totals": {cur: {m: money_text(v, cur) for m, v in metrics.items()}
                   for cur, metrics in sorted(figures.by_currency.items())},
        "home_totals": {m: money_text(v, home) for m, v in figures.home.items()},
        "customer_url": customer_url(base, link.qbo_customer_id),
        "parent": _parent_json(connection.id, customer_id, link.qbo_owned, base),
        "jobs": [_job_json(job, [r for r in rows if r.qbo_customer_id == job.qbo_customer_id], base, home)
                 for job in members[1:]],
    }


def contact_summary(rt: Runtime, connection_id: int, crm_contact_id: str) -> dict[str, Any] | None:
    """The summary of a contact (app context needed), or None when it is not linked to a customer."""
    connection = db.session.get(Connection, connection_id)
    link = find_link(connection_id, crm_contact_id)
    if connection is None or link is None or link_status(link).state != "linked":
        return None
    return summary_json(connection, link, app_base(rt, connection))


def push_summary(rt: Runtime, connection_id: int, crm_contact_id: str) -> bool:
    """PUT the contact's summary to the CRM if the connection asks for it; True when it was sent."""
    connection = db.session.get(Connection, connection_id)
    if connection is None or not (connection.settings or {}).get("panel", {}).get("push_summary"):
        return False
    summary = contact_summary(rt, connection_id, crm_contact_id)
    if summary is None:
        return False
    connector = rt.sync_services().crm_for(connection)
    try:
        connector.put_quickbooks_summary(crm_contact_id, {**summary, "updated_at": utcnow().isoformat()})
    finally:
        connector.close()
    log.info("connection %s: billing summary pushed to the CRM", connection_id)
    return True


def _add(figures: Figures, row: SummaryRow) -> None:
    metrics = figures.by_currency.setdefault(row.currency, dict.fromkeys(METRICS, ZERO))
    amounts: list[tuple[str, Decimal, Decimal]] = []
    role = registry.get(row.txn_type).summary
    if role.total:
        amounts.append((role.total, row.total, row.home_total))
    if role.open_balance:
        amounts.append(("open", row.balance, row.home_balance))
        if row.status == st.OVERDUE:
            amounts.append(("overdue", row.balance, row.home_balance))
    if role.unapplied:  # money the customer has with us: shown apart, and it lowers what is open (QBO's Balance)
        amounts.append((role.unapplied, row.balance, row.home_balance))
        amounts.append(("open", -row.balance, -row.home_balance))
    for metric, amount, home_amount in amounts:
        metrics[metric] += amount
        figures.home[metric] += home_amount


def _newer(row: SummaryRow, than: SummaryRow) -> bool:
    return (row.txn_date or date.min, _id_key(row.qbo_id)) > (than.txn_date or date.min, _id_key(than.qbo_id))


def _id_key(qbo_id: str) -> tuple[int, str]:
    # QBO ids are numeric strings in practice; compare them as numbers so "10" is newer than "9".
    return (int(qbo_id), qbo_id) if qbo_id.isdigit() else (-1, qbo_id)


def _reference_name(connection_id: int, kinds: tuple[str, ...], ref_id: object, stored: object) -> str | None:
    if ref_id not in (None, ""):
        name = db.session.scalar(select(QboReference.name).where(
            QboReference.connection_id == connection_id, QboReference.kind.in_(kinds),
            QboReference.qbo_id == str(ref_id)).limit(1))
        if name:
            return str(name)
    return str(stored) if stored not in (None, "") else None


def _parent_json(connection_id: int, customer_id: str, owned: Mapping[str, Any] | None,
                 base: AppLinks) -> dict[str, Any] | None:
    """The customer's parent (it is a sub-customer), from the hierarchy or else from its QBO-owned facts."""
    chain = hierarchy.ancestors(connection_id, customer_id)
    parent_id = chain[0].qbo_customer_id if chain else (owned or {}).get("parent_id")
    if not parent_id:
        return None
    name = chain[0].name if chain else (owned or {}).get("parent_name") or parent_id
    return {"qbo_customer_id": parent_id, "name": name, "url": customer_url(base, parent_id)}


def _job_json(job: hierarchy.Member, rows: list[SummaryRow], base: AppLinks, home: str) -> dict[str, Any]:
    """A sub-customer shown on its ancestor's contact: name, depth, open balance and its QBO page."""
    return {"qbo_customer_id": job.qbo_customer_id, "name": job.name, "depth": job.depth,
            "parent_id": job.parent_id, "open_balance": _metric(summarize(rows), "open", home),
            "url": customer_url(base, job.qbo_customer_id)}


def _metric(figures: Figures, metric: str, home: str) -> dict[str, Any]:
    by_currency = {cur: money_text(m[metric], cur) for cur, m in sorted(figures.by_currency.items()) if m[metric]}
    return {"by_currency": by_currency, "home": money_text(figures.home[metric], home)}


def _last_payment_json(payment: LastPayment | None, base: AppLinks, home: str) -> dict[str, Any] | None:
    if payment is None:
        return None
    return {"qbo_id": payment.qbo_id, "date": payment.date.isoformat() if payment.date else None,
            "currency": payment.currency, "amount": money_text(payment.amount, payment.currency),
            "home_amount": money_text(payment.home_amount, home),
            "url": _last_payment_type().link(base, payment.qbo_id)}


def _last_payment_type() -> registry.TxnType:
    (found,) = (t for t in registry.TYPES if t.summary.last_payment)
    return found
