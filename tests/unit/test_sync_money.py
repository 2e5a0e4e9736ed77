"""Money: strict Decimal input, half-up rounding, given vs computed home amounts, display format."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from crm_qb.sync.rules.money import (
    Amounts,
    exact_product,
    format_money,
    minor_unit_exponent,
    round_money,
    to_decimal,
    transaction_amounts,
)
from tests.support import QBO_FIXTURES, qbo_fixture

D = Decimal



@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (D("1.10"), D("1.10")),
        (5, D(5)),
        (-3, D(-3)),
        ("362.07", D("362.07")),
        ("0.000001", D("0.000001")),
        (0, D(0)),
    ],
)
def test_to_decimal_accepts_exact_inputs(value: object, expected: Decimal) -> None:
    result = to_decimal(value)
    assert result == expected and isinstance(result, Decimal)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (1.1, TypeError, "float"),
        (True, TypeError, "bool"),
        (None, TypeError, "NoneType"),
        ("12,50", ValueError, "not a number"),
        ("NaN", ValueError, "finite"),
        (D("Infinity"), ValueError, "finite"),
    ],
)
def test_to_decimal_rejects(value: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        to_decimal(value)


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (D("1.005"), D("1.01")),
        (D("1.004999"), D("1.00")),
        (D("2.675"), D("2.68")),  # the float 2.675 would round to 2.67
        (D("-1.005"), D("-1.01")),  # ties go away from zero
        (D("0"), D("0.00")),
        (D("-0.004"), D("0.00")),
        (D("12345678901234.565"), D("12345678901234.57")),
    ],
)
def test_cents_are_rounded_half_up(amount: Decimal, expected: Decimal) -> None:
    assert round_money(amount, "USD") == expected
    assert round_money(amount, "USD").as_tuple().exponent == -2


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (D("1234.5"), "JPY", D("1235")),
        (D("1.0005"), "KWD", D("1.001")),
        (D("1.005"), "EUR", D("1.01")),
    ],
)
def test_round_money_uses_the_minor_unit(amount: Decimal, currency: str, expected: Decimal) -> None:
    assert round_money(amount, currency) == expected
    assert round_money(amount, currency).as_tuple().exponent == -minor_unit_exponent(currency)


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (D("1234.5"), "EUR", "EUR 1,234.50"),
        (D("-1234.5"), "EUR", "EUR -1,234.50"),
        (D("0"), "USD", "USD 0.00"),
        (D("1234567.891"), "USD", "USD 1,234,567.89"),
        (D("0.005"), "GBP", "GBP 0.01"),
        (D("1234.5"), "JPY", "JPY 1,235"),
        (D("12.3456"), "BHD", "BHD 12.346"),
    ],
)
def test_format_money(amount: Decimal, currency: str, expected: str) -> None:
    assert format_money(amount, currency) == expected


def test_exact_product_keeps_every_digit() -> None:
    assert exact_product(D("12345678.90"), D("1.12345678901234567890123")) == D(
        "13869836.7751714678875170903950470"
    )


def _txn(**fields: object) -> dict[str, object]:
    return {"Id": "1", "TotalAmt": D("100.00"), "Balance": D("40.00"), **fields}


EUR = {"CurrencyRef": {"value": "EUR", "name": "Euro"}}


@pytest.mark.parametrize(
    ("txn", "expected"),
    [
        (_txn(), Amounts("USD", D(1), D("100.00"), D("40.00"), "USD", D("100.00"), D("40.00"), False)),
        (
            _txn(**EUR, ExchangeRate=D("1.1"), HomeTotalAmt=D("110.01"), HomeBalance=D("44.02")),
            Amounts("EUR", D("1.1"), D("100.00"), D("40.00"), "USD", D("110.01"), D("44.02"), False),
        ),
        (
            _txn(**EUR, ExchangeRate=D("1.123456789")),
            Amounts("EUR", D("1.123456789"), D("100.00"), D("40.00"), "USD", D("112.35"), D("44.94"), True),
        ),
        (
            _txn(**EUR, ExchangeRate=D("1.1"), HomeTotalAmt=D("110.00")),
            Amounts("EUR", D("1.1"), D("100.00"), D("40.00"), "USD", D("110.00"), D("44.00"), True),
        ),
        (
            _txn(**EUR, ExchangeRate="0.00505", TotalAmt=D("1"), Balance=D("1")),
            Amounts("EUR", D("0.00505"), D("1"), D("1"), "USD", D("0.01"), D("0.01"), True),
        ),
        (
            _txn(**EUR, ExchangeRate=D("1.5"), TotalAmt=D("-10.01"), Balance=D("0")),
            Amounts("EUR", D("1.5"), D("-10.01"), D("0"), "USD", D("-15.02"), D("0.00"), True),
        ),
        (
            _txn(**EUR, TotalAmt=0, Balance=0),
            Amounts("EUR", D(1), D(0), D(0), "USD", D("0.00"), D("0.00"), True),
        ),
        (
            _txn(CurrencyRef={"value": "JPY"}, ExchangeRate=D("0.0066"), TotalAmt=15000, Balance=15000),
            Amounts("JPY", D("0.0066"), D(15000), D(15000), "USD", D("99.00"), D("99.00"), True),
        ),
        (
            {"Id": "2", "TotalAmt": D("65.0"), "UnappliedAmt": D("10.0")},
            Amounts("USD", D(1), D("65.0"), D("10.0"), "USD", D("65.0"), D("10.0"), False),
        ),
        (
            {"Id": "3", "TotalAmt": D("31.5"), **EUR, "ExchangeRate": D("2")},
            Amounts("EUR", D(2), D("31.5"), None, "USD", D("63.00"), None, True),
        ),
    ],
)
def test_transaction_amounts(txn: dict[str, Any], expected: Amounts) -> None:
    assert transaction_amounts(txn, "USD", multicurrency=True) == expected


@pytest.mark.parametrize(
    ("payload", "entity", "total", "balance"),
    [
        ("invoice_read.json", "Invoice", D("362.07"), D("362.07")),
        ("payment_read.json", "Payment", D("65.0"), D("10.0")),
        ("estimate_read.json", "Estimate", D("31.5"), None),
        ("salesreceipt_from_batch_query.json", "SalesReceipt", D("337.5"), D("0")),
        ("invoice_void_response.json", "Invoice", D("0"), D("0")),
    ],
)
def test_amounts_of_sample_payloads(
    payload: str, entity: str, total: Decimal, balance: Decimal | None
) -> None:
    amounts = transaction_amounts(qbo_fixture(payload)[entity], "USD", multicurrency=False)
    assert (amounts.currency, amounts.total, amounts.balance, amounts.home_computed) == (
        "USD",
        total,
        balance,
        False,
    )
    assert (amounts.home_total, amounts.home_balance) == (total, balance)


@pytest.mark.parametrize(
    ("txn", "error", "message"),
    [
        (_txn(TotalAmt=100.0), TypeError, "TotalAmt is a float"),
        (_txn(**EUR, ExchangeRate=1.1), TypeError, "ExchangeRate is a float"),
        (_txn(**EUR, ExchangeRate=D(1), HomeTotalAmt=110.0), TypeError, "float"),
        ({"Id": "9", "Balance": D(1)}, ValueError, "has no TotalAmt"),
    ],
)
def test_transaction_amounts_rejects(txn: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        transaction_amounts(txn, "USD", multicurrency=True)


def test_foreign_currency_without_multicurrency_is_an_error() -> None:
    with pytest.raises(ValueError, match="multicurrency is off"):
        transaction_amounts(_txn(**EUR), "USD", multicurrency=False)


def test_the_fixture_parse_yields_no_floats() -> None:
    invoice = qbo_fixture("invoice_read.json")["Invoice"]
    assert isinstance(invoice["TotalAmt"], Decimal)
    with pytest.raises(TypeError):
        to_decimal(json.loads((QBO_FIXTURES / "invoice_read.json").read_text())["Invoice"]["TotalAmt"])
