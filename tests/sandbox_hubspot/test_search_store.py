"""Search evaluation and store rules, without HTTP: operators, limits, value coercion, merges, associations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from crm_qb.sandbox.hubspot import definitions as defs
from crm_qb.sandbox.hubspot.errors import HubSpotError
from crm_qb.sandbox.hubspot.search import SearchError, matches, parse_request
from crm_qb.sandbox.hubspot.store import HubSpotStore, decode_after, encode_after

KINDS = {"amount": "number", "lastmodifieddate": "datetime"}
ROW = {"firstname": "Alice", "email": "alice@hubspot.com", "amount": "12.5",
       "lastmodifieddate": "2026-01-02T03:04:05.006Z"}


def hit(*filters: dict[str, Any], row: dict[str, str] = ROW) -> bool:
    request = parse_request({"filterGroups": [{"filters": list(filters)}]})
    return matches(row, request, lambda name: KINDS.get(name, "string"), "contacts")


@pytest.mark.parametrize("spec,expected", [
    ({"propertyName": "firstname", "operator": "EQ", "value": "alice"}, True),
    ({"propertyName": "firstname", "operator": "NEQ", "value": "Alice"}, False),
    ({"propertyName": "amount", "operator": "GT", "value": "9"}, True),
    ({"propertyName": "amount", "operator": "LTE", "value": "12.5"}, True),
    ({"propertyName": "amount", "operator": "BETWEEN", "value": "1", "highValue": "12"}, False),
    ({"propertyName": "lastmodifieddate", "operator": "GTE", "value": "1767323045006"}, True),
    ({"propertyName": "lastmodifieddate", "operator": "GT", "value": "1767323045006"}, False),
    ({"propertyName": "lastmodifieddate", "operator": "LT", "value": "2026-01-03T00:00:00Z"}, True),
    ({"propertyName": "firstname", "operator": "IN", "values": ["bob", "alice"]}, True),
    ({"propertyName": "firstname", "operator": "NOT_IN", "values": ["alice"]}, False),
    ({"propertyName": "phone", "operator": "HAS_PROPERTY"}, False),
    ({"propertyName": "phone", "operator": "NOT_HAS_PROPERTY"}, True),
    ({"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@hubspot.com"}, True),
    ({"propertyName": "email", "operator": "NOT_CONTAINS_TOKEN", "value": "*@example.com"}, True),
])
def test_operators(spec: dict[str, Any], expected: bool) -> None:
    assert hit(spec) is expected


def test_groups_are_ors_of_ands_and_query_prefixes() -> None:
    request = parse_request({"filterGroups": [
        {"filters": [{"propertyName": "firstname", "value": "Bob"}]},
        {"filters": [{"propertyName": "amount", "operator": "GT", "value": "10"},
                     {"propertyName": "firstname", "value": "Alice"}]}], "query": "ali hub"})
    assert matches(ROW, request, lambda n: KINDS.get(n, "string"), "contacts")


@pytest.mark.parametrize("body", [
    {"limit": 201}, {"after": "10000"}, {"filterGroups": [{"filters": []}] * 6},
    {"filterGroups": [{"filters": [{"propertyName": "a", "value": "1"}] * 11}]},
    {"filterGroups": [{"filters": [{"propertyName": "a", "value": "1"}] * 9}] * 3},
    {"filterGroups": [{"filters": [{"propertyName": "a", "operator": "LIKE", "value": "1"}]}]},
    {"filterGroups": [{"filters": [{"propertyName": "a", "operator": "IN", "value": "1"}]}]},
    {"sorts": [{"direction": "ASCENDING"}]},
])
def test_requests_hubspot_refuses(body: dict[str, Any]) -> None:
    with pytest.raises(SearchError):
        parse_request(body)


@pytest.mark.parametrize("kind,raw,stored", [
    ("number", 12.0, "12"), ("number", "0012.50", "12.5"), ("bool", True, "true"), ("bool", "False", "false"),
    ("datetime", "1767323045006", "2026-01-02T03:04:05.006Z"), ("datetime", "2026-01-02T03:04:05Z",
                                                                 "2026-01-02T03:04:05.000Z"),
    ("date", "2026-01-02", "2026-01-02"), ("date", "1767312000000", "2026-01-02"), ("string", 5, "5"),
])
def test_value_coercion(kind: str, raw: Any, stored: str) -> None:
    value, problem = defs.coerce({"name": "p", "type": kind, "fieldType": "text", "options": []}, raw, "contacts")
    assert problem is None and value == stored


@pytest.mark.parametrize("kind,raw,code", [
    ("number", "abc", "INVALID_DECIMAL"), ("bool", "yes", "INVALID_OPTION"),
    ("datetime", "tomorrow", "INVALID_DATETIME"), ("date", "1767312000001", "INVALID_DATE"),
])
def test_value_refusals(kind: str, raw: Any, code: str) -> None:
    value, problem = defs.coerce({"name": "p", "type": kind, "fieldType": "text", "options": []}, raw, "contacts")
    assert value is None and problem is not None and problem["error"] == code


def make_store() -> tuple[HubSpotStore, list[dict[str, Any]]]:
    events: list[dict[str, Any]] = []
    now = [datetime(2026, 1, 1, tzinfo=UTC)]

    def clock() -> datetime:
        now[0] += timedelta(milliseconds=5)
        return now[0]

    return HubSpotStore(clock, events.append), events


def test_updates_stamp_lastmodifieddate_and_report_only_real_changes() -> None:
    store, events = make_store()
    made = store.create("contacts", {"email": "a@x.com", "firstname": "A"})
    created = made["properties"]["lastmodifieddate"]
    store.update("contacts", made["id"], {"firstname": "A"})
    assert made["properties"]["lastmodifieddate"] == created and len(events) == 3
    store.update("contacts", made["id"], {"firstname": ""})
    assert "firstname" not in made["properties"] and made["properties"]["lastmodifieddate"] > created
    assert events[-1]["propertyName"] == "firstname" and events[-1]["propertyValue"] == ""


def test_merge_keeps_primary_values_and_moves_associations() -> None:
    store, events = make_store()
    primary = store.create("contacts", {"email": "p@x.com", "firstname": "P"})
    other = store.create("contacts", {"email": "o@x.com", "firstname": "O", "phone": "1"})
    company = store.create("companies", {"name": "Acme"})
    store.associate("contacts", other["id"], "companies", company["id"], [(1, "HUBSPOT_DEFINED")])
    merged = store.merge("contacts", primary["id"], other["id"])
    assert merged["properties"]["firstname"] == "P" and merged["properties"]["phone"] == "1"
    assert store.get("contacts", primary["id"])["id"] == merged["id"]
    assert store.search_unique("contacts", "email", "o@x.com") is None  # the merged-away email is only "additional"
    linked = store.associations("companies", company["id"], "contacts")
    assert [to_id for to_id, _ in linked] == [merged["id"]]
    assert dict(linked[0][1]) == {2: "HUBSPOT_DEFINED", 280: "HUBSPOT_DEFINED"}
    again = store.merge("contacts", merged["id"], store.create("contacts", {"email": "z@x.com"})["id"])
    assert store.get("contacts", other["id"])["id"] == again["id"]
    assert events[-1]["action"] == "merge" and events[-1]["newObjectId"] == int(again["id"])


def test_association_type_ids_are_checked_and_archived_objects_hidden() -> None:
    store, _ = make_store()
    contact = store.create("contacts", {"email": "c@x.com"})
    task = store.create("tasks", {"hs_timestamp": "0"})
    with pytest.raises(HubSpotError) as wrong:
        store.associate("contacts", contact["id"], "tasks", task["id"], [(1, "HUBSPOT_DEFINED")])
    assert wrong.value.status == 400
    store.associate("tasks", task["id"], "contacts", contact["id"], [(204, "HUBSPOT_DEFINED")])
    assert store.associations("contacts", contact["id"], "tasks")[0][1] == {203: "HUBSPOT_DEFINED"}
    store.archive("tasks", task["id"])
    assert store.associations("contacts", contact["id"], "tasks") == []


def test_paging_cursor_round_trip() -> None:
    assert decode_after(encode_after("525")) == 525
    assert encode_after("525") == "NTI1Cg=="  # the look of HubSpot's own example cursor "NTI1Cg%3D%3D"
    assert decode_after("77") == 77 and decode_after(None) == 0
    with pytest.raises(HubSpotError):
        decode_after("not a cursor!")
