"""The reference CRM's movable clock: what it stamps follows it, and change times never go backwards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from flask.testing import FlaskClient

from crm_qb.sandbox.crm.clock import MovableClock, Stamps, parse_stamp
from crm_qb.sandbox.crm.server import RunningServer
from crm_qb.sandbox.crm.store import CrmStore
from crm_qb.sandbox.crm.users import DEMO_USERS
from tests.sandbox_crm.conftest import AUTH, HookReceiver
from tests.sandbox_crm.test_hooks import subscribe

DAY = 86_400


def moved(client: FlaskClient, **body: float) -> dict[str, object]:
    """Move the clock and return its state."""
    response = client.post("/_sandbox/clock", json=body)
    assert response.status_code == 200, response.json
    return response.json


def test_offset_and_advance_move_now(client: FlaskClient) -> None:
    start = client.get("/_sandbox/clock").json
    assert start["offset_seconds"] == 0.0 and abs(parse_stamp(start["now"]) - datetime.now(UTC)) < timedelta(60)
    assert moved(client, offset_seconds=-DAY)["offset_seconds"] == -DAY
    state = moved(client, advance_seconds=3600)
    assert state["offset_seconds"] == -DAY + 3600
    assert abs(parse_stamp(str(state["now"])) - (datetime.now(UTC) - timedelta(hours=23))) < timedelta(seconds=60)
    assert moved(client, offset_seconds=10, advance_seconds=5)["offset_seconds"] == 15, "set, then advance"


@pytest.mark.parametrize(("body", "field"), [
    ({"offset_seconds": "1"}, "offset_seconds"), ({"advance_seconds": True}, "advance_seconds"),
    ({"offset_seconds": 1e12}, "offset_seconds"), ({"advance_seconds": 2e10}, "advance_seconds"),
])
def test_clock_moves_are_validated(client: FlaskClient, body: dict[str, object], field: str) -> None:
    response = client.post("/_sandbox/clock", json=body)
    assert response.status_code == 400 and response.json["error"]["field"] == field
    assert client.get("/_sandbox/clock").json["offset_seconds"] == 0.0


def test_change_times_follow_the_clock_forward_and_stay_increasing_when_it_goes_back(client: FlaskClient) -> None:
    moved(client, advance_seconds=30 * DAY)
    ahead = client.post("/contacts", json={"first_name": "Ada"}, headers=AUTH).json
    assert parse_stamp(ahead["updated_at"]) > datetime.now(UTC) + timedelta(days=29)
    moved(client, offset_seconds=-DAY)
    behind = client.post("/contacts", json={"first_name": "Bob"}, headers=AUTH).json
    assert behind["updated_at"] > ahead["updated_at"], "the clock went back, updated_at did not"
    activity = client.post("/activities", headers=AUTH, json={
        "contact_id": behind["id"], "owner_id": "u1", "type": "call", "started_at": "2024-05-01T09:00:00Z"}).json
    assert activity["updated_at"] > behind["updated_at"]
    task = client.post(f"/contacts/{behind['id']}/tasks", json={"title": "T"}, headers=AUTH).json
    assert parse_stamp(task["created_at"]) > parse_stamp(ahead["updated_at"])


def test_a_frozen_or_backward_clock_still_yields_strictly_increasing_stamps() -> None:
    moments = iter([datetime(2024, 5, 1, 12, tzinfo=UTC), datetime(2024, 5, 1, 12, tzinfo=UTC),
                    datetime(2024, 4, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC)])
    stamps = Stamps(lambda: next(moments))
    assert [stamps.next() for _ in range(4)] == ["2024-05-01T12:00:00.000000Z", "2024-05-01T12:00:00.000001Z",
                                                 "2024-05-01T12:00:00.000002Z", "2024-06-01T00:00:00.000000Z"]


def test_movable_clock_reads_its_source_plus_the_offset() -> None:
    clock = MovableClock(lambda: datetime(2024, 5, 1, tzinfo=UTC))
    clock.move(offset_seconds=-3600)
    clock.move(advance_seconds=7200)
    assert clock.now() == datetime(2024, 5, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        clock.move(offset_seconds=float("nan"))
    assert clock.snapshot() == {"now": "2024-05-01T01:00:00.000000Z", "offset_seconds": 3600.0}


def test_hook_times_follow_the_clock_while_signatures_stay_real(http: requests.Session, live_crm: RunningServer,
                                                                receiver: HookReceiver) -> None:
    subscribe(http, live_crm, receiver)
    http.post(f"{live_crm.url}/_sandbox/clock", json={"offset_seconds": -7 * DAY})
    contact = http.post(f"{live_crm.url}/_sandbox/contacts", json={"first_name": "Ada"}).json()
    http.delete(f"{live_crm.url}/_sandbox/contacts/{contact['id']}")
    events = receiver.wait_events(2)
    week_ago = datetime.now(UTC) - timedelta(days=7)
    for event in events:
        assert abs(parse_stamp(event["occurred_at"]) - week_ago) < timedelta(minutes=5)
    assert events[0]["occurred_at"] == contact["updated_at"]
    _, headers = receiver.received[0]
    signed_at = int(headers["X-CRM-Signature"].split(",")[0].removeprefix("t="))
    assert abs(signed_at - datetime.now(UTC).timestamp()) < 300, "a receiver would refuse a week-old signature"


def test_a_reopened_store_continues_after_its_newest_activity(tmp_path: Path) -> None:
    path = str(tmp_path / "crm.sqlite3")
    first = CrmStore(path, emit=lambda event: None)
    first.users.seed_once(DEMO_USERS)
    contact = first.create_contact({"first_name": "Ada"})
    activity = first.activities.create_activity({"contact_id": contact["id"], "owner_id": "u1", "type": "call",
                                                 "started_at": "2024-05-01T09:00:00.000000Z"})
    first.close()
    second = CrmStore(path, emit=lambda event: None, clock=lambda: datetime(2000, 1, 1, tzinfo=UTC))
    second.users.seed_once(({"name": "Not seeded twice", "email": "x@example.com"},))
    assert [user["id"] for user in second.users.list_users()] == ["u1", "u2", "u3"]
    later = second.create_contact({"first_name": "Bob"})
    assert later["updated_at"] > activity["updated_at"] > contact["updated_at"]
    second.close()
