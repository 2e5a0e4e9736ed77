"""Property definitions and groups: HubSpot's defaults per object type, and how a written value is checked.

HubSpot stores every property value as a string. A write is checked against the property's definition and
answered with HubSpot's "Property values were not valid" error naming each bad property (docs/hubspot/facts.md
§5, §10). Dates are midnight-UTC epoch milliseconds (or YYYY-MM-DD), datetimes epoch milliseconds or ISO 8601,
and both are stored as HubSpot returns them (ISO 8601 with milliseconds and ``Z`` for datetimes).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

TYPES = ("bool", "date", "datetime", "enumeration", "number", "phone_number", "string")
FIELD_TYPES = ("booleancheckbox", "calculation_equation", "checkbox", "date", "file", "html", "number",
               "phonenumber", "radio", "select", "text", "textarea")
READ_ONLY = frozenset({"hs_object_id", "lastmodifieddate", "hs_lastmodifieddate", "hs_merged_object_ids",
                       "hs_createdate", "hs_all_owner_ids"})
EMAIL_SHAPE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
NAME_SHAPE = re.compile(r"^[a-z][a-z0-9_]{0,99}$")

# (name, label, type, fieldType, group, options)
_Text = tuple[str, str, str, str, str, tuple[str, ...]]
_CONTACT: tuple[_Text, ...] = (
    ("firstname", "First Name", "string", "text", "contactinformation", ()),
    ("lastname", "Last Name", "string", "text", "contactinformation", ()),
    ("email", "Email", "string", "text", "contactinformation", ()),
    ("phone", "Phone Number", "string", "phonenumber", "contactinformation", ()),
    ("mobilephone", "Mobile Phone Number", "string", "phonenumber", "contactinformation", ()),
    ("company", "Company Name", "string", "text", "contactinformation", ()),
    ("website", "Website URL", "string", "text", "contactinformation", ()),
    ("address", "Street Address", "string", "text", "contactinformation", ()),
    ("city", "City", "string", "text", "contactinformation", ()),
    ("state", "State/Region", "string", "text", "contactinformation", ()),
    ("zip", "Postal Code", "string", "text", "contactinformation", ()),
    ("country", "Country/Region", "string", "text", "contactinformation", ()),
    ("jobtitle", "Job Title", "string", "text", "contactinformation", ()),
    ("message", "Message", "string", "textarea", "contactinformation", ()),
    ("lifecyclestage", "Lifecycle Stage", "enumeration", "radio", "contactinformation",
     ("subscriber", "lead", "marketingqualifiedlead", "salesqualifiedlead", "opportunity", "customer",
      "evangelist", "other")),
    ("hubspot_owner_id", "Contact owner", "enumeration", "select", "contactinformation", ()),
    ("hs_additional_emails", "Additional email addresses", "enumeration", "checkbox", "contactinformation", ()),
    ("hs_email_optout", "Unsubscribed from all email", "bool", "booleancheckbox", "contactinformation",
     ("true", "false")),
    ("createdate", "Create Date", "datetime", "date", "contactinformation", ()),
    ("lastmodifieddate", "Last Modified Date", "datetime", "date", "contactinformation", ()),
    ("hs_object_id", "Record ID", "number", "number", "contactinformation", ()),
    ("hs_merged_object_ids", "Merged Contact IDs", "enumeration", "checkbox", "contactinformation", ()),
)
_COMPANY: tuple[_Text, ...] = (
    ("name", "Company name", "string", "text", "companyinformation", ()),
    ("domain", "Company Domain Name", "string", "text", "companyinformation", ()),
    ("phone", "Phone Number", "string", "phonenumber", "companyinformation", ()),
    ("website", "Website URL", "string", "text", "companyinformation", ()),
    ("address", "Street Address", "string", "text", "companyinformation", ()),
    ("address2", "Street Address 2", "string", "text", "companyinformation", ()),
    ("city", "City", "string", "text", "companyinformation", ()),
    ("state", "State/Region", "string", "text", "companyinformation", ()),
    ("zip", "Postal Code", "string", "text", "companyinformation", ()),
    ("country", "Country/Region", "string", "text", "companyinformation", ()),
    ("description", "Description", "string", "textarea", "companyinformation", ()),
    ("hubspot_owner_id", "Company owner", "enumeration", "select", "companyinformation", ()),
    ("createdate", "Create Date", "datetime", "date", "companyinformation", ()),
    ("hs_lastmodifieddate", "Last Modified Date", "datetime", "date", "companyinformation", ()),
    ("hs_object_id", "Record ID", "number", "number", "companyinformation", ()),
    ("hs_merged_object_ids", "Merged Company IDs", "enumeration", "checkbox", "companyinformation", ()),
)
_ENGAGEMENT: tuple[_Text, ...] = (
    ("hs_timestamp", "Activity date", "datetime", "date", "engagement", ()),
    ("hubspot_owner_id", "Activity assigned to", "enumeration", "select", "engagement", ()),
    ("hs_createdate", "Create date", "datetime", "date", "engagement", ()),
    ("hs_lastmodifieddate", "Last modified date", "datetime", "date", "engagement", ()),
    ("hs_object_id", "Record ID", "number", "number", "engagement", ()),
)
_TASK: tuple[_Text, ...] = (
    ("hs_task_subject", "Task Title", "string", "text", "task", ()),
    ("hs_task_body", "Notes", "string", "html", "task", ()),
    ("hs_task_status", "Task Status", "enumeration", "select", "task",
     ("NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED", "DEFERRED")),
    ("hs_task_priority", "Priority", "enumeration", "select", "task", ("NONE", "LOW", "MEDIUM", "HIGH")),
    ("hs_task_type", "Task Type", "enumeration", "select", "task", ("EMAIL", "CALL", "TODO", "LINKED_IN")),
    ("hs_task_reminders", "Reminder", "enumeration", "checkbox", "task", ()),
    ("hs_task_completion_date", "Completed at", "datetime", "date", "task", ()),
)
_CALL: tuple[_Text, ...] = (
    ("hs_call_title", "Call Title", "string", "text", "call", ()),
    ("hs_call_body", "Call notes", "string", "html", "call", ()),
    ("hs_call_duration", "Call duration", "number", "number", "call", ()),
    ("hs_call_direction", "Call direction", "enumeration", "select", "call", ("INBOUND", "OUTBOUND")),
    ("hs_call_status", "Call status", "enumeration", "select", "call",
     ("BUSY", "CALLING_CRM_USER", "CANCELED", "COMPLETED", "CONNECTING", "FAILED", "IN_PROGRESS", "MISSED",
      "NO_ANSWER", "QUEUED", "RINGING")),
    ("hs_call_disposition", "Call outcome", "string", "text", "call", ()),
)
_MEETING: tuple[_Text, ...] = (
    ("hs_meeting_title", "Meeting name", "string", "text", "meeting", ()),
    ("hs_meeting_body", "Meeting description", "string", "html", "meeting", ()),
    ("hs_meeting_start_time", "Start time", "datetime", "date", "meeting", ()),
    ("hs_meeting_end_time", "End time", "datetime", "date", "meeting", ()),
    ("hs_meeting_location", "Location", "string", "text", "meeting", ()),
    ("hs_meeting_outcome", "Meeting outcome", "enumeration", "select", "meeting",
     ("SCHEDULED", "COMPLETED", "RESCHEDULED", "NO_SHOW", "CANCELLED")),
)
_NOTE: tuple[_Text, ...] = (("hs_note_body", "Note body", "string", "html", "note", ()),)
DEFAULTS: dict[str, tuple[_Text, ...]] = {
    "contacts": _CONTACT, "companies": _COMPANY, "tasks": _ENGAGEMENT + _TASK, "calls": _ENGAGEMENT + _CALL,
    "meetings": _ENGAGEMENT + _MEETING, "notes": _ENGAGEMENT + _NOTE,
}
DEFAULT_GROUPS: dict[str, tuple[tuple[str, str], ...]] = {
    "contacts": (("contactinformation", "Contact information"), ("emailinformation", "Email information")),
    "companies": (("companyinformation", "Company information"),),
    "tasks": (("engagement", "Engagement"), ("task", "Task information")),
    "calls": (("engagement", "Engagement"), ("call", "Call information")),
    "meetings": (("engagement", "Engagement"), ("meeting", "Meeting information")),
    "notes": (("engagement", "Engagement"), ("note", "Note information")),
}


def iso_ms(moment: datetime) -> str:
    """Format an aware time as HubSpot does: UTC ISO 8601 with milliseconds and ``Z``."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def epoch_ms(moment: datetime) -> int:
    """Return an aware time as epoch milliseconds."""
    return int(moment.timestamp() * 1000)


def parse_time(text: str) -> datetime | None:
    """Parse epoch milliseconds, ISO 8601 or YYYY-MM-DD into an aware UTC time; None when it is neither."""
    value = text.strip()
    if re.fullmatch(r"-?\d{1,16}", value):
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        moment = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def make_definition(object_type: str, spec: _Text, now: datetime, hubspot_defined: bool = True) -> dict[str, Any]:
    """Return a HubSpot ``Property`` object for one default (name, label, type, fieldType, group, options)."""
    name, label, kind, field_type, group, options = spec
    return property_object({"name": name, "label": label, "type": kind, "fieldType": field_type,
                            "groupName": group,
                            "options": [{"label": o.title(), "value": o} for o in options]},
                           now, hubspot_defined=hubspot_defined, read_only=name in READ_ONLY)


def property_object(given: dict[str, Any], now: datetime, hubspot_defined: bool = False,
                    read_only: bool = False) -> dict[str, Any]:
    """Return a full ``Property`` from the fields of a create request (defaults filled as HubSpot does)."""
    options = [{"label": str(o.get("label", o.get("value", ""))), "value": str(o.get("value", "")),
                "displayOrder": int(o.get("displayOrder", index)), "hidden": bool(o.get("hidden", False)),
                **({"description": o["description"]} if o.get("description") else {})}
               for index, o in enumerate(given.get("options") or [])]
    stamp = iso_ms(now)
    result: dict[str, Any] = {
        "updatedAt": stamp, "createdAt": stamp, "name": given["name"], "label": given["label"],
        "type": given["type"], "fieldType": given["fieldType"], "description": given.get("description", ""),
        "groupName": given["groupName"], "options": options, "displayOrder": int(given.get("displayOrder", -1)),
        "calculated": False, "externalOptions": bool(given.get("externalOptions", False)),
        "hasUniqueValue": bool(given.get("hasUniqueValue", False)), "hidden": bool(given.get("hidden", False)),
        "hubspotDefined": hubspot_defined,
        "modificationMetadata": {"archivable": not hubspot_defined, "readOnlyDefinition": hubspot_defined,
                                 "readOnlyValue": read_only},
        "formField": bool(given.get("formField", False)), "archived": False,
    }
    for optional in ("numberDisplayHint", "showCurrencySymbol", "currencyPropertyName", "referencedObjectType",
                     "textDisplayHint", "dataSensitivity", "calculationFormula"):
        if optional in given:
            result[optional] = given[optional]
    return result


def check_definition(given: Any, creating: bool) -> list[str]:
    """Return what is wrong with a property create/update body (empty when it is acceptable)."""
    if not isinstance(given, dict):
        return ["the body must be a JSON object"]
    problems = []
    required = ("name", "label", "type", "fieldType", "groupName") if creating else ()
    problems += [f"{field} is required" for field in required if not given.get(field)]
    if creating and given.get("name") and not NAME_SHAPE.match(str(given["name"])):
        problems.append("name must start with a lowercase letter and use only a-z, 0-9 and _")
    if "type" in given and given["type"] not in TYPES:
        problems.append(f"type must be one of {', '.join(TYPES)}")
    if "fieldType" in given and given["fieldType"] not in FIELD_TYPES:
        problems.append(f"fieldType must be one of {', '.join(FIELD_TYPES)}")
    if "options" in given and not isinstance(given["options"], list):
        problems.append("options must be an array")
    return problems


def coerce(definition: dict[str, Any], raw: Any, object_label: str) -> tuple[str | None, dict[str, str] | None]:
    """Return (stored string, None) for an acceptable value, or (None, problem) naming HubSpot's error code.

    An empty string or null clears the property (stored as ""), as HubSpot does.
    """
    name = definition["name"]
    if raw is None or raw == "":
        return "", None
    text = _as_text(raw)
    checker = _CHECKS.get(definition["type"])
    if checker is None:
        return text, None
    return checker(definition, text, name, object_label)


def _as_text(raw: Any) -> str:
    """Return a JSON scalar as HubSpot stores it (booleans lower-case, numbers without trailing .0)."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, float) and raw.is_integer():
        return str(int(raw))
    return str(raw)


def _problem(name: str, error: str, message: str) -> tuple[None, dict[str, str]]:
    return None, {"name": name, "error": error, "message": message}


def _check_string(definition: dict[str, Any], text: str, name: str, label: str) -> Any:
    if name == "email" and label == "contacts" and not EMAIL_SHAPE.match(text):
        return _problem(name, "INVALID_EMAIL", f"Email address {text} is invalid")
    if len(text) > 65536:
        return _problem(name, "INVALID_LENGTH", f"{text[:20]}... was too long for property {name}")
    return text.strip() if name == "email" else text, None


def _check_number(definition: dict[str, Any], text: str, name: str, label: str) -> Any:
    try:
        number = Decimal(text)
    except InvalidOperation:
        return _problem(name, "INVALID_DECIMAL", f"{text} was not a valid number.")
    if not number.is_finite():
        return _problem(name, "INVALID_DECIMAL", f"{text} was not a valid number.")
    return _as_text(int(number)) if number == number.to_integral_value() else str(number.normalize()), None


def _check_bool(definition: dict[str, Any], text: str, name: str, label: str) -> Any:
    if text.lower() not in ("true", "false"):
        return _problem(name, "INVALID_OPTION", f"{text} was not one of the allowed options: [true, false]")
    return text.lower(), None


def _check_enumeration(definition: dict[str, Any], text: str, name: str, label: str) -> Any:
    allowed = [o["value"] for o in definition.get("options", [])]
    if not allowed:  # owner ids, additional emails: open-ended enumerations
        return text, None
    values = text.split(";") if definition.get("fieldType") == "checkbox" else [text]
    bad = [v for v in values if v not in allowed]
    if bad:
        shown = ", ".join(allowed)
        return _problem(name, "INVALID_OPTION", f"{bad[0]} was not one of the allowed options: [{shown}]")
    return text, None


def _check_datetime(definition: dict[str, Any], text: str, name: str, label: str) -> Any:
    moment = parse_time(text)
    if moment is None:
        return _problem(name, "INVALID_DATETIME", f"{text} is not a valid datetime for property {name}")
    return iso_ms(moment), None


def _check_date(definition: dict[str, Any], text: str, name: str, label: str) -> Any:
    moment = parse_time(text)
    if moment is None or (moment.hour, moment.minute, moment.second, moment.microsecond) != (0, 0, 0, 0):
        return _problem(name, "INVALID_DATE", f"{text} is not a midnight UTC timestamp for date property {name}")
    return moment.date().isoformat(), None


_CHECKS = {"string": _check_string, "phone_number": _check_string, "number": _check_number,
           "bool": _check_bool, "enumeration": _check_enumeration, "datetime": _check_datetime,
           "date": _check_date}
