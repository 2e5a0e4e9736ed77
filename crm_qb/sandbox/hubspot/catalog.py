"""Property definitions and property groups of one portal: HubSpot's defaults per object type and custom ones.

Thread-safe; every change is written through the store's persister. Creating a property or group whose name
is taken answers 409; HubSpot-defined definitions keep their type and cannot be archived (docs/hubspot/facts.md
§5).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from crm_qb.sandbox.hubspot import definitions as defs
from crm_qb.sandbox.hubspot import errors
from crm_qb.sandbox.hubspot.persist import NullPersister, Persister
from crm_qb.sandbox.hubspot.schema import OBJECT_TYPES, ObjectType, object_type


def require_type(name: str) -> ObjectType:
    """Return the object type ``name`` names, or raise HubSpot's 400 for an unknown one."""
    found = object_type(name)
    if found is None:
        raise errors.HubSpotError(400, errors.error_body(f"Unable to infer object type from: {name}",
                                                         "VALIDATION_ERROR"))
    return found


class PropertyCatalog:
    """The property definitions and groups of every object type."""

    def __init__(self, clock: Callable[[], datetime], persister: Persister | NullPersister,
                 stored: dict[str, dict[str, Any]]) -> None:
        self._clock, self._persist = clock, persister
        self._lock = threading.RLock()
        self._definitions: dict[str, dict[str, dict[str, Any]]] = {t.name: {} for t in OBJECT_TYPES}
        self._groups: dict[str, dict[str, dict[str, Any]]] = {t.name: {} for t in OBJECT_TYPES}
        self._install_defaults()
        for key, definition in stored.get("definition", {}).items():
            self._definitions[key.split("/", 1)[0]][definition["name"]] = definition
        for key, group in stored.get("group", {}).items():
            self._groups[key.split("/", 1)[0]][group["name"]] = group

    def _install_defaults(self) -> None:
        now = self._clock()
        for type_name, specs in defs.DEFAULTS.items():
            for spec in specs:
                self._definitions[type_name][spec[0]] = defs.make_definition(type_name, spec, now)
            for order, (name, label) in enumerate(defs.DEFAULT_GROUPS[type_name]):
                self._groups[type_name][name] = {"name": name, "label": label, "displayOrder": order,
                                                 "archived": False}

    def reset(self) -> None:
        """Forget custom definitions and groups (persisted ones too); the defaults come back."""
        with self._lock:
            for table, kind in ((self._definitions, "definition"), (self._groups, "group")):
                for type_name, entries in table.items():
                    for name in entries:
                        self._persist.put(kind, f"{type_name}/{name}", None)
                    entries.clear()
            self._install_defaults()
            self._persist.flush()

    def _type(self, name: str) -> ObjectType:
        return require_type(name)

    def kind_of(self, type_name: str) -> Callable[[str], str]:
        """Return a function giving the HubSpot type of a property of ``type_name`` ("string" when unknown)."""
        table = self._definitions[self._type(type_name).name]
        return lambda name: table[name]["type"] if name in table else "string"

    def definition(self, type_name: str, name: str) -> dict[str, Any] | None:
        """Return a live (not archived) property definition, or None."""
        found = self._definitions[self._type(type_name).name].get(name)
        return found if found and not found["archived"] else None

    def definitions(self, type_name: str, archived: bool = False) -> list[dict[str, Any]]:
        """Return the property definitions of a type (archived ones only when asked)."""
        kind = self._type(type_name)
        with self._lock:
            return [d for d in self._definitions[kind.name].values() if d["archived"] == archived]

    def create_definition(self, type_name: str, given: Any) -> dict[str, Any]:
        """Create a custom property; 409 when the name is taken, 400 when the body or group is wrong."""
        kind = self._type(type_name)
        problems = defs.check_definition(given, creating=True)
        if problems:
            raise errors.validation_error("; ".join(problems))
        with self._lock:
            existing = self._definitions[kind.name].get(given["name"])
            if existing is not None and not existing["archived"]:
                raise errors.HubSpotError(409, errors.error_body(
                    f"A property named '{given['name']}' already exists.", "OBJECT_ALREADY_EXISTS",
                    context={"name": [given["name"]]}))
            self._require_group(kind, given["groupName"])
            definition = defs.property_object(given, self._clock())
            self._definitions[kind.name][definition["name"]] = definition
            self._persist.put("definition", f"{kind.name}/{definition['name']}", definition)
            self._persist.flush()
            return definition

    def update_definition(self, type_name: str, name: str, given: Any) -> dict[str, Any]:
        """Change a custom property's label, description, group, options, display order or flags."""
        kind = self._type(type_name)
        problems = defs.check_definition(given, creating=False)
        if problems:
            raise errors.validation_error("; ".join(problems))
        with self._lock:
            definition = self.definition(kind.name, name)
            if definition is None:
                raise errors.resource_not_found(f"Unable to find property {name} on object type {kind.name}")
            if definition["hubspotDefined"] and set(given) - {"label", "description", "displayOrder", "hidden"}:
                raise errors.validation_error(f"The definition of HubSpot property {name} is read-only")
            if "groupName" in given:
                self._require_group(kind, given["groupName"])
            rebuilt = defs.property_object({**definition, **given}, self._clock(),
                                           hubspot_defined=definition["hubspotDefined"],
                                           read_only=definition["modificationMetadata"]["readOnlyValue"])
            rebuilt["createdAt"] = definition["createdAt"]
            self._definitions[kind.name][name] = rebuilt
            self._persist.put("definition", f"{kind.name}/{name}", rebuilt)
            self._persist.flush()
            return rebuilt

    def archive_definition(self, type_name: str, name: str) -> None:
        """Archive a custom property (HubSpot-defined ones cannot be archived)."""
        kind = self._type(type_name)
        with self._lock:
            definition = self.definition(kind.name, name)
            if definition is None:
                raise errors.resource_not_found(f"Unable to find property {name} on object type {kind.name}")
            if definition["hubspotDefined"]:
                raise errors.validation_error(f"HubSpot-defined property {name} cannot be archived")
            definition["archived"], definition["archivedAt"] = True, defs.iso_ms(self._clock())
            self._persist.put("definition", f"{kind.name}/{name}", definition)
            self._persist.flush()

    def _require_group(self, kind: ObjectType, group_name: str) -> None:
        group = self._groups[kind.name].get(group_name)
        if group is None or group["archived"]:
            raise errors.validation_error(f"Property group {group_name} does not exist on {kind.name}",
                                          context={"groupName": [group_name]})

    def groups(self, type_name: str, archived: bool = False) -> list[dict[str, Any]]:
        """Return the property groups of a type."""
        kind = self._type(type_name)
        with self._lock:
            return [g for g in self._groups[kind.name].values() if g["archived"] == archived]

    def group(self, type_name: str, name: str) -> dict[str, Any]:
        """Return one live property group; 404 when absent."""
        kind = self._type(type_name)
        with self._lock:
            group = self._groups[kind.name].get(name)
            if group is None or group["archived"]:
                raise errors.resource_not_found(f"Unable to find property group {name} on {kind.name}")
            return group

    def save_group(self, type_name: str, given: Any, name: str | None = None) -> dict[str, Any]:
        """Create a group (``name`` None; 409 when taken) or change one's label and display order."""
        kind = self._type(type_name)
        if not isinstance(given, dict):
            raise errors.validation_error("the body must be a JSON object")
        with self._lock:
            if name is None:
                if not given.get("name") or not given.get("label"):
                    raise errors.validation_error("name and label are required")
                if not defs.NAME_SHAPE.match(str(given["name"])):
                    raise errors.validation_error("name must start with a lowercase letter and use a-z, 0-9, _")
                existing = self._groups[kind.name].get(given["name"])
                if existing is not None and not existing["archived"]:
                    raise errors.HubSpotError(409, errors.error_body(
                        f"A property group named '{given['name']}' already exists.", "OBJECT_ALREADY_EXISTS",
                        context={"name": [given["name"]]}))
                group = {"name": given["name"], "label": given["label"],
                         "displayOrder": int(given.get("displayOrder", -1)), "archived": False}
            else:
                group = {**self.group(kind.name, name), **{k: given[k] for k in ("label", "displayOrder")
                                                           if k in given}}
            self._groups[kind.name][group["name"]] = group
            self._persist.put("group", f"{kind.name}/{group['name']}", group)
            self._persist.flush()
            return group

    def archive_group(self, type_name: str, name: str) -> None:
        """Archive a property group."""
        kind = self._type(type_name)
        with self._lock:
            group = self.group(kind.name, name)
            group["archived"] = True
            self._persist.put("group", f"{kind.name}/{name}", group)
            self._persist.flush()
