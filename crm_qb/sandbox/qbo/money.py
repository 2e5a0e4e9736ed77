"""Money arithmetic: Decimal only, rounded half-up to cents like QBO."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.01")


def to_decimal(value: Any, default: Decimal | None = None) -> Decimal:
    """Return ``value`` as Decimal (strings and ints allowed); ``default`` or ValueError when it is not a number."""
    if isinstance(value, bool) or value is None:
        if default is not None:
            return default
        raise ValueError(f"not a number: {value!r}")
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation as exc:
        if default is not None:
            return default
        raise ValueError(f"not a number: {value!r}") from exc
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return result


def cents(value: Decimal) -> Decimal:
    """Round ``value`` half-up to two decimal places."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def home_amount(amount: Decimal, exchange_rate: Decimal) -> Decimal:
    """Home-currency equivalent: amount x rate (home units per foreign unit), rounded half-up to cents."""
    return cents(amount * exchange_rate)
