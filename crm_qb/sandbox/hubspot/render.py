"""HubSpot's JSON for stored objects: ``SimplePublicObject`` (with properties, history, associations).

Which properties come back follows HubSpot: the type's defaults when none are asked for; otherwise the ones
asked for (null when unset, left out when no such property exists) plus ``hs_object_id``, the create date and
the last-modified date, which HubSpot always includes (docs/hubspot/facts.md §3).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from crm_qb.sandbox.hubspot.schema import association_names, object_type
from crm_qb.sandbox.hubspot.store import HubSpotStore


def split_names(values: Iterable[str]) -> list[str]:
    """Return property or type names from query values given repeated (``multi``) or comma-separated."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def simple_object(store: HubSpotStore, record: dict[str, Any], properties: Sequence[str] | None = None,
                  history: Sequence[str] = (), associations: Sequence[str] = (),
                  extra: Iterable[str] = ()) -> dict[str, Any]:
    """Return a stored object as HubSpot's ``SimplePublicObject[WithAssociations]``."""
    kind = object_type(record["type"])
    assert kind is not None
    names = list(properties) if properties else list(kind.defaults)
    names += [n for n in extra if n not in names]
    always = ("hs_object_id", kind.created_property, kind.modified_property)
    names += [n for n in always if n not in names]
    values = record["properties"]
    shown = {n: values.get(n) for n in names if store.definition(kind.name, n) is not None}
    body: dict[str, Any] = {"id": record["id"], "properties": shown, "createdAt": record["createdAt"],
                            "updatedAt": record["updatedAt"], "archived": record["archived"]}
    if record["archived"]:
        body["archivedAt"] = record["archivedAt"]
    if history:
        body["propertiesWithHistory"] = {
            n: [{"value": v, "timestamp": t, "sourceType": s} for v, t, s in record["history"].get(n, [])]
            for n in history if store.definition(kind.name, n) is not None}
    linked = associated_ids(store, record, associations)
    if linked:
        body["associations"] = linked
    return body


def associated_ids(store: HubSpotStore, record: dict[str, Any], to_types: Sequence[str]) -> dict[str, Any]:
    """Return v3's ``associations`` map ({toType: {results: [{id, type}]}}) for the asked types that exist."""
    linked: dict[str, Any] = {}
    for asked in to_types:
        to_kind = object_type(asked)
        if to_kind is None:
            continue
        names = association_names(record["type"], to_kind.name)
        results = [{"id": to_id, "type": names.get(type_id, f"{type_id}")}
                   for to_id, labels in store.associations(record["type"], record["id"], to_kind.name)
                   for type_id in sorted(labels)]
        if results:
            linked[to_kind.name] = {"results": results}
    return linked
