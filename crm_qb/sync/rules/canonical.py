"""The canonical contact: the one shape both sides are compared in.

A value is canonical when trimming, whitespace folding, case folding (email only) and QBO's length limits
(docs/qbo/facts.md §9.2) have been applied, so a value QBO would normalise on write never looks like a change.
``canonicalise`` is idempotent: ``canonicalise(f, canonicalise(f, v)) == canonicalise(f, v)``.

Decisions:
- Empty text is the same as a missing value: both become ``None``.
- Strings are put in Unicode NFC form first, so decomposed accents (as macOS input sends them) equal QBO's.
- NUL characters (U+0000) are dropped: PostgreSQL cannot store them, so the stored base never holds one, and a
  value with one must compare equal to that base (crm_qb/models/types.py) or it would bounce between the sides.
- Single-line fields fold every run of whitespace (tabs, newlines, no-break spaces) into one space; ``notes``
  keeps its line breaks (CRLF and CR become LF) and loses trailing spaces on each line.
- QBO forbids ``:`` in ``given_name``, ``family_name`` and ``display_name``; each ``:`` there becomes a space.
  ``company`` keeps it (QBO forbids it only in the person and display names).
- ``email`` is case-folded, as docs/architecture.md §3 says, and that folded form is also what gets written.
- Limits count UTF-16 code units, as QBO's Java services count string length (an assumption: an emoji counts
  2); a cut never splits a character and is followed by trimming again.
- ``website`` is limited to 1,000 (QBO's usual "Max:1,000" string limit; docs/qbo/facts.md §9.2: WebAddr is not listed).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from typing import TypeAlias

from crm_qb.address import ADDRESS_PARTS, Address

FIELDS: tuple[str, ...] = (
    "given_name",
    "family_name",
    "company",
    "display_name",
    "email",
    "phone",
    "mobile",
    "billing_address",
    "shipping_address",
    "notes",
    "website",
)
ADDRESS_FIELDS: frozenset[str] = frozenset({"billing_address", "shipping_address"})

# QBO limits per canonical field (docs/qbo/facts.md §9.2); address parts use _ADDRESS_LIMITS.
_LIMITS: Mapping[str, int] = {
    "given_name": 100,
    "family_name": 100,
    "company": 100,
    "display_name": 500,
    "email": 100,
    "phone": 30,
    "mobile": 30,
    "notes": 2000,
    "website": 1000,
}
# region and country have no stated limit (docs/qbo/facts.md §9.2); 255 matches City, the longest documented part.
_ADDRESS_LIMITS: Mapping[str, int] = {
    "line1": 500,
    "line2": 500,
    "city": 255,
    "region": 255,
    "postal_code": 30,
    "country": 255,
}
_NO_COLON: frozenset[str] = frozenset({"given_name", "family_name", "display_name"})
_PART_NAMES: frozenset[str] = frozenset(ADDRESS_PARTS)
_FIELD_SET: frozenset[str] = frozenset(FIELDS)

# Canonical forms of short text already seen, by field: a sync folds each record's values several times
# (matching, the merge, the bodies it writes), and a backfill does so for every object, so this pure folding was
# the CPU a backfill spent most on. Bounded in entries and in the length of what is kept, so memory stays flat
# (a few MB in practice, some tens at the very most); longer text is folded each time.
_CACHE_SIZE = 1 << 15
_CACHED_LENGTH = 256


# A canonical value: text, an Address whose parts are canonical text (never all None), or None.
CanonicalValue: TypeAlias = str | Address | None


def canonicalise(field: str, value: object) -> CanonicalValue:
    """Return ``value`` in canonical form for ``field``; raise ValueError for an unknown field."""
    if field not in FIELDS:
        raise ValueError(f"unknown contact field {field!r}; known fields: {', '.join(FIELDS)}")
    if field in ADDRESS_FIELDS:
        return canonical_address(value)
    return _canonical_text(field, value)


def canonicalise_record(record: Mapping[str, object]) -> dict[str, CanonicalValue]:
    """Return every canonical field of ``record`` canonicalised (missing as None); reject unknown keys."""
    if not _FIELD_SET.issuperset(record):
        unknown = sorted(set(record) - _FIELD_SET)
        raise ValueError(f"unknown contact field(s) {', '.join(map(repr, unknown))}")
    key = _record_key(record)
    if key is not None:
        return dict(zip(FIELDS, _canonical_values(key), strict=True))
    return {field: canonicalise(field, record.get(field)) for field in FIELDS}


class _Parts(tuple[object, ...]):
    """An address given as a mapping, as the values of ADDRESS_PARTS in order (hashable, for the cache)."""


def _record_key(record: Mapping[str, object]) -> tuple[object, ...] | None:
    """The record's values in FIELDS order when they can key the cache (short text, Address, address parts)."""
    key: list[object] = []
    for field in FIELDS:
        value = record.get(field)
        # The common cases first, by exact type (this runs for every record a sync folds).
        if value is None or (type(value) is str and len(value) <= _CACHED_LENGTH):
            key.append(value)
        elif field in ADDRESS_FIELDS and isinstance(value, Mapping):
            if not _PART_NAMES.issuperset(value) or not all(map(_cacheable, value.values())):
                return None  # folded without the cache, which raises what is wrong with it
            key.append(_Parts(value.get(part) for part in ADDRESS_PARTS))
        elif type(value) is Address:
            key.append(value)
        else:
            return None
    return tuple(key)


def _cacheable(value: object) -> bool:
    return value is None or (type(value) is str and len(value) <= _CACHED_LENGTH)


@lru_cache(maxsize=1 << 13)
def _canonical_values(key: tuple[object, ...]) -> tuple[CanonicalValue, ...]:
    """The canonical values of a record's fields (in FIELDS order); the same record is folded several times."""
    return tuple(canonicalise(field, dict(zip(ADDRESS_PARTS, value, strict=True)) if type(value) is _Parts
                              else value) for field, value in zip(FIELDS, key, strict=True))


def canonical_address(value: object) -> Address | None:
    """Return an Address from an Address, a mapping of ADDRESS_PARTS, or None; all-empty becomes None."""
    if value is None:
        return None
    parts = value.to_json() if isinstance(value, Address) else value
    if not isinstance(parts, Mapping):
        raise TypeError(f"an address must be a mapping or Address, got {type(value).__name__}")
    if not _PART_NAMES.issuperset(parts):
        unknown = sorted(set(parts) - _PART_NAMES)
        raise ValueError(f"unknown address part(s) {', '.join(map(repr, unknown))}")
    clean = {part: _address_part(parts.get(part), _ADDRESS_LIMITS[part]) for part in ADDRESS_PARTS}
    return Address(**clean) if any(clean.values()) else None


def utf16_length(text: str) -> int:
    """Return the length of ``text`` as QBO counts it (UTF-16 code units)."""
    return sum(2 if ord(char) > 0xFFFF else 1 for char in text)


def truncate(text: str, limit: int) -> str:
    """Return the longest prefix of ``text`` within ``limit`` UTF-16 code units."""
    if len(text) <= limit // 2 or (len(text) <= limit and max(text, default="") <= "\uffff"):
        return text  # fits even if every character took two units, or none takes two (the common case)
    used = 0
    for index, char in enumerate(text):
        used += 2 if ord(char) > 0xFFFF else 1
        if used > limit:
            return text[:index]
    return text


def _canonical_text(field: str, value: object) -> str | None:
    if isinstance(value, str) and len(value) <= _CACHED_LENGTH:
        return _canonical_str(field, value)
    return _fold_text(field, value)


@lru_cache(maxsize=_CACHE_SIZE)
def _canonical_str(field: str, value: str) -> str | None:
    return _fold_text(field, value)


def _address_part(value: object, limit: int) -> str | None:
    if isinstance(value, str) and len(value) <= _CACHED_LENGTH:
        return _address_str(value, limit)
    return _single_line(value, limit)


@lru_cache(maxsize=_CACHE_SIZE)
def _address_str(value: str, limit: int) -> str | None:
    return _single_line(value, limit)


def _fold_text(field: str, value: object) -> str | None:
    if field == "notes":
        return _multi_line(value, _LIMITS[field])
    text = _as_text(field, value)
    if text is None:
        return None
    if field in _NO_COLON:
        text = text.replace(":", " ")
    if field == "email":
        # Case folding can lengthen text ("ß" -> "ss"), so it comes before the cut.
        text = unicodedata.normalize("NFC", text.casefold())
    return _single_line(text, _LIMITS[field])


def _single_line(value: object, limit: int) -> str | None:
    text = _as_text("address part", value)
    if text is None:
        return None
    return _empty_as_none(truncate(" ".join(text.split()), limit).rstrip())


def _multi_line(value: object, limit: int) -> str | None:
    text = _as_text("notes", value)
    if text is None:
        return None
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    joined = "\n".join(line.rstrip() for line in lines).strip()
    return _empty_as_none(truncate(joined, limit).rstrip())


def _as_text(field: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{field} must be text or None, got {type(value).__name__}")
    return unicodedata.normalize("NFC", value.replace("\x00", ""))


def _empty_as_none(text: str) -> str | None:
    return text or None
