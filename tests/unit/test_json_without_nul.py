"""JSON columns drop NUL on the way in; ``json_without_nul`` skips the walk only when there is none to drop."""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_qb.models.types import drop_nul, json_without_nul

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
