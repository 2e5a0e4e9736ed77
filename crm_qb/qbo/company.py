"""A connected company's details: CompanyInfo, Preferences and the reference lists (terms, payment methods).

Read once when a company is connected (and again whenever asked), stored on the connection and in
``qbo_references`` so transactions can show a term or payment method by name without another API call.
Inactive entries are read too: old customers and transactions still point at them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session, scoped_session

from crm_qb.models import Connection, QboReference

log = logging.getLogger(__name__)

TERM = "term"
PAYMENT_METHOD = "payment_method"
REFERENCE_ENTITIES = {TERM: "Term", PAYMENT_METHOD: "PaymentMethod"}
_ALL_ROWS = "Active IN (true, false)"  # without it QBO returns active entries only (docs/qbo/facts.md §5)


class QueryClient(Protocol):
    """What reading a company needs from a QboClient."""

    def query(self, sql: str) -> dict[str, Any]:
        """Run one query statement."""

    def query_all(self, entity: str, where: str = "", page_size: int = ...) -> Iterable[dict[str, Any]]:
        """Every row of ``entity`` matching ``where``."""


@dataclass(frozen=True)
class Reference:
    """One reference-list entry: its kind (``term`` or ``payment_method``), id, name, state and raw fields."""

    kind: str
    qbo_id: str
    name: str
    active: bool
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CompanyDetails:
    """What crm-qb keeps about a company: name, home currency, multi-currency, time zone, reference lists."""

    name: str | None
    home_currency: str | None
    multicurrency: bool
    timezone: str | None
    references: tuple[Reference, ...] = ()


def parse_company(company_info: Mapping[str, Any], preferences: Mapping[str, Any]) -> CompanyDetails:
    """The company details in a CompanyInfo and a Preferences object (absent fields become None/False)."""
    currency = preferences.get("CurrencyPrefs") or {}
    home = (currency.get("HomeCurrency") or {}).get("value")
    return CompanyDetails(
        name=company_info.get("CompanyName") or company_info.get("LegalName"),
        home_currency=str(home).upper()[:3] if home else None,
        multicurrency=bool(currency.get("MultiCurrencyEnabled")),
        timezone=_zone(company_info.get("DefaultTimeZone")),
    )


def parse_reference(kind: str, row: Mapping[str, Any]) -> Reference:
    """A Reference from a Term or PaymentMethod object; ids stay strings."""
    details = {key: value for key, value in row.items() if key in ("DueDays", "DiscountPercent", "Type")}
    return Reference(kind=kind, qbo_id=str(row["Id"]), name=str(row.get("Name") or row["Id"])[:500],
                     active=row.get("Active", True) is not False, details=_json_safe(details))


def read_company(client: QueryClient) -> CompanyDetails:
    """Read CompanyInfo, Preferences, terms and payment methods from QuickBooks (four or more calls)."""
    info = _single(client, "CompanyInfo")
    preferences = _single(client, "Preferences")
    references = tuple(
        parse_reference(kind, row)
        for kind, entity in REFERENCE_ENTITIES.items()
        for row in client.query_all(entity, _ALL_ROWS)
    )
    details = parse_company(info, preferences)
    return CompanyDetails(details.name, details.home_currency, details.multicurrency, details.timezone, references)


DbSession = Session | scoped_session[Any]


def store_company(session: DbSession, connection: Connection, details: CompanyDetails) -> None:
    """Write ``details`` onto ``connection`` and upsert its reference rows (the caller commits)."""
    connection.qbo_company_name = details.name[:500] if details.name else None
    connection.home_currency = details.home_currency
    connection.multicurrency_enabled = details.multicurrency
    if details.timezone:
        connection.company_timezone = details.timezone
    existing = {
        (row.kind, row.qbo_id): row
        for row in session.scalars(select(QboReference).where(QboReference.connection_id == connection.id))
    }
    for ref in details.references:
        row = existing.get((ref.kind, ref.qbo_id))
        if row is None:
            row = QboReference(connection_id=connection.id, kind=ref.kind, qbo_id=ref.qbo_id)
            session.add(row)
        row.name, row.active, row.details = ref.name, ref.active, ref.details
    log.info("QBO company details stored connection=%s references=%d", connection.id, len(details.references))


def refresh_company(session: DbSession, connection: Connection, client: QueryClient) -> CompanyDetails:
    """Read the company behind ``client`` and store it on ``connection`` (the caller commits)."""
    details = read_company(client)
    store_company(session, connection, details)
    return details


def _single(client: QueryClient, entity: str) -> Mapping[str, Any]:
    """The one object of a single-object entity (CompanyInfo, Preferences), or {} when QBO returns none."""
    answer = client.query(f"SELECT * FROM {entity}").get("QueryResponse") or {}
    rows: list[Mapping[str, Any]] = next(
        (value for key, value in answer.items() if key.lower() == entity.lower()), [])
    return rows[0] if rows else {}


def _zone(name: Any) -> str | None:
    """``name`` if it is a time zone this machine knows; QBO's value is informal, so anything else is None."""
    if not isinstance(name, str) or not name:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name


def _json_safe(values: Mapping[str, Any]) -> dict[str, Any]:
    """Amounts arrive as Decimal; JSON columns store them as exact strings."""
    return {key: str(value) if isinstance(value, Decimal) else value for key, value in values.items()}
