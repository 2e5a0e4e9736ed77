"""JSON in and out the way QBO does it: money stays ``Decimal`` and is written as a bare JSON number."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    """Parse JSON, reading every non-integer number as ``Decimal`` so money never passes through float."""
    return json.loads(data, parse_float=Decimal)


# Stands around a Decimal's text in the C encoder's output, then is taken out with the quotes (see ``dumps``).
_MARK = f"\ue000{uuid.uuid4().hex}\ue001"


def dumps(value: Any) -> str:
    """Serialise ``value``; ``Decimal`` becomes a JSON number (``json`` itself can only write it as a string).

    The text is ``write``'s, made by the C encoder: every answer of a thousand objects was serialised here a
    value at a time in Python, the sandbox's largest cost per query page (a real QBO does not make its clients
    wait for that). A Decimal is written as a marked string and unquoted afterwards; anything the C encoder
    would not write (a type of its own, a key that is not a string, int or float) is left to ``write``. Every
    dict the sandbox answers with is keyed by strings, as QBO's JSON is (a bool or None key would be written
    ``true``/``null`` here but ``True``/``None`` by ``write``).
    """
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_marked)
    except (_NotPlain, TypeError):  # TypeError: a key the C encoder refuses
        return write(value)
    return text.replace(f'"{_MARK}', "").replace(f'{_MARK}"', "") if _MARK in text else text


# orjson hands these to ``_fragment`` (which refuses them, so ``dumps`` writes them) instead of writing them its way.
_PASSTHROUGH = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME


def dumps_data(value: Any) -> bytes:
    """``dumps(value)`` in UTF-8, written by orjson: for the accounting API's query answers (a page of a thousand
    realm objects), whose writing was most of the sandbox's CPU in a backfill (57 against 9 ms for a page of
    invoices). Realm data holds no float (bodies are parsed with Decimal amounts, seeds are Decimal), so every
    value here is one orjson writes exactly as ``json`` does: str (the same escapes), int, bool, None, lists and
    dicts with str keys; a Decimal goes in as its ``dumps`` text. Anything else (a key that is not a str, an int
    beyond 64 bits, a subclass, a non-finite Decimal, a lone surrogate) makes orjson refuse and ``dumps`` writes
    it, or raises what it raises. Floats are the exception: orjson writes ``1e-7`` and NaN as null where ``json``
    writes ``1e-07`` and NaN, so a value that may hold one is for ``dumps``.
    """
    try:
        return orjson.dumps(value, default=_fragment, option=_PASSTHROUGH)
    except orjson.JSONEncodeError:
        return dumps(value).encode("utf-8")


def _fragment(value: Any) -> orjson.Fragment:
    if type(value) is Decimal:
        return orjson.Fragment(_decimal_text(value))
    raise TypeError(f"left to dumps: {type(value).__name__}")


class _NotPlain(Exception):
    """A value the C encoder would write differently from ``write``."""


def _marked(value: Any) -> str:
    if isinstance(value, Decimal):
        return f"{_MARK}{_decimal_text(value)}{_MARK}"
    raise _NotPlain


def write(value: Any) -> str:
    """Serialise ``value`` a value at a time (``dumps``'s reference: the same text)."""
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts)


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, str):
        out.append(encode_basestring(value))
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, Decimal):
        out.append(_decimal_text(value))
    elif isinstance(value, int | float):
        out.append(json.dumps(value))
    elif isinstance(value, dict):
        _write_object(value, out)
    elif isinstance(value, list | tuple):
        _write_array(value, out)
    else:
        raise TypeError(f"cannot serialise {type(value).__name__} as JSON")


def _write_object(value: dict, out: list[str]) -> None:
    out.append("{")
    first = True
    for key, item in value.items():
        if not first:
            out.append(",")
        first = False
        out.append(encode_basestring(str(key)))
        out.append(":")
        _write(item, out)
    out.append("}")


def _write_array(value: list | tuple, out: list[str]) -> None:
    out.append("[")
    for index, item in enumerate(value):
        if index:
            out.append(",")
        _write(item, out)
    out.append("]")


def _decimal_text(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"cannot serialise non-finite Decimal {value!r}")
    # 'f' keeps JSON-legal plain notation (no exponent) for any magnitude.
    return format(value, "f")
