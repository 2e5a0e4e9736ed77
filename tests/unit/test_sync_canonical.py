"""Canonical contact values: trimming, folding, QBO limits, empty-as-None, idempotence."""

from __future__ import annotations

import random

import pytest

from crm_qb.sync.rules.canonical import (
    FIELDS,
    Address,
    canonical_address,
    canonicalise,
    canonicalise_record,
    truncate,
    utf16_length,
)

TEXT_FIELDS = [field for field in FIELDS if not field.endswith("_address")]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("given_name", "  Bill  ", "Bill"),
        ("given_name", "Jean\t  Luc", "Jean Luc"),
        ("given_name", "Anne\nMarie", "Anne Marie"),
        ("given_name", "a:b", "a b"),
        ("family_name", "O'Brien", "O'Brien"),
        ("family_name", "Müller", "Müller"),
        ("family_name", "Mu\u0308ller", "Müller"),  # decomposed umlaut becomes the composed one
        ("display_name", "Acme: West", "Acme West"),
        ("display_name", "Bill's Windsurf Shop", "Bill's Windsurf Shop"),
        ("company", "Acme: West", "Acme: West"),  # QBO forbids ':' only in person and display names
        ("company", "\u00a0Acme\u00a0 Inc ", "Acme Inc"),
        ("email", " Surf@Intuit.COM ", "surf@intuit.com"),
        ("email", "STRASSE@ß.de", "strasse@ss.de"),
        ("phone", " (415)  444-6538 ", "(415) 444-6538"),
        ("mobile", "+1 415 555 0100", "+1 415 555 0100"),
        ("website", " https://example.com/a ", "https://example.com/a"),
        ("notes", "  line one  \r\nline two\t\rline three  ", "line one\nline two\nline three"),
        ("notes", "keep   inner   spaces", "keep   inner   spaces"),
        ("given_name", "", None),
        ("given_name", "   ", None),
        ("given_name", ":", None),
        ("notes", "\n\n", None),
        ("email", None, None),
    ],
)
def test_canonicalise_text(field: str, value: str | None, expected: str | None) -> None:
    assert canonicalise(field, value) == expected


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("given_name", 100),
        ("family_name", 100),
        ("company", 100),
        ("display_name", 500),
        ("email", 100),
        ("phone", 30),
        ("mobile", 30),
        ("notes", 2000),
        ("website", 1000),
    ],
)
def test_length_limits(field: str, limit: int) -> None:
    assert canonicalise(field, "x" * (limit + 50)) == "x" * limit
    assert canonicalise(field, "x" * limit) == "x" * limit


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        ("abc", 2, "ab"),
        ("a😀b", 2, "a"),  # the emoji needs two UTF-16 units and is never split
        ("a😀b", 3, "a😀"),
        ("", 5, ""),
    ],
)
def test_truncate_counts_utf16_units(value: str, limit: int, expected: str) -> None:
    assert truncate(value, limit) == expected
    assert utf16_length(truncate(value, limit)) <= limit


def test_cut_at_limit_is_trimmed_again() -> None:
    assert canonicalise("given_name", "x" * 99 + " y") == "x" * 99


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ({}, None),
        ({"line1": "  ", "city": ""}, None),
        (
            {"line1": " 12 Ocean Dr. ", "city": "Half Moon Bay", "region": "CA", "postal_code": "94213"},
            Address(line1="12 Ocean Dr.", city="Half Moon Bay", region="CA", postal_code="94213"),
        ),
        ({"postal_code": "1" * 40}, Address(postal_code="1" * 30)),
        ({"city": "c" * 300}, Address(city="c" * 255)),
        ({"line1": "l" * 600}, Address(line1="l" * 500)),
        (Address(line1=" a  b "), Address(line1="a b")),
    ],
)
def test_canonical_address(value: object, expected: Address | None) -> None:
    assert canonical_address(value) == expected
    assert canonicalise("billing_address", value) == expected


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: canonicalise("nickname", "x"), ValueError),
        (lambda: canonicalise("email", 42), TypeError),
        (lambda: canonical_address("12 Ocean Dr."), TypeError),
        (lambda: canonical_address({"street": "x"}), ValueError),
        (lambda: canonicalise_record({"given_name": "a", "nick": "b"}), ValueError),
    ],
)
def test_bad_input_is_rejected(call: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        call()  # type: ignore[operator]


def test_canonicalise_record_fills_missing_fields_with_none() -> None:
    record = canonicalise_record({"given_name": " Bill ", "email": "A@B.CO"})
    assert set(record) == set(FIELDS)
    assert (record["given_name"], record["email"], record["company"]) == ("Bill", "a@b.co", None)


ALPHABET = [
    "a", "Z", "7", " ", "\t", "\n", "\r", ":", "\u00a0", "\u3000", "é", "e\u0301", "\u0301", "ß", "İ", "ǅ",
    "ﬁ", "Σ", "ς", "ΐ", "😀", "\u1100", "\u1161", "\u11a8", "'", "-", "@", ".",
]  # fmt: skip


def _generated_strings(count: int) -> list[str]:
    rng = random.Random(20240611)
    sizes = [0, 1, 3, 29, 30, 31, 99, 100, 101, 499, 501, 1999, 2001]
    return ["".join(rng.choice(ALPHABET) for _ in range(rng.choice(sizes))) for _ in range(count)]


@pytest.mark.parametrize("field", TEXT_FIELDS)
def test_canonicalise_is_idempotent(field: str) -> None:
    for value in _generated_strings(400):
        once = canonicalise(field, value)
        assert canonicalise(field, once) == once, repr(value)


def test_canonical_address_is_idempotent() -> None:
    values = _generated_strings(300)
    for line, city in zip(values, reversed(values), strict=True):
        once = canonical_address({"line1": line, "city": city, "postal_code": line})
        assert canonical_address(once) == once
