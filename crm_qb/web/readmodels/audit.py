"""The audit log as people read it: record names instead of ids, field changes as before → after, filters.

Filters (each optional): ``record`` (an id, or part of a customer's name: its contact's entries are included),
``kind`` (the first word of an action: customer, contact, link, merge, conflict, review, settings, failure, sync,
skip, …), ``outcome`` (ok, failed, skipped, …), ``since`` / ``until`` (dates, UTC, inclusive). Entries of syncs
that changed nothing (``*.unchanged``) are hidden unless ``include_unchanged``. The same query serves the page,
``GET /api/v1/connections/<id>/audit`` and ``crm-qb audit``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select

from crm_qb.db import db
from crm_qb.models import AuditEntry, ContactLink, QboCustomer
from crm_qb.models.types import column_length

PER_PAGE = 50
MAX_PAGE = 1_000_000
UNCHANGED = "%.unchanged"
# A kind is the first word of an action, an outcome one word: anything else names nothing (and a value longer
# than its column, or with a NUL, could not even be compared in the database).
WORD = re.compile(r"[a-z][a-z0-9_]{0,31}")
FIELD_LABELS = {"given_name": "First name", "family_name": "Last name", "company": "Company",
                "display_name": "Display name", "email": "Email", "phone": "Phone", "mobile": "Mobile",
                "billing_address": "Billing address", "shipping_address": "Shipping address", "notes": "Notes",
                "website": "Website"}
DIRECTIONS = {"qbo_to_crm": "QuickBooks → CRM", "crm_to_qbo": "CRM → QuickBooks", "admin": "by a person"}


class InvalidAuditQuery(ValueError):
    """A filter that cannot be applied; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class AuditQuery:
    """The filters and the page."""

    record: str | None = None
    kind: str | None = None
    outcome: str | None = None
    since: date | None = None
    until: date | None = None
    include_unchanged: bool = False
    page: int = 1

    def args(self) -> dict[str, str]:
        """The query string that reproduces these filters (for paging links)."""
        found = {"record": self.record, "kind": self.kind, "outcome": self.outcome,
                 "since": self.since.isoformat() if self.since else None,
                 "until": self.until.isoformat() if self.until else None,
                 "include_unchanged": "1" if self.include_unchanged else None}
        return {k: v for k, v in found.items() if v}


@dataclass(frozen=True)
class Change:
    """One field change: its label, the value before and after (None when unknown), and which way it went."""

    field: str
    before: Any
    after: Any
    to: str | None = None


@dataclass(frozen=True)
class Row:
    """One audit entry for people."""

    id: int
    at: datetime
    action: str
    direction: str | None
    entity: str | None
    entity_id: str | None
    name: str | None
    changes: list[Change]
    outcome: str
    message: str | None
    intuit_tid: str | None

    def as_json(self) -> dict[str, Any]:
        """The JSON object of ``GET /api/v1/connections/<id>/audit``."""
        data = dict(vars(self))
        data["at"] = self.at.isoformat()
        data["changes"] = [vars(c) for c in self.changes]
        return data


def parse_audit_query(args: Mapping[str, str | None]) -> AuditQuery:
    """Filters from query-string values; InvalidAuditQuery names the first bad one."""
    page = args.get("page") or "1"
    if not (page.isascii() and page.isdigit()) or len(page) > 7 or not 1 <= int(page) <= MAX_PAGE:
        raise InvalidAuditQuery("page", f"page must be a whole number from 1 to {MAX_PAGE}, got {page[:40]!r}")
    text = {key: (args.get(key) or "").strip()[:200] or None for key in ("record", "kind", "outcome")}
    if text["record"] and "\x00" in text["record"]:
        raise InvalidAuditQuery("record", "record must be an id or part of a name, without NUL characters")
    for key, example in (("kind", "customer, link or settings"), ("outcome", "ok, failed or skipped")):
        value = text[key]
        if value is not None and not WORD.fullmatch(value):
            raise InvalidAuditQuery(key, f"{key} must be one word such as {example}, got {value[:40]!r}")
    since, until = _date(args, "since"), _date(args, "until")
    if since and until and until < since:
        raise InvalidAuditQuery("until", f"until ({until}) is before since ({since})")
    unchanged = (args.get("include_unchanged") or "").lower() in ("1", "true", "yes", "on")
    return AuditQuery(text["record"], text["kind"], text["outcome"], since, until, unchanged, int(page))


def _date(args: Mapping[str, str | None], key: str) -> date | None:
    raw = (args.get(key) or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise InvalidAuditQuery(key, f"{key} must be a date like 2026-12-01, got {raw[:40]!r}") from None


def audit_page(connection_id: int, query: AuditQuery) -> tuple[list[Row], int]:
    """One page of matching entries (newest first) and how many match; ends the read."""
    where = _where(connection_id, query)
    total = int(db.session.scalar(select(func.count()).select_from(AuditEntry).where(*where)) or 0)
    entries = db.session.scalars(select(AuditEntry).where(*where).order_by(AuditEntry.id.desc())
                                 .offset((query.page - 1) * PER_PAGE).limit(PER_PAGE)).all()
    names = record_names(connection_id, entries)
    rows = [_row(entry, names) for entry in entries]
    db.session.rollback()
    return rows, total


def _where(connection_id: int, query: AuditQuery) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [AuditEntry.connection_id == connection_id]
    if not query.include_unchanged:
        where.append(~AuditEntry.action.like(UNCHANGED))
    if query.kind:
        where.append(or_(AuditEntry.action == query.kind, AuditEntry.action.like(f"{_escape(query.kind)}.%",
                                                                                   escape="\\")))
    if query.outcome:
        where.append(AuditEntry.outcome == query.outcome)
    if query.since:
        where.append(AuditEntry.created_at >= datetime.combine(query.since, time.min, UTC))
    if query.until:
        where.append(AuditEntry.created_at < datetime.combine(query.until + timedelta(days=1), time.min, UTC))
    if query.record:
        where.append(AuditEntry.entity_id.in_(_record_ids(connection_id, query.record)))
    return where


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _record_ids(connection_id: int, record: str) -> list[str]:
    """The ids a record filter means: itself, customers whose name contains it, and their linked contacts."""
    customers = list(db.session.scalars(select(QboCustomer.qbo_customer_id).where(
        QboCustomer.connection_id == connection_id,
        func.lower(QboCustomer.display_name).like(f"%{_escape(record.lower())}%", escape="\\")).limit(500)))
    ids = {*customers, *_fitting([record], ContactLink.__table__.c.crm_contact_id)}
    linked = db.session.execute(select(ContactLink.qbo_customer_id, ContactLink.crm_contact_id).where(
        ContactLink.connection_id == connection_id,
        or_(ContactLink.qbo_customer_id.in_(_fitting(ids, ContactLink.__table__.c.qbo_customer_id)),
            ContactLink.crm_contact_id.in_(_fitting([record], ContactLink.__table__.c.crm_contact_id))))).all()
    for customer_id, contact_id in linked:
        ids.update(value for value in (customer_id, contact_id) if value)
    return _fitting(sorted(ids), AuditEntry.__table__.c.entity_id)


def _fitting(values: Iterable[str], column: Any) -> list[str]:
    """The ``values`` a column can hold (a longer one, a name searched for, is no id of it)."""
    length = column_length(column.type)
    return [value for value in values if not length or len(value) <= length]


def record_names(connection_id: int, entries: Iterable[AuditEntry]) -> dict[tuple[str, str], str]:
    """Names for the (entity, id) pairs of ``entries``: customers by QBO's name, contacts by their link's base."""
    wanted = {(e.entity or "", e.entity_id) for e in entries if e.entity_id}
    customers = {i for kind, i in wanted if kind not in ("Contact", "Settings", "Failure", "Conflict")}
    contacts = {i for kind, i in wanted if kind == "Contact"}
    names: dict[tuple[str, str], str] = {}
    for customer_id, name in db.session.execute(select(QboCustomer.qbo_customer_id, QboCustomer.display_name).where(
            QboCustomer.connection_id == connection_id, QboCustomer.qbo_customer_id.in_(list(customers)))):
        names[("Customer", customer_id)] = name
    for link in db.session.scalars(select(ContactLink).where(ContactLink.connection_id == connection_id, or_(
            ContactLink.crm_contact_id.in_(list(contacts)), ContactLink.qbo_customer_id.in_(list(customers))))):
        shown = (link.base or {}).get("display_name")
        if isinstance(shown, str) and shown:
            if link.crm_contact_id:
                names.setdefault(("Contact", link.crm_contact_id), shown)
            if link.qbo_customer_id:
                names.setdefault(("Customer", link.qbo_customer_id), shown)
    return names


def _row(entry: AuditEntry, names: dict[tuple[str, str], str]) -> Row:
    key = ("Contact" if entry.entity == "Contact" else "Customer", entry.entity_id or "")
    name = names.get(key) if entry.entity in ("Customer", "Contact") else None
    return Row(entry.id, entry.created_at, entry.action, entry.direction, entry.entity, entry.entity_id, name,
               changes_of(entry.diff or {}), entry.outcome, entry.message, entry.intuit_tid)


def changes_of(diff: Mapping[str, Any]) -> list[Change]:
    """Field changes of an audit diff: ``changes`` (before/after), else what was written to each side."""
    changes = diff.get("changes")
    if isinstance(changes, Mapping):
        to = {**{k: "CRM" for k in diff.get("to_crm") or {}}, **{k: "QuickBooks" for k in diff.get("to_qbo") or {}}}
        return [Change(_label(k), v.get("before"), v.get("after"), to.get(k))
                for k, v in changes.items() if isinstance(v, Mapping)]
    found = [Change(_label(o.get("field")), o.get("old"), o.get("new"),
                    "CRM" if o.get("side") == "crm" else "QuickBooks")
             for o in diff.get("overwritten") or [] if isinstance(o, Mapping)]
    for side, label in (("to_crm", "CRM"), ("to_qbo", "QuickBooks")):
        for key, value in (diff.get(side) or {}).items():
            found.append(Change(_label(key), None, value, label))
    if "was" in diff and "value" in diff:  # a flipped conflict
        found.append(Change(_label(diff.get("field")), diff["was"], diff["value"], "both sides"))
    return found


def _label(name: Any) -> str:
    return FIELD_LABELS.get(str(name), str(name))


def rule_words(rule: str, window_seconds: int) -> str:
    """A conflict rule in plain words (the conflict page)."""
    return {
        "window_qbo_wins": f"Both sides changed it within {window_seconds} s of each other, so QuickBooks won.",
        "recent_wins": "Both sides changed it; the more recent change won.",
        "qbo_wins": "Both sides changed it; this connection lets QuickBooks win every conflict.",
        "crm_wins": "Both sides changed it; this connection lets the CRM win every conflict.",
    }.get(rule, f"Decided by the rule {rule!r}.")
