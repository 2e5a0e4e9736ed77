"""The sandbox's JSON writer: the C encoder's text with Decimals as bare numbers, the same as the reference."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

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
