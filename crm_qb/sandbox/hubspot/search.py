"""CRM search as HubSpot evaluates it (pure): filter groups (OR of ANDs), operators, sorts, query and paging.

Limits from HubSpot's docs (docs/hubspot/facts.md §3.3; the 2024-08-26 changelog): up to 5 filter groups, 10
filters in a group and 25 in all, ``limit`` up to 200, results stop at 10,000 (paging past that is a 400). Datetime and
number properties compare numerically (datetimes as epoch milliseconds, given as ms or ISO 8601); strings
compare case-insensitively, as HubSpot's email and name searches do.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from crm_qb.sandbox.hubspot.definitions import epoch_ms, parse_time

MAX_GROUPS = 5
MAX_FILTERS_PER_GROUP = 10
MAX_FILTERS = 25
MAX_LIMIT = 200
MAX_RESULTS = 10_000
OPERATORS = ("EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY",
             "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN")
QUERY_FIELDS = {"contacts": ("firstname", "lastname", "email", "phone", "company", "hs_additional_emails"),
                "companies": ("name", "domain", "website", "phone")}


class SearchError(ValueError):
    """A search request HubSpot would refuse with a 400; the message says why."""


@dataclass(frozen=True)
class Sort:
    """One sort key."""

    property_name: str
    descending: bool


@dataclass(frozen=True)
class SearchRequest:
    """A validated search body."""

    groups: tuple[tuple[dict[str, Any], ...], ...]
    sorts: tuple[Sort, ...]
    query: str | None
    properties: tuple[str, ...] | None
    limit: int
    offset: int


def parse_request(body: Any, default_limit: int = 10) -> SearchRequest:
    """Validate a search body; raise SearchError naming the problem."""
    if not isinstance(body, dict):
        raise SearchError("the body must be a JSON object")
    groups = _groups(body.get("filterGroups") or [])
    limit = _int(body.get("limit", default_limit), "limit")
    if not 0 < limit <= MAX_LIMIT:
        raise SearchError(f"limit must be between 1 and {MAX_LIMIT}")
    offset = _int(body.get("after") or 0, "after")
    if offset >= MAX_RESULTS:
        raise SearchError(f"Paging past {MAX_RESULTS} results is not supported; narrow the filters")
    properties = body.get("properties")
    if properties is not None and not (isinstance(properties, list) and all(isinstance(p, str) for p in properties)):
        raise SearchError("properties must be an array of property names")
    query = body.get("query")
    if query is not None and (not isinstance(query, str) or len(query) > 3000):
        raise SearchError("query must be a string of at most 3000 characters")
    return SearchRequest(groups, _sorts(body.get("sorts") or []), query or None,
                         tuple(properties) if properties else None, limit, offset)


def _int(value: Any, field: str) -> int:
    try:
        return int(str(value))
    except ValueError:
        raise SearchError(f"{field} must be an integer") from None


def _groups(raw: Any) -> tuple[tuple[dict[str, Any], ...], ...]:
    if not isinstance(raw, list) or len(raw) > MAX_GROUPS:
        raise SearchError(f"filterGroups must be an array of at most {MAX_GROUPS} groups")
    groups = []
    for group in raw:
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list) or len(filters) > MAX_FILTERS_PER_GROUP:
            raise SearchError(f"each filter group must have an array of at most {MAX_FILTERS_PER_GROUP} filters")
        groups.append(tuple(_filter(f) for f in filters))
    if sum(len(g) for g in groups) > MAX_FILTERS:
        raise SearchError(f"at most {MAX_FILTERS} filters are allowed in one search")
    return tuple(groups)


def _filter(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or not isinstance(raw.get("propertyName"), str):
        raise SearchError("each filter needs a propertyName")
    operator = raw.get("operator", "EQ")
    if operator not in OPERATORS:
        raise SearchError(f"operator {operator!r} is not one of {', '.join(OPERATORS)}")
    if operator in ("IN", "NOT_IN") and not isinstance(raw.get("values"), list):
        raise SearchError(f"{operator} needs a values array")
    if operator == "BETWEEN" and (raw.get("value") is None or raw.get("highValue") is None):
        raise SearchError("BETWEEN needs value and highValue")
    if operator not in ("IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY") and raw.get("value") is None:
        raise SearchError(f"{operator} needs a value")
    return {**raw, "operator": operator}


def _sorts(raw: Any) -> tuple[Sort, ...]:
    if not isinstance(raw, list):
        raise SearchError("sorts must be an array")
    sorts = []
    for item in raw:
        if isinstance(item, str):
            sorts.append(Sort(item.lstrip("-"), item.startswith("-")))
        elif isinstance(item, dict) and isinstance(item.get("propertyName"), str):
            sorts.append(Sort(item["propertyName"], str(item.get("direction", "ASCENDING")).upper() == "DESCENDING"))
        else:
            raise SearchError("each sort is a property name (prefix - for descending) or {propertyName, direction}")
    return tuple(sorts)


Kinds = Callable[[str], str]  # property name -> HubSpot type ("number", "datetime", ...)


def matches(properties: dict[str, str], request: SearchRequest, kind_of: Kinds, object_type: str) -> bool:
    """True when an object's properties satisfy the request's filter groups and query."""
    if request.groups and not any(all(_holds(properties, f, kind_of) for f in g) for g in request.groups):
        return False
    return request.query is None or _query_hits(properties, request.query, object_type)


def _holds(properties: dict[str, str], spec: dict[str, Any], kind_of: Kinds) -> bool:
    name, operator = spec["propertyName"], spec["operator"]
    actual = properties.get(name) or ""
    if operator == "HAS_PROPERTY":
        return actual != ""
    if operator == "NOT_HAS_PROPERTY":
        return actual == ""
    kind = kind_of(name)
    if operator in ("IN", "NOT_IN"):
        found = any(_compare(actual, str(v), kind) == 0 for v in spec["values"] if actual != "")
        return found if operator == "IN" else not found
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        hit = _token_match(actual, str(spec["value"]))
        return hit if operator == "CONTAINS_TOKEN" else not hit
    if operator == "NEQ":
        return actual == "" or _compare(actual, str(spec["value"]), kind) != 0
    if actual == "":
        return False
    if operator == "BETWEEN":
        low, high = _compare(actual, str(spec["value"]), kind), _compare(actual, str(spec["highValue"]), kind)
        return low is not None and high is not None and low >= 0 and high <= 0
    order = _compare(actual, str(spec["value"]), kind)
    return order is not None and _ORDER_TESTS[operator](order)


_ORDER_TESTS: dict[str, Callable[[int], bool]] = {
    "EQ": lambda o: o == 0, "LT": lambda o: o < 0, "LTE": lambda o: o <= 0,
    "GT": lambda o: o > 0, "GTE": lambda o: o >= 0,
}


def _compare(actual: str, wanted: str, kind: str) -> int | None:
    """Return -1/0/1 comparing actual with wanted for the property's type; None when not comparable."""
    left, right = sort_key(actual, kind), sort_key(wanted, kind)
    if type(left) is not type(right):
        return None
    return (left > right) - (left < right)  # type: ignore[operator]


def sort_key(value: str, kind: str) -> Any:
    """Return the comparable form of a stored value: Decimal for numbers and times, folded text otherwise."""
    if kind in ("datetime", "date"):
        return _time_key(value)
    if kind == "number":
        try:
            return Decimal(value)
        except InvalidOperation:
            return value.casefold()
    return value.casefold()


@lru_cache(maxsize=262_144)
def _time_key(value: str) -> Any:
    """Return a stored time as epoch ms (cached: a search compares every object's stamp on every call)."""
    moment = parse_time(value)
    return Decimal(epoch_ms(moment)) if moment else value.casefold()


def _token_match(actual: str, pattern: str) -> bool:
    """True when a token of ``actual`` matches ``pattern`` (``*`` is a wildcard), case-insensitively."""
    regex = re.compile("^" + ".*".join(re.escape(p) for p in pattern.casefold().split("*")) + "$")
    tokens = [actual.casefold(), *re.split(r"[\s,;]+", actual.casefold())]
    return any(regex.match(token) for token in tokens if token)


def _query_hits(properties: dict[str, str], query: str, object_type: str) -> bool:
    """True when every word of ``query`` prefixes a word of one of the type's searchable properties."""
    fields = QUERY_FIELDS.get(object_type, ())
    words = [w for w in re.split(r"[\s@.,;]+", " ".join(properties.get(f) or "" for f in fields).casefold()) if w]
    return all(any(word.startswith(part) for word in words) for part in query.casefold().split())


def ordered(rows: Sequence[tuple[str, dict[str, str]]], sorts: Sequence[Sort], kind_of: Kinds) -> list[str]:
    """Return the ids of ``rows`` (id, properties) in the requested order; ties and no sorts go by id."""
    result = sorted(rows, key=lambda row: int(row[0]) if row[0].isdigit() else row[0])
    for sort in reversed(sorts):
        kind = kind_of(sort.property_name)
        present = [r for r in result if r[1].get(sort.property_name)]
        absent = [r for r in result if not r[1].get(sort.property_name)]
        present.sort(key=lambda r: _sortable(sort_key(r[1][sort.property_name], kind)), reverse=sort.descending)
        result = present + absent
    return [row[0] for row in result]


def _sortable(key: Any) -> tuple[int, Any]:
    """Put numbers before text so mixed keys never compare Decimal with str."""
    return (0, key) if isinstance(key, Decimal) else (1, key)
