"""Parsing webhook bodies into change notices: one per entity change, each with its deduplication key.

Pure functions (no I/O), so both formats are tested against Intuit's real payloads without a server. Which
entities are synced, and so stored as pending rather than ignored, is decided by ``Notice.synced`` from the
transaction registry (``crm_qb.sync.pipeline.events.is_synced``).

Every body is checked by a marshmallow schema before anything is stored: each field has the type the format
gives it (an id is a string, or a number Intuit sends for one; an object is an object), and a body of the wrong
shape is a 400 naming the first bad field, never an exception. ``decode`` refuses a body nested deeper than
MAX_DEPTH levels: Intuit's and the CRM's bodies are a handful of levels deep, and a deeper one (100,000 levels
overflowed the decoder) can only be an attack.
Intuit sends two formats (docs/qbo/facts.md §8): legacy ``{"eventNotifications": [...]}`` and CloudEvents
(a JSON array of events with ``specversion`` and ``type``). A CRM sends ``{"events": [...]}``
(docs/architecture.md §5).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from marshmallow import EXCLUDE, INCLUDE, Schema, ValidationError, fields, validate, validates_schema

from crm_qb.sync.pipeline.events import ACTIVITY, CONTACT, CUSTOMER, NOTED_QBO_ENTITIES, Notice
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
CRM_CONTACT_EVENT_TYPES = ("contact.created", "contact.updated", "contact.deleted", "contact.merged")
CRM_ACTIVITY_EVENT_TYPES = ("activity.created", "activity.updated", "activity.deleted")  # DESIGN §6, §9
CRM_EVENT_TYPES = CRM_CONTACT_EVENT_TYPES + CRM_ACTIVITY_EVENT_TYPES
MAX_DEPTH = 32


class PayloadError(ValueError):
    """The body is not a valid webhook; ``field`` names where (a dotted path), ``message`` says what."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def decode(body: bytes, **options: Any) -> Any:
    """The JSON value of ``body`` (``options`` go to json.loads); PayloadError when it is not JSON or too deep."""
    try:
        value = json.loads(body, **options)
    except RecursionError:
        raise PayloadError("body", f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:
        raise PayloadError("body", "not JSON") from None
    if _too_deep(value):
        raise PayloadError("body", f"nested deeper than {MAX_DEPTH} levels")
    return value


def _too_deep(value: Any) -> bool:
    """Whether ``value`` nests lists or objects more than MAX_DEPTH levels (iterative: no recursion to exhaust)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


# -- fields shared by the schemas -----------------------------------------------------------------------------

class _Id(fields.Field[str]):
    """A non-empty identifier: a string, or a whole number (Intuit sends some ids as numbers); stripped."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValidationError("must be a non-empty string")
        text = str(value).strip()
        if not text:
            raise ValidationError("must be a non-empty string")
        return text


class _Timestamp(fields.Field[str]):
    """An ISO 8601 timestamp given as a string; loads as the stripped text (the legacy dedupe key keeps it)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise ValidationError("must be an ISO 8601 timestamp")
        try:
            parse_timestamp(value)
        except ValueError:
            raise ValidationError(f"is not an ISO 8601 timestamp: {value!r}") from None
        return value.strip()


# -- Intuit: CloudEvents ----------------------------------------------------------------------------------------

class _CloudEventSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    id = _Id(required=True)
    type = fields.String(required=True, validate=validate.Regexp(
        CLOUDEVENT_TYPE, error="expected qbo.<entity>.<operation>.v<N>, got {input!r}"))
    intuitaccountid = _Id(required=True)
    intuitentityid = _Id(load_default=None, allow_none=True)
    time = _Timestamp(load_default=None, allow_none=True)
    data = fields.Raw(load_default=None, allow_none=True)


# -- Intuit: the legacy format ------------------------------------------------------------------------------------

class _LegacyEntitySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    name = _Id(required=True)
    id = _Id(required=True)
    operation = fields.String(required=True, validate=validate.OneOf(
        sorted(LEGACY_OPERATIONS), error="must be one of {choices}"))
    lastUpdated = _Timestamp(required=True)  # Intuit's spelling


class _DataChangeEventSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    entities = fields.List(fields.Nested(_LegacyEntitySchema), required=True)


class _NotificationSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    realmId = _Id(required=True)  # Intuit's spelling
    dataChangeEvent = fields.Nested(_DataChangeEventSchema, required=True)  # Intuit's spelling


class _LegacySchema(Schema):
    class Meta:
        unknown = EXCLUDE

    eventNotifications = fields.List(fields.Nested(_NotificationSchema), required=True)  # Intuit's spelling


# Built once: a schema is stateless while it loads, and building one (with its nested schemas) costs more than
# loading a webhook with it.
_CLOUDEVENTS = _CloudEventSchema(many=True)
_LEGACY = _LegacySchema()


def parse_qbo(body: Any) -> list[Notice]:
    """Turn a decoded Intuit webhook body (either format) into notices; PayloadError if it is neither."""
    if isinstance(body, list):
        events = _plain_cloudevents(body)
        if events is None:  # anything unusual: the schema decides (and names the first bad field)
            events = load(_CLOUDEVENTS, body)
        return [_cloudevent(raw, event) for raw, event in zip(body, events, strict=True)]
    if isinstance(body, dict) and "eventNotifications" in body:
        loaded = load(_LEGACY, body)
        return [_legacy_entity(note["realmId"], raw_entity, entity)
                for raw_note, note in zip(body["eventNotifications"], loaded["eventNotifications"], strict=True)
                for raw_entity, entity in zip(raw_note["dataChangeEvent"]["entities"],
                                              note["dataChangeEvent"]["entities"], strict=True)]
    raise PayloadError("body", "expected a CloudEvents array or an object with eventNotifications")


def _plain_cloudevents(body: list[Any]) -> list[dict[str, Any]] | None:
    """What ``_CLOUDEVENTS`` loads from ``body`` when every event is plainly valid, else None.

    The schema costs more than the rest of a webhook's parsing; Intuit's events are almost always of this one
    shape (ids and times as strings, a known type), checked here in a few lines. Anything else (a number for an
    id, a missing field, a bad time) returns None and goes through the schema, which decides exactly as before;
    tests/unit/test_qbo_notices_fast_path.py holds both to the same answers.
    """
    loaded = []
    for event in body:
        if not isinstance(event, dict):
            return None
        event_id, kind, realm = event.get("id"), event.get("type"), event.get("intuitaccountid")
        entity_id, time = event.get("intuitentityid"), event.get("time")
        if not (isinstance(event_id, str) and event_id.strip() and isinstance(realm, str) and realm.strip()
                and isinstance(kind, str) and CLOUDEVENT_TYPE.match(kind)
                and (entity_id is None or _plain_id(entity_id)) and (time is None or _plain_time(time))):
            return None
        loaded.append({"id": event_id.strip(), "type": kind, "intuitaccountid": realm.strip(),
                       "intuitentityid": entity_id.strip() if entity_id is not None else None,
                       "time": time.strip() if time is not None else None, "data": event.get("data")})
    return loaded


def _plain_id(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _plain_time(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parse_timestamp(value)
    except ValueError:
        return False
    return True


def _cloudevent(raw: dict[str, Any], event: dict[str, Any]) -> Notice:
    match = CLOUDEVENT_TYPE.match(event["type"])
    assert match is not None  # the schema checked it
    entity = QBO_ENTITIES.get(match.group(1), match.group(1).capitalize())
    operation = CLOUDEVENT_OPERATIONS.get(match.group(2), match.group(2).capitalize())
    data: dict[str, Any] = event["data"] if isinstance(event["data"], dict) else {}
    return Notice(
        dedupe_key=f"ce:{event['id']}", realm_id=event["intuitaccountid"], entity=entity,
        entity_id=event["intuitentityid"], operation=operation,
        occurred_at=parse_timestamp(event["time"]) if event["time"] else None,
        payload={"cloudevent": raw, "deleted_id": _case_insensitive(data, "deletedid")},
    )


def _legacy_entity(realm: str, raw: dict[str, Any], entity: dict[str, Any]) -> Notice:
    canonical = QBO_ENTITIES.get(entity["name"].lower(), entity["name"])
    entity_id, operation, last_updated = entity["id"], entity["operation"], entity["lastUpdated"]
    return Notice(
        dedupe_key=f"legacy:{realm}:{canonical}:{entity_id}:{operation}:{last_updated}",
        realm_id=realm, entity=canonical, entity_id=entity_id, operation=operation,
        occurred_at=parse_timestamp(last_updated), payload={"legacy": raw, "deleted_id": _case_insensitive(raw,
                                                                                                       "deletedid")},
    )


# -- the CRM (docs/architecture.md §5) ---------------------------------------------------------------------------

class _ContactSchema(Schema):
    class Meta:
        unknown = INCLUDE  # the contact's other fields are the CRM's; the sync reads the contact back by id

    id = fields.String(required=True, validate=validate.Length(min=1))


class _ActivitySchema(Schema):
    class Meta:
        unknown = INCLUDE  # the activity's other fields are the CRM's; the time sync reads it back by id

    id = fields.String(required=True, validate=validate.Length(min=1))


class _CrmEventSchema(Schema):
    id = fields.String(required=True, validate=validate.Length(min=1, max=200))
    type = fields.String(required=True, validate=validate.OneOf(CRM_EVENT_TYPES))
    occurred_at = fields.AwareDateTime(required=True, default_timezone=UTC)
    contact = fields.Nested(_ContactSchema, load_default=None, allow_none=True)
    contact_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1))
    merged_into = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1))
    activity = fields.Nested(_ActivitySchema, load_default=None, allow_none=True)
    activity_id = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1))

    @validates_schema
    def _shape_per_type(self, data: dict[str, Any], **_: Any) -> None:
        kind = data["type"]
        if kind in CRM_ACTIVITY_EVENT_TYPES:
            _activity_shape(kind, data)
            return
        contact = data.get("contact")
        if kind in ("contact.created", "contact.updated"):
            if not contact:
                raise ValidationError("required for created/updated, with an id", "contact")
        elif not (data.get("contact_id") or (contact or {}).get("id")):
            raise ValidationError("required for deleted/merged", "contact_id")
        if kind == "contact.merged" and not data.get("merged_into"):
            raise ValidationError("required for contact.merged", "merged_into")


def _activity_shape(kind: str, data: dict[str, Any]) -> None:
    """activity.created/updated carry the activity (with an id); activity.deleted its id."""
    activity = data.get("activity")
    if kind != "activity.deleted":
        if not activity:
            raise ValidationError("required for activity.created/updated, with an id", "activity")
    elif not (data.get("activity_id") or (activity or {}).get("id")):
        raise ValidationError("required for activity.deleted", "activity_id")


class _CrmHookSchema(Schema):
    events = fields.List(
        fields.Nested(_CrmEventSchema), required=True, validate=validate.Length(min=1, max=1000)
    )


_CRM_HOOK = _CrmHookSchema()


def parse_crm(body: Any, connection_id: int) -> list[Notice]:
    """Turn a decoded CRM change-hook body into notices; raise PayloadError naming the first bad field."""
    if not isinstance(body, dict):
        raise PayloadError("body", "expected an object with an events array")
    loaded = load(_CRM_HOOK, body)
    return [_crm_notice(raw, event, connection_id) for raw, event in zip(body["events"], loaded["events"],
                                                                            strict=True)]


def _crm_notice(raw: dict[str, Any], event: dict[str, Any], connection_id: int) -> Notice:
    kind, operation = event["type"].split(".", 1)
    if kind == "activity":
        entity, entity_id = ACTIVITY, event.get("activity_id") or str((event.get("activity") or {}).get("id"))
    else:
        entity, entity_id = CONTACT, event.get("contact_id") or str((event.get("contact") or {}).get("id"))
    return Notice(
        dedupe_key=f"crm:{connection_id}:{event['id']}", realm_id=None, entity=entity,
        entity_id=entity_id, operation=operation, occurred_at=event["occurred_at"], payload=raw,
    )


# -- helpers -------------------------------------------------------------------------------------------------------

def load(schema: Schema, body: Any) -> Any:
    """Load ``body`` with ``schema``; PayloadError naming the first bad field (a dotted path)."""
    try:
        return schema.load(body)
    except ValidationError as exc:
        path, message = _first_error(exc.normalized_messages())
        raise PayloadError(path, message) from None


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


def _case_insensitive(obj: dict[str, Any], key: str) -> str | None:
    for k, v in obj.items():
        if k.lower() == key and v not in (None, ""):
            return str(v)
    return None


def parse_timestamp(value: str) -> datetime:
    """An ISO 8601 timestamp as aware UTC (naive means UTC); ValueError when it is not one."""
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip())  # Intuit sends up to 9 fractional digits
    parsed = datetime.fromisoformat(text)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
