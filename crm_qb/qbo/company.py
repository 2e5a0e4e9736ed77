"""A connected company's details: CompanyInfo, Preferences and the reference lists (terms, payment methods).

Read once when a company is connected (and again whenever asked), stored on the connection and in
``qbo_references`` so transactions can show a term or payment method by name without another API call.
Inactive entries are read too: old customers and transactions still point at them. Afterwards each list follows
QBO as it changes: a Term or PaymentMethod created, changed or merged away (webhook or CDC) is stored at once
(``store_references``), so a new "Net 60" shows by name without a reconnect.
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
KIND_OF_ENTITY = {entity: kind for kind, entity in REFERENCE_ENTITIES.items()}
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
    store_references(session, connection.id, details.references)
    log.info("QBO company details stored connection=%s references=%d", connection.id, len(details.references))


def store_references(session: DbSession, connection_id: int, references: Iterable[Reference]) -> int:
    """Insert or update these reference-list entries of a connection (the caller commits); return how many changed."""
    wanted = list(references)
    existing = {
        (row.kind, row.qbo_id): row
        for row in session.scalars(select(QboReference).where(
            QboReference.connection_id == connection_id, QboReference.qbo_id.in_({ref.qbo_id for ref in wanted})))
    }
    changed = 0
    for ref in wanted:
        row = existing.get((ref.kind, ref.qbo_id))
        if row is None:
            row = QboReference(connection_id=connection_id, kind=ref.kind, qbo_id=ref.qbo_id)
            session.add(row)
            existing[(ref.kind, ref.qbo_id)] = row
        elif (row.name, row.active, row.details) == (ref.name, ref.active, ref.details):
            continue
        row.name, row.active, row.details = ref.name, ref.active, ref.details
        changed += 1
    return changed


def gone_reference(kind: str, qbo_id: str, previous: QboReference | None) -> Reference:
    """An entry QBO no longer returns (merged away or deleted): kept, inactive, under its last name."""
    return Reference(kind, qbo_id, previous.name if previous else qbo_id, False,
                     dict(previous.details or {}) if previous else {})


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
