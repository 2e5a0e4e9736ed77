"""Which earlier activities the walks hand to the time sync (``sync/time/earlier.wanted``), and the section 6
shape activities are stored in (``Activity.to_json``), without I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from crm_qb.crm.protocol import Activity
from crm_qb.sync.time.earlier import wanted

WHEN = datetime(2026, 11, 30, 15, 0, tzinfo=UTC)


def activity(activity_id: str, **fields: Any) -> Activity:
    values: dict[str, Any] = {"id": activity_id, "version": 3, "updated_at": WHEN, "contact_id": "c1",
                              "owner_id": "u1", "type": "call", "started_at": WHEN, "duration_minutes": 45,
                              "billable": True, **fields}
    return Activity(**values)


@pytest.mark.parametrize(("fields", "known", "kept"), [
    ({}, False, True),  # billable time of a linked contact
    ({"contact_id": "c2"}, False, False),  # a contact not linked: read again when it is
    ({"billable": False}, False, False),  # not billable: no time, no entry
    ({"duration_minutes": 0}, False, False),
    ({"type": "email"}, False, False),
    ({"contact_id": None}, False, False),
    ({"billable": False}, True, True),  # known: the change (billable turned off) must reach its entry
    ({"contact_id": "c2"}, True, True),  # known, moved to an unlinked contact: its time is held
])
def test_the_walks_keep_linked_time_and_whatever_is_known(fields: dict[str, Any], known: bool, kept: bool) -> None:
    found = activity("a1", **fields)
    assert wanted([found], linked={"c1"}, known={"a1"} if known else set()) == ([found] if kept else [])


def test_an_activity_is_stored_in_the_shape_it_is_read_from() -> None:
    logged = activity("call-7", subject="Scoping", notes="a\nb", hourly_rate=Decimal("120.50"), service="Design")
    assert Activity.from_json(logged.to_json()) == logged
    assert logged.to_json()["hourly_rate"] == "120.50" and logged.to_json()["updated_at"] == WHEN.isoformat()
    assert Activity.from_json(activity("a2", hourly_rate=None).to_json()).hourly_rate is None
