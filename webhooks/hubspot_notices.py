"""HubSpot webhook bodies (docs/hubspot/facts.md §8.2) parsed into change notices, as pure functions.

A delivery is a JSON array of events, for one or several portals. Each event has ``eventId``,
``subscriptionType``, ``portalId``, ``occurredAt`` (epoch ms) and usually ``objectId``. Contacts are what crm-qb
syncs, so only ``contact.*`` events become notices (the contact is read back by id, as for the REST contract):
creation → created, propertyChange and restore → updated, deletion and privacyDeletion → deleted, merge → one
``merged`` notice per merged-away id (HubSpot's merge makes a new record, ``newObjectId``; the old ids resolve
to it, docs/hubspot/facts.md §3.6), then an ``updated`` notice for the new record. Calls and meetings
(``object.*`` with ``objectTypeId`` 0-48 / 0-47) become activity notices (``call-<id>``, ``meeting-<id>``) for
billable time; so does a call's or meeting's ``object.associationChange`` (its ``fromObjectId`` is the call or
meeting), since the contact a call is logged against may be set after the call was made. Other events (companies,
contact-side associations, tasks) are counted and not stored.

A contact's version is its ``updatedAt`` in milliseconds (crm_qb.crm.hubspot.mapping), and a creation or
property change is taken to report the version it produced: its ``occurredAt`` (``payload["version"]``). The
drain then settles the echo of crm-qb's own write, whose version the link already agreed on, without reading
the contact again. That HubSpot stamps both with one moment is not documented (docs/hubspot/facts.md §8.2; the
local HubSpot does): when they differ, nothing matches and the contact is read as before.

HubSpot does not promise a unique ``eventId`` and redelivers a failed batch with a higher ``attemptNumber``, so
a notice's deduplication key is the connection, the event id, type, object, time and property: a redelivery
hits the same key, two different changes never do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from crm_qb.crm.hubspot.mapping import activity_id
from crm_qb.sync.pipeline.events import ACTIVITY, CONTACT, Notice
from webhooks.notices import PayloadError, load

ACTIVITY_OPERATIONS = {"object.creation": "created", "object.propertyChange": "updated",
                       "object.restore": "updated", "object.deletion": "deleted",
                       "object.associationChange": "updated"}
ACTIVITY_OBJECTS = {"0-48": "calls", "0-47": "meetings"}  # objectTypeId -> HubSpot object type (facts.md §4)
OPERATIONS = {"contact.creation": "created", "contact.propertyChange": "updated", "contact.restore": "updated",
              "contact.deletion": "deleted", "contact.privacyDeletion": "deleted", "contact.merge": "merged"}
MAX_EVENTS = 1000
REPORTS_VERSION = ("created", "updated")
LATEST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last moment a datetime holds


class _Whole(fields.Field[int]):
    """A non-negative whole number HubSpot sends as a JSON number (or, leniently, a string of digits)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValidationError("must be a whole number")
        text = str(value).strip()
        if not text.isascii() or not text.isdigit() or len(text) > 19:
            raise ValidationError("must be a whole number")
        return int(text)


class _EventSchema(Schema):
    class Meta:
        unknown = EXCLUDE

    eventId = _Whole(required=True)  # HubSpot's spelling, as every field here
    subscriptionType = fields.String(required=True, validate=validate.Length(min=1, max=100))
    portalId = _Whole(required=True)
    occurredAt = _Whole(required=True, validate=validate.Range(max=LATEST_MS, error="is not a time"))
    objectId = _Whole(load_default=None)
    propertyName = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))
    newObjectId = _Whole(load_default=None)
    primaryObjectId = _Whole(load_default=None)
    mergedObjectIds = fields.List(_Whole(), load_default=list, validate=validate.Length(max=100))
    objectTypeId = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=20))
    fromObjectId = _Whole(load_default=None)


_EVENTS = _EventSchema(many=True)


@dataclass(frozen=True)
class HubSpotEvent:
    """One event of a delivery, checked, with its raw object for the stored payload."""

    portal_id: str
    raw: dict[str, Any]
    checked: dict[str, Any]


def parse_hubspot(body: Any) -> list[HubSpotEvent]:
    """The events of a decoded delivery; PayloadError naming the first bad field when it is not HubSpot's shape."""
    if not isinstance(body, list):
        raise PayloadError("body", "expected a JSON array of HubSpot events")
    if not 1 <= len(body) <= MAX_EVENTS:
        raise PayloadError("body", f"expected 1 to {MAX_EVENTS} events, got {len(body)}")
    checked = load(_EVENTS, body)
    return [HubSpotEvent(str(event["portalId"]), raw, event) for raw, event in zip(body, checked, strict=True)]


def portals_named(body: Any) -> set[str]:
    """The portal ids a decoded body names (for choosing secrets before it is validated); never raises."""
    if not isinstance(body, list):
        return set()
    found = [item.get("portalId") for item in body[:MAX_EVENTS] if isinstance(item, dict)]
    return {str(p) for p in found if isinstance(p, int | str) and not isinstance(p, bool) and is_portal_id(str(p))}


def is_portal_id(text: str) -> bool:
    """Whether ``text`` can be a HubSpot portal id: ASCII digits, at most 19 (an id column holds it)."""
    return text.isascii() and text.isdigit() and len(text) <= 19


def notices_for(events: list[HubSpotEvent], connection_id: int) -> list[Notice]:
    """The notices of the events that concern contacts, for one connection (the caller picked its portal)."""
    return [notice for event in events for notice in _notices(event, connection_id)]


def _notices(event: HubSpotEvent, connection_id: int) -> list[Notice]:
    data = event.checked
    objects = ACTIVITY_OBJECTS.get(data["objectTypeId"] or "")
    object_id = data["fromObjectId"] if data["subscriptionType"] == "object.associationChange" else data["objectId"]
    if objects is not None and data["subscriptionType"] in ACTIVITY_OPERATIONS and object_id is not None:
        # a call or meeting: billable time (DESIGN §9), read back by its activity id as the REST contract's are
        return [_notice(event, connection_id, activity_id(objects, str(object_id)),
                        ACTIVITY_OPERATIONS[data["subscriptionType"]], entity=ACTIVITY)]
    operation = OPERATIONS.get(data["subscriptionType"])
    if operation is None:
        return []
    if operation == "merged":
        return _merge_notices(event, connection_id)
    if data["objectId"] is None:
        return []
    return [_notice(event, connection_id, str(data["objectId"]), operation)]


def _merge_notices(event: HubSpotEvent, connection_id: int) -> list[Notice]:
    data = event.checked
    survivor = data["newObjectId"] or data["primaryObjectId"] or data["objectId"]
    if survivor is None:
        return []
    gone = [i for i in [data["primaryObjectId"], *data["mergedObjectIds"], data["objectId"]] if i not in (None,
                                                                                                     survivor)]
    merged = [_notice(event, connection_id, str(i), "merged", str(survivor)) for i in dict.fromkeys(gone)]
    return [*merged, _notice(event, connection_id, str(survivor), "updated")]


def _notice(event: HubSpotEvent, connection_id: int, contact_id: str, operation: str,
            merged_into: str | None = None, entity: str = CONTACT) -> Notice:
    data = event.checked
    key = ":".join(str(part) for part in ("hubspot", connection_id, data["eventId"], data["subscriptionType"],
                                          contact_id, data["occurredAt"], data["propertyName"] or ""))
    payload = {"hubspot": event.raw, **({"merged_into": merged_into} if merged_into else {})}
    if entity == CONTACT and operation in REPORTS_VERSION:
        payload["version"] = data["occurredAt"]  # a contact's version is its updatedAt (ms): see the docstring
    return Notice(dedupe_key=key, realm_id=None, entity=entity, entity_id=contact_id, operation=operation,
                  occurred_at=datetime.fromtimestamp(data["occurredAt"] / 1000, UTC), payload=payload)
