"""Validation of activity bodies (DESIGN.md section 6): every rejection is a 400 naming the field.

Money never passes through a float: ``hourly_rate`` must be a JSON string holding a plain decimal. Limits
follow what the time must fit into on the QBO side (a TimeActivity's HourlyRate is 0 to 99999999999 and its
Description at most 4000 characters) and what one activity sanely is (at most a day; longer work is logged
as several activities). Whether ``contact_id`` and ``owner_id`` name a contact and a user is checked by the
store, under the write lock, so that a concurrent delete cannot slip in between.
"""

from __future__ import annotations

import re
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from crm_qb.sandbox.crm.clock import stamp
from crm_qb.sandbox.crm.validation import invalid, parse_aware, refuse_unknown, require_object, text_value

ACTIVITY_TYPES = ("call", "meeting", "email", "task", "time")
ACTIVITY_LIMITS = MappingProxyType({"subject": 255, "notes": 4000, "service": 100})
ACTIVITY_WRITABLE = ("contact_id", "owner_id", "type", "started_at", "duration_minutes", "billable",
                     "hourly_rate", *ACTIVITY_LIMITS)
ACTIVITY_READ_ONLY = ("id", "version", "updated_at")
ACTIVITY_REQUIRED = ("contact_id", "owner_id", "type", "started_at")
MAX_DURATION_MINUTES = 24 * 60
MAX_HOURLY_RATE = Decimal("99999999999")
_DECIMAL = re.compile(r"^\d{1,11}(\.\d{1,4})?$")


def activity_changes(body: Any, *, creating: bool) -> dict[str, Any]:
    """Validate an activity create/patch body and return the fields to write."""
    body = require_object(body)
    changes = {key: _activity_value(key, value) for key, value in body.items()}
    if creating:
        for field in ACTIVITY_REQUIRED:
            if field not in changes:
                raise invalid(field, "is required")
    return changes


def _activity_value(key: str, value: Any) -> Any:
    """Validate one activity field."""
    refuse_unknown(key, ACTIVITY_WRITABLE, ACTIVITY_READ_ONLY)
    if key in ACTIVITY_LIMITS:
        return text_value(key, value, ACTIVITY_LIMITS[key])
    return _CHECKS[key](key, value)


def _reference(field: str, value: Any) -> str:
    """A contact or user id: a non-empty string (whether it exists is the store's check)."""
    if not isinstance(value, str) or not value:
        raise invalid(field, "must be the id of an existing record")
    return value


def _type(field: str, value: Any) -> str:
    """One of ACTIVITY_TYPES."""
    if value not in ACTIVITY_TYPES:
        raise invalid(field, "must be one of " + ", ".join(ACTIVITY_TYPES))
    return str(value)


def _started_at(field: str, value: Any) -> str:
    """An ISO 8601 time with an offset, stored as fixed-width UTC like every other time."""
    if not isinstance(value, str):
        raise invalid(field, "must be an ISO 8601 time with an offset, e.g. 2024-05-01T09:30:00-05:00")
    return stamp(parse_aware(field, value))


def _duration(field: str, value: Any) -> int | None:
    """Whole minutes from 0 to a day, or null (an activity without a duration, such as an email)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DURATION_MINUTES:
        raise invalid(field, f"must be an integer number of minutes from 0 to {MAX_DURATION_MINUTES}, or null")
    return value


def _billable(field: str, value: Any) -> bool:
    """true or false."""
    if not isinstance(value, bool):
        raise invalid(field, "must be true or false")
    return value


def _hourly_rate(field: str, value: Any) -> str | None:
    """A decimal string such as "125" or "62.50" (0 to 99999999999, at most 4 decimals), or null."""
    if value is None:
        return None
    if not isinstance(value, str) or not _DECIMAL.match(value) or Decimal(value) > MAX_HOURLY_RATE:
        raise invalid(field, f'must be a decimal string from "0" to "{MAX_HOURLY_RATE}" with at most 4 '
                             'decimals (e.g. "62.50"), or null')
    return value


_CHECKS = MappingProxyType({
    "contact_id": _reference, "owner_id": _reference, "type": _type, "started_at": _started_at,
    "duration_minutes": _duration, "billable": _billable, "hourly_rate": _hourly_rate,
})
