"""The sandbox's JSON writer: the C encoder's text with Decimals as bare numbers, the same as the reference."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_qb.sandbox.qbo import jsonio
from crm_qb.sandbox.qbo.seed import generate_realm


def test_a_seeded_realm_is_written_exactly_as_the_reference_writes_it() -> None:
    objects = [obj for _entity, obj in generate_realm(60, 300, True, 7, today=date(2026, 6, 1))]
    assert any(isinstance(v, Decimal) for obj in objects for v in obj.values())
    page = {"QueryResponse": {"Invoice": objects, "startPosition": 1, "maxResults": len(objects)},
            "time": "2026-06-01T00:00:00.000-07:00"}
    assert jsonio.dumps(page) == jsonio.write(page)
    assert jsonio.loads(jsonio.dumps(page)) == jsonio.loads(jsonio.write(page))


@pytest.mark.parametrize("value", [
    {"a": Decimal("1.10"), "b": [Decimal("-0.00"), Decimal("1E+3"), Decimal("123456789012345678.123")]},
    {"s": 'quote " back \\ nul \x00 é \u2028 😀', "n": None, "t": True, "f": False, "i": -3, "x": 1.5},
    [(1, 2), [], {}, ""], {"1": {"2": {"3": [Decimal("0.1")]}}}, {1: "int key", 2.5: "float key"},
    "\ue000 not a marker \ue001",
])
def test_values_are_written_as_the_reference_writes_them(value: object) -> None:
    assert jsonio.dumps(value) == jsonio.write(value)


def test_what_the_reference_refuses_is_refused() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        jsonio.dumps({"a": Decimal("NaN")})
    with pytest.raises(TypeError, match="cannot serialise"):
        jsonio.dumps({"a": object()})
    assert jsonio.dumps({(1, 2): "tuple key"}) == jsonio.write({(1, 2): "tuple key"})


# Realm data as the sandbox holds it: str keys, str, int (any size), bool, None, Decimal (any finite one), lists.
_text = st.text(st.characters(), max_size=10)  # lone surrogates included: orjson refuses them, dumps writes them
_data = st.recursive(
    st.none() | st.booleans() | st.integers() | _text | st.decimals(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=16,
)


def _written(write: Callable[[Any], bytes], value: Any) -> object:
    try:
        return write(value)
    except Exception as exc:  # compared, not hidden: both must refuse alike
        return type(exc).__name__


def _reference(value: Any) -> bytes:
    return jsonio.dumps(value).encode("utf-8")


@settings(max_examples=300)
@given(_data)
def test_data_answers_are_the_bytes_dumps_writes(value: Any) -> None:
    assert _written(jsonio.dumps_data, value) == _written(_reference, value)


@pytest.mark.parametrize("multicurrency", [False, True])
def test_a_seeded_page_is_written_as_dumps_writes_it(multicurrency: bool) -> None:
    objects = [obj for _entity, obj in generate_realm(60, 300, multicurrency, 7, today=date(2026, 6, 1))]
    page = {"QueryResponse": {"Invoice": objects, "startPosition": 1, "maxResults": len(objects)},
            "time": "2026-06-01T00:00:00.000-07:00"}
    assert jsonio.dumps_data(page) == jsonio.dumps(page).encode("utf-8")


class _Text(str):
    pass


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("value", [
    {1: "int key"}, {"big": 2 ** 64}, {"small": -(2 ** 63) - 1}, {"nan": Decimal("NaN")}, {"s": "\ud800"},
    {"sub": _Text("x")}, {"when": date(2026, 1, 1)}, _nested(300),
    {"a": Decimal("1E+3"), "b": Decimal("-0.000"), "c": Decimal("1E-9"), "d": (1, "x")}, {"e": "\x00\x1f\x7f\u2028"},
])
def test_odd_values_are_left_to_dumps(value: Any) -> None:
    assert _written(jsonio.dumps_data, value) == _written(_reference, value)


def test_a_query_answer_is_the_page_dumps_would_write(api: Any, item: dict) -> None:
    for entity in ("Customer", "Invoice", "Payment", "Item"):
        response = api.get("query", query=f"SELECT * FROM {entity} ORDERBY Id STARTPOSITION 1 MAXRESULTS 1000")
        assert response.status_code == 200
        body = response.get_data()
        assert body == jsonio.dumps(jsonio.loads(body)).encode("utf-8")
        assert response.json_body["QueryResponse"], entity
