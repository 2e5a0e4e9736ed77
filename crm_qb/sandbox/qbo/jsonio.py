"""JSON in and out the way QBO does it: money stays ``Decimal`` and is written as a bare JSON number."""

from __future__ import annotations

import json
from decimal import Decimal
from json.encoder import encode_basestring
from typing import Any


def loads(data: bytes | str) -> Any:
    """Parse JSON, reading every non-integer number as ``Decimal`` so money never passes through float."""
    return json.loads(data, parse_float=Decimal)


def dumps(value: Any) -> str:
    """Serialise ``value``; ``Decimal`` becomes a JSON number (``json`` itself can only write it as a string)."""
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
