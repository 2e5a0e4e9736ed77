"""Pure follow-up logic: which rules fire on which company day, why a task closes, task text, settings."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from crm_qb.sync.followups.scan import build_task
from crm_qb.sync.followups.settings import (
    DEFAULT_TAG,
    FollowupSettings,
    InvalidFollowupSettings,
    parse_days,
    parse_settings,
    reset_settings,
    updated_settings,
)
from crm_qb.sync.rules.followups import (
    CLOSE_REASONS,
    DEFAULT_RULE_DAYS,
    DESCRIPTION_MAX,
    TITLE_MAX,
    Invoice,
    closing_reason,
    completion_note,
    due_rules,
    rule_label,
    rule_to_fire,
    tags_with,
    task_fields,
    task_marker,
)
from crm_qb.sync.rules.status import company_today


def utc(text: str) -> datetime:
    """An aware UTC instant from "YYYY-MM-DDTHH:MM"."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


@pytest.mark.parametrize(
    ("due", "now", "zone", "expected"),
    [
        # New York springs forward on 2025-03-09 (02:00 EST -> 03:00 EDT): midnight is 05:00 UTC, then 04:00 UTC.
        ("2025-03-08", "2025-03-09T04:59", "America/New_York", []),
        ("2025-03-08", "2025-03-09T05:00", "America/New_York", [1]),
        ("2025-02-23", "2025-03-09T04:59", "America/New_York", [1]),
        ("2025-02-23", "2025-03-09T05:00", "America/New_York", [1, 14]),
        ("2025-03-09", "2025-03-10T03:59", "America/New_York", []),  # 23:59 EDT, still the due day
        ("2025-03-09", "2025-03-10T04:00", "America/New_York", [1]),
        # Berlin falls back on 2025-10-26 (03:00 CEST -> 02:00 CET): midnight is 22:00 UTC, then 23:00 UTC.
        ("2025-10-26", "2025-10-26T22:30", "Europe/Berlin", []),
        ("2025-10-26", "2025-10-26T23:00", "Europe/Berlin", [1]),
        ("2025-10-12", "2025-10-25T22:00", "Europe/Berlin", [1, 14]),
        # One instant, three companies: Kiritimati (+14) is a day ahead of UTC, Pago Pago (-11) a day behind.
        ("2025-01-31", "2025-01-31T12:00", "Pacific/Kiritimati", [1]),
        ("2025-01-31", "2025-01-31T12:00", "UTC", []),
        ("2025-01-30", "2025-01-31T08:00", "Pacific/Pago_Pago", []),
        ("2025-01-01", "2025-01-31T12:00", "Asia/Kolkata", [1, 14, 30]),
    ],
)
def test_rules_fire_on_the_companys_calendar_day(due: str, now: str, zone: str, expected: list[int]) -> None:
    today = company_today(utc(now), zone)
    assert due_rules(date.fromisoformat(due), Decimal("10.00"), today, DEFAULT_RULE_DAYS) == expected


@pytest.mark.parametrize(
    ("balance", "total", "expected"),
    [("0.01", "100.00", [1, 14]), ("99.99", "100.00", [1, 14]), ("0.00", "100.00", []), ("-1.00", "100.00", [])],
)
def test_partial_payments_keep_rules_while_a_balance_is_left(balance: str, total: str, expected: list[int]) -> None:
    invoice = _invoice(balance=balance, total=total)
    assert due_rules(invoice.due_date, invoice.balance, date(2025, 2, 14), DEFAULT_RULE_DAYS) == expected
    assert invoice.overdue(date(2025, 2, 14)) is bool(expected)


@pytest.mark.parametrize(
    ("days_after_due", "reached", "expected"),
    [
        (0, None, None),  # due today is not overdue
        (1, None, 1),
        (13, 1, None),
        (14, 1, 14),
        (37, None, 30),  # first seen long overdue: one task, the most advanced rule reached
        (37, 1, 30),  # scans missed: the rules skipped never fire
        (37, 30, None),
        (60, 30, None),
        (15, 30, None),  # a row of a later rule (e.g. after rule days changed) is never followed by an earlier one
    ],
)
def test_only_the_most_advanced_rule_reached_fires(days_after_due: int, reached: int | None,
                                                   expected: int | None) -> None:
    today = date(2025, 1, 31) + timedelta(days=days_after_due)
    assert rule_to_fire(date(2025, 1, 31), Decimal("10.00"), today, DEFAULT_RULE_DAYS, reached) == expected
    assert rule_to_fire(date(2025, 1, 31), Decimal("0.00"), today, DEFAULT_RULE_DAYS, None) is None


@pytest.mark.parametrize(("days", "label"), [(1, "1 day overdue"), (14, "14 days overdue"), (30, "30 days overdue")])
def test_a_task_names_its_rule(days: int, label: str) -> None:
    assert rule_label(days) == label
    assert task_fields(_invoice(), TODAY, "L", "c", days)["rule"] == label


def _invoice(**overrides: object) -> Invoice:
    values: dict[str, object] = {
        "qbo_id": "130", "contact_id": "ct_1", "doc_number": "1037", "due_date": date(2025, 1, 31),
        "total": Decimal("1234.50"), "balance": Decimal("1234.50"), "currency": "EUR", "voided": False,
        "customer_name": "Amy's Bird Sanctuary",
    }
    values.update({k: Decimal(v) if k in ("total", "balance") else v for k, v in overrides.items()})
    return Invoice(**values)  # type: ignore[arg-type]


TODAY = date(2025, 2, 3)


@pytest.mark.parametrize(
    ("invoice", "expected"),
    [
        (None, CLOSE_REASONS["deleted"]),
        (_invoice(voided=True, balance="0", total="0"), CLOSE_REASONS["voided"]),
        (_invoice(balance="0.00"), CLOSE_REASONS["paid"]),
        (_invoice(contact_id="ct_2"), CLOSE_REASONS["moved"]),
        (_invoice(contact_id=None), CLOSE_REASONS["moved"]),  # the customer is no longer linked to the contact
        (_invoice(due_date=date(2025, 3, 1)), CLOSE_REASONS["not_overdue"]),
        (_invoice(due_date=TODAY), CLOSE_REASONS["not_overdue"]),
        (_invoice(balance="0.01"), None),
        (_invoice(), None),
    ],
)
def test_closing_reason(invoice: Invoice | None, expected: str | None) -> None:
    assert closing_reason("ct_1", invoice, TODAY) == expected


def test_task_text_has_number_amounts_currency_due_date_days_and_link_and_ends_with_the_marker() -> None:
    marker = task_marker(3, "130", 14)
    values = task_fields(_invoice(balance="234.5"), TODAY, "https://app.qbo.intuit.com/app/invoice?txnId=130",
                         "Amy's Bird Sanctuary", 1)
    task = build_task(FollowupSettings(), values, marker, TODAY, "u7")
    assert task.title == "Overdue invoice 1037: EUR 234.50 (1 day overdue)"
    assert task.description == (
        "Invoice 1037 for Amy's Bird Sanctuary is 3 days overdue.\nAmount: EUR 1,234.50\nBalance due: EUR 234.50\n"
        "Due date: 2025-01-31\nOpen in QuickBooks: https://app.qbo.intuit.com/app/invoice?txnId=130\n\n"
        "[crm-qb follow-up 3:130:14]"
    )
    assert (task.due_date, task.owner_id) == (TODAY, "u7")


def test_values_with_braces_are_not_templates_and_long_text_is_cut_keeping_the_marker() -> None:
    marker = task_marker(1, "9", 1)
    settings = FollowupSettings(title_template="{customer} " + "x" * 300, description_template="{customer}" * 9)
    values = task_fields(_invoice(doc_number=None), TODAY, "L", "{amount}" * 100, 1)
    task = build_task(settings, values, marker, TODAY, None)
    assert task.title.startswith("{amount}{amount}") and len(task.title) == TITLE_MAX and task.title.endswith("…")
    assert task.description is not None and task.description.endswith("\n\n" + marker)
    assert len(task.description) <= DESCRIPTION_MAX
    assert task_fields(_invoice(doc_number=None), TODAY, "L", "c", 1)["invoice_number"] == "130"


def test_an_empty_description_template_leaves_only_the_marker() -> None:
    task = build_task(FollowupSettings(description_template="", title_template="T"), {}, "[m]", TODAY, None)
    assert (task.title, task.description) == ("T", "[m]")


def test_completion_note_is_appended_once_and_fits() -> None:
    once = completion_note("Call them.", "the invoice was paid in full", TODAY)
    assert once == "Call them.\n\nCompleted by crm-qb on 2025-02-03: the invoice was paid in full."
    assert completion_note(once, "the invoice was paid in full", TODAY) == once
    assert completion_note(None, "x", TODAY) == "Completed by crm-qb on 2025-02-03: x."
    assert len(completion_note("y" * DESCRIPTION_MAX, "x", TODAY)) <= DESCRIPTION_MAX


def test_tags_with_adds_at_the_end_and_removes_only_the_tag() -> None:
    assert tags_with(["vip"], DEFAULT_TAG, True) == ["vip", DEFAULT_TAG]
    assert tags_with(["vip", DEFAULT_TAG, "b"], DEFAULT_TAG, True) == ["vip", "b", DEFAULT_TAG]
    assert tags_with([DEFAULT_TAG, "vip"], DEFAULT_TAG, False) == ["vip"]


def test_settings_default_and_round_trip() -> None:
    assert parse_settings({}) == FollowupSettings()
    stored = updated_settings({"other": 1}, {"rule_days": [30, 7], "tag_enabled": True, "tag": " Late "})
    assert stored["other"] == 1
    assert parse_settings(stored) == FollowupSettings(rule_days=(7, 30), tag_enabled=True, tag="Late")
    assert reset_settings(stored) == {"other": 1}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"title_template": "Pay {amout}"}, "title_template: unknown placeholder {amout} at position 4"),
        ({"description_template": "a } b"}, "description_template: unmatched '}' at position 2"),
        ({"title_template": ""}, "title_template: Length must be between 1"),
        ({"rule_days": []}, "rule_days: needs at least one day; set enabled to false"),
        ({"rule_days": [1, 0]}, "rule_days[1]: must be a whole number >= 1"),
        ({"rule_days": [1, "7"]}, "rule_days[1]: Not a valid integer"),
        ({"rule_days": [5000]}, "rule_days: 5000 is more than 3650 days"),
        ({"rule_days": "1,14"}, "rule_days: Not a valid list"),
        ({"enabled": "yes"}, "enabled: must be true or false, got 'yes'"),
        ({"tag": "   "}, "tag: must not be blank"),
        ({"colour": "red"}, "colour: unknown setting (known: enabled, rule_days"),
    ],
)
def test_bad_settings_name_the_problem(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidFollowupSettings) as caught:
        updated_settings({}, changes)
    assert message in str(caught.value)


def test_stored_settings_that_went_bad_are_reported_not_used() -> None:
    with pytest.raises(InvalidFollowupSettings, match="rule_days"):
        parse_settings({"followups": {"rule_days": [0]}})


@pytest.mark.parametrize(("text", "days"), [("1,14,30", [1, 14, 30]), (" 7 , 2 ", [7, 2]), ("3", [3])])
def test_parse_days(text: str, days: list[int]) -> None:
    assert parse_days(text) == days


@pytest.mark.parametrize("text", ["", "1,,2", "1;2", "-1", "1.5", "x"])
def test_parse_days_refuses_anything_but_whole_numbers(text: str) -> None:
    with pytest.raises(InvalidFollowupSettings, match="is not a whole number"):
        parse_days(text)
