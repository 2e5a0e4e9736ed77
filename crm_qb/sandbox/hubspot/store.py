"""The local HubSpot's records: CRM objects, associations, property definitions and groups, owners.

Everything lives in memory under one lock (and is written through to SQLite when persistence is on); every
change is reported through ``emit`` while the lock is held, so change events leave in the order the changes
happened. Objects are dicts shaped for persistence; ``crm_qb.sandbox.hubspot.render`` turns them into HubSpot's
JSON. How HubSpot behaves where the store must choose (ids, merges, events on create) is documented in
docs/hubspot/sandbox.md.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crm_qb.sandbox.hubspot import definitions as defs
from crm_qb.sandbox.hubspot import errors
from crm_qb.sandbox.hubspot.catalog import PropertyCatalog, require_type
from crm_qb.sandbox.hubspot.persist import NullPersister, Persister
from crm_qb.sandbox.hubspot.schema import (
    OBJECT_TYPES,
    ObjectType,
    default_type_id,
    inverse_type_id,
    is_known_type_id,
    object_type,
    primary_type_id,
)
from crm_qb.sandbox.hubspot.search import SearchRequest, matches, ordered

Emit = Callable[[dict[str, Any]], None]
Clock = Callable[[], datetime]
FIRST_ID = 1001
MAX_HISTORY = 20
SYSTEM_PROPERTIES = frozenset({"hs_object_id", "createdate", "lastmodifieddate", "hs_lastmodifieddate",
                               "hs_createdate", "hs_merged_object_ids"})


@dataclass(frozen=True)
class Source:
    """Who made a change, as webhook events report it (``changeSource`` and ``sourceId``)."""

    change_source: str
    source_id: str | None = None


API_SOURCE = Source("INTEGRATION")
CRM_USER = Source("CRM", "userId:1296619")


def encode_after(object_id: str) -> str:
    """Return the paging cursor pointing at ``object_id`` (HubSpot's look: base64 of the id and a newline)."""
    return base64.b64encode(f"{object_id}\n".encode()).decode()


def decode_after(after: str | None) -> int:
    """Return the id a cursor points at; a plain number is accepted too; 0 means from the start."""
    if not after:
        return 0
    if after.isdigit():
        return int(after)
    try:
        text = base64.b64decode(after + "=" * (-len(after) % 4), validate=True).decode().strip()
    except (binascii.Error, UnicodeDecodeError):
        text = ""
    if not text.isdigit():
        raise errors.validation_error(f"Invalid paging cursor: {after}", context={"after": [after]})
    return int(text)


class HubSpotStore:
    """Thread-safe state of one HubSpot portal; every change goes through ``emit``."""

    def __init__(self, clock: Clock, emit: Emit, persister: Persister | NullPersister | None = None) -> None:
        self._clock, self._emit = clock, emit
        self._persist = persister or NullPersister()
        self._lock = threading.RLock()
        self._objects: dict[str, dict[str, dict[str, Any]]] = {t.name: {} for t in OBJECT_TYPES}
        self._aliases: dict[str, dict[str, str]] = {t.name: {} for t in OBJECT_TYPES}
        self._links: dict[tuple[str, str, str, str], dict[int, str]] = {}
        self._owners: dict[str, dict[str, Any]] = {}
        self._order: dict[str, list[int]] = {t.name: [] for t in OBJECT_TYPES}  # ids ever stored, ascending
        self._unique: dict[tuple[str, str], dict[str, str]] = {(t.name, p): {} for t in OBJECT_TYPES
                                                                for p in t.unique}
        self._next_id = FIRST_ID
        stored = self._persist.load()
        self.catalog = PropertyCatalog(clock, self._persist, stored)
        self._load(stored)

    # -- set-up ---------------------------------------------------------------------------------------

    def _load(self, stored: dict[str, dict[str, Any]]) -> None:
        for record in stored.get("object", {}).values():
            self._objects[record["type"]][record["id"]] = record
        for key, target in stored.get("alias", {}).items():
            type_name, object_id = key.split("/", 1)
            self._aliases[type_name][object_id] = target
        for key, labels in stored.get("link", {}).items():
            parts = key.split("/")
            self._links[(parts[0], parts[1], parts[2], parts[3])] = {int(k): v for k, v in labels.items()}
        self._owners.update(stored.get("owner", {}))
        self._next_id = int(stored.get("meta", {}).get("next_id", self._next_id))
        for type_name, table in self._objects.items():
            self._order[type_name] = sorted(int(i) for i in table)
            for record in table.values():
                self._index(record)

    def _index(self, record: dict[str, Any], old: dict[str, str] | None = None) -> None:
        """Keep the unique-value index in step with a record (``old``: its properties before the change)."""
        kind = object_type(record["type"])
        assert kind is not None
        for name in kind.unique:
            index = self._unique[(kind.name, name)]
            before = ((old or {}).get(name) or "").casefold()
            if before and index.get(before) == record["id"]:
                del index[before]
            value = (record["properties"].get(name) or "").casefold()
            if value and not record["archived"]:
                index[value] = record["id"]

    def close(self) -> None:
        """Write what is pending and close the file."""
        self._persist.close()

    def wipe(self) -> None:
        """Forget every object, association, custom definition and owner, persisted ones too (no events)."""
        with self._lock:
            for table, kind in ((self._objects, "object"), (self._aliases, "alias")):
                for type_name, entries in table.items():
                    for key in entries:
                        self._persist.put(kind, f"{type_name}/{key}", None)
                    entries.clear()
            for link in self._links:
                self._persist.put("link", "/".join(link), None)
            for owner_id in self._owners:
                self._persist.put("owner", owner_id, None)
            self._links.clear()
            self._owners.clear()
            for order in self._order.values():
                order.clear()
            for index in self._unique.values():
                index.clear()
            self.catalog.reset()

    # -- helpers --------------------------------------------------------------------------------------

    def _new_id(self) -> str:
        object_id = str(self._next_id)
        self._next_id += 1
        self._persist.put("meta", "next_id", self._next_id)
        return object_id

    def _save(self, record: dict[str, Any]) -> None:
        self._persist.put("object", f"{record['type']}/{record['id']}", record)

    def _type(self, name: str) -> ObjectType:
        return require_type(name)

    def kind_of(self, type_name: str) -> Callable[[str], str]:
        """Return a function giving the HubSpot type of a property of ``type_name`` ("string" when unknown)."""
        return self.catalog.kind_of(type_name)

    def definition(self, type_name: str, name: str) -> dict[str, Any] | None:
        """Return a live (not archived) property definition, or None."""
        return self.catalog.definition(type_name, name)

    # -- reading objects ------------------------------------------------------------------------------

    def resolve(self, type_name: str, object_id: str) -> str:
        """Return the id an old (merged-away) id now points at, or the id itself."""
        return self._aliases[type_name].get(object_id, object_id)

    def get(self, type_name: str, object_id: str, id_property: str | None = None,
            archived: bool = False) -> dict[str, Any]:
        """Return an object by id (or by a unique property), following merges; 404 when absent."""
        kind = self._type(type_name)
        with self._lock:
            record = self._find(kind, object_id, id_property)
            if record is None or record["archived"] != archived:
                raise errors.object_not_found(object_id)
            return record

    def _find(self, kind: ObjectType, value: str, id_property: str | None) -> dict[str, Any] | None:
        table = self._objects[kind.name]
        if id_property in (None, "", "hs_object_id"):
            return table.get(self.resolve(kind.name, value))
        definition = self.catalog.definition(kind.name, id_property or "")
        if id_property not in kind.unique and not (definition and definition.get("hasUniqueValue")):
            raise errors.validation_error(f"{id_property} is not a unique property of {kind.name}",
                                          context={"idProperty": [str(id_property)]})
        found = self.search_unique(kind.name, str(id_property), value)
        return table.get(found) if found else None

    def search_unique(self, type_name: str, name: str, value: str) -> str | None:
        """Return the id of the live object whose ``name`` equals ``value`` (case-insensitive), or None."""
        kind = self._type(type_name)
        folded = value.strip().casefold()
        with self._lock:
            index = self._unique.get((kind.name, name))
            if index is not None:
                return index.get(folded)
            return next((r["id"] for r in self._objects[kind.name].values()
                         if not r["archived"] and (r["properties"].get(name) or "").casefold() == folded), None)

    def page(self, type_name: str, after: str | None, limit: int, archived: bool = False
             ) -> tuple[list[dict[str, Any]], str | None]:
        """Return up to ``limit`` objects in id order from the cursor, and the next cursor (or None)."""
        kind = self._type(type_name)
        start = decode_after(after)
        table, order = self._objects[kind.name], self._order[kind.name]
        rows: list[dict[str, Any]] = []
        with self._lock:
            for object_id in order[bisect.bisect_left(order, start):]:
                record = table.get(str(object_id))
                if record is not None and record["archived"] == archived:
                    rows.append(record)
                    if len(rows) > limit:
                        break
        next_after = encode_after(rows[limit]["id"]) if len(rows) > limit else None
        return rows[:limit], next_after

    def search(self, type_name: str, request: SearchRequest) -> tuple[list[dict[str, Any]], int]:
        """Return the page of objects matching a search and the total number of matches."""
        kind = self._type(type_name)
        kind_of = self.kind_of(kind.name)
        with self._lock:
            hits = [(r["id"], r["properties"]) for r in self._objects[kind.name].values()
                    if not r["archived"] and matches(r["properties"], request, kind_of, kind.name)]
            ids = ordered(hits, request.sorts, kind_of)
            page = [self._objects[kind.name][i] for i in ids[request.offset:request.offset + request.limit]]
        return page, len(ids)

    # -- writing objects ------------------------------------------------------------------------------

    def check_properties(self, type_name: str, given: Any, creating: bool) -> dict[str, str]:
        """Return the stored form of a ``properties`` object, or raise HubSpot's validation error."""
        kind = self._type(type_name)
        if not isinstance(given, dict):
            raise errors.validation_error("properties must be an object of property names to values")
        cleaned, problems = {}, []
        for name, raw in given.items():
            definition = self.definition(kind.name, name)
            if definition is None:
                problems.append({"name": name, "error": "PROPERTY_DOESNT_EXIST",
                                 "message": f'Property "{name}" does not exist'})
                continue
            if name in defs.READ_ONLY and not (creating and name == "createdate"):
                problems.append({"name": name, "error": "READ_ONLY_VALUE",
                                 "message": f"{name} is a read only property; its value cannot be set."})
                continue
            value, problem = defs.coerce(definition, raw, kind.name)
            if problem:
                problems.append(problem)
            else:
                cleaned[name] = value or ""
        if problems:
            raise errors.property_errors(problems)
        return cleaned

    def _check_unique(self, kind: ObjectType, values: dict[str, str], own_id: str | None) -> None:
        for name in kind.unique:
            wanted = (values.get(name) or "").casefold()
            other = self._unique[(kind.name, name)].get(wanted) if wanted else None
            if other is not None and other != own_id:
                raise errors.duplicate_contact(other) if kind.name == "contacts" else errors.conflict(
                    f"An object with {name} {values[name]} already exists. Existing ID: {other}")

    def create(self, type_name: str, properties: Any, associations: Any = None,
               source: Source = API_SOURCE, notify: bool = True) -> dict[str, Any]:
        """Create an object (with optional ``associations`` as HubSpot's create body has them); return it.

        ``notify=False`` sends no change events (bulk seeding).
        """
        kind = self._type(type_name)
        with self._lock:
            cleaned = self.check_properties(kind.name, properties or {}, creating=True)
            links = self._check_associations(kind, associations or [])
            self._check_unique(kind, cleaned, None)
            record = self._new_record(kind, cleaned, source, notify)
            for to_type, to_id, specs in links:
                self._link(kind.name, record["id"], to_type, to_id, specs, source)
            self._persist.flush()
            return record

    def _new_record(self, kind: ObjectType, cleaned: dict[str, str], source: Source,
                    notify: bool = True) -> dict[str, Any]:
        now = self._clock()
        object_id = self._new_id()
        stamp = defs.iso_ms(now)
        created = cleaned.pop("createdate", "") or stamp
        values = {k: v for k, v in cleaned.items() if v != ""}
        values.update({"hs_object_id": object_id, kind.created_property: created, kind.modified_property: stamp})
        record = {"type": kind.name, "id": object_id, "properties": values, "createdAt": created,
                  "updatedAt": stamp, "archived": False, "archivedAt": None,
                  "history": {name: [[value, stamp, source.change_source]] for name, value in values.items()}}
        self._objects[kind.name][object_id] = record
        self._order[kind.name].append(int(object_id))
        self._index(record)
        self._save(record)
        if not notify:
            return record
        occurred = defs.epoch_ms(now)
        self._emit(_event("creation", kind, object_id, occurred, source))
        for name, value in values.items():
            if name not in SYSTEM_PROPERTIES:
                self._emit(_event("propertyChange", kind, object_id, occurred, source,
                                  propertyName=name, propertyValue=value))
        return record

    def update(self, type_name: str, object_id: str, properties: Any, source: Source = API_SOURCE,
               id_property: str | None = None) -> dict[str, Any]:
        """Change some properties of a live object ("" clears one); return it."""
        kind = self._type(type_name)
        with self._lock:
            record = self._find(kind, object_id, id_property)
            if record is None or record["archived"]:
                raise errors.object_not_found(object_id)
            cleaned = self.check_properties(kind.name, properties or {}, creating=False)
            self._check_unique(kind, cleaned, record["id"])
            self._apply(kind, record, cleaned, source)
            self._persist.flush()
            return record

    def _apply(self, kind: ObjectType, record: dict[str, Any], cleaned: dict[str, str], source: Source) -> None:
        changed = {k: v for k, v in cleaned.items() if (record["properties"].get(k) or "") != v}
        if not changed:
            return
        now = self._clock()
        stamp = defs.iso_ms(now)
        old = dict(record["properties"])
        for name, value in changed.items():
            if value == "":
                record["properties"].pop(name, None)
            else:
                record["properties"][name] = value
            history = record["history"].setdefault(name, [])
            history.insert(0, [value, stamp, source.change_source])
            del history[MAX_HISTORY:]
        record["properties"][kind.modified_property] = stamp
        record["updatedAt"] = stamp
        self._index(record, old)
        self._save(record)
        occurred = defs.epoch_ms(now)
        for name, value in changed.items():
            self._emit(_event("propertyChange", kind, record["id"], occurred, source,
                              propertyName=name, propertyValue=value))

    def archive(self, type_name: str, object_id: str, source: Source = API_SOURCE) -> bool:
        """Archive (delete) an object; False when it was not there (HubSpot still answers 204)."""
        kind = self._type(type_name)
        with self._lock:
            record = self._objects[kind.name].get(self.resolve(kind.name, object_id))
            if record is None or record["archived"]:
                return False
            now = self._clock()
            record["archived"], record["archivedAt"] = True, defs.iso_ms(now)
            record["updatedAt"] = defs.iso_ms(now)
            self._index(record, record["properties"])
            self._save(record)
            self._emit(_event("deletion", kind, record["id"], defs.epoch_ms(now), source, changeFlag="DELETED"))
            self._persist.flush()
            return True

    def merge(self, type_name: str, primary_id: str, merged_id: str, source: Source = API_SOURCE
              ) -> dict[str, Any]:
        """Merge two objects into a new one (HubSpot's 2024 behaviour: a new id; old ids point at it)."""
        kind = self._type(type_name)
        with self._lock:
            primary, other = self._live(kind, primary_id), self._live(kind, merged_id)
            if primary["id"] == other["id"]:
                raise errors.validation_error("Cannot merge an object with itself",
                                              context={"objectIdToMerge": [merged_id]})
            values = _merged_values(kind, primary, other)
            moved = sum(1 for k in values if k not in primary["properties"])
            record = self._merged_record(kind, primary, other, values)
            self._retire(kind, (primary, other), record["id"])
            self._index(record)
            self._emit(_event("merge", kind, record["id"], defs.epoch_ms(self._clock()), source,
                              primaryObjectId=int(primary["id"]), mergedObjectIds=[int(other["id"])],
                              newObjectId=int(record["id"]), numberOfPropertiesMoved=moved))
            self._persist.flush()
            return record

    def _live(self, kind: ObjectType, object_id: str) -> dict[str, Any]:
        record = self._objects[kind.name].get(self.resolve(kind.name, str(object_id)))
        if record is None or record["archived"]:
            raise errors.object_not_found(str(object_id))
        return record

    def _merged_record(self, kind: ObjectType, primary: dict[str, Any], other: dict[str, Any],
                       values: dict[str, str]) -> dict[str, Any]:
        object_id = self._new_id()
        stamp = defs.iso_ms(self._clock())
        earlier = [primary["properties"].get("hs_merged_object_ids"), other["properties"].get("hs_merged_object_ids")]
        merged_ids = [i for text in earlier if text for i in text.split(";")] + [primary["id"], other["id"]]
        values.update({"hs_object_id": object_id, kind.modified_property: stamp,
                       "hs_merged_object_ids": ";".join(merged_ids),
                       kind.created_property: min(primary["createdAt"], other["createdAt"])})
        record = {"type": kind.name, "id": object_id, "properties": values,
                  "createdAt": values[kind.created_property], "updatedAt": stamp, "archived": False,
                  "archivedAt": None, "history": {**other["history"], **primary["history"]}}
        self._objects[kind.name][object_id] = record
        self._order[kind.name].append(int(object_id))
        self._save(record)
        return record

    def _retire(self, kind: ObjectType, old: Iterable[dict[str, Any]], new_id: str) -> None:
        """Archive merged-away objects, point their ids (and older aliases) at ``new_id``, move associations."""
        old_ids = {r["id"] for r in old}
        for record in old:
            record["archived"] = True
            self._index(record, record["properties"])
            del self._objects[kind.name][record["id"]]
            self._persist.put("object", f"{kind.name}/{record['id']}", None)
        aliases = self._aliases[kind.name]
        for alias, target in list(aliases.items()):
            if target in old_ids:
                aliases[alias] = new_id
                self._persist.put("alias", f"{kind.name}/{alias}", new_id)
        for old_id in old_ids:
            aliases[old_id] = new_id
            self._persist.put("alias", f"{kind.name}/{old_id}", new_id)
        for key in [k for k in self._links if (k[0] == kind.name and k[1] in old_ids)
                    or (k[2] == kind.name and k[3] in old_ids)]:
            labels = self._links.pop(key)
            self._persist.put("link", "/".join(key), None)
            moved = (key[0], new_id if key[1] in old_ids else key[1], key[2], new_id if key[3] in old_ids else key[3])
            if moved[0] == moved[2] and moved[1] == moved[3]:
                continue
            self._links.setdefault(moved, {}).update(labels)
            self._persist.put("link", "/".join(moved), {str(k): v for k, v in self._links[moved].items()})

    # -- associations ---------------------------------------------------------------------------------

    def _check_associations(self, kind: ObjectType, given: Any) -> list[tuple[str, str, list[tuple[int, str]]]]:
        """Validate a create body's ``associations``: [{to: {id}, types: [{associationCategory, ...TypeId}]}]."""
        if not isinstance(given, list):
            raise errors.validation_error("associations must be an array")
        links = []
        for item in given:
            to_id = str((item.get("to") or {}).get("id", "")) if isinstance(item, dict) else ""
            specs = self.check_specs(item.get("types") if isinstance(item, dict) else None)
            to_type = self._target_type(kind.name, to_id, specs)
            links.append((to_type, self.resolve(to_type, to_id), specs))
        return links

    def check_specs(self, given: Any) -> list[tuple[int, str]]:
        """Validate association specs ``[{associationCategory, associationTypeId}]``; return (id, category)."""
        if not isinstance(given, list) or not given:
            raise errors.validation_error("association types must be a non-empty array")
        specs = []
        for spec in given:
            category = spec.get("associationCategory") if isinstance(spec, dict) else None
            type_id = spec.get("associationTypeId") if isinstance(spec, dict) else None
            if category not in ("HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED", "WORK") or not isinstance(
                    type_id, int) or isinstance(type_id, bool):
                raise errors.validation_error("each association type needs associationCategory and an integer "
                                              "associationTypeId")
            specs.append((type_id, category))
        return specs

    def _target_type(self, from_type: str, to_id: str, specs: list[tuple[int, str]]) -> str:
        """Find which object type ``to_id`` is, given the association type ids named for it."""
        # Ids are unique across object types here, so the id alone says which type it is.
        for candidate in OBJECT_TYPES:
            record = self._objects[candidate.name].get(self.resolve(candidate.name, to_id))
            if record is not None and not record["archived"] and all(
                    is_known_type_id(from_type, candidate.name, t) for t, c in specs if c == "HUBSPOT_DEFINED"):
                return candidate.name
        raise errors.validation_error(f"No object with id {to_id} can be associated with these association types",
                                      context={"toObjectId": [to_id]})

    def associate(self, from_type: str, from_id: str, to_type: str, to_id: str,
                  specs: list[tuple[int, str]] | None, source: Source = API_SOURCE) -> list[tuple[int, str]]:
        """Add association types between two live objects (None: the default type); return all types now."""
        a, b = self._type(from_type), self._type(to_type)
        with self._lock:
            left, right = self._live(a, from_id), self._live(b, to_id)
            if specs is None:
                default = default_type_id(a.name, b.name)
                if default is None:
                    raise errors.validation_error(f"{a.name} cannot be associated with {b.name}")
                specs = [(default, "HUBSPOT_DEFINED")]
            for type_id, category in specs:
                if category == "HUBSPOT_DEFINED" and not is_known_type_id(a.name, b.name, type_id):
                    raise errors.validation_error(
                        f"associationTypeId {type_id} is not valid from {a.name} to {b.name}",
                        context={"associationTypeId": [str(type_id)]})
            self._link(a.name, left["id"], b.name, right["id"], specs, source)
            self._persist.flush()
            return sorted(self._links.get((a.name, left["id"], b.name, right["id"]), {}).items())

    def _link(self, a: str, a_id: str, b: str, b_id: str, specs: list[tuple[int, str]], source: Source) -> None:
        forward = self._links.setdefault((a, a_id, b, b_id), {})
        backward = self._links.setdefault((b, b_id, a, a_id), {})
        new = not forward
        default = default_type_id(a, b)
        if default is not None:  # every association carries the unlabeled type besides any label
            specs = [*specs, (default, "HUBSPOT_DEFINED")]
        for type_id, category in specs:
            forward[type_id] = category
            inverse = inverse_type_id(a, b, type_id) if category == "HUBSPOT_DEFINED" else type_id
            if inverse is not None:
                backward[inverse] = category
        primary = primary_type_id(a, b) in forward
        for key, labels in (((a, a_id, b, b_id), forward), ((b, b_id, a, a_id), backward)):
            self._persist.put("link", "/".join(key), {str(k): v for k, v in labels.items()})
        if new:
            self._emit_association(a, a_id, b, b_id, removed=False, primary=primary, source=source)

    def dissociate(self, from_type: str, from_id: str, to_type: str, to_id: str, source: Source = API_SOURCE,
                   type_ids: Iterable[int] | None = None) -> None:
        """Remove an association (or only the labels ``type_ids``; the unlabeled type removes it all)."""
        a, b = self._type(from_type), self._type(to_type)
        with self._lock:
            from_id, to_id = self.resolve(a.name, from_id), self.resolve(b.name, to_id)
            key, back = (a.name, from_id, b.name, to_id), (b.name, to_id, a.name, from_id)
            if key not in self._links:
                return
            default = default_type_id(a.name, b.name)
            labels = None if type_ids is None else set(type_ids)
            if labels is not None and default not in labels:
                for type_id in labels:
                    self._links[key].pop(type_id, None)
                    inverse = inverse_type_id(a.name, b.name, type_id)
                    self._links[back].pop(type_id if inverse is None else inverse, None)
                for k in (key, back):
                    self._persist.put("link", "/".join(k), {str(t): c for t, c in self._links[k].items()})
                self._persist.flush()
                return
            for k in (key, back):
                self._links.pop(k, None)
                self._persist.put("link", "/".join(k), None)
            self._emit_association(a.name, from_id, b.name, to_id, removed=True, primary=False, source=source)
            self._persist.flush()

    def associations(self, type_name: str, object_id: str, to_type: str) -> list[tuple[str, dict[int, str]]]:
        """Return [(to_id, {type_id: category})] for live objects associated with an object, by id."""
        a, b = self._type(type_name), self._type(to_type)
        with self._lock:
            object_id = self.resolve(a.name, object_id)
            found = [(k[3], dict(v)) for k, v in self._links.items()
                     if k[0] == a.name and k[1] == object_id and k[2] == b.name and v
                     and not self._objects[b.name].get(k[3], {"archived": True})["archived"]]
        return sorted(found, key=lambda item: int(item[0]))

    def _emit_association(self, a: str, a_id: str, b: str, b_id: str, removed: bool, primary: bool,
                          source: Source) -> None:
        occurred = defs.epoch_ms(self._clock())
        for (x, x_id, y, y_id) in ((a, a_id, b, b_id), (b, b_id, a, a_id)):
            kind_x, kind_y = object_type(x), object_type(y)
            assert kind_x is not None and kind_y is not None
            self._emit(_event("associationChange", kind_x, x_id, occurred, source,
                              associationType=f"{kind_x.label}_TO_{kind_y.label}", fromObjectId=int(x_id),
                              toObjectId=int(y_id), associationRemoved=removed, isPrimaryAssociation=primary,
                              toObjectType=kind_y.name))

    # -- owners ---------------------------------------------------------------------------------------

    def owners(self, archived: bool = False) -> list[dict[str, Any]]:
        """Return the portal's owners in id order."""
        with self._lock:
            return sorted((o for o in self._owners.values() if o["archived"] == archived),
                          key=lambda o: int(o["id"]))

    def add_owner(self, email: str, first_name: str, last_name: str, user_id: int | None = None) -> dict[str, Any]:
        """Add a user to the portal as an owner; return the owner."""
        with self._lock:
            owner_id = self._new_id()
            stamp = defs.iso_ms(self._clock())
            user = user_id if user_id is not None else 9_000_000 + int(owner_id)
            owner = {"id": owner_id, "email": email, "firstName": first_name, "lastName": last_name,
                     "userId": user, "userIdIncludingInactive": user, "type": "PERSON", "teams": [],
                     "archived": False, "createdAt": stamp, "updatedAt": stamp}
            self._owners[owner_id] = owner
            self._persist.put("owner", owner_id, owner)
            self._persist.flush()
            return owner


def _merged_values(kind: ObjectType, primary: dict[str, Any], other: dict[str, Any]) -> dict[str, str]:
    """Return the merged properties: the primary's values win, the other's fill the gaps (changelog, 2024)."""
    values = {**other["properties"], **primary["properties"]}
    if kind.name == "contacts":
        emails = [primary["properties"].get("email"), other["properties"].get("email")]
        extra = [e for text in (other["properties"].get("hs_additional_emails"),
                                primary["properties"].get("hs_additional_emails")) if text for e in text.split(";")]
        values["email"] = next((e for e in emails if e), "")
        rest = [e for e in [*emails, *extra] if e and e != values["email"]]
        values["hs_additional_emails"] = ";".join(dict.fromkeys(rest))
    return {k: v for k, v in values.items() if v not in ("", None)}


def _event(action: str, kind: ObjectType, object_id: str, occurred_at: int, source: Source,
           **fields: Any) -> dict[str, Any]:
    """Return one change as the webhook dispatcher takes it."""
    return {"action": action, "objectType": kind.name, "objectId": object_id, "occurredAt": occurred_at,
            "changeSource": source.change_source, "sourceId": source.source_id, **fields}
