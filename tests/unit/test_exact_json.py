"""``exactjson.loads`` gives what ``json.loads(parse_float=Decimal)`` gives: the same values of the same types
(an int stays an int, an amount is the Decimal of its exact text), or the same refusal."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from crm_qb.qbo import exactjson
from crm_qb.qbo.faults import parse_response


def reference(data: bytes | str) -> Any:
    return json.loads(data, parse_float=Decimal)


def same(a: Any, b: Any) -> bool:
    """Equal, of the same types all the way down, Decimals with the same digits and exponent, keys in order."""
    if type(a) is not type(b):
        return False
    if isinstance(a, Decimal):
        return a.as_tuple() == b.as_tuple()
    if isinstance(a, float):  # only json's NaN and Infinity make one: NaN is not equal to itself
        return repr(a) == repr(b)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def outcome(parse: Any, data: bytes | str) -> tuple[str, Any]:
    try:
        return "ok", parse(data)
    except ValueError as exc:  # json's refusal (JSONDecodeError, UnicodeDecodeError): compared by kind
        return "refused", type(exc).__name__
    except ArithmeticError as exc:  # a number Decimal cannot hold (10e999999999999999999): InvalidOperation, both
        return "unrepresentable", type(exc).__name__


def assert_same_outcome(data: bytes | str) -> None:
    ours, theirs = outcome(exactjson.loads, data), outcome(reference, data)
    assert ours[0] == theirs[0], (data, ours, theirs)
    assert same(ours[1], theirs[1]), (data, ours, theirs)


# Numbers as QuickBooks and other writers spell them: plain, with trailing zeros, exponents, huge and tiny.
_finite = st.decimals(allow_nan=False, allow_infinity=False)
_number_text = st.one_of(
    st.integers().map(str),
    st.integers(min_value=-(10 ** 40), max_value=10 ** 40).map(str),
    _finite.map(lambda d: format(d, "f")),
    _finite.map(str),
    _finite.map(lambda d: format(d, "e")),
    _finite.map(lambda d: format(d, "E")),
    st.sampled_from(["0", "-0", "0.0", "-0.0", "1e5", "1E-5", "1.50", "100.00", "9223372036854775807",
                     "9223372036854775808", "18446744073709551615", "18446744073709551616",
                     "-9223372036854775808", "-9223372036854775809", "1" + "0" * 400, "1e400", "1e-400",
                     "0.1e1", "12345678901234567890.123456789012345678901234567890"]),
)
_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)


class _Raw(str):
    """A number's JSON text, written as it is."""


def _write(value: Any, ascii_only: bool) -> str:
    if isinstance(value, _Raw):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_write(v, ascii_only) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=ascii_only)}: {_write(v, ascii_only)}"
                              for k, v in value.items()) + "}"
    return json.dumps(value, ensure_ascii=ascii_only)


_documents = st.recursive(
    st.none() | st.booleans() | _text | _number_text.map(_Raw),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_text, inner, max_size=5),
    max_leaves=20,
)


@settings(max_examples=400)
@given(_documents, st.booleans(), st.booleans())
def test_documents_parse_to_the_same_values_and_types(document: Any, ascii_only: bool, as_bytes: bool) -> None:
    text = _write(document, ascii_only)
    assert_same_outcome(text.encode("utf-8") if as_bytes else text)


@given(_number_text)
@example("9223372036854775808")
@example("-" + "9" * 30)
def test_a_number_alone_is_an_int_or_the_decimal_of_its_text(number: str) -> None:
    assert_same_outcome(number)
    assert_same_outcome(f'{{"TotalAmt": {number}, "Line": [{number}]}}'.encode())


@given(st.binary(max_size=40))
def test_arbitrary_bytes_parse_or_fail_alike(data: bytes) -> None:
    assert_same_outcome(data)


@given(_documents, st.data())
def test_a_damaged_document_parses_or_fails_alike(document: Any, data: st.DataObject) -> None:
    text = _write(document, False)
    at = data.draw(st.integers(min_value=0, max_value=len(text)))
    inserted = data.draw(st.sampled_from(["\x00", "\x1f", "\n", "\t", "\x7f", '"', "\\", "\\u", "\\ud800", ",", "}",
                                          "]", "NaN", "-Infinity", "\ufeff", " ", "1", ".", "e", "\u2028"]))
    assert_same_outcome((text[:at] + inserted + text[at:]).encode("utf-8", "surrogatepass"))


@pytest.mark.parametrize("data", [
    b'{"a": 1, "a": 2}', b'{"a": NaN, "b": Infinity, "c": -Infinity}', b'"\\ud800"', b'"\\udc00\\ud800"',
    b'"\x01"', b'"a\nb"', b'"\x7f"', '\ufeff{"a": 1}'.encode(), '{"a": "é"}'.encode("utf-16"), b"\xff",
    b'{"a": 01}', b'{"a": 1.}', b'{"a": .5}', b'{"a": +1}', b'[1,]', b"  {} ", b"{}x", b"", b"   ",
    b'{"a": -}', b'{"a": 1e}', b'{"a": 1.5e+}', b'{"a": 1E+2}', b'{"a": -0}', b'{"a": -0.0}', b'{"a": true}',
    b'[' * 50 + b']' * 50, b'{"\\u00e9": "\\u00e9", "\\ud83d\\ude00": "\\/"}', "\u2028".encode(),
])
def test_edge_cases_parse_or_fail_alike(data: bytes) -> None:
    assert_same_outcome(data)
    assert_same_outcome(data.decode("utf-8", "replace"))


def test_a_qbo_page_keeps_its_amounts_exact_through_the_fault_check() -> None:
    body = (b'{"QueryResponse": {"Invoice": [{"Id": "1", "TotalAmt": 100.10, "Balance": 0, "ExchangeRate": 1.5,'
            b' "Line": [{"Amount": 1e2, "Qty": 3}]}], "startPosition": 1, "maxResults": 1},'
            b' "time": "2026-12-02T15:00:00.000-08:00"}')
    fault, document = parse_response(200, {}, body)
    assert fault is None
    invoice = document["QueryResponse"]["Invoice"][0]
    assert same(invoice, {"Id": "1", "TotalAmt": Decimal("100.10"), "Balance": 0, "ExchangeRate": Decimal("1.5"),
                          "Line": [{"Amount": Decimal("1e2"), "Qty": 3}]})
    assert same(document, reference(body))


def test_a_number_past_decimals_exponent_range_fails_alike() -> None:
    """Found by the damaged-document test in CI: both raise decimal.InvalidOperation (not a ValueError)."""
    assert_same_outcome(b"10e999999999999999999")
    assert outcome(exactjson.loads, b"[10e999999999999999999]")[0] == "unrepresentable"
