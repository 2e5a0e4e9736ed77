"""What crm-qb needs from a CRM (docs/architecture.md §5), as a Protocol and typed, immutable results.

Field names in ``changes`` mappings are the section 6 wire names (``first_name``, ``billing_address``, ...);
an address in ``changes`` may be partial (the parts given are replaced) or None (cleared).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from crm_qb.address import Address
from crm_qb.answer_times import AnswerTimes
from crm_qb.crm.errors import CrmProtocolError

CONTACT_TEXT_FIELDS = ("first_name", "last_name", "company", "display_name", "email", "phone", "mobile",
                       "notes", "website", "owner_id")


@dataclass(frozen=True)
class Contact:
    """A CRM contact at one ``version``."""

    id: str
    version: int
    updated_at: datetime
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    display_name: str | None = None
    email: str | None = None
    phone: str | None = None
    mobile: str | None = None
    notes: str | None = None
    website: str | None = None
    owner_id: str | None = None
    billing_address: Address = field(default_factory=Address)
    shipping_address: Address = field(default_factory=Address)
    tags: tuple[str, ...] = ()
    active: bool = True
    quickbooks: Mapping[str, Any] | None = None

    @classmethod
    def from_json(cls, data: Any) -> Contact:
        """Build from the wire object, raising CrmProtocolError when it is not a section 6 contact."""
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not _is_int(data.get("version")):
            raise CrmProtocolError("the CRM returned a contact without a string id and an integer version")
        tags = data.get("tags") or []
        return cls(id=data["id"], version=data["version"], updated_at=parse_time(data.get("updated_at")),
                   **{name: _text(data, name) for name in CONTACT_TEXT_FIELDS},
                   billing_address=Address.from_json(data.get("billing_address")),
                   shipping_address=Address.from_json(data.get("shipping_address")),
                   tags=tuple(str(tag) for tag in tags), active=data.get("active", True) is not False,
                   quickbooks=data.get("quickbooks"))


@dataclass(frozen=True)
class ContactPage:
    """One page of a walk over changed contacts; ``next_cursor`` resumes after it (None: last page)."""

    contacts: tuple[Contact, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class NewTask:
    """A follow-up to create on a contact."""

    title: str
    description: str | None = None
    due_date: date | None = None
    owner_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the wire object."""
        return {"title": self.title, "description": self.description,
                "due_date": self.due_date.isoformat() if self.due_date else None, "owner_id": self.owner_id}


@dataclass(frozen=True)
class Task:
    """A CRM task (follow-up) on a contact."""

    id: str
    contact_id: str | None
    title: str
    status: str
    description: str | None = None
    due_date: date | None = None
    owner_id: str | None = None
    created_at: datetime | None = None
    completed_at: datetime | None = None

    @classmethod
    def from_json(cls, data: Any) -> Task:
        """Build from the wire object, raising CrmProtocolError when it is not a section 6 task."""
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or data.get("status") not in (
                "open", "done"):
            raise CrmProtocolError("the CRM returned a task without an id or with a status other than open|done")
        return cls(id=data["id"], contact_id=_text(data, "contact_id"), title=_text(data, "title") or "",
                   status=data["status"], description=_text(data, "description"),
                   due_date=_date(data.get("due_date")), owner_id=_text(data, "owner_id"),
                   created_at=parse_time(data["created_at"]) if data.get("created_at") else None,
                   completed_at=parse_time(data["completed_at"]) if data.get("completed_at") else None)


@dataclass(frozen=True)
class CrmUser:
    """A CRM user (section 6 ``GET /users``): who owns contacts and tasks and logs activities."""

    id: str
    name: str | None = None
    email: str | None = None
    active: bool = True

    @classmethod
    def from_json(cls, data: Any) -> CrmUser:
        """Build from the wire object, raising CrmProtocolError when it has no string id."""
        if not isinstance(data, dict) or not isinstance(data.get("id"), str):
            raise CrmProtocolError("the CRM returned a user without a string id")
        return cls(id=data["id"], name=_text(data, "name"), email=_text(data, "email"),
                   active=data.get("active", True) is not False)


ACTIVITY_TYPES = ("call", "meeting", "email", "task", "time")


@dataclass(frozen=True)
class Activity:
    """A call, meeting, email, task or time entry logged against a contact (section 6, DESIGN §9).

    ``duration_minutes`` None means the activity has no duration (an email); ``hourly_rate`` is an exact
    decimal (never a float) or None; ``service`` names the service item the time is for, if the user chose one.
    """

    id: str
    version: int
    updated_at: datetime
    contact_id: str | None
    owner_id: str | None
    type: str
    started_at: datetime
    subject: str | None = None
    notes: str | None = None
    duration_minutes: int | None = None
    billable: bool = False
    hourly_rate: Decimal | None = None
    service: str | None = None

    @classmethod
    def from_json(cls, data: Any) -> Activity:
        """Build from the wire object, raising CrmProtocolError when it is not a section 6 activity."""
        if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not _is_int(data.get("version")):
            raise CrmProtocolError("the CRM returned an activity without a string id and an integer version")
        duration = data.get("duration_minutes")
        if duration is not None and (not _is_int(duration) or duration < 0):
            raise CrmProtocolError(f"the CRM returned duration_minutes {duration!r}; expected a whole number")
        return cls(id=data["id"], version=data["version"], updated_at=parse_time(data.get("updated_at")),
                   contact_id=_text(data, "contact_id"), owner_id=_text(data, "owner_id"),
                   type=str(data.get("type") or "time"), started_at=parse_time(data.get("started_at")),
                   subject=_text(data, "subject"), notes=_text(data, "notes"), duration_minutes=duration,
                   billable=data.get("billable") is True, hourly_rate=_decimal(data.get("hourly_rate")),
                   service=_text(data, "service"))

    def to_json(self) -> dict[str, Any]:
        """The section 6 wire object (what ``from_json`` reads back): stored with time entries, so an activity a
        CRM kind returns in its own shape (a HubSpot call) can be applied again without reading it back."""
        return {"id": self.id, "version": self.version, "updated_at": self.updated_at.isoformat(),
                "contact_id": self.contact_id, "owner_id": self.owner_id, "type": self.type,
                "started_at": self.started_at.isoformat(), "subject": self.subject, "notes": self.notes,
                "duration_minutes": self.duration_minutes, "billable": self.billable,
                "hourly_rate": str(self.hourly_rate) if self.hourly_rate is not None else None,
                "service": self.service}


@dataclass(frozen=True)
class ActivityPage:
    """One page of a walk over activities; ``next_cursor`` resumes after it (None: last page)."""

    activities: tuple[Activity, ...]
    next_cursor: str | None


class CrmConnector(Protocol):
    """The calls crm-qb makes to a CRM; implementations raise only crm_qb.crm.errors types."""

    @property
    def answer_times(self) -> AnswerTimes:
        """How long the CRM took to answer this connector's calls: a drain moves a connection whose CRM answers
        slowly to the bulk lane (crm_qb.sync.pipeline.slowlane)."""
        ...

    def get_contact(self, contact_id: str) -> Contact:
        """Return the contact, or raise ContactNotFoundError."""
        ...

    def list_contacts_updated_since(self, since: datetime | None, *, cursor: str | None = None,
                                    page_size: int = 100) -> Iterator[ContactPage]:
        """Yield pages of contacts changed at or after ``since`` (all when None), in (updated_at, id) order."""
        ...

    def find_contacts_by_email(self, email: str) -> list[Contact]:
        """Return every contact whose email equals ``email`` ignoring case."""
        ...

    def create_contact(self, fields: Mapping[str, Any]) -> Contact:
        """Create a contact from wire fields and return it."""
        ...

    def update_contact(self, contact_id: str, version: int, changes: Mapping[str, Any]) -> Contact:
        """Apply ``changes`` if the contact is still at ``version``, else raise VersionConflictError."""
        ...

    def list_tasks(self, contact_id: str) -> list[Task]:
        """Return the contact's tasks."""
        ...

    def create_task(self, contact_id: str, task: NewTask) -> Task:
        """Create a task on the contact and return it."""
        ...

    def update_task(self, task_id: str, changes: Mapping[str, Any]) -> Task:
        """Apply ``changes`` (title, description, due_date, status, owner_id) and return the task."""
        ...

    def put_quickbooks_summary(self, contact_id: str, summary: Mapping[str, Any]) -> None:
        """Store the billing summary on the contact, for CRMs that keep it natively."""
        ...

    # -- users and activities (DESIGN §6 optional parts, §9 billable time) -----------------------------------
    # A CRM kind that has no users or activities raises CrmNotFoundError from these (the REST contract's 404):
    # time then simply never arrives from it; nothing else depends on them.

    def list_users(self) -> list[CrmUser]:
        """Every CRM user, active or not (who logs activities); the time sync maps each to a QBO person."""
        ...

    def get_activity(self, activity_id: str) -> Activity:
        """The activity as it is now, or raise ActivityNotFoundError (deleted)."""
        ...

    def list_activities(self, *, since: datetime | None = None, contact_id: str | None = None,
                        cursor: str | None = None, page_size: int = 100) -> Iterator[ActivityPage]:
        """Yield pages of activities changed at or after ``since`` (all when None), in (updated_at, id) order.

        ``contact_id`` keeps one contact's activities (used when a contact is linked after its time was logged).
        A CRM that cannot filter by contact may return others as well: callers check every activity's
        ``contact_id`` themselves.
        """
        ...

    def close(self) -> None:
        """Release the connector's HTTP sessions; the connector is not used afterwards."""
        ...


def parse_time(value: Any) -> datetime:
    """Parse an ISO 8601 time with an offset; CrmProtocolError when missing, malformed or naive."""
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise CrmProtocolError(f"the CRM returned {value!r} where an ISO 8601 time was expected") from None
    if moment.tzinfo is None:
        raise CrmProtocolError(f"the CRM returned the time {value!r} without a time zone")
    return moment


def _date(value: Any) -> date | None:
    """Parse a ``YYYY-MM-DD`` date (or None)."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise CrmProtocolError(f"the CRM returned {value!r} where a date YYYY-MM-DD was expected") from None


def _decimal(value: Any) -> Decimal | None:
    """A decimal string (section 6 money) as a Decimal, or None; floats are refused (money never passes one)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise CrmProtocolError(f"the CRM returned {value!r} where a decimal string was expected")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise CrmProtocolError(f"the CRM returned {value!r} where a decimal string was expected") from None
    if not number.is_finite() or number < 0:
        raise CrmProtocolError(f"the CRM returned {value!r} where a non-negative decimal was expected")
    return number


def _text(data: Mapping[str, Any], name: str) -> str | None:
    """Return a text field, None when missing or null."""
    value = data.get(name)
    return None if value is None else str(value)


def _is_int(value: Any) -> bool:
    """True for an int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)
