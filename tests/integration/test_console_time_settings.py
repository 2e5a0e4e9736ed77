"""Billable time from the console's Settings page and from ``…/api/v1/connections/<id>/time``: a CRM user whose
time is held (no QuickBooks person matches) is shown unmapped with the held time; a bad value is refused beside
its field with nothing stored; a good one is checked in QuickBooks, stored, audited with who and each value
before and after, and the held time reaches QuickBooks at once (read back from the QBO sandbox).
"""

from __future__ import annotations

import re

import pytest

from tests.integration.test_console_api_cli import _api
from tests.integration.test_time_sync import _entity, _entries, _hook, _log, _time_activity, _world
from tests.support import sync as support
from tests.support.console import admin, post
from tests.support.sync import Harness

# What this file tests does not depend on the database: its SQLite variants run in CI, its PostgreSQL ones with the
# slow tests (tests/conftest.py), to keep CI under 15 minutes.
pytestmark = pytest.mark.postgresql_slow


qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness


def _settings_html(h: Harness) -> str:
    return h.client.get(f"/admin/connections/{h.connection_id}/settings").get_data(as_text=True)


def _held_for_riley(h: Harness) -> tuple[dict[str, str], str]:
    """Time of the CRM user u3 (Riley Chen, whom no employee or vendor matches) held; the world and activity id."""
    world = _world(h)
    activity = _log(h, world["contact_id"], owner_id="u3", service=None)
    _hook(h, "created", activity)
    h.work()
    assert _entries(h)[activity["id"]].hold_kind == "user"
    return world, activity["id"]


def test_the_settings_page_maps_a_held_user_and_sets_the_default_item(harness: Harness) -> None:
    h = harness
    world, activity_id = _held_for_riley(h)
    vendor = _entity(h, "Vendor", DisplayName="Riley C. Contracting")
    csrf = admin(h, "settings")
    html = _settings_html(h)
    row = re.search(r"<tr>\s*<th scope=\"row\">Riley Chen.*?</tr>", html, re.S)
    assert row and "1 entry" in row.group(0) and 'name="time.users.u3"' in row.group(0)
    assert 'value=""' in row.group(0)  # unmapped
    assert '<label for="time-default_item">' in html and 'id="time-enabled" name="time.enabled" value="on" checked' \
        in html

    refused = post(h, "settings/time", csrf_token=csrf, **{"time.enabled": "on", "time.default_item": "999",
                                                          "time.users.u3": "Boss:1"})
    assert refused.status_code == 400
    page = refused.get_data(as_text=True)
    assert 'id="time-default_item-error" role="alert">QuickBooks has no item' in page
    assert 'aria-describedby="time-default_item-error"' in page and 'value="Boss:1"' in page
    assert h.audit("settings.changed") == [] and _entries(h)[activity_id].hold_kind == "user"  # nothing stored

    refused = post(h, "settings/time", csrf_token=csrf, **{"time.enabled": "on", "time.default_item": "",
                                                          "time.users.u3": "Vendor:99999"})
    assert refused.status_code == 400
    assert "QuickBooks has no Vendor 99999" in refused.get_data(as_text=True)
    assert 'aria-describedby="time-user-' in refused.get_data(as_text=True)

    saved = post(h, "settings/time", csrf_token=csrf, **{"time.enabled": "on", "time.default_item": world["item"]["Id"],
                                                        "time.users.u3": f"Vendor:{vendor['Id']}"})
    assert saved.status_code == 303 and saved.headers["Location"].endswith("settings?done=time-saved")
    entry = _entries(h)[activity_id]
    time = _time_activity(h, str(entry.qbo_id))
    assert time is not None and (time["NameOf"], time["VendorRef"]["value"]) == ("Vendor", vendor["Id"])
    assert time["ItemRef"]["value"] == world["item"]["Id"]  # no service on the activity: the default item
    [audited] = h.audit("settings.changed")
    assert audited.diff["by"].startswith("admin session ") and audited.created_at is not None
    assert audited.diff["changes"] == {"time.default_item": {"before": None, "after": world["item"]["Id"]},
                                       "time.users.u3": {"before": None, "after": f"Vendor:{vendor['Id']}"}}
    html = _settings_html(h)
    assert f'value="Vendor:{vendor["Id"]}"' in html and "Riley C. Contracting (set by hand)" in html
    assert f'name="time.default_item" inputmode="numeric" size="10" value="{world["item"]["Id"]}"' in html

    # Saving the same values again changes nothing and audits nothing; turning time off is audited.
    post(h, "settings/time", csrf_token=csrf, **{"time.enabled": "on", "time.default_item": world["item"]["Id"],
                                                 "time.users.u3": f"Vendor:{vendor['Id']}"})
    assert len(h.audit("settings.changed")) == 1
    post(h, "settings/time", csrf_token=csrf, **{"time.default_item": world["item"]["Id"]})
    assert h.audit("settings.changed")[-1].diff["changes"] == {"time.enabled": {"before": True, "after": False}}
    assert 'id="time-enabled" name="time.enabled" value="on">' in _settings_html(h)


def test_the_time_api_shows_held_users_and_maps_them(harness: Harness) -> None:
    h = harness
    world, activity_id = _held_for_riley(h)
    key = h.api_key()
    shown = _api(h, "GET", "time", key).get_json()
    assert shown["entries"]["held"] == 1 and shown["held"][0]["user_id"] == "u3"
    assert {u["crm_user_id"]: u["qbo"] for u in shown["users"]}["u3"] is None

    bad = _api(h, "PATCH", "time", key, {"users": {"u3": "Employee:abc"}})
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "time.users.u3"
    assert _api(h, "PATCH", "time", key, {"enabled": "yes"}).get_json()["error"]["field"] == "time.enabled"
    assert _api(h, "PATCH", "time", key, {"colour": 1}).get_json()["error"]["field"] == "time.colour"
    assert _entries(h)[activity_id].hold_kind == "user" and h.audit("settings.changed") == []

    employee = world["employee"]["Id"]
    answer = _api(h, "PATCH", "time", key, {"users": {"u3": f"Employee:{employee}"}, "default_item": None})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["mapped"] == {"u3": f"Employee:{employee}"} and body["entries"]["synced"] == 1
    time = _time_activity(h, str(_entries(h)[activity_id].qbo_id))
    assert time is not None and (time["NameOf"], time["EmployeeRef"]["value"]) == ("Employee", employee)
    [audited] = h.audit("settings.changed")
    assert audited.diff == {"by": "api key", "changes": {"time.users.u3": {"before": None,
                                                                          "after": f"Employee:{employee}"}}}
    assert _api(h, "GET", "time", key, None).status_code == 200
    assert h.client.get(f"/api/v1/connections/{h.connection_id}/time").status_code == 401
