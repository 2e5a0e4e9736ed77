"""Currency names as QBO spells them in CurrencyRef, and the sandbox's default exchange rates."""

from __future__ import annotations

from decimal import Decimal
from types import MappingProxyType

NAMES = MappingProxyType({
    "USD": "United States Dollar",
    "EUR": "Euro",
    "GBP": "British Pound Sterling",
    "CAD": "Canadian Dollar",
    "AUD": "Australian Dollar",
    "JPY": "Japanese Yen",
    "CHF": "Swiss Franc",
    "INR": "Indian Rupee",
    "MXN": "Mexican Peso",
    "NZD": "New Zealand Dollar",
})

# Units of USD per one unit of the currency; a fixed table keeps the sandbox deterministic.
USD_PER_UNIT = MappingProxyType({
    "USD": Decimal("1"),
    "EUR": Decimal("1.0850"),
    "GBP": Decimal("1.2700"),
    "CAD": Decimal("0.7350"),
    "AUD": Decimal("0.6600"),
    "JPY": Decimal("0.006700"),
    "CHF": Decimal("1.1300"),
    "INR": Decimal("0.012000"),
    "MXN": Decimal("0.058000"),
    "NZD": Decimal("0.6100"),
})


def currency_ref(code: str) -> dict:
    """Return the CurrencyRef QBO writes for ``code``."""
    return {"value": code, "name": NAMES.get(code, code)}


def is_known(code: str) -> bool:
    """True when the sandbox knows currency ``code``."""
    return code in NAMES


def default_rate(source: str, home: str) -> Decimal:
    """Home units per one ``source`` unit from the built-in table (six decimal places)."""
    rate = USD_PER_UNIT[source] / USD_PER_UNIT[home]
    return rate.quantize(Decimal("0.000001"))
