"""Unset fields as client libraries send them: ``""`` (or ``null``) means "no value", never a malformed one.

Client libraries written for QBO serialise every attribute they model, so a new invoice from python-quickbooks
carries ``"TxnDate": ""``, ``"DueDate": ""`` and ``"TotalAmt": ""``, a reference it never set arrives as
``{"value": "", "name": ""}``, and a product clearing a field in a sparse update sends ``""`` at the leaf. QBO
accepts all of these (docs/qbo/sandbox-fidelity.md). The sandbox therefore removes blank leaves before any rule
runs: on a create the field is absent (QBO's default applies), on a full update it is cleared (as every omitted
field is), and on a sparse update it is cleared (the field was named, with no value).

A dict left empty only because its members were blank (an unset reference) goes too; a dict that arrived empty
(``"SubTotalLineDetail": {}``) and every list (``"Line": []`` removes a payment's lines) stay as sent.
"""

from __future__ import annotations

from typing import Any


def is_blank(value: object) -> bool:
    """True for the values that mean "not set": None and strings with nothing but white space."""
    return value is None or (isinstance(value, str) and not value.strip())


def drop_blanks(value: Any) -> Any:
    """``value`` without blank leaves, recursively (see the module docstring); the input is not modified."""
    if isinstance(value, dict):
        return _clean_dict(value)
    if isinstance(value, list):
        return [drop_blanks(item) for item in value if not _emptied(item)]
    return value


def _clean_dict(value: dict) -> dict:
    cleaned = {}
    for key, item in value.items():
        if is_blank(item) or _emptied(item):
            continue
        cleaned[key] = drop_blanks(item)
    return cleaned


def _emptied(item: object) -> bool:
    """A non-empty dict whose members are all blank (an unset reference such as {"value": "", "name": ""})."""
    return isinstance(item, dict) and bool(item) and not _clean_dict(item)
