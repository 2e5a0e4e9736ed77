"""The registry of mirrored QBO transaction types: the one list every layer reads.

Webhook ingress (which entities are synced), the drains, the CDC poll and the backfill (which entities to fetch),
the folder mirror (status, links, date-dependent statuses), the follow-ups (which type they watch), the JSON API
and the panel (filters, labels, badges, balances, deep links) and the Payment & Billing summary (which total a
type adds to) all take what they know about a type from its ``TxnType`` entry here. None keeps a list of its own.

Adding a type is one entry in ``TYPES`` plus its status rule in ``crm_qb/sync/rules/status.py`` (see
docs/architecture.md, "Add a transaction type"). Lookups are strict: a name that is not registered raises
``UnknownTransactionType`` naming it and the known ones, so a type missed somewhere fails loudly instead of
being stored as ignored. ``check`` runs at import: a malformed entry stops start-up, not a customer's sync.

Names are QBO's entity names ("SalesReceipt"); QBO uses the same name in webhooks (legacy ``name``, CloudEvents
``qbo.<name lower-cased>.<operation>.v1``) and in CDC (``entities=``), so one name serves every channel;
lookups ignore case.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Any

from crm_qb.qbo.deeplinks import AppLinks
from crm_qb.sync.rules import status as st
from crm_qb.sync.rules.folder import Links, header_links, payment_links

StatusRule = Callable[[Mapping[str, Any], date, bool], st.TxnStatus]
LinkRule = Callable[[Mapping[str, Any]], Links]
TONES: tuple[str, ...] = ("ok", "info", "warn", "bad", "neutral")  # badge colours: crm_qb/web/panel.py


class UnknownTransactionType(ValueError):
    """A transaction type that is not registered (the message names it and the registered ones)."""


@dataclass(frozen=True)
class SummaryRole:
    """How a type counts in the Payment & Billing summary (beyond its count, which every type has)."""

    total: str | None = None  # the metric its totals add to (invoiced, received, credited, refunded)
    open_balance: bool = False  # its balance is owed: it adds to "open", and to "overdue" when Overdue
    unapplied: str | None = None  # its balance is money not yet applied (the metric it adds to); "open" less it
    last_payment: bool = False  # the newest one is the customer's last payment


@dataclass(frozen=True)
class TxnType:
    """Everything crm-qb knows about one QBO transaction type."""

    entity: str  # QBO's entity name, the same in the API, webhooks and CDC
    label: str  # one of them, as people read it ("Sales receipt")
    plural: str
    page: str  # the QBO web app page that shows one (<page>?txnId=<id>, opened in its company: qbo/deeplinks.py)
    status: StatusRule  # (transaction, company's today, voided hint) -> status; rules in sync/rules/status.py
    statuses: Mapping[str, str]  # every status label the rule can give, and its badge tone (TONES)
    summary: SummaryRole
    links: LinkRule = header_links  # the transactions it links to (payments: what each line paid)
    time_dependent: tuple[str, ...] = ()  # statuses that can change with the date alone (recomputed hourly)
    voidable: bool = False  # QBO can void it (amounts zeroed, "Voided" note); then its statuses include Voided
    shows_balance: bool = False  # the panel shows its balance (what is owed or left to apply)
    partial_note: str = "partly applied"  # the panel's note for partial=True beside another status
    followed_up: bool = False  # overdue ones become follow-up tasks (crm_qb/sync/followups)

    @property
    def webhook_names(self) -> tuple[str, str]:
        """How webhooks name it: the legacy ``name`` and the CloudEvents ``type`` entity part."""
        return self.entity, self.entity.lower()

    @property
    def cdc_name(self) -> str:
        """How a CDC request (``entities=``) and a CDC answer name it."""
        return self.entity

    def status_of(self, txn: Mapping[str, Any], today: date, *, voided: bool = False) -> st.TxnStatus:
        """The transaction's status on ``today``; ``voided`` says a Void webhook was seen."""
        return self.status(txn, today, voided)

    def link(self, links: AppLinks, qbo_id: str) -> str:
        """The transaction's page in the QuickBooks web app, in its connection's company."""
        return links.transaction(self.page, qbo_id)


TYPES: tuple[TxnType, ...] = (
    TxnType(
        entity="Invoice", label="Invoice", plural="Invoices", page="invoice",
        status=lambda txn, today, voided: st.invoice_status(txn, today, voided=voided),
        statuses={st.OPEN: "info", st.OVERDUE: "bad", st.PARTIALLY_PAID: "warn", st.PAID: "ok", st.VOIDED: "neutral"},
        summary=SummaryRole(total="invoiced", open_balance=True),
        time_dependent=(st.OPEN, st.OVERDUE, st.PARTIALLY_PAID), voidable=True, shows_balance=True,
        partial_note="partly paid", followed_up=True,
    ),
    TxnType(
        entity="Payment", label="Payment", plural="Payments", page="recvpayment",
        status=lambda txn, today, voided: st.payment_status(txn, voided=voided),
        statuses={st.APPLIED: "ok", st.UNAPPLIED: "warn", st.VOIDED: "neutral"},
        summary=SummaryRole(total="received", unapplied="unapplied_payments", last_payment=True), links=payment_links,
        voidable=True,
        shows_balance=True,
    ),
    TxnType(
        entity="Estimate", label="Estimate", plural="Estimates", page="estimate",
        status=lambda txn, today, voided: st.estimate_status(txn, today),
        statuses={st.PENDING: "info", st.ACCEPTED: "ok", st.CLOSED: "neutral", st.REJECTED: "bad",
                  st.EXPIRED: "bad"},
        summary=SummaryRole(), time_dependent=(st.PENDING, st.EXPIRED),
    ),
    TxnType(
        entity="SalesReceipt", label="Sales receipt", plural="Sales receipts", page="salesreceipt",
        status=lambda txn, today, voided: st.sales_receipt_status(txn, voided=voided),
        statuses={st.PAID: "ok", st.VOIDED: "neutral"}, summary=SummaryRole(total="received"), voidable=True,
    ),
    TxnType(
        entity="CreditMemo", label="Credit memo", plural="Credit memos", page="creditmemo",
        status=lambda txn, today, voided: st.credit_memo_status(txn, voided=voided),
        statuses={st.APPLIED: "ok", st.UNAPPLIED: "warn", st.VOIDED: "neutral"},
        summary=SummaryRole(total="credited", unapplied="unapplied_credits"), voidable=True, shows_balance=True,
    ),
    TxnType(
        entity="RefundReceipt", label="Refund receipt", plural="Refund receipts", page="refundreceipt",
        status=lambda txn, today, voided: st.refund_receipt_status(txn, voided=voided),
        statuses={st.REFUNDED: "ok", st.VOIDED: "neutral"}, summary=SummaryRole(total="refunded"), voidable=True,
    ),
)


_BY_KEY: Mapping[str, TxnType] = MappingProxyType({t.entity.casefold(): t for t in TYPES})
NAMES: tuple[str, ...] = tuple(t.entity for t in TYPES)


def get(name: str) -> TxnType:
    """The registered type named ``name`` (any case); UnknownTransactionType when there is none."""
    found = _BY_KEY.get(str(name).casefold())
    if found is None:
        raise UnknownTransactionType(f"transaction type {name!r} is not mirrored; expected one of {', '.join(NAMES)}")
    return found


def is_registered(name: str) -> bool:
    """Whether ``name`` (any case) is a registered transaction type."""
    return str(name).casefold() in _BY_KEY


def txn_status(name: str, txn: Mapping[str, Any], today: date, *, voided: bool = False) -> st.TxnStatus:
    """The status of a transaction of the type ``name`` on ``today``."""
    return get(name).status_of(txn, today, voided=voided)


def badge_tone(status: str) -> str:
    """The badge tone of a status label (the same for every type that has it)."""
    return _TONES[status]


def summary_totals() -> tuple[str, ...]:
    """The summary's total metrics, in registration order."""
    return tuple(dict.fromkeys(t.summary.total for t in TYPES if t.summary.total))


def summary_unapplied() -> tuple[str, ...]:
    """The summary's metrics of money received or credited but not applied yet, in registration order."""
    return tuple(dict.fromkeys(t.summary.unapplied for t in TYPES if t.summary.unapplied))


def followed_up() -> TxnType:
    """The type whose overdue transactions become follow-up tasks (invoices)."""
    (found,) = (t for t in TYPES if t.followed_up)
    return found


def _tones() -> Mapping[str, str]:
    tones: dict[str, str] = {}
    for txn_type in TYPES:
        for label, tone in txn_type.statuses.items():
            if tones.setdefault(label, tone) != tone:
                raise ValueError(f"status {label!r} has two badge tones: {tones[label]!r} and {tone!r}")
    return MappingProxyType(tones)


def check(types: tuple[TxnType, ...]) -> None:
    """Refuse malformed entries (ValueError naming the entry and what is wrong); runs on TYPES at import."""
    if len({t.entity.casefold() for t in types}) != len(types):
        raise ValueError("transaction types must have distinct names")
    for t in types:
        problems = [f"status {s!r} is not in sync/rules/status.py LABELS" for s in t.statuses if s not in st.LABELS]
        problems += [f"tone {tone!r} is not one of {TONES}" for tone in t.statuses.values() if tone not in TONES]
        problems += [f"date-dependent status {s!r} is not one of its statuses"
                     for s in t.time_dependent if s not in t.statuses]
        if t.voidable != (st.VOIDED in t.statuses):
            problems.append("a voidable type has the Voided status, and only a voidable type has it")
        if not t.page.isalpha():
            problems.append(f"deep-link page {t.page!r} is not one word")
        if problems:
            raise ValueError(f"transaction type {t.entity}: " + "; ".join(problems))


check(TYPES)
if sum(t.followed_up for t in TYPES) != 1:
    raise ValueError("exactly one transaction type is followed up (crm_qb/sync/followups)")
_TONES = _tones()
