"""JSON columns drop NUL on the way in; ``json_without_nul`` skips the walk only when there is none to drop."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from crm_qb.models.types import JSONType, drop_nul, json_without_nul

_text = st.text(alphabet=st.sampled_from(["a", "\x00", "\\", "u", "0", "é", '"', "\n"]), max_size=8)
_json = st.recursive(st.none() | st.booleans() | st.integers() | _text,
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
                     max_leaves=12)


@given(_json)
def test_the_same_as_drop_nul_for_any_json(value: object) -> None:
    assert json_without_nul(value) == drop_nul(value)


@pytest.mark.parametrize("value", [
    {"a\x00": "b"}, {"a": ["x", {"y": "z\x00"}]}, ["\x00"], {"a": "\\u0000 looks like one, \x00 is one"},
])
def test_nul_in_keys_and_values_is_dropped(value: object) -> None:
    assert "\x00" not in str(json_without_nul(value))
    assert json_without_nul(value) == drop_nul(value)


def test_values_json_cannot_write_are_walked_as_before() -> None:
    odd = {"n": Decimal("1.5"), "t": ("a\x00",), "m": OrderedDict(k="v\x00")}
    assert json_without_nul(odd) == drop_nul(odd) == {"n": Decimal("1.5"), "t": ["a"], "m": {"k": "v"}}
    assert json_without_nul("x\x00") == "x" and json_without_nul(None) is None


def _outcome(process: Callable[[Any], Any], value: object) -> object:
    """What a bind processor gives for ``value``: its text, or the type and text of the error it raises."""
    try:
        return process(value)
    except Exception as exc:  # compared, not hidden: both processors must fail alike
        return (type(exc).__name__, str(exc))


@given(_json)
def test_bulk_json_processor_stores_what_the_column_stores(value: object) -> None:
    """``StoredJSON.bulk_bind_processor`` (SQLite bulk inserts) writes the text the column's own processor does."""
    dialect = sqlite.dialect()
    bulk = JSONType.bulk_bind_processor(dialect)
    own = JSONType.dialect_impl(dialect).bind_processor(dialect)
    assert bulk is not None and own is not None
    assert _outcome(bulk, value) == _outcome(own, value)


def test_bulk_json_processor_for_odd_values_and_other_backends() -> None:
    dialect = sqlite.dialect()
    bulk = JSONType.bulk_bind_processor(dialect)
    own = JSONType.dialect_impl(dialect).bind_processor(dialect)
    assert bulk is not None and own is not None
    for value in ({"n": Decimal("1.5")}, {"s": {1}}, {"t": ("a\x00",)}, OrderedDict(k="v\x00"), None, "x\x00", 3):
        assert _outcome(bulk, value) == _outcome(own, value)
    assert bulk({"a": ["b", 1]}) == '{"a": ["b", 1]}'
    assert JSONType.bulk_bind_processor(postgresql.psycopg.dialect()) is None  # type: ignore[no-untyped-call]  # SQLAlchemy's own path
    assert JSONType.bulk_bind_processor(sqlite.dialect(json_serializer=lambda v: "x")) is None
