"""Money of a QBO transaction, in its own currency and in the company's home currency.

Decisions:
- Amounts are Decimal end to end. QBO JSON must be parsed with ``json.loads(text, parse_float=Decimal)``;
  ``to_decimal`` accepts Decimal, int and str and raises TypeError for a float, so a lossy parse fails early.
- Rounding is ROUND_HALF_UP (ties away from zero, so -1.005 becomes -1.01) to the currency's minor unit:
  0 decimals for JPY, KRW and the other ISO 4217 zero-decimal currencies, 3 for BHD, KWD, ..., else 2.
- Home amounts come from HomeTotalAmt / HomeBalance when QBO gives them; otherwise amount x ExchangeRate is
  rounded to the home currency's minor unit and ``home_computed`` is set. A home-currency transaction's home
  amounts are its amounts and are not "computed".
- ``balance`` is Balance, else UnappliedAmt (payments), else None (estimates have no balance).
- ``format_money`` writes the ISO code, a space and the grouped amount: "EUR 1,234.50", "EUR -1,234.50". The
  code is unambiguous ($ is USD, CAD, AUD...) and needs no locale data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any

# ISO 4217 currencies counted without or with three decimals; every other currency has two.
_ZERO_DECIMAL: frozenset[str] = frozenset(
    [
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "ISK",
        "JPY",
        "KMF",
        "KRW",
        "PYG",
        "RWF",
        "UGX",
        "UYI",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    ]
)
_THREE_DECIMAL: frozenset[str] = frozenset(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"])


@dataclass(frozen=True)
class Amounts:
    """A transaction's amounts in its currency and in the home currency."""

    currency: str
    exchange_rate: Decimal
    total: Decimal
    balance: Decimal | None
    home_currency: str
    home_total: Decimal
    home_balance: Decimal | None
    home_computed: bool


def to_decimal(value: object, what: str = "amount") -> Decimal:
    """Return ``value`` (Decimal, int or numeric str) as a finite Decimal; TypeError for float and others."""
    if isinstance(value, float):
        raise TypeError(f"{what} is a float ({value!r}); parse QBO JSON with parse_float=Decimal")
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise TypeError(f"{what} must be a Decimal, int or str, got {type(value).__name__}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{what} is not a number: {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"{what} must be finite, got {value!r}")
    return number


def minor_unit_exponent(currency: str) -> int:
    """Return how many decimals ``currency`` (ISO 4217 code) is counted in."""
    if currency in _ZERO_DECIMAL:
        return 0
    return 3 if currency in _THREE_DECIMAL else 2


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Return ``amount`` rounded half-up to the minor unit of ``currency``."""
    return amount.quantize(Decimal(1).scaleb(-minor_unit_exponent(currency)), rounding=ROUND_HALF_UP)


def format_money(amount: Decimal, currency: str) -> str:
    """Return ``amount`` for display as "<ISO code> <grouped amount>", e.g. "EUR 1,234.50"."""
    return f"{currency} {round_money(to_decimal(amount), currency):,f}"


def transaction_amounts(txn: Mapping[str, Any], home_currency: str, multicurrency: bool) -> Amounts:
    """Return the amounts of a QBO transaction (Invoice, Payment, ...); home amounts given or computed."""
    currency = _currency(txn, home_currency, multicurrency)
    total = to_decimal(_required(txn, "TotalAmt"), "TotalAmt")
    balance = _balance(txn)
    if currency == home_currency:
        return Amounts(currency, Decimal(1), total, balance, home_currency, total, balance, False)
    rate = to_decimal(txn.get("ExchangeRate", 1), "ExchangeRate")
    home_total, total_computed = _home(txn.get("HomeTotalAmt"), total, rate, home_currency)
    home_balance, balance_computed = (
        (None, False) if balance is None else _home(txn.get("HomeBalance"), balance, rate, home_currency)
    )
    computed = total_computed or balance_computed
    return Amounts(currency, rate, total, balance, home_currency, home_total, home_balance, computed)


def _currency(txn: Mapping[str, Any], home_currency: str, multicurrency: bool) -> str:
    currency = (txn.get("CurrencyRef") or {}).get("value") or home_currency
    if not multicurrency and currency != home_currency:
        raise ValueError(
            f"transaction in {currency} but multicurrency is off (home currency {home_currency})"
        )
    return str(currency)


def _balance(txn: Mapping[str, Any]) -> Decimal | None:
    for key in ("Balance", "UnappliedAmt"):
        if txn.get(key) is not None:
            return to_decimal(txn[key], key)
    return None


def _home(given: object, amount: Decimal, rate: Decimal, home_currency: str) -> tuple[Decimal, bool]:
    if given is not None:
        return to_decimal(given, "home amount"), False
    return round_money(exact_product(amount, rate), home_currency), True


def exact_product(a: Decimal, b: Decimal) -> Decimal:
    """Return a x b with no rounding (the default context keeps only 28 digits)."""
    digits = len(a.as_tuple().digits) + len(b.as_tuple().digits)
    return Context(prec=max(digits, 1)).multiply(a, b)


def _required(txn: Mapping[str, Any], key: str) -> object:
    if txn.get(key) is None:
        raise ValueError(f"transaction {txn.get('Id')!r} has no {key}")
    return txn[key]
