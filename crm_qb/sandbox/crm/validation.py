"""Request validation for the reference CRM: every rejection names the offending field.

Bodies are checked strictly (unknown and read-only fields are refused) so that a client bug shows up as a 400
naming the field instead of silently losing data.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from types import MappingProxyType
from typing import Any

ADDRESS_FIELDS = ("line1", "line2", "city", "region", "postal_code", "country")
ADDRESS_KEYS = ("billing_address", "shipping_address")
TEXT_LIMITS = MappingProxyType({
    "first_name": 100, "last_name": 100, "company": 255, "display_name": 255, "email": 254,
    "phone": 50, "mobile": 50, "notes": 4000, "website": 1000, "owner_id": 100,
})
CONTACT_WRITABLE = (*TEXT_LIMITS, *ADDRESS_KEYS, "tags", "active")
CONTACT_READ_ONLY = ("id", "version", "updated_at", "quickbooks")
NAME_FIELDS = ("first_name", "last_name", "company", "display_name", "email")
TASK_LIMITS = MappingProxyType({"title": 255, "description": 4000, "owner_id": 100})
TASK_WRITABLE = (*TASK_LIMITS, "due_date", "status")
TASK_READ_ONLY = ("id", "contact_id", "created_at", "completed_at")
TASK_STATUSES = ("open", "done")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message"[, "field"]}}`` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def as_json(self) -> dict[str, Any]:
        """Return the JSON error body."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field:
            error["field"] = self.field
        return {"error": error}


def invalid(field: str, message: str) -> ApiError:
    """Return a 400 ``invalid_field`` error about ``field``."""
    return ApiError(400, "invalid_field", f"{field}: {message}", field)


def check_version(kind: str, record: dict[str, Any], expected: int | None) -> dict[str, Any]:
    """Return ``record``; raise the 412 when ``expected`` is given and is not the record's version."""
    if expected is not None and expected != record["version"]:
        raise ApiError(412, "version_conflict",
                       f"{kind} {record['id']!r} is at version {record['version']}, not {expected}")
    return record


def require_object(body: Any) -> dict[str, Any]:
    """Return ``body`` when it is a JSON object, else raise a 400."""
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "the request body must be a JSON object")
    return body


def non_negative_int(body: dict[str, Any], field: str, default: int | None) -> Any:
    """Return a non-negative integer field of ``body`` (or ``default`` when absent), else raise a 400."""
    value = body.get(field, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise invalid(field, "must be a non-negative integer")
    return value


def empty_address() -> dict[str, str | None]:
    """Return an address with every part unset."""
    return dict.fromkeys(ADDRESS_FIELDS)


def contact_changes(body: Any, *, creating: bool) -> dict[str, Any]:
    """Validate a contact create/patch body and return the fields to write."""
    body = require_object(body)
    changes = {key: _contact_value(key, value) for key, value in body.items()}
    if creating and not any(changes.get(name) for name in NAME_FIELDS):
        raise invalid("display_name", "a contact needs one of " + ", ".join(NAME_FIELDS))
    return changes


def _contact_value(key: str, value: Any) -> Any:
    """Validate one contact field."""
    refuse_unknown(key, CONTACT_WRITABLE, CONTACT_READ_ONLY)
    if key in TEXT_LIMITS:
        text = text_value(key, value, TEXT_LIMITS[key])
        if key == "email" and text and not valid_email(text, TEXT_LIMITS["email"]):
            raise invalid(key, "not an email address")
        return text
    if key in ADDRESS_KEYS:
        return _address(key, value)
    if key == "tags":
        return _tags(value)
    if not isinstance(value, bool):
        raise invalid(key, "must be true or false")
    return value


def valid_email(text: str, limit: int) -> bool:
    """True when ``text`` looks like ``a@b`` and has at most ``limit`` characters."""
    return len(text) <= limit and _EMAIL.match(text) is not None


def refuse_unknown(key: str, writable: tuple[str, ...], read_only: tuple[str, ...]) -> None:
    """Raise a 400 for a read-only or unknown field."""
    if key in read_only:
        raise invalid(key, "is read-only")
    if key not in writable:
        raise invalid(key, "unknown field")


def text_value(field: str, value: Any, limit: int) -> str | None:
    """Return ``value`` when it is null or a string of at most ``limit`` characters."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(field, "must be a string or null")
    if len(value) > limit:
        raise invalid(field, f"longer than {limit} characters")
    return value


def _address(field: str, value: Any) -> dict[str, str | None] | None:
    """Validate a (partial) address object; null clears the whole address."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise invalid(field, "must be an object or null")
    for part, text in value.items():
        if part not in ADDRESS_FIELDS:
            raise invalid(f"{field}.{part}", "unknown field")
        text_value(f"{field}.{part}", text, 255)
    return dict(value)


def _tags(value: Any) -> list[str]:
    """Validate a list of short strings, dropping repeats while keeping order."""
    if not isinstance(value, list) or not all(isinstance(tag, str) and 0 < len(tag) <= 64 for tag in value):
        raise invalid("tags", "must be a list of non-empty strings of at most 64 characters")
    return list(dict.fromkeys(value))


def task_changes(body: Any, *, creating: bool) -> dict[str, Any]:
    """Validate a task create/patch body and return the fields to write."""
    body = require_object(body)
    changes = {key: _task_value(key, value) for key, value in body.items()}
    if creating and not changes.get("title"):
        raise invalid("title", "is required")
    if "title" in changes and not changes["title"]:
        raise invalid("title", "must not be empty")
    return changes


def _task_value(key: str, value: Any) -> Any:
    """Validate one task field."""
    refuse_unknown(key, TASK_WRITABLE, TASK_READ_ONLY)
    if key in TASK_LIMITS:
        return text_value(key, value, TASK_LIMITS[key])
    if key == "status":
        if value not in TASK_STATUSES:
            raise invalid(key, "must be one of " + ", ".join(TASK_STATUSES))
        return value
    return parse_date(key, value)


def parse_date(field: str, value: Any) -> str | None:
    """Return a ``YYYY-MM-DD`` date string (or None), else raise a 400."""
    if value is None:
        return None
    if isinstance(value, str) and len(value) == 10:
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
    raise invalid(field, "must be a date YYYY-MM-DD or null")


def parse_aware(field: str, value: str) -> datetime:
    """Parse an ISO 8601 time with an offset (``Z`` or ``+00:00``), else raise a 400."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise invalid(field, "must be an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise invalid(field, "must carry a time zone (Z or +00:00)")
    return moment


def parse_version(header: str) -> int:
    """Parse an ``If-Match`` value (``3``, ``"3"`` or ``W/"3"``) into a version."""
    text = header.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise invalid("If-Match", "must be the integer version of the record")
    return int(text)
