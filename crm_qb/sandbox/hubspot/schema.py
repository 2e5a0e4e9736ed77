"""The object types, default properties and association types the local HubSpot knows (pure data).

Names, object type ids and association type ids come from HubSpot's official Python client and public specs
(docs/hubspot/facts.md §4-§7). A type is reached by its plural name (``contacts``), singular (``contact``) or
type id (``0-1``), as HubSpot's paths accept.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class ObjectType:
    """One CRM object type: its names, its default properties and how it stamps changes."""

    name: str  # plural, as in /crm/v3/objects/<name>
    singular: str
    type_id: str
    label: str  # HubSpot's upper-case name, as in CONTACT_TO_COMPANY
    defaults: tuple[str, ...]  # properties returned when none are asked for
    created_property: str
    modified_property: str
    webhook_prefix: str | None  # "contact" for contact.creation; None: only generic object.* events
    unique: tuple[str, ...] = ()


CONTACTS = ObjectType("contacts", "contact", "0-1", "CONTACT",
                      ("createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"),
                      "createdate", "lastmodifieddate", "contact", ("email",))
COMPANIES = ObjectType("companies", "company", "0-2", "COMPANY",
                       ("createdate", "domain", "hs_lastmodifieddate", "hs_object_id", "name"),
                       "createdate", "hs_lastmodifieddate", "company")
# Object type ids of engagements are third-party observations (docs/hubspot/facts.md §6).
TASKS = ObjectType("tasks", "task", "0-27", "TASK", ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
                   "hs_createdate", "hs_lastmodifieddate", None)
CALLS = ObjectType("calls", "call", "0-48", "CALL", ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
                   "hs_createdate", "hs_lastmodifieddate", None)
MEETINGS = ObjectType("meetings", "meeting", "0-47", "MEETING",
                      ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
                      "hs_createdate", "hs_lastmodifieddate", None)
NOTES = ObjectType("notes", "note", "0-46", "NOTE", ("hs_createdate", "hs_lastmodifieddate", "hs_object_id"),
                   "hs_createdate", "hs_lastmodifieddate", None)
OBJECT_TYPES = (CONTACTS, COMPANIES, TASKS, CALLS, MEETINGS, NOTES)
_BY_ANY_NAME = MappingProxyType({key: t for t in OBJECT_TYPES for key in (t.name, t.singular, t.type_id)})


def object_type(name: str) -> ObjectType | None:
    """Return the object type called ``name`` (plural, singular or type id, case-insensitive), or None."""
    return _BY_ANY_NAME.get(name.lower())


# (from, to) -> (default unlabeled type id, primary type id or None); the inverse is looked up the same way.
# Source: hubspot-api-python hubspot/crm/association_type.py (docs/hubspot/facts.md §4).
ASSOCIATION_TYPES = MappingProxyType({
    ("contacts", "companies"): (279, 1), ("companies", "contacts"): (280, 2),
    ("tasks", "contacts"): (204, None), ("contacts", "tasks"): (203, None),
    ("tasks", "companies"): (192, None), ("companies", "tasks"): (191, None),
    ("calls", "contacts"): (194, None), ("contacts", "calls"): (193, None),
    ("calls", "companies"): (182, None), ("companies", "calls"): (181, None),
    ("meetings", "contacts"): (200, None), ("contacts", "meetings"): (199, None),
    ("meetings", "companies"): (188, None), ("companies", "meetings"): (187, None),
    ("notes", "contacts"): (202, None), ("contacts", "notes"): (201, None),
    ("notes", "companies"): (190, None), ("companies", "notes"): (189, None),
})
PRIMARY_LABEL = "Primary"


def association_names(from_type: str, to_type: str) -> dict[int, str]:
    """Return the v3 ``type`` names of the HubSpot-defined association types between two object types."""
    pair = ASSOCIATION_TYPES.get((from_type, to_type))
    if pair is None:
        return {}
    base = f"{object_type(from_type).singular}_to_{object_type(to_type).singular}"  # type: ignore[union-attr]
    names = {pair[0]: base}
    if pair[1] is not None:
        names = {pair[1]: base, pair[0]: f"{base}_unlabeled"}
    return names


def inverse_type_id(from_type: str, to_type: str, type_id: int) -> int | None:
    """Return the type id of the same association seen from the other side, or None when unknown."""
    forward = ASSOCIATION_TYPES.get((from_type, to_type))
    backward = ASSOCIATION_TYPES.get((to_type, from_type))
    if forward is None or backward is None:
        return None
    if type_id == forward[0]:
        return backward[0]
    if type_id == forward[1]:
        return backward[1]
    return None


def is_known_type_id(from_type: str, to_type: str, type_id: int) -> bool:
    """True when ``type_id`` is a HubSpot-defined association type from ``from_type`` to ``to_type``."""
    pair = ASSOCIATION_TYPES.get((from_type, to_type))
    return pair is not None and type_id in pair


def primary_type_id(from_type: str, to_type: str) -> int | None:
    """Return the "Primary" association type id between two object types, or None when there is none."""
    pair = ASSOCIATION_TYPES.get((from_type, to_type))
    return pair[1] if pair else None


def default_type_id(from_type: str, to_type: str) -> int | None:
    """Return the unlabeled (default) association type id between two object types, or None."""
    pair = ASSOCIATION_TYPES.get((from_type, to_type))
    return pair[0] if pair else None
