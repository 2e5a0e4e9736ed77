"""Overdue follow-up rules and the safe task template language."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from crm_qb.sync.rules.followups import (
    DEFAULT_RULE_DAYS,
    PLACEHOLDERS,
    due_rules,
    render_task,
    validate_rule_days,
    validate_template,
)

DUE = date(2025, 1, 31)


@pytest.mark.parametrize(
    ("days_after_due", "balance", "expected"),
    [
        (-5, "100.00", []),
        (0, "100.00", []),  # due today is not overdue
        (1, "100.00", [1]),
        (13, "100.00", [1]),
        (14, "100.00", [1, 14]),
        (29, "100.00", [1, 14]),
        (30, "100.00", [1, 14, 30]),
        (400, "100.00", [1, 14, 30]),
        (14, "0.01", [1, 14]),  # a partial payment leaves a balance: still overdue
        (30, "0", []),
        (30, "0.00", []),
        (30, "-5.00", []),  # a credit balance is not owed
    ],
)
def test_due_rules_with_defaults(days_after_due: int, balance: str, expected: list[int]) -> None:
    today = DUE + timedelta(days=days_after_due)
    assert due_rules(DUE, Decimal(balance), today, DEFAULT_RULE_DAYS) == expected


def test_due_rules_across_a_month_end() -> None:
    assert due_rules(date(2025, 2, 28), Decimal(1), date(2025, 3, 1), [1]) == [1]


@pytest.mark.parametrize(
    ("rule_days", "expected"),
    [
        ([30, 1, 14, 14], (1, 14, 30)),
        ([7], (7,)),
        ([], ()),
    ],
)
def test_validate_rule_days(rule_days: list[int], expected: tuple[int, ...]) -> None:
    assert validate_rule_days(rule_days) == expected


@pytest.mark.parametrize("bad", [0, -1, 1.5, "14", True])
def test_validate_rule_days_rejects(bad: object) -> None:
    with pytest.raises(ValueError, match=repr(bad).replace(".", r"\.")):
        validate_rule_days([1, bad])  # type: ignore[list-item]


FIELDS = {
    "invoice_number": "1037",
    "amount": "USD 362.07",
    "balance": "USD 100.00",
    "currency": "USD",
    "due_date": "2014-10-19",
    "days_overdue": 14,
    "deep_link": "https://app.qbo.intuit.com/app/invoice?txnId=130",
    "customer": "Sonnenschein {Family} Store",
    "rule": "14 days overdue",
    "rule_days": 14,
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Invoice {invoice_number} is {days_overdue} days overdue", "Invoice 1037 is 14 days overdue"),
        ("{balance} of {amount} due {due_date}", "USD 100.00 of USD 362.07 due 2014-10-19"),
        ("Open {deep_link}", "Open https://app.qbo.intuit.com/app/invoice?txnId=130"),
        ("Call {customer}", "Call Sonnenschein {Family} Store"),  # values are not re-read as templates
        ("{{literal}} {currency}", "{literal} USD"),
        ("{{{currency}}}", "{USD}"),
        ("no placeholders", "no placeholders"),
        ("", ""),
        ("Zoë\u2019s invoice {invoice_number}", "Zoë\u2019s invoice 1037"),
    ],
)
def test_render_task(template: str, expected: str) -> None:
    validate_template(template)
    assert render_task(template, FIELDS) == expected


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{total}", "unknown placeholder {total} at position 0"),
        ("Pay {amount.__class__}", r"unknown placeholder \{amount.__class__\}"),
        ("{amount:>10}", "unknown placeholder"),
        ("{ amount }", "unknown placeholder"),
        ("{}", "unknown placeholder {}"),
        ("Pay {amount", "unmatched '{' at position 4"),
        ("Pay amount}", "unmatched '}' at position 10"),
        ("{a{amount}", "unmatched '{' at position 0"),
    ],
)
def test_validate_template_rejects(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_template(template)
    with pytest.raises(ValueError, match=message):
        render_task(template, FIELDS)


def test_render_task_names_a_missing_value() -> None:
    with pytest.raises(ValueError, match=r"\{deep_link\}"):
        render_task("See {deep_link}", {"amount": "1"})


def test_every_placeholder_renders() -> None:
    template = " ".join(f"{{{name}}}" for name in PLACEHOLDERS)
    assert render_task(template, FIELDS) == " ".join(str(FIELDS[name]) for name in PLACEHOLDERS)
