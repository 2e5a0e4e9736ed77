"""The pure rules of billable time (crm_qb/sync/rules/time.py), with tables of cases."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from crm_qb.sync.rules import time as rules
from crm_qb.sync.rules.time import Person

EMILY = Person("Employee", "6", "Emily Platt", "emily.platt@example.com", "Emily", "Platt")
PRIYA = Person("Vendor", "9", "Priya P. Contracting", "priya@example.com", "Priya", "Patel")
OLD_EMILY = Person("Employee", "7", "Emily Platt (old)", "emily.platt@example.com", active=False)
TWIN = Person("Vendor", "10", "Emily Platt Design", None, "Emily", "Platt")


@pytest.mark.parametrize(("name", "email", "people", "expected", "by"), [
    ("Emily Platt", "EMILY.PLATT@example.com", [EMILY, PRIYA], "Employee:6", "email"),
    ("Somebody Else", "priya@example.com", [EMILY, PRIYA], "Vendor:9", "email"),
    ("Priya Patel", "other@example.com", [EMILY, PRIYA], "Vendor:9", "name"),  # given + family name
    ("emily  platt", None, [EMILY, OLD_EMILY], "Employee:6", "name"),  # inactive people never match
    ("Riley Chen", "riley@example.com", [EMILY, PRIYA], None, "review"),
    ("Emily Platt", None, [EMILY, TWIN], None, "review"),  # two people with the name: a person decides
])
def test_a_crm_user_maps_by_email_then_name_else_review(name, email, people, expected, by) -> None:
    match = rules.match_person(name, email, people)
    assert (match.person.ref if match.person else None, match.by) == (expected, by)
    if expected is None:
        assert match.reason


def test_two_people_with_one_email_are_a_review_listing_both() -> None:
    other = Person("Vendor", "11", "E. P. Studio", "emily.platt@example.com")
    match = rules.match_person("Emily Platt", "emily.platt@example.com", [EMILY, other])
    assert match.person is None and match.candidates == ("Employee:6", "Vendor:11")


@pytest.mark.parametrize(("text", "expected"), [
    ("Employee:55", ("Employee", "55")), ("Vendor: 12 ", ("Vendor", "12")),
])
def test_person_refs_parse(text: str, expected: tuple[str, str]) -> None:
    assert rules.parse_person_ref(text) == expected


@pytest.mark.parametrize("text", ["Customer:1", "Employee:", "55", "employee:5"])
def test_bad_person_refs_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="Employee:ID or Vendor:ID"):
        rules.parse_person_ref(text)


@pytest.mark.parametrize(("billable", "minutes", "contact", "kind", "reason"), [
    (True, 30, "c1", "call", None), (True, 30, "c1", "meeting", None), (True, 30, "c1", "time", None),
    (False, 30, "c1", "call", "not billable"), (True, None, "c1", "call", "no duration"),
    (True, 0, "c1", "call", "no duration"), (True, 30, None, "call", "no contact"),
    (True, 30, "c1", "email", "an email is not time"), (True, 30, "c1", "task", "a task is not time"),
])
def test_what_is_time(billable: bool, minutes: int | None, contact: str | None, kind: str,
                      reason: str | None) -> None:
    assert rules.not_time_reason(billable, minutes, contact, kind) == reason


@pytest.mark.parametrize(("minutes", "expected"), [(0, (0, 0)), (45, (0, 45)), (90, (1, 30)), (1440, (24, 0))])
def test_hours_and_minutes(minutes: int, expected: tuple[int, int]) -> None:
    assert rules.hours_minutes(minutes) == expected


@pytest.mark.parametrize(("started", "zone", "expected"), [
    (datetime(2026, 12, 1, 3, 30, tzinfo=UTC), "America/New_York", date(2026, 11, 30)),  # evening before
    (datetime(2026, 12, 1, 3, 30, tzinfo=UTC), "Asia/Tokyo", date(2026, 12, 1)),
    (datetime(2026, 12, 1, 23, 30, tzinfo=UTC), "Asia/Tokyo", date(2026, 12, 2)),
    (datetime(2026, 12, 1, 3, 30, tzinfo=UTC), None, date(2026, 12, 1)),
    (datetime(2026, 12, 1, 3, 30, tzinfo=UTC), "Not/AZone", date(2026, 12, 1)),
])
def test_the_date_is_the_start_in_the_company_time_zone(started: datetime, zone: str | None, expected: date) -> None:
    assert rules.company_date(started, zone) == expected


@pytest.mark.parametrize(("activity", "item", "expected"), [
    (Decimal("120.00"), Decimal(75), Decimal("120.00")), (None, Decimal(75), Decimal(75)), (None, None, None),
    (Decimal(0), Decimal(75), Decimal(0)),  # an explicit 0 is the activity's rate, not "none"
])
def test_rate_is_the_activity_s_then_the_item_s(activity, item, expected) -> None:
    assert rules.hourly_rate(activity, item) == expected


@pytest.mark.parametrize(("minutes", "rate", "currency", "expected"), [
    (20, Decimal("90.00"), "USD", Decimal("30.00")),  # exact minutes, not 0.33 h x 90
    (10, Decimal("62.50"), "USD", Decimal("10.42")),  # 10.4166.. rounded half-up
    (90, Decimal(75), "JPY", Decimal(113)),  # 112.5 rounds half-up to a whole yen
    (90, None, "USD", Decimal("0.00")),
])
def test_amount_bills_exact_minutes_rounded_half_up(minutes: int, rate, currency: str, expected: Decimal) -> None:
    assert rules.amount(minutes, rate, currency) == expected


def test_the_description_keeps_the_link_whole_within_4000_characters() -> None:
    link = "https://crm.example.com/ui/contacts/c1#activity-a1"
    assert rules.description("  Kick-off\\ncall ", link) == f"Kick-off\\ncall — {link}"
    assert rules.description(None, link) == f"CRM activity — {link}"
    long = rules.description("x" * 5000, link)
    assert len(long) == 4000 and long.endswith(f"… — {link}")


def test_the_activity_link_quotes_ids() -> None:
    template = "{crm}/ui/contacts/{contact_id}#activity-{activity_id}"
    assert rules.activity_link(template, "https://crm.example.com/", "a 1", "c/2") == (
        "https://crm.example.com/ui/contacts/c%2F2#activity-a%201")


def _facts(**changes) -> rules.TimeFacts:
    base = {"person": EMILY, "customer_id": "58", "item_id": "3", "rate": Decimal("75.00"), "duration_minutes": 90,
            "txn_date": date(2026, 11, 30), "description": "Call — link"}
    return rules.TimeFacts(**{**base, **changes})


def test_the_body_is_billable_time_for_the_person_customer_and_item() -> None:
    assert rules.time_body(_facts()) == {
        "NameOf": "Employee", "EmployeeRef": {"value": "6"}, "CustomerRef": {"value": "58"},
        "ItemRef": {"value": "3"}, "BillableStatus": "Billable", "HourlyRate": Decimal("75.00"), "Hours": 1,
        "Minutes": 30, "TxnDate": "2026-11-30", "Description": "Call — link"}
    vendor = rules.time_body(_facts(person=PRIYA, item_id=None, rate=None))
    assert vendor["VendorRef"] == {"value": "9"} and "ItemRef" not in vendor and vendor["HourlyRate"] == 0


def test_an_update_sends_only_what_changed_and_everything_when_the_person_kind_changes() -> None:
    written = {**rules.time_body(_facts()), "HourlyRate": "75.0"}  # as stored in JSON
    assert rules.update_fields(written, rules.time_body(_facts())) == {}
    assert rules.update_fields(written, rules.time_body(_facts(duration_minutes=45))) == {"Hours": 0, "Minutes": 45}
    to_vendor = rules.time_body(_facts(person=PRIYA))
    assert rules.update_fields(written, to_vendor) == to_vendor
    assert rules.update_fields(None, to_vendor) == to_vendor
