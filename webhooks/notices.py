"""Parsing webhook bodies into change notices: one per entity change, each with its deduplication key.

Pure functions (no I/O), so both formats are tested against Intuit's real payloads without a server. Which
entities are synced, and so stored as pending rather than ignored, is decided by ``Notice.synced`` from the
transaction registry (``crm_qb.sync.pipeline.events.is_synced``).
Intuit sends two formats (docs/qbo/facts.md §8): legacy ``{"eventNotifications": [...]}`` and CloudEvents
(a JSON array of events with ``specversion`` and ``type``). A CRM sends ``{"events": [...]}``
(docs/architecture.md §5).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from crm_qb.sync.pipeline.events import CONTACT, CUSTOMER, NOTED_QBO_ENTITIES, Notice
from crm_qb.sync.transactions import registry

# QBO's spelling of every entity it sends webhooks for, by lower-cased name (CloudEvents types are lower case).
QBO_ENTITIES = {
    **{name.lower(): name for name in (
        CUSTOMER, *NOTED_QBO_ENTITIES, "Currency", "Vendor", "Employee", "Item", "Account", "Department", "Class",
        "TaxCode", "Bill", "BillPayment", "Purchase", "Deposit", "JournalEntry", "Transfer", "PurchaseOrder",
        "VendorCredit", "TimeActivity", "Budget",
    )},
    **{name.lower(): legacy for legacy, name in (t.webhook_names for t in registry.TYPES)},
}
CLOUDEVENT_OPERATIONS = {
    "created": "Create", "updated": "Update", "deleted": "Delete", "merged": "Merge",
    "voided": "Void", "void": "Void", "emailed": "Emailed",
}
LEGACY_OPERATIONS = frozenset({"Create", "Update", "Delete", "Merge", "Void", "Emailed"})
CLOUDEVENT_TYPE = re.compile(r"^qbo\.([a-z]+)\.([a-z]+)\.v(\d+)$")
CRM_EVENT_TYPES = ("contact.created", "contact.updated", "contact.deleted", "contact.merged")


class PayloadError(ValueError):
    """The body is not a valid webhook; ``field`` names where (a dotted path), ``message`` says what."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_qbo(body: Any) -> list[Notice]:
    """Turn a decoded Intuit webhook body (either format) into notices; PayloadError if it is neither."""
    if isinstance(body, list):
        return [_cloudevent(item, f"[{i}]") for i, item in enumerate(body)]
    if isinstance(body, dict) and "eventNotifications" in body:
        return _legacy(body)
    raise PayloadError("body", "expected a CloudEvents array or an object with eventNotifications")


def _cloudevent(item: Any, where: str) -> Notice:
    if not isinstance(item, dict):
        raise PayloadError(where, "each CloudEvent must be an object")
    event_id, kind = _required_str(item, "id", where), _required_str(item, "type", where)
    realm = _required_str(item, "intuitaccountid", where)
    match = CLOUDEVENT_TYPE.match(kind)
    if not match:
        raise PayloadError(f"{where}.type", f"expected qbo.<entity>.<operation>.v<N>, got {kind!r}")
    entity = QBO_ENTITIES.get(match.group(1), match.group(1).capitalize())
    operation = CLOUDEVENT_OPERATIONS.get(match.group(2), match.group(2).capitalize())
    data: dict[str, Any] = item["data"] if isinstance(item.get("data"), dict) else {}
    payload = {"cloudevent": item, "deleted_id": _case_insensitive(data, "deletedid")}
    return Notice(
        dedupe_key=f"ce:{event_id}", realm_id=realm, entity=entity,
        entity_id=_optional_str(item, "intuitentityid", where), operation=operation,
        occurred_at=_timestamp(item.get("time"), f"{where}.time"), payload=payload,
    )


def _legacy(body: dict[str, Any]) -> list[Notice]:
    notifications = body["eventNotifications"]
    if not isinstance(notifications, list):
        raise PayloadError("eventNotifications", "must be an array")
    notices: list[Notice] = []
    for i, note in enumerate(notifications):
        where = f"eventNotifications[{i}]"
        if not isinstance(note, dict):
            raise PayloadError(where, "must be an object")
        realm = _required_str(note, "realmId", where)
        entities = (note.get("dataChangeEvent") or {}).get("entities")
        if not isinstance(entities, list):
            raise PayloadError(f"{where}.dataChangeEvent.entities", "must be an array")
        notices.extend(_legacy_entity(realm, e, f"{where}.dataChangeEvent.entities[{j}]")
                       for j, e in enumerate(entities))
    return notices


def _legacy_entity(realm: str, entity: Any, where: str) -> Notice:
    if not isinstance(entity, dict):
        raise PayloadError(where, "must be an object")
    name, entity_id = _required_str(entity, "name", where), _required_str(entity, "id", where)
    operation = _required_str(entity, "operation", where)
    if operation not in LEGACY_OPERATIONS:
        raise PayloadError(f"{where}.operation", f"must be one of {', '.join(sorted(LEGACY_OPERATIONS))}")
    last_updated = _required_str(entity, "lastUpdated", where)
    canonical = QBO_ENTITIES.get(name.lower(), name)
    return Notice(
        dedupe_key=f"legacy:{realm}:{canonical}:{entity_id}:{operation}:{last_updated}",
        realm_id=realm, entity=canonical, entity_id=entity_id, operation=operation,
        occurred_at=_timestamp(last_updated, f"{where}.lastUpdated"),
        payload={"legacy": entity, "deleted_id": _case_insensitive(entity, "deletedid")},
    )


class _CrmEventSchema(Schema):
    id = fields.String(required=True, validate=validate.Length(min=1, max=200))
    type = fields.String(required=True, validate=validate.OneOf(CRM_EVENT_TYPES))
    occurred_at = fields.AwareDateTime(required=True, default_timezone=UTC)
    contact = fields.Dict(load_default=None)
    contact_id = fields.String(load_default=None)
    merged_into = fields.String(load_default=None)

    @validates_schema
    def _shape_per_type(self, data: dict[str, Any], **_: Any) -> None:
        kind = data["type"]
        contact = data.get("contact")
        if kind in ("contact.created", "contact.updated"):
            if not contact or not str(contact.get("id") or ""):
                raise ValidationError("required for created/updated, with an id", "contact")
        elif not (data.get("contact_id") or (contact or {}).get("id")):
            raise ValidationError("required for deleted/merged", "contact_id")
        if kind == "contact.merged" and not data.get("merged_into"):
            raise ValidationError("required for contact.merged", "merged_into")


class _CrmHookSchema(Schema):
    events = fields.List(
        fields.Nested(_CrmEventSchema), required=True, validate=validate.Length(min=1, max=1000)
    )


def parse_crm(body: Any, connection_id: int) -> list[Notice]:
    """Turn a decoded CRM change-hook body into notices; raise PayloadError naming the first bad field."""
    if not isinstance(body, dict):
        raise PayloadError("body", "expected an object with an events array")
    try:
        loaded = _CrmHookSchema().load(body)
    except ValidationError as exc:
        path, message = _first_error(exc.normalized_messages())
        raise PayloadError(path, message) from None
    return [_crm_notice(raw, event, connection_id) for raw, event in zip(body["events"], loaded["events"],
                                                                            strict=True)]


def _crm_notice(raw: dict[str, Any], event: dict[str, Any], connection_id: int) -> Notice:
    contact_id = event.get("contact_id") or str((event.get("contact") or {}).get("id"))
    return Notice(
        dedupe_key=f"crm:{connection_id}:{event['id']}", realm_id=None, entity=CONTACT,
        entity_id=contact_id, operation=event["type"].split(".", 1)[1], occurred_at=event["occurred_at"],
        payload=raw,
    )


def _first_error(messages: Any, prefix: str = "") -> tuple[str, str]:
    """Flatten marshmallow's nested error dict into the first (dotted path, message)."""
    if isinstance(messages, dict):
        key = sorted(messages, key=str)[0]
        part = f"[{key}]" if isinstance(key, int) else (f".{key}" if prefix else str(key))
        if key == "_schema":
            part = ""
        return _first_error(messages[key], prefix + part)
    if isinstance(messages, list) and messages:
        return _first_error(messages[0], prefix)
    return prefix or "body", str(messages)


def _required_str(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        raise PayloadError(f"{where}.{key}", "is required and must be a non-empty string")
    return value.strip()


def _optional_str(obj: dict[str, Any], key: str, where: str) -> str | None:
    return _required_str(obj, key, where) if obj.get(key) not in (None, "") else None


def _case_insensitive(obj: dict[str, Any], key: str) -> str | None:
    for k, v in obj.items():
        if k.lower() == key and v not in (None, ""):
            return str(v)
    return None


def _timestamp(value: Any, where: str) -> datetime | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise PayloadError(where, "must be an ISO 8601 timestamp")
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip())  # Intuit sends up to 9 fractional digits
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(where, f"is not an ISO 8601 timestamp: {value!r}") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
