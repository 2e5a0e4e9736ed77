"""QBO's JSON answers parsed with exact money, faster: ``json.loads(data, parse_float=Decimal)``'s result.

A backfill parses every QBO page (a thousand customers or transactions each): with ``json.loads`` that was a fifth
of the transaction process's CPU. msgspec's decoder builds the same objects (dicts, lists, str, int, bool, None)
in less time, and its ``float_hook`` receives each non-integer number's text, so an amount becomes the
``Decimal`` of exactly what QuickBooks wrote, as ``parse_float=Decimal`` makes it (never a float).

Where the two could differ, ``loads`` gives ``json.loads``'s answer:
- a number written without fraction or exponent that does not fit 64 bits reaches the hook as text (msgspec does
  not make big ints): it is read as the ``int`` ``json.loads`` makes of it;
- anything msgspec refuses (NaN or Infinity, a lone surrogate escape, invalid UTF-8, a UTF-16 body, a BOM, a raw
  control character in a string...) is parsed by ``json.loads`` itself, which then gives its answer or raises its
  ``ValueError`` (a ``RecursionError`` for nesting too deep, as before).
Both keep the last of two equal keys. ``tests/unit/test_exact_json.py`` compares both, value and type, on generated
documents, damaged ones, arbitrary bytes and edge cases.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import msgspec


def _number(text: str) -> Decimal | int:
    """A number msgspec hands over as text: a fraction or exponent is a Decimal, a long integer an int."""
    if "." in text or "e" in text or "E" in text:
        return Decimal(text)
    return int(text)


_DECODER = msgspec.json.Decoder(float_hook=_number)


def loads(data: bytes | str) -> Any:
    """``json.loads(data, parse_float=Decimal)``'s answer (the same values and types), or its ValueError."""
    try:
        return _DECODER.decode(data)
    except msgspec.DecodeError:
        return json.loads(data, parse_float=Decimal)
