"""The folder read model: a contact's link state, folder filters, pages of items, their JSON, and deep links.

Shared by the JSON API and the contact panel, so both show the same thing. A contact's folder holds the
transactions of its QBO customer and of every sub-customer below it (``crm_qb.sync.customers.hierarchy``), each item
naming its customer, so a job's invoices are in front of the people who deal with the customer whether or not the
job has a contact of its own. Money leaves as strings with the
currency's minor unit (more decimals only when QBO gave more), so JSON carries exact decimals and SQLite and
PostgreSQL answer byte for byte alike. Types, their filters and their pages come from the transaction registry.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from crm_qb.db import db
from crm_qb.models import Connection, ContactLink, FolderItem, LinkState
from crm_qb.qbo.deeplinks import AppLinks, links_for
from crm_qb.runtime import Runtime
from crm_qb.sync.customers import hierarchy
from crm_qb.sync.rules import status as st
from crm_qb.sync.rules.money import minor_unit_exponent
from crm_qb.sync.transactions import registry

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200
# Beyond any folder, and small enough that page times per_page stays a 64-bit database OFFSET.
MAX_PAGE = 1_000_000
STATUSES: tuple[str, ...] = st.LABELS
_STATUS_BY_KEY = {label.casefold().replace(" ", "_"): label for label in STATUSES}
NOT_LINKED_REASON = "This contact is not linked to a QuickBooks customer yet."


class InvalidFolderQuery(ValueError):
    """A folder filter or paging value is not acceptable; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class FolderQuery:
    """Which folder items to show: types and statuses (empty = all) and the page."""

    types: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE


@dataclass(frozen=True)
class FolderPage:
    """One page of a folder, newest first, and how many items match in all."""

    items: list[FolderItem]
    total: int
    query: FolderQuery

    @property
    def pages(self) -> int:
        """How many pages the matching items fill (at least 1)."""
        return max(1, math.ceil(self.total / self.query.per_page))


@dataclass(frozen=True)
class LinkStatus:
    """A contact's link: linked, review or unlinked, why (for review/unlinked), and its QBO customer."""

    state: str
    reason: str | None
    qbo_customer_id: str | None
    customer_name: str | None = None


def parse_folder_query(types: Sequence[str], statuses: Sequence[str], page: str | None,
                       per_page: str | None) -> FolderQuery:
    """Return the query for raw request values (comma-separated or repeated); InvalidFolderQuery names a bad one."""
    return FolderQuery(
        types=tuple(dict.fromkeys(_type(v) for v in _split(types))),
        statuses=tuple(dict.fromkeys(_status(v) for v in _split(statuses))),
        page=_whole("page", page, 1, MAX_PAGE),
        per_page=_whole("per_page", per_page, DEFAULT_PER_PAGE, MAX_PER_PAGE),
    )


def find_link(connection_id: int, crm_contact_id: str) -> ContactLink | None:
    """Return the link of a CRM contact in this connection, or None when crm-qb has never seen it."""
    return db.session.scalar(select(ContactLink).where(
        ContactLink.connection_id == connection_id, ContactLink.crm_contact_id == crm_contact_id))


def link_status(link: ContactLink | None) -> LinkStatus:
    """Return what the folder can show for ``link`` (None = a contact crm-qb has not linked)."""
    if link is None or (link.state == LinkState.LINKED and not link.qbo_customer_id):
        return LinkStatus("unlinked", NOT_LINKED_REASON, None)
    name = (link.base or {}).get("display_name")
    if link.state == LinkState.LINKED:
        return LinkStatus("linked", None, link.qbo_customer_id, name)
    if link.state == LinkState.REVIEW:
        count = len(link.review_candidates or [])
        reason = link.review_reason or f"Waiting for a person to choose among {count} QuickBooks customers."
        return LinkStatus("review", reason, link.qbo_customer_id, name)
    return LinkStatus("unlinked", link.review_reason or NOT_LINKED_REASON, None, name)


def folder_page(connection_id: int, qbo_customer_id: str, query: FolderQuery) -> FolderPage:
    """Return the page of a customer's folder items (its sub-customers' included) matching ``query``, newest first."""
    family = [member.qbo_customer_id for member in hierarchy.family(connection_id, qbo_customer_id)]
    where = [FolderItem.connection_id == connection_id, FolderItem.qbo_customer_id.in_(family)]
    if query.types:
        where.append(FolderItem.txn_type.in_(query.types))
    if query.statuses:
        where.append(FolderItem.status.in_(query.statuses))
    total = db.session.scalar(select(func.count()).select_from(FolderItem).where(*where)) or 0
    rows = db.session.scalars(
        select(FolderItem).where(*where)
        .order_by(FolderItem.txn_date.desc().nulls_last(), FolderItem.id.desc())
        .limit(query.per_page).offset((query.page - 1) * query.per_page)
    )
    return FolderPage(list(rows), int(total), query)


def app_base(rt: Runtime, connection: Connection) -> AppLinks:
    """Where ``connection``'s records open in QBO: the web app and the company every link selects (qbo/deeplinks.py)."""
    return links_for(rt.qbo().endpoints.app_base, connection.qbo_realm_id, sandbox_company=connection.qbo_is_sandbox)


def customer_url(base: AppLinks, qbo_customer_id: str | None) -> str | None:
    """The customer's page in QBO, or None without a customer."""
    return base.customer(qbo_customer_id) if qbo_customer_id else None


def item_url(base: AppLinks, item: FolderItem) -> str:
    """The transaction's page in QBO."""
    return registry.get(item.txn_type).link(base, item.qbo_id)


def money_text(amount: Decimal | None, currency: str) -> str | None:
    """``amount`` as an exact string with the currency's minor unit (e.g. "1100.00"); more decimals if it has them."""
    if amount is None:
        return None
    exponent = minor_unit_exponent(currency)
    value = Decimal(amount)
    places = -int(value.normalize().as_tuple().exponent) if value else 0
    return f"{value.quantize(Decimal(1).scaleb(-max(exponent, places))):f}"


def rate_text(rate: Decimal) -> str:
    """An exchange rate as the shortest exact string ("1.1", "150")."""
    return f"{Decimal(rate).normalize():f}"


def item_json(item: FolderItem, base: AppLinks, home_currency: str) -> dict[str, Any]:
    """A folder item as the API shows it: money as strings, dates ISO, the deep link."""
    details = item.details or {}
    return {
        "type": item.txn_type, "qbo_id": item.qbo_id, "number": item.doc_number,
        "date": _iso(item.txn_date), "due_date": _iso(item.due_date), "expiration_date": _iso(item.expiration_date),
        "status": item.status, "days_overdue": details.get("days_overdue"), "partial": bool(details.get("partial")),
        "currency": item.currency, "exchange_rate": rate_text(item.exchange_rate),
        "total": money_text(item.total, item.currency), "balance": money_text(item.balance, item.currency),
        "home_currency": home_currency, "home_total": money_text(item.home_total, home_currency),
        "home_balance": money_text(item.home_balance, home_currency), "home_computed": item.home_computed,
        "linked": [dict(link) for link in item.linked_txns or []],
        "updated_at": _iso(item.qbo_updated_at), "url": item_url(base, item),
        "customer": {"qbo_customer_id": item.qbo_customer_id, "name": details.get("customer_name")},
    }


def _split(values: Sequence[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _type(value: str) -> str:
    try:
        return registry.get(value).entity
    except registry.UnknownTransactionType:
        raise InvalidFolderQuery("type", f"unknown type {value!r}; expected one of {', '.join(registry.NAMES)}") \
            from None


def _status(value: str) -> str:
    label = _STATUS_BY_KEY.get(value.casefold().replace(" ", "_").replace("-", "_"))
    if label is None:
        raise InvalidFolderQuery("status", f"unknown status {value!r}; expected one of {', '.join(STATUSES)}")
    return label


def _whole(field: str, raw: str | None, default: int, most: int | None) -> int:
    if raw is None or raw == "":
        return default
    limit = f" and at most {most}" if most else ""
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or int(raw) < 1 or (most is not None and int(raw) > most):
        raise InvalidFolderQuery(field, f"{field} must be a whole number of at least 1{limit}; got {raw!r}")
    return int(raw)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
