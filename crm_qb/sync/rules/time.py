"""Billable time, pure (DESIGN §9): which activities are time, who did them, what they bill, and the QBO body.

- **Time** is a call, meeting or time entry that is billable, has a duration above zero and belongs to a
  contact; anything else (an email, a task) is not time, and time that stops being time is removed from QBO
  while unbilled.
- **Who**: a CRM user maps to one active QBO Employee or Vendor, by e-mail (case-folded) first, then by
  normalised name; several or none put the user in review, and their time is held, never dropped.
- **What**: the activity's ``service`` names a QBO service item; otherwise the connection's default item.
- **Rate**: the activity's ``hourly_rate``, else the item's ``UnitPrice``, else none. QBO requires an
  ``HourlyRate`` on Billable time (docs/qbo/time-activity.md), so "none" is sent as 0 and shown as no rate.
- **Duration** in whole ``Hours`` and ``Minutes`` (QBO's schema types them as integers); the **date** is the
  activity's start in the company's time zone; the **description** carries the subject and a link back to the
  CRM activity, within QBO's 4,000 characters (the link is kept whole, the subject is shortened).
- **Amount** shown in the panel: exact minutes x rate / 60, rounded half-up to the currency's minor unit, as
  QBO's invoice line bills it (docs/qbo/time-activity.md, "Billing time").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from crm_qb.sync.rules.matching import normalise_name
from crm_qb.sync.rules.money import round_money

PERSON_KINDS = ("Employee", "Vendor")
REF_KEYS = {"Employee": "EmployeeRef", "Vendor": "VendorRef"}
MAX_DESCRIPTION = 4000
ELLIPSIS = "…"
BILLABLE = "Billable"
BILLED = "HasBeenBilled"
# The fields of a TimeActivity crm-qb writes; only these are compared and sent in a sparse update.
WRITTEN_FIELDS = ("NameOf", "EmployeeRef", "VendorRef", "CustomerRef", "ItemRef", "BillableStatus", "HourlyRate",
                  "Hours", "Minutes", "TxnDate", "Description")


@dataclass(frozen=True)
class Person:
    """A QBO Employee or Vendor as a candidate for a CRM user."""

    kind: str
    id: str
    display_name: str
    email: str | None = None
    given_name: str | None = None
    family_name: str | None = None
    active: bool = True

    @property
    def ref(self) -> str:
        """``Employee:55``: how a person is named in settings and on the command line."""
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True)
class PersonMatch:
    """The outcome of matching one CRM user: ``person`` when exactly one fits, else the review reason."""

    person: Person | None
    by: str  # email | name | review
    reason: str | None = None
    candidates: tuple[str, ...] = ()


def person_from_qbo(kind: str, row: Mapping[str, Any]) -> Person:
    """A Person from a QBO Employee or Vendor row."""
    email = (row.get("PrimaryEmailAddr") or {}).get("Address")
    return Person(kind, str(row["Id"]), str(row.get("DisplayName") or ""), str(email) if email else None,
                  row.get("GivenName"), row.get("FamilyName"), row.get("Active", True) is not False)


def match_person(name: str | None, email: str | None, people: Sequence[Person]) -> PersonMatch:
    """The one active Employee/Vendor with the user's e-mail, else with the user's name; otherwise a review."""
    active = [p for p in people if p.active]
    if email:
        by_email = [p for p in active if p.email and p.email.casefold() == email.strip().casefold()]
        if len(by_email) == 1:
            return PersonMatch(by_email[0], "email")
        if by_email:
            return _review("several QuickBooks people have this e-mail", by_email)
    wanted = normalise_name(name)
    by_name = [p for p in active if wanted and wanted in _names(p)] if wanted else []
    if len(by_name) == 1:
        return PersonMatch(by_name[0], "name")
    if by_name:
        return _review("several QuickBooks people have this name", by_name)
    return PersonMatch(None, "review", "no QuickBooks employee or vendor has this e-mail or name")


def _names(person: Person) -> set[str]:
    given_family = " ".join(part for part in (person.given_name, person.family_name) if part)
    return {normalise_name(person.display_name), normalise_name(given_family)} - {""}


def _review(reason: str, people: Sequence[Person]) -> PersonMatch:
    return PersonMatch(None, "review", reason, tuple(p.ref for p in people))


def parse_person_ref(text: str) -> tuple[str, str]:
    """``Employee:55`` or ``Vendor:12`` as (kind, id); ValueError naming the expected form otherwise."""
    kind, _, person_id = text.partition(":")
    if kind not in PERSON_KINDS or not person_id.strip():
        raise ValueError(f"expected Employee:ID or Vendor:ID, got {text!r}")
    return kind, person_id.strip()


TIME_TYPES = ("call", "meeting", "time")  # DESIGN §9: calls, meetings and time entries; not emails or tasks


def not_time_reason(billable: bool, duration_minutes: int | None, contact_id: str | None,
                    activity_type: str = "time") -> str | None:
    """Why an activity is not billable time (None when it is)."""
    if activity_type not in TIME_TYPES:
        return f"a{'n' if activity_type[:1] in 'aeiou' else ''} {activity_type} is not time"
    if not billable:
        return "not billable"
    if not duration_minutes:
        return "no duration"
    if not contact_id:
        return "no contact"
    return None


def hours_minutes(duration_minutes: int) -> tuple[int, int]:
    """A duration in whole hours and minutes (QBO's Hours and Minutes)."""
    if duration_minutes < 0:
        raise ValueError(f"duration_minutes must not be negative, got {duration_minutes!r}")
    return divmod(duration_minutes, 60)


def company_date(started_at: datetime, zone_name: str | None) -> date:
    """The activity's start as a date in the company's time zone (UTC when the zone is unknown)."""
    if started_at.tzinfo is None:
        raise ValueError(f"started_at must be timezone-aware, got {started_at!r}")
    try:
        zone = ZoneInfo(zone_name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return started_at.astimezone(zone).date()


def hourly_rate(activity_rate: Decimal | None, item_rate: Decimal | None) -> Decimal | None:
    """The activity's own rate, else the item's, else none."""
    if activity_rate is not None:
        return activity_rate
    return item_rate


def amount(duration_minutes: int, rate: Decimal | None, currency: str) -> Decimal:
    """What the time bills: exact minutes x rate / 60, rounded half-up to the currency's minor unit."""
    if rate is None:
        return round_money(Decimal(0), currency)
    return round_money(Decimal(duration_minutes) * rate / 60, currency)


def description(subject: str | None, link: str | None) -> str:
    """The subject and the link back to the CRM activity, within QBO's 4,000 characters (the link kept whole)."""
    subject = " ".join((subject or "").split()) or "CRM activity"
    if not link:
        return _cut(subject, MAX_DESCRIPTION)
    tail = f" — {link}"
    if len(tail) >= MAX_DESCRIPTION:
        return _cut(subject, MAX_DESCRIPTION)
    return _cut(subject, MAX_DESCRIPTION - len(tail)) + tail


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - len(ELLIPSIS)] + ELLIPSIS


def activity_link(template: str, crm_web_origin: str, activity_id: str, contact_id: str) -> str:
    """The link back to the activity in the CRM: ``template`` with ``{crm}``, ``{activity_id}``, ``{contact_id}``."""
    return template.format(crm=crm_web_origin.rstrip("/"), activity_id=quote(activity_id, safe=""),
                           contact_id=quote(contact_id, safe=""))


@dataclass(frozen=True)
class TimeFacts:
    """Everything one TimeActivity is made of, decided."""

    person: Person
    customer_id: str
    item_id: str | None
    rate: Decimal | None
    duration_minutes: int
    txn_date: date
    description: str


def time_body(facts: TimeFacts) -> dict[str, Any]:
    """The TimeActivity fields crm-qb writes (a create body, or compared with ``written`` for an update)."""
    hours, minutes = hours_minutes(facts.duration_minutes)
    body: dict[str, Any] = {
        "NameOf": facts.person.kind, REF_KEYS[facts.person.kind]: {"value": facts.person.id},
        "CustomerRef": {"value": facts.customer_id}, "BillableStatus": BILLABLE,
        "HourlyRate": facts.rate if facts.rate is not None else Decimal(0),
        "Hours": hours, "Minutes": minutes, "TxnDate": facts.txn_date.isoformat(),
        "Description": facts.description,
    }
    if facts.item_id:
        body["ItemRef"] = {"value": facts.item_id}
    return body


def comparable(body: Mapping[str, Any]) -> dict[str, Any]:
    """The written fields of a body in a form that compares equal across JSON round trips."""
    out: dict[str, Any] = {}
    for key in WRITTEN_FIELDS:
        if key not in body:
            continue
        value = body[key]
        if isinstance(value, Mapping):
            value = {"value": str(value.get("value"))}
        elif key == "HourlyRate":
            value = str(Decimal(str(value)).normalize())
        out[key] = value
    return out


def update_fields(written: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``desired`` that differ from what was last written (all of them when unknown).

    A change of person kind (Employee → Vendor) sends the whole body: the other reference must go with NameOf.
    """
    now, before = comparable(desired), comparable(written or {})
    if not written or now.get("NameOf") != before.get("NameOf"):
        return dict(desired)
    return {key: desired[key] for key, value in now.items() if before.get(key) != value}
