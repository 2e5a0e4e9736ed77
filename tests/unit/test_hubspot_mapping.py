"""The HubSpot mapping (docs/hubspot/mapping.md) as pure functions, with tables of cases."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from crm_qb.address import Address
from crm_qb.crm.errors import CrmProtocolError
from crm_qb.crm.hubspot import mapping
from crm_qb.crm.protocol import CrmUser, NewTask

PAYLOADS = Path(__file__).resolve().parents[2] / "docs" / "hubspot" / "payloads"


def test_hubspots_documented_contact_object_reads() -> None:
    obj = json.loads((PAYLOADS / "contact_object.json").read_text())
    contact = mapping.contact_from_object(obj)
    assert contact.id == obj["id"]
    assert contact.updated_at == mapping.parse_hubspot_time(obj["updatedAt"])
    assert contact.version == mapping.epoch_ms(contact.updated_at)
    assert contact.email == obj["properties"].get("email")
    assert contact.display_name is None and contact.tags == ()


@pytest.mark.parametrize(("changes", "expected"), [
    ({"first_name": "Ada", "mobile": "555"}, {"firstname": "Ada", "mobilephone": "555"}),
    ({"notes": None, "email": ""}, {"qb_notes": "", "email": ""}),
    ({"display_name": "X", "tags": ["a"]}, {}),
    ({"owner_id": "1001"}, {"hubspot_owner_id": "1001"}),
    ({"billing_address": {"line1": "1 Main", "line2": "Apt 2", "postal_code": "01234"}},
     {"address": "1 Main", "qb_address_line2": "Apt 2", "zip": "01234"}),
    ({"billing_address": None}, {"address": "", "qb_address_line2": "", "city": "", "state": "", "zip": "",
                                 "country": ""}),
    ({"shipping_address": Address(line1="Dock 4", city="Bristol")}, {"qb_shipping_address": "Dock 4\n\nBristol\n\n\n"}),
    ({"shipping_address": None}, {"qb_shipping_address": ""}),
])
def test_contact_properties(changes: dict[str, object], expected: dict[str, str]) -> None:
    assert mapping.contact_properties(changes) == expected


def test_an_unknown_field_is_refused() -> None:
    with pytest.raises(ValueError, match="nickname"):
        mapping.contact_properties({"nickname": "x"})


@pytest.mark.parametrize("address", [
    Address(), Address(line1="a"), Address(line1="a", line2="b", city="c", region="d", postal_code="e", country="f"),
    Address(country="UK"), Address(line1="one\ntwo"),
])
def test_the_shipping_address_round_trips(address: Address) -> None:
    text = mapping.shipping_to_text(address)
    back = mapping.shipping_from_text(text)
    assert back == (Address(line1="one two") if address.line1 == "one\ntwo" else address)


def test_a_persons_own_shipping_text_reads_line_by_line() -> None:
    assert mapping.shipping_from_text("Dock 4\nBay 2") == Address(line1="Dock 4", line2="Bay 2")


@pytest.mark.parametrize(("props", "identity"), [
    ({"email": "a@b.c"}, True), ({"lastname": "L"}, True), ({"company": "Acme"}, False), ({"email": ""}, False),
])
def test_hubspot_needs_an_email_or_a_name(props: dict[str, str], identity: bool) -> None:
    assert mapping.has_identity(props) is identity


@pytest.mark.parametrize(("status", "ours"), [
    ("NOT_STARTED", "open"), ("IN_PROGRESS", "open"), ("WAITING", "open"), ("DEFERRED", "open"),
    ("COMPLETED", "done"), (None, "open"),
])
def test_task_statuses(status: str | None, ours: str) -> None:
    obj = {"id": "7", "properties": {"hs_task_subject": "s", "hs_task_status": status,
                                     "hs_timestamp": "2026-12-01T00:00:00.000Z"},
           "createdAt": "2026-11-30T10:00:00Z", "updatedAt": "2026-12-01T10:00:00Z"}
    task = mapping.task_from_object(obj, "c1")
    assert (task.status, task.due_date, task.contact_id) == (ours, date(2026, 12, 1), "c1")


def test_new_tasks_and_task_changes() -> None:
    props = mapping.task_properties(NewTask("Invoice 12 overdue", None, date(2026, 12, 1), "1001"))
    assert props["hs_timestamp"] == str(mapping.epoch_ms(datetime(2026, 12, 1, tzinfo=UTC)))
    assert (props["hs_task_status"], props["hubspot_owner_id"], props["hs_task_body"]) == ("NOT_STARTED", "1001", "")
    assert mapping.task_changes({"status": "done", "completed_at": "x"}) == {"hs_task_status": "COMPLETED"}
    assert mapping.task_changes({"title": "t", "due_date": date(2026, 1, 2)})["hs_task_subject"] == "t"
    with pytest.raises(ValueError):
        mapping.task_changes({"status": "cancelled"})
    with pytest.raises(ValueError):
        mapping.task_changes({"priority": "HIGH"})


def test_the_summary_in_the_quickbooks_group() -> None:
    props = mapping.summary_properties({
        "currency": "EUR", "qbo_balance": "12.50", "open_balance": {"home": "14.00"}, "overdue_balance": {"home": None},
        "terms": None, "last_payment": {"date": "2026-11-30", "amount": "3.00", "home_amount": "3.30"},
        "parent": {"name": "Parent Co"}, "updated_at": "2026-12-01T10:00:00+00:00"})
    assert props["qb_currency"] == "EUR" and props["qb_open_balance"] == "14.00" and props["qb_overdue_balance"] == ""
    assert props["qb_payment_terms"] == "" and props["qb_last_payment_amount"] == "3.30"
    assert props["qb_last_payment_date"] == str(mapping.epoch_ms(datetime(2026, 11, 30, tzinfo=UTC)))
    assert props["qb_parent_customer"] == "Parent Co"
    assert set(props) <= {d["name"] for d in mapping.PROPERTY_DEFINITIONS}


@pytest.mark.parametrize("value", ["2026-12-01T10:00:00.123Z", "2026-12-01T10:00:00.123+00:00", "1796119200123"])
def test_times(value: str) -> None:
    assert mapping.parse_hubspot_time(value) == datetime(2026, 12, 1, 10, 0, 0, 123000, tzinfo=UTC)


@pytest.mark.parametrize("bad", [None, "yesterday", {"id": 1, "properties": {}}, {"id": "1"}])
def test_malformed_objects_are_protocol_errors(bad: object) -> None:
    with pytest.raises(CrmProtocolError):
        if isinstance(bad, dict) or bad is None:
            mapping.contact_from_object(bad)
        else:
            mapping.parse_hubspot_time(bad)


def test_owners_are_users() -> None:
    owners = json.loads((PAYLOADS / "owners_list.json").read_text())["results"]
    users = [mapping.user_from_owner(o) for o in owners]
    assert all(isinstance(u, CrmUser) and u.name for u in users)
    assert users[0].id == str(owners[0]["id"]) and users[0].email == owners[0]["email"]
    archived = mapping.user_from_owner({"id": 7, "email": "gone@example.com", "archived": True})
    assert archived == CrmUser(id="7", name="gone@example.com", email="gone@example.com", active=False)


def _call(**props: str) -> dict[str, object]:
    return {"id": "41", "updatedAt": "2026-11-30T15:00:00.000Z", "properties": props}


def test_a_call_is_an_activity_with_its_duration_in_minutes() -> None:
    activity = mapping.activity_from_object("calls", _call(
        hs_timestamp="2026-11-30T14:00:00Z", hs_call_duration="1830000", hs_call_title="Scope",
        hs_call_body="a<br>b &lt;c&gt;", hubspot_owner_id="9", qb_hourly_rate="120.50", qb_service="Consulting"),
        "501")
    assert (activity.id, activity.type, activity.contact_id, activity.owner_id) == ("call-41", "call", "501", "9")
    assert activity.started_at == datetime(2026, 11, 30, 14, tzinfo=UTC)
    assert (activity.duration_minutes, activity.billable, activity.notes) == (30, True, "a\nb <c>")
    assert activity.hourly_rate == Decimal("120.50") and activity.service == "Consulting"
    assert mapping.split_activity_id(activity.id) == ("calls", "41")


@pytest.mark.parametrize(("props", "billable"), [
    ({"hs_call_duration": "60000"}, True), ({"hs_call_duration": "60000", "qb_billable": "false"}, False),
    ({"hs_call_duration": "0"}, False), ({}, False), ({"hs_call_duration": "60000", "qb_billable": "true"}, True)])
def test_the_billable_rule(props: dict[str, str], billable: bool) -> None:
    activity = mapping.activity_from_object("calls", _call(hs_timestamp="1764511200000", **props), None)
    assert activity.billable is billable


def test_a_meeting_lasts_from_start_to_end_and_bad_values_are_refused() -> None:
    meeting = mapping.activity_from_object("meetings", _call(
        hs_meeting_start_time="2026-11-30T14:00:00Z", hs_meeting_end_time="2026-11-30T15:15:00Z"), "1")
    assert (meeting.id, meeting.type, meeting.duration_minutes, meeting.billable) == ("meeting-41", "meeting", 75,
                                                                                       True)
    with pytest.raises(CrmProtocolError):
        mapping.activity_from_object("calls", _call(hs_call_duration="soon"), None)
    with pytest.raises(ValueError):
        mapping.split_activity_id("note-3")


def test_the_apps_webhooks_cover_every_contact_property_the_sync_reads() -> None:
    """A property crm-qb syncs but the app does not subscribe to would change in HubSpot without crm-qb hearing."""
    app = Path(__file__).resolve().parents[2] / "hubspot-app" / "src" / "app" / "webhooks" / "webhooks-hsmeta.json"
    subscriptions = json.loads(app.read_text())["config"]["subscriptions"]["legacyCrmObjects"]
    watched = {s["propertyName"] for s in subscriptions if s["subscriptionType"] == "contact.propertyChange"}
    synced = {name for wire, name in mapping.TEXT_PROPERTIES.items() if wire != "owner_id"}
    synced |= set(mapping.BILLING_PROPERTIES.values()) | {mapping.SHIPPING_PROPERTY}
    assert synced <= watched, sorted(synced - watched)
    kinds = {s["subscriptionType"] for s in subscriptions}
    assert {"contact.creation", "contact.deletion", "contact.merge", "contact.restore"} <= kinds
