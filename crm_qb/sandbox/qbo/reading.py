"""Queries and change data capture over a realm (FACTS.md sections 5 and 6)."""

from __future__ import annotations

from datetime import timedelta

from . import faults
from .clock import company_zone, parse_moment
from .engine import Engine
from .entities import spec_for
from .query import Query, QueryError, execute, parse_query
from .rates import rate_rows

CDC_MAX_DAYS = 30
CDC_MAX_OBJECTS = 1000
# Intuit: "Unsupported entities: JournalCode, TaxAgency, TimeActivity, TaxCode, TaxRate" - and what we lack.
_CDC_SKIP = frozenset({"ExchangeRate", "Preferences", "CompanyInfo", "TimeActivity"})


def run_query(engine: Engine, realm_id: str, text: str) -> dict:
    """The ``QueryResponse`` object for a query text; anything unparseable is QBO's query fault."""
    try:
        query = parse_query(text)
    except QueryError as exc:
        raise faults.QboFault(exc.code, exc.message, exc.detail) from exc
    realm = engine.realm(realm_id)
    if query.entity == "ExchangeRate":
        rows, ordered = rate_rows(engine, realm_id), False
    elif spec_for(query.entity) is None:
        rows, ordered = [], False  # an entity QBO has and the sandbox does not keep (Account...): no rows
    else:
        rows, ordered = engine.query_rows(realm_id, query.entity, _named_ids(query))
    try:
        result = execute(query, rows, today=engine.today(realm), zone=company_zone(realm.settings.zone_name),
                         id_ordered=ordered)
    except QueryError as exc:
        raise faults.QboFault(exc.code, exc.message, exc.detail) from exc
    return result.as_query_response()


def _named_ids(query: Query) -> list[str] | None:
    """The Ids an ``Id = ...`` or ``Id IN (...)`` condition allows (every match is among them), else None."""
    for condition in query.conditions:
        if condition.path == ("Id",) and condition.op in ("=", "in"):
            return [str(value) for value in condition.values]
    return None


def change_data_capture(engine: Engine, realm_id: str, entities: str | None, changed_since: str | None) -> dict:
    """The ``CDCResponse`` list: changes since ``changed_since`` grouped by type, deleted after active."""
    realm = engine.realm(realm_id)
    names = _entities(entities)
    zone = company_zone(realm.settings.zone_name)
    since = _since(engine, changed_since, zone)
    with realm.lock:
        keys = [key for key in realm.changed_since(since.timestamp()) if key[0] in names]
        # QBO caps a response at 1,000 objects; the oldest changes go first so a client can move its cursor.
        picked = [(entity, realm.get(entity, obj_id) or realm.tombstones[entity].get(obj_id))
                  for entity, obj_id in keys[:CDC_MAX_OBJECTS]]
        totals = {name: sum(1 for key in keys if key[0] == name) for name in names}
    groups = [_group(name, picked, totals[name]) for name in names]
    groups = [group for group in groups if group]
    return {"QueryResponse": groups or [{}]}


def _entities(text: str | None) -> list[str]:
    if not text:
        raise faults.required_param("entities")
    names = []
    for raw in text.split(","):
        spec = spec_for(raw)
        if spec is None or spec.name in _CDC_SKIP:
            raise faults.QboFault("2000", "Invalid or unsupported object name",
                                  f"Entity not supported for change data capture : {raw.strip()}",
                                  element="entities")
        if spec.name not in names:
            names.append(spec.name)
    return names


def _since(engine: Engine, text: str | None, zone):
    if not text:
        raise faults.required_param("changedSince")
    try:
        since = parse_moment(text, zone)
    except ValueError as exc:
        raise faults.cdc_window(CDC_MAX_DAYS) from exc
    if since < engine.clock.now() - timedelta(days=CDC_MAX_DAYS):
        raise faults.cdc_window(CDC_MAX_DAYS)
    return since


def _group(name: str, picked: list[tuple[str, dict | None]], total: int) -> dict:
    objects = [obj for entity, obj in picked if entity == name and obj is not None]
    if not objects:
        return {}
    active = [obj for obj in objects if obj.get("status") != "Deleted"]
    deleted = [obj for obj in objects if obj.get("status") == "Deleted"]
    group: dict = {name: active + deleted, "startPosition": 1, "maxResults": len(objects)}
    if total > len(objects):
        group["totalCount"] = total  # more changed than the 1,000-object cap let through
    return group
