"""HubSpot objects <-> the connector interface, as pure functions (docs/hubspot/mapping.md).

Decisions (the why is in mapping.md):
- A contact's ``version`` is its ``updatedAt`` in epoch milliseconds: HubSpot has no version or ETag, and every
  change moves ``updatedAt`` while a write that changes nothing leaves it alone.
- HubSpot has no display name: ``display_name`` is always None (the sync derives one, and a None display name
  counts as unchanged), and a ``display_name`` change is never written. HubSpot has no free tags either.
- HubSpot contacts have one address without a second line: ``line2`` lives in ``qb_address_line2``; the shipping
  address is kept in ``qb_shipping_address`` as six lines in ``ADDRESS_PARTS`` order, so it reads back exactly
  as written and the three-way merge never sees a value crm-qb wrote as a change.
- Notes are ``qb_notes`` (HubSpot "notes" are engagements, not a field). Every value is sent as a string and
  ``""`` clears it (docs/hubspot/facts.md §3.1); HubSpot answers ``""`` and null alike for "empty".
- A task's due date is ``hs_timestamp`` at midnight UTC of that day; it is read back as that UTC day.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from crm_qb.address import ADDRESS_PARTS, Address
from crm_qb.crm.errors import CrmProtocolError
from crm_qb.crm.protocol import Activity, Contact, CrmUser, NewTask, Task

GROUP = {"name": "quickbooks", "label": "QuickBooks", "displayOrder": 10}
# Connector wire name -> HubSpot contact property (docs/hubspot/mapping.md §1).
TEXT_PROPERTIES: Mapping[str, str] = {
    "first_name": "firstname", "last_name": "lastname", "company": "company", "email": "email",
    "phone": "phone", "mobile": "mobilephone", "website": "website", "notes": "qb_notes",
    "owner_id": "hubspot_owner_id",
}
BILLING_PROPERTIES: Mapping[str, str] = {
    "line1": "address", "line2": "qb_address_line2", "city": "city", "region": "state", "postal_code": "zip",
    "country": "country",
}
SHIPPING_PROPERTY = "qb_shipping_address"
NOT_WRITTEN = frozenset({"display_name", "tags"})
CONTACT_PROPERTIES: tuple[str, ...] = (
    *TEXT_PROPERTIES.values(), *BILLING_PROPERTIES.values(), SHIPPING_PROPERTY, "lastmodifieddate", "createdate",
    "hs_merged_object_ids",
)
IDENTITY_PROPERTIES = ("email", "firstname", "lastname")

TASK_PROPERTIES: tuple[str, ...] = ("hs_task_subject", "hs_task_body", "hs_timestamp", "hs_task_status",
                                    "hubspot_owner_id", "hs_createdate", "hs_lastmodifieddate")
DONE_STATUS, OPEN_STATUS = "COMPLETED", "NOT_STARTED"
TASK_TO_CONTACT = 204  # HUBSPOT_DEFINED association type ids (docs/hubspot/facts.md §4)
CONTACT_TO_COMPANY_PRIMARY, CONTACT_TO_COMPANY = 1, 279


def _text_property(name: str, label: str, field_type: str = "text") -> dict[str, Any]:
    return {"name": name, "label": label, "type": "string", "fieldType": field_type, "groupName": GROUP["name"]}


def _number_property(name: str, label: str) -> dict[str, Any]:
    # HubSpot has no currency type: a number shown as currency (docs/hubspot/facts.md §5).
    return {"name": name, "label": label, "type": "number", "fieldType": "number", "groupName": GROUP["name"],
            "numberDisplayHint": "currency"}


# The "QuickBooks" group's properties, created on connect (docs/hubspot/mapping.md §1).
PROPERTY_DEFINITIONS: tuple[dict[str, Any], ...] = (
    _text_property("qb_address_line2", "Address line 2"),
    _text_property(SHIPPING_PROPERTY, "Shipping address", "textarea"),
    _text_property("qb_notes", "QuickBooks notes", "textarea"),
    _text_property("qb_customer_url", "QuickBooks customer"),
    _text_property("qb_currency", "Currency"),
    _number_property("qb_balance", "QuickBooks balance"),
    _number_property("qb_open_balance", "Open balance"),
    _number_property("qb_overdue_balance", "Overdue balance"),
    _text_property("qb_payment_terms", "Payment terms"),
    _text_property("qb_preferred_payment_method", "Preferred payment method"),
    _text_property("qb_delivery_preference", "Delivery preference"),
    {"name": "qb_last_payment_date", "label": "Last payment date", "type": "date", "fieldType": "date",
     "groupName": GROUP["name"]},
    _number_property("qb_last_payment_amount", "Last payment amount"),
    _text_property("qb_parent_customer", "Parent customer"),
    {"name": "qb_synced_at", "label": "QuickBooks summary updated", "type": "datetime", "fieldType": "date",
     "groupName": GROUP["name"]},
)


# -- contacts ---------------------------------------------------------------------------------------------------

def contact_from_object(obj: Any) -> Contact:
    """The Contact of a HubSpot contact object; CrmProtocolError when it is not one."""
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not isinstance(obj.get("properties"),
                                                                                          dict):
        raise CrmProtocolError("HubSpot returned a contact without a string id and properties")
    props: Mapping[str, Any] = obj["properties"]
    updated = parse_hubspot_time(obj.get("updatedAt"))
    texts: dict[str, Any] = {wire: _value(props, name) for wire, name in TEXT_PROPERTIES.items()}
    return Contact(
        id=obj["id"], version=epoch_ms(updated), updated_at=updated, **texts,
        billing_address=Address(**{part: _value(props, name) for part, name in BILLING_PROPERTIES.items()}),
        shipping_address=shipping_from_text(_value(props, SHIPPING_PROPERTY)),
        active=obj.get("archived") is not True,
    )


def contact_properties(changes: Mapping[str, Any]) -> dict[str, str]:
    """HubSpot properties for connector ``changes`` (None or "" clears); display name and tags are not written."""
    props: dict[str, str] = {}
    for wire, value in changes.items():
        if wire in TEXT_PROPERTIES:
            props[TEXT_PROPERTIES[wire]] = _string(value)
        elif wire == "billing_address":
            props.update(_billing(value))
        elif wire == "shipping_address":
            props[SHIPPING_PROPERTY] = shipping_to_text(_address(value))
        elif wire not in NOT_WRITTEN:
            raise ValueError(f"{wire!r} is not a contact field the HubSpot connector knows")
    return props


def has_identity(props: Mapping[str, str]) -> bool:
    """Whether HubSpot can create a contact from ``props``: it needs an email or a person's name."""
    return any(props.get(name) for name in IDENTITY_PROPERTIES)


def shipping_to_text(address: Address | None) -> str:
    """The six address parts as lines (empty when there is no address)."""
    if address is None or not any(address.to_json().values()):
        return ""
    return "\n".join((getattr(address, part) or "").replace("\n", " ") for part in ADDRESS_PARTS)


def shipping_from_text(text: str | None) -> Address:
    """The address ``shipping_to_text`` wrote (a person's own text: its first lines as the first parts)."""
    if not text:
        return Address()
    lines = [line.strip() or None for line in text.split("\n")][: len(ADDRESS_PARTS)]
    return Address(**dict(zip(ADDRESS_PARTS, lines, strict=False)))


def _billing(value: Any) -> dict[str, str]:
    if value is None:
        return dict.fromkeys(BILLING_PROPERTIES.values(), "")
    given = value.to_json() if isinstance(value, Address) else dict(value)
    return {BILLING_PROPERTIES[part]: _string(given[part]) for part in ADDRESS_PARTS if part in given}


def _address(value: Any) -> Address | None:
    if value is None or isinstance(value, Address):
        return value
    return Address.from_json(value)


# -- the billing summary ----------------------------------------------------------------------------------------

def summary_properties(summary: Mapping[str, Any]) -> dict[str, str]:
    """The ``quickbooks`` group's values for a billing summary (the API's ``summary`` object)."""
    last = summary.get("last_payment") or {}
    parent = summary.get("parent") or {}
    return {
        "qb_customer_url": _string(summary.get("customer_url")),
        "qb_currency": _string(summary.get("currency")),
        "qb_balance": _string(summary.get("qbo_balance")),
        "qb_open_balance": _string((summary.get("open_balance") or {}).get("home")),
        "qb_overdue_balance": _string((summary.get("overdue_balance") or {}).get("home")),
        "qb_payment_terms": _string(summary.get("terms")),
        "qb_preferred_payment_method": _string(summary.get("preferred_payment_method")),
        "qb_delivery_preference": _string(summary.get("delivery_preference")),
        "qb_last_payment_date": _day_ms(last.get("date")),
        "qb_last_payment_amount": _string(last.get("home_amount") or last.get("amount")),
        "qb_parent_customer": _string(parent.get("name") if isinstance(parent, dict) else None),
        "qb_synced_at": _moment_ms(summary.get("updated_at")),
    }


# -- tasks ------------------------------------------------------------------------------------------------------

def task_properties(task: NewTask) -> dict[str, str]:
    """HubSpot task properties for a new follow-up (open, due at midnight UTC of its day, or now without one)."""
    props = {"hs_task_subject": task.title, "hs_task_body": task.description or "", "hs_task_status": OPEN_STATUS,
             "hs_timestamp": _day_ms(task.due_date.isoformat()) if task.due_date else "", "hs_task_type": "TODO"}
    if task.owner_id:
        props["hubspot_owner_id"] = task.owner_id
    return props


def task_changes(changes: Mapping[str, Any]) -> dict[str, str]:
    """HubSpot task properties for connector task ``changes`` (title, description, due_date, status, owner_id)."""
    names = {"title": "hs_task_subject", "description": "hs_task_body", "owner_id": "hubspot_owner_id"}
    props = {names[key]: _string(value) for key, value in changes.items() if key in names}
    if "due_date" in changes:
        due = changes["due_date"]
        props["hs_timestamp"] = _day_ms(due.isoformat() if isinstance(due, date) else due)
    if "status" in changes:
        if changes["status"] not in ("open", "done"):
            raise ValueError(f"a task status is open or done, got {changes['status']!r}")
        props["hs_task_status"] = DONE_STATUS if changes["status"] == "done" else OPEN_STATUS
    unknown = set(changes) - {*names, "due_date", "status", "completed_at"}
    if unknown:
        raise ValueError(f"task fields the HubSpot connector does not know: {sorted(unknown)}")
    return props


def task_from_object(obj: Any, contact_id: str | None) -> Task:
    """The Task of a HubSpot task object; NOT_STARTED, IN_PROGRESS, WAITING and DEFERRED all read as open."""
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not isinstance(obj.get("properties"),
                                                                                          dict):
        raise CrmProtocolError("HubSpot returned a task without a string id and properties")
    props = obj["properties"]
    done = _value(props, "hs_task_status") == DONE_STATUS
    due = _value(props, "hs_timestamp")
    return Task(id=obj["id"], contact_id=contact_id, title=_value(props, "hs_task_subject") or "",
                status="done" if done else "open", description=_value(props, "hs_task_body"),
                due_date=parse_hubspot_time(due).date() if due else None,
                owner_id=_value(props, "hubspot_owner_id"),
                created_at=parse_hubspot_time(obj["createdAt"]) if obj.get("createdAt") else None,
                completed_at=parse_hubspot_time(obj["updatedAt"]) if done and obj.get("updatedAt") else None)


# -- owners -----------------------------------------------------------------------------------------------------

def user_from_owner(owner: Mapping[str, Any]) -> CrmUser:
    """The CrmUser of a HubSpot owner (docs/hubspot/mapping.md §4): archived owners are inactive users."""
    if owner.get("id") in (None, ""):
        raise CrmProtocolError("HubSpot returned an owner without an id")
    name = " ".join(str(owner.get(part) or "").strip() for part in ("firstName", "lastName")).strip()
    email = owner.get("email")
    return CrmUser(id=str(owner["id"]), name=name or (str(email) if email else None),
                   email=str(email) if email else None, active=owner.get("archived") is not True)


# -- calls and meetings as activities (docs/hubspot/mapping.md §4 "Billable time") --------------------------------

ACTIVITY_KINDS: Mapping[str, str] = {"calls": "call", "meetings": "meeting"}  # HubSpot object type -> Activity.type
KIND_OF_TYPE: Mapping[str, str] = {kind: objects for objects, kind in ACTIVITY_KINDS.items()}
BILLING_PROPERTIES_OF_ACTIVITY = ("qb_billable", "qb_hourly_rate", "qb_service")
ACTIVITY_PROPERTIES: Mapping[str, tuple[str, ...]] = {
    "calls": ("hs_timestamp", "hs_call_title", "hs_call_body", "hs_call_duration", "hubspot_owner_id",
              "hs_lastmodifieddate", *BILLING_PROPERTIES_OF_ACTIVITY),
    "meetings": ("hs_timestamp", "hs_meeting_title", "hs_meeting_body", "hs_meeting_start_time",
                 "hs_meeting_end_time", "hubspot_owner_id", "hs_lastmodifieddate", *BILLING_PROPERTIES_OF_ACTIVITY),
}
# Created on connect in each activity type's "QuickBooks" group (docs/hubspot/mapping.md §4).
ACTIVITY_PROPERTY_DEFINITIONS: tuple[dict[str, Any], ...] = (
    {"name": "qb_billable", "label": "Billable in QuickBooks", "type": "bool", "fieldType": "booleancheckbox",
     "groupName": GROUP["name"], "options": [{"label": "Yes", "value": "true"}, {"label": "No", "value": "false"}]},
    {"name": "qb_hourly_rate", "label": "Hourly rate", "type": "number", "fieldType": "number",
     "groupName": GROUP["name"], "numberDisplayHint": "currency"},
    {"name": "qb_service", "label": "QuickBooks service", "type": "string", "fieldType": "text",
     "groupName": GROUP["name"]},
)
_TAG = re.compile(r"<[^>]+>")
_BREAK = re.compile(r"<\s*(br|/p|/div|/li)\s*/?\s*>", re.IGNORECASE)


def activity_id(objects: str, object_id: str) -> str:
    """The Activity id of a HubSpot call or meeting: ``call-<id>`` / ``meeting-<id>`` (ids are per object type)."""
    return f"{ACTIVITY_KINDS[objects]}-{object_id}"


def split_activity_id(value: str) -> tuple[str, str]:
    """The HubSpot object type and id of an Activity id made by ``activity_id``; ValueError for another id."""
    kind, _, object_id = value.partition("-")
    if kind not in KIND_OF_TYPE or not object_id:
        raise ValueError(f"not a HubSpot activity id (call-<id> or meeting-<id>): {value!r}")
    return KIND_OF_TYPE[kind], object_id


def activity_from_object(objects: str, obj: Any, contact_id: str | None) -> Activity:
    """The Activity of a HubSpot call or meeting object.

    Billable rule (docs/hubspot/mapping.md §4): a call or meeting with a positive duration is billable unless its
    ``qb_billable`` property is ``false``; one without a duration never is (there is no time to bill).
    """
    if not isinstance(obj, dict) or not isinstance(obj.get("id"), str) or not isinstance(obj.get("properties"),
                                                                                          dict):
        raise CrmProtocolError(f"HubSpot returned a {ACTIVITY_KINDS[objects]} without a string id and properties")
    props: Mapping[str, Any] = obj["properties"]
    updated = parse_hubspot_time(obj.get("updatedAt") or _value(props, "hs_lastmodifieddate"))
    prefix = "hs_call" if objects == "calls" else "hs_meeting"
    if objects == "calls":
        started_text = _value(props, "hs_timestamp")
        duration = _minutes(_value(props, "hs_call_duration"))
    else:
        started_text = _value(props, "hs_meeting_start_time") or _value(props, "hs_timestamp")
        end = _value(props, "hs_meeting_end_time")
        duration = (_minutes(str(epoch_ms(parse_hubspot_time(end)) - epoch_ms(parse_hubspot_time(started_text))))
                    if end and started_text else None)
    started = parse_hubspot_time(started_text) if started_text else updated
    flag = (_value(props, "qb_billable") or "").strip().casefold()
    return Activity(
        id=activity_id(objects, obj["id"]), version=epoch_ms(updated), updated_at=updated, contact_id=contact_id,
        owner_id=_value(props, "hubspot_owner_id"), type=ACTIVITY_KINDS[objects], started_at=started,
        subject=_value(props, f"{prefix}_title"), notes=html_to_text(_value(props, f"{prefix}_body")),
        duration_minutes=duration, billable=bool(duration) and flag not in ("false", "no", "0"),
        hourly_rate=_rate(_value(props, "qb_hourly_rate")), service=_value(props, "qb_service"))


def html_to_text(value: str | None) -> str | None:
    """A HubSpot rich-text body as plain text (line breaks kept, tags dropped, entities decoded)."""
    if value is None:
        return None
    text = html.unescape(_TAG.sub("", _BREAK.sub("\n", value)))
    lines = [line.strip() for line in text.splitlines()]
    return "\n".join(lines).strip() or None


def _minutes(milliseconds: str | None) -> int | None:
    """Whole minutes (rounded) of a millisecond duration; None when missing; CrmProtocolError when not a number."""
    if milliseconds is None:
        return None
    try:
        value = Decimal(milliseconds)
    except InvalidOperation:
        raise CrmProtocolError(f"HubSpot returned the duration {milliseconds!r}; expected milliseconds") from None
    if not value.is_finite() or value < 0:
        raise CrmProtocolError(f"HubSpot returned the duration {milliseconds!r}; expected milliseconds >= 0")
    return int((value / 60_000).to_integral_value())


def _rate(value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        rate = Decimal(value)
    except InvalidOperation:
        raise CrmProtocolError(f"HubSpot returned the hourly rate {value!r}; expected a number") from None
    if not rate.is_finite() or rate < 0:
        raise CrmProtocolError(f"HubSpot returned the hourly rate {value!r}; expected a number >= 0")
    return rate


# -- values -----------------------------------------------------------------------------------------------------

def parse_hubspot_time(value: Any) -> datetime:
    """A HubSpot time (ISO 8601, ``Z`` or an offset; or epoch milliseconds) as aware UTC."""
    if isinstance(value, str) and value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (TypeError, ValueError):
        raise CrmProtocolError(f"HubSpot returned {value!r} where a time was expected") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch of an aware time."""
    return round(moment.timestamp() * 1000)


def _day_ms(day: Any) -> str:
    if not day:
        return ""
    return str(epoch_ms(datetime.combine(date.fromisoformat(str(day)[:10]), time(0), UTC)))


def _moment_ms(value: Any) -> str:
    return str(epoch_ms(parse_hubspot_time(value))) if value else ""


def _value(props: Mapping[str, Any], name: str) -> str | None:
    value = props.get(name)
    return None if value is None or value == "" else str(value)


def _string(value: Any) -> str:
    return "" if value is None else str(value)
