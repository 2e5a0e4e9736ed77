"""HubSpot calls and meetings → QBO TimeActivity end to end (DESIGN §9, §10): the local HubSpot, the QBO sandbox,
crm-qb web, two workers and the scheduler, all real processes, every change carried by HubSpot's v3-signed webhooks
(``object.*`` of calls 0-48 and meetings 0-47, read back as ``call-<id>`` / ``meeting-<id>``) and QBO's.

A call and a meeting with a duration on a linked contact become TimeActivity with the right hours and minutes,
date, description and item (so does a call put on the contact after it was logged); an edited duration updates
it; ``qb_billable`` turned off deletes it; once QBO has
billed the time, an edit is recorded as a conflict and QBO's time is left as it was.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from redis import Redis
from sqlalchemy import select

from crm_qb.app import create_app
from crm_qb.config import Settings
from crm_qb.db import db
from crm_qb.models import Conflict, TimeEntry, TimeState
from tests.support import wait_for
from tests.support.e2e import World, running_world

pytestmark = [pytest.mark.e2e]

CALL_TYPE, MEETING_TYPE = 194, 200  # HubSpot's call → contact and meeting → contact association types
START_MS = 1_796_050_800_000  # 2026-11-30T15:00:00Z: 30 Nov in the realm's time zone too


@pytest.fixture
def world(settings: Settings, tmp_path: Path, redis_client: Redis,
          spawn: Callable[..., subprocess.Popen[bytes]]) -> Iterator[World]:
    """The QBO sandbox (its employee Emily Platt, its Design item), the local HubSpot, crm-qb web, two workers,
    the scheduler."""
    with running_world(settings, tmp_path, spawn, "hubspot") as made:
        requests.post(f"{made.crm}/_sandbox/owners", json={  # the HubSpot user who logs the time
            "email": "emily.platt@example.com", "firstName": "Emily", "lastName": "Platt"}, timeout=10)
        yield made


def _hubspot(world: World, method: str, path: str, body: dict[str, Any] | None = None, **params: str) -> Any:
    answer = requests.request(method, f"{world.crm}{path}", json=body, params=params, timeout=10,
                              headers={"Authorization": f"Bearer {world.crm_token}"})
    answer.raise_for_status()
    return answer.json() if answer.content else None


def _qbo(world: World, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    answer = requests.request(method, f"{world.qbo}/_sandbox/realms/{world.realm}{path}", json=body, timeout=10)
    return answer.json() if answer.status_code in (200, 201) else None


def _entry(world: World, activity_id: str) -> TimeEntry | None:
    with create_app(world.settings).app_context():
        found = db.session.scalar(select(TimeEntry).where(TimeEntry.connection_id == world.connection_id,
                                                          TimeEntry.crm_activity_id == activity_id))
        db.session.remove()
    return found


def _synced(world: World, activity_id: str, **fields: Any) -> dict[str, Any] | None:
    """The activity's TimeActivity in QBO once its entry is synced and the time shows ``fields``."""
    entry = _entry(world, activity_id)
    if entry is None or entry.state != TimeState.SYNCED or not entry.qbo_id:
        return None
    time = _qbo(world, "GET", f"/entities/TimeActivity/{entry.qbo_id}")
    found = (time or {}).get("TimeActivity")
    return found if found and all(found.get(k) == v for k, v in fields.items()) else None


def _log(world: World, objects: str, contact_id: str, owner: str, props: dict[str, str]) -> str:
    body = {"properties": {"hubspot_owner_id": owner, "qb_service": "Design", **props}, "associations": [
        {"to": {"id": contact_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                               "associationTypeId": CALL_TYPE if objects == "calls" else
                                               MEETING_TYPE}]}]}
    return str(_hubspot(world, "POST", f"/crm/v3/objects/{objects}", body)["id"])


def test_hubspot_calls_and_meetings_become_time_follow_edits_and_billed_time_is_frozen(world: World) -> None:
    customer = world.create_customer(DisplayName="Ada Lovelace", GivenName="Ada", FamilyName="Lovelace",
                                     PrimaryEmailAddr={"Address": "ada@engines.example"})
    contact = wait_for(lambda: world.contact_with(email="ada@engines.example"), timeout=40,
                       what="the HubSpot contact made for the QBO customer")
    owners = _hubspot(world, "GET", "/crm/v3/owners/")["results"]
    emily = next(o["id"] for o in owners if o["email"] == "emily.platt@example.com")

    call = _log(world, "calls", contact["id"], emily, {
        "hs_timestamp": str(START_MS), "hs_call_title": "Scoping call", "hs_call_duration": str(95 * 60_000)})
    meeting = _log(world, "meetings", contact["id"], emily, {
        "hs_timestamp": str(START_MS), "hs_meeting_title": "Design workshop",
        "hs_meeting_start_time": str(START_MS), "hs_meeting_end_time": str(START_MS + 45 * 60_000)})

    call_time = wait_for(lambda: _synced(world, f"call-{call}"), timeout=40, what="the call's TimeActivity")
    meeting_time = wait_for(lambda: _synced(world, f"meeting-{meeting}"), timeout=40,
                            what="the meeting's TimeActivity")
    assert (call_time["Hours"], call_time["Minutes"]) == (1, 35)
    assert (meeting_time["Hours"], meeting_time["Minutes"]) == (0, 45)
    for time, title in ((call_time, "Scoping call"), (meeting_time, "Design workshop")):
        assert time["TxnDate"] == "2026-11-30" and time["CustomerRef"]["value"] == customer["Id"]
        assert time["Description"].startswith(f"{title} — ") and time["BillableStatus"] == "Billable"
        item = _qbo(world, "GET", f"/entities/Item/{time['ItemRef']['value']}")["Item"]
        person = _qbo(world, "GET", f"/entities/Employee/{time['EmployeeRef']['value']}")["Employee"]
        assert (item["Name"], time["NameOf"], person["DisplayName"]) == ("Design", "Employee", "Emily Platt")

    # A call logged first and put on the contact afterwards (only its associationChange tells): time too.
    late = str(_hubspot(world, "POST", "/crm/v3/objects/calls", {"properties": {
        "hubspot_owner_id": emily, "hs_timestamp": str(START_MS), "hs_call_title": "Call, contact set later",
        "hs_call_duration": str(10 * 60_000)}})["id"])
    wait_for(lambda: (_entry(world, f"call-{late}") or TimeEntry()).state == TimeState.REMOVED, timeout=40,
             what="the call without a contact to be seen (not time yet)")
    requests.post(f"{world.crm}/_sandbox/associations", timeout=10, json={
        "from_type": "calls", "from_id": late, "to_type": "contacts", "to_id": contact["id"]}).raise_for_status()
    wait_for(lambda: _synced(world, f"call-{late}", Hours=0, Minutes=10), timeout=40,
             what="the call's time once it is on the contact")

    _hubspot(world, "PATCH", f"/crm/v3/objects/calls/{call}", {"properties": {"hs_call_duration": str(30 * 60_000)}})
    wait_for(lambda: _synced(world, f"call-{call}", Hours=0, Minutes=30), timeout=40,
             what="the edited duration in QBO")

    _hubspot(world, "PATCH", f"/crm/v3/objects/meetings/{meeting}", {"properties": {"qb_billable": "false"}})
    wait_for(lambda: (_entry(world, f"meeting-{meeting}") or TimeEntry()).state == TimeState.REMOVED, timeout=40,
             what="the meeting's time to be removed")
    assert _qbo(world, "GET", f"/entities/TimeActivity/{meeting_time['Id']}") is None

    billed = _qbo(world, "POST", "/time/bill", {"time_activity_ids": [call_time["Id"]]})
    assert billed is not None
    wait_for(lambda: (_entry(world, f"call-{call}") or TimeEntry()).state == TimeState.BILLED, timeout=40,
             what="crm-qb to see the call's time billed")
    _hubspot(world, "PATCH", f"/crm/v3/objects/calls/{call}", {"properties": {"hs_call_duration": str(60 * 60_000)}})

    def conflict() -> Conflict | None:
        with create_app(world.settings).app_context():
            found = db.session.scalar(select(Conflict).where(Conflict.connection_id == world.connection_id,
                                                             Conflict.field == "billed_time"))
            db.session.remove()
        return found

    recorded = wait_for(conflict, timeout=40, what="the edit of billed time to be recorded as a conflict")
    assert recorded.winner == "qbo" and recorded.crm_value["Hours"] == 1 and recorded.qbo_value["Minutes"] == 30
    kept = _qbo(world, "GET", f"/entities/TimeActivity/{call_time['Id']}")["TimeActivity"]
    assert (kept["Hours"], kept["Minutes"], kept["BillableStatus"]) == (0, 30, "HasBeenBilled")
