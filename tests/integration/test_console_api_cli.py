"""The console's operations as JSON (API key) and in the CLI; health and the readable audit.

Same world as the page tests: the QBO sandbox and the reference CRM over HTTP, a real worker; every action is
followed by a look at both sides.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from crm_qb.cli import main
from crm_qb.models import LinkState
from crm_qb.runtime import runtime
from tests.conftest import settings_env
from tests.support import sync as support
from tests.support.console import admin, waiting
from tests.support.sync import Harness

# What this file tests does not depend on the database: its SQLite variants run in CI, its PostgreSQL ones with the
# slow tests (tests/conftest.py), to keep CI under 15 minutes.
pytestmark = pytest.mark.postgresql_slow


qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness


def _api(harness: Harness, method: str, path: str, key: str, body: Any = None) -> Any:
    return harness.client.open(f"/api/v1/connections/{harness.connection_id}/{path}", method=method, json=body,
                               headers={"Authorization": f"Bearer {key}"})


def _cli(harness: Harness, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    settings = runtime(harness.app).settings
    env = {**settings_env(settings), "CRM_QB_QBO_ENVIRONMENT": "local", "CRM_QB_QBO_CLIENT_ID": settings.qbo_client_id,
           "CRM_QB_QBO_CLIENT_SECRET": settings.qbo_client_secret, "CRM_QB_QBO_API_BASE": str(settings.qbo_api_base),
           "CRM_QB_QBO_DISCOVERY_URL": str(settings.qbo_discovery_url),
           "CRM_QB_QBO_APP_BASE": str(settings.qbo_app_base)}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _ambiguous(harness: Harness) -> tuple[str, dict[str, Any], dict[str, Any]]:
    first = harness.crm_user("POST", "/contacts", {"first_name": "Sam", "email": "sam@example.com"})
    second = harness.crm_user("POST", "/contacts", {"first_name": "Samuel", "email": "sam@example.com"})
    customer = harness.qbo.create_customer(DisplayName="Sam Ray", PrimaryEmailAddr={"Address": "sam@example.com"},
                                           Notes="net 30")
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    return customer["Id"], first, second


def test_review_over_the_api_lists_candidates_and_links_the_chosen_one(harness: Harness) -> None:
    customer_id, _first, second = _ambiguous(harness)
    key = harness.api_key()
    assert _api(harness, "GET", "review", "wrong").status_code == 401
    listed = _api(harness, "GET", "review", key).get_json()["waiting"]
    [item] = listed
    assert item["kind"] == "match" and item["record"]["name"] == "Sam Ray" and item["record"]["balance"] == "0"
    assert {c["email"] for c in item["candidates"]} == {"sam@example.com"} and len(item["candidates"]) == 2
    assert _api(harness, "POST", f"review/{item['link_id']}", key, {"action": "link", "candidate": "x"}) \
        .status_code == 409
    answer = _api(harness, "POST", f"review/{item['link_id']}", key, {"action": "link", "candidate": second["id"]})
    assert answer.status_code == 202 and answer.get_json()["job_id"]
    harness.work()
    assert harness.link_of_customer(customer_id).crm_contact_id == second["id"]
    assert harness.contact(second["id"])["notes"] == "net 30"
    assert harness.qbo.customer(customer_id)["DisplayName"] == "Sam Ray"


def test_review_in_the_cli_creates_a_new_contact(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    customer_id, first, second = _ambiguous(harness)
    [item] = _cli(harness, monkeypatch, "review", "list", str(harness.connection_id))["waiting"]
    done = _cli(harness, monkeypatch, "review", "resolve", str(harness.connection_id), str(item["link_id"]), "create")
    assert done["outcome"] == "link.created_in_crm"
    linked = harness.link_of_customer(customer_id)
    assert linked.state == LinkState.LINKED and linked.crm_contact_id not in (first["id"], second["id"])
    assert harness.contact(str(linked.crm_contact_id))["display_name"] == "Sam Ray"
    assert harness.qbo.customer(customer_id)["DisplayName"] == "Sam Ray"
    [entry] = harness.audit("link.created_in_crm")
    assert entry.diff["note"].startswith("chosen by cli:")


def test_the_waiting_records_are_paged_in_the_api_the_cli_and_the_page(harness: Harness,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Each waiting record's sides are read from QBO and the CRM, so a long queue (a big first sync's) is read a
    page at a time, oldest first, everywhere it is listed."""
    customers = []
    for n in range(3):
        email = f"twin{n}@example.com"
        for name in ("Ann", "Bea"):
            harness.crm_user("POST", "/contacts", {"first_name": f"{name}{n}", "email": email})
        customer = harness.qbo.create_customer(DisplayName=f"Twin {n}", PrimaryEmailAddr={"Address": email})
        harness.qbo_hook(customer["Id"], "created")
        customers.append(customer["Id"])
    harness.work()
    key = harness.api_key()

    first = _api(harness, "GET", "review?per_page=2", key).get_json()
    second = _api(harness, "GET", "review?per_page=2&page=2", key).get_json()
    assert (first["total"], first["pages"], first["page"], first["per_page"]) == (3, 2, 1, 2)
    listed = [item["record"]["id"] for item in first["waiting"] + second["waiting"]]
    assert listed == customers  # oldest first, each once
    assert _api(harness, "GET", "review?page=9", key).get_json()["waiting"] == []
    for bad in ("page=0", "per_page=201", "page=x"):
        answer = _api(harness, "GET", f"review?{bad}", key)
        assert answer.status_code == 400 and answer.get_json()["error"]["code"].startswith("invalid_"), bad

    cli = _cli(harness, monkeypatch, "review", "list", str(harness.connection_id), "--per-page", "2", "--page", "2")
    assert [item["record"]["id"] for item in cli["waiting"]] == customers[2:] and cli["total"] == 3

    admin(harness)
    monkeypatch.setattr("crm_qb.web.admin_pages.REVIEW_PER_PAGE", 2)
    base = f"/admin/connections/{harness.connection_id}/review"
    html = harness.client.get(base).get_data(as_text=True)
    assert "Twin 0" in html and "Twin 1" in html and "Twin 2" not in html
    assert "page 1 of 2" in html and "?page=2" in html
    html = harness.client.get(f"{base}?page=2").get_data(as_text=True)
    assert "Twin 2" in html and "Twin 0" not in html
    assert "No records on this page" in harness.client.get(f"{base}?page=5").get_data(as_text=True)


def test_settings_over_the_api_are_validated_audited_and_scheduled_mode_waits_for_the_poll(harness: Harness) -> None:
    customer = harness.qbo.create_customer(DisplayName="Kay Low")
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    contact_id = str(harness.link_of_customer(customer["Id"]).crm_contact_id)
    key = harness.api_key()
    bad = _api(harness, "PATCH", "settings", key, {"sync": {"mode": "sometimes"}})
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "sync.mode"
    good = _api(harness, "PATCH", "settings", key, {"sync": {"mode": "scheduled", "cdc_poll_seconds": 600},
                                                    "followups": {"rule_days": [7, 21]}})
    assert good.status_code == 200, good.get_data(as_text=True)
    body = good.get_json()
    assert body["sync"]["mode"] == "scheduled" and body["followups"]["rule_days"] == [7, 21]
    [entry] = harness.audit("settings.changed")
    assert entry.diff["by"] == "api key" and entry.diff["changes"]["sync.mode"] == {"before": "realtime",
                                                                                     "after": "scheduled"}
    assert entry.diff["changes"]["followups.rule_days"] == {"before": [1, 14, 30], "after": [7, 21]}
    harness.qbo.edit_customer(customer["Id"], Notes="on the schedule")
    harness.qbo_hook(customer["Id"])
    harness.work()
    assert harness.contact(contact_id)["notes"] in (None, "")
    with harness.app.app_context():
        from workers.sync_jobs import poll_qbo_connection

        poll_qbo_connection(harness.connection_id)  # what the scheduler runs every cdc_poll_seconds
    assert harness.contact(contact_id)["notes"] == "on the schedule"
    assert harness.qbo.customer(customer["Id"])["Notes"] == "on the schedule"


def test_health_shows_webhooks_events_per_hour_and_the_oldest_pending(harness: Harness,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    customer = harness.qbo.create_customer(DisplayName="Lin Ho")
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    harness.qbo_hook(customer["Id"])  # not drained yet: pending
    key = harness.api_key()
    health = _api(harness, "GET", "health", key).get_json()
    assert health["last_webhook"]["qbo"] and health["last_webhook"]["crm"] is None
    assert health["events"]["pending"] == 1 and health["oldest_pending"]["entity"] == "Customer"
    assert len(health["hourly"]) == 48 and sum(h["events"] for h in health["hourly"]) == 2
    assert health["mode"] == "realtime" and "last_48h" in health["rate_limit_wait_seconds"]
    shown = _cli(harness, monkeypatch, "connection", "health", str(harness.connection_id))
    assert shown["events"]["pending"] == 1 and len(shown["hourly"]) == 48
    admin(harness, "health")
    html = harness.client.get(f"/admin/connections/{harness.connection_id}/health").get_data(as_text=True)
    assert "<svg" in html and "2 events and 0 failures in 48 hours" in html and "a Customer change" in html
    assert '<dd id="last-poll-crm">never</dd>' in html  # the CRM catch-up poll has not run in this test


def test_the_audit_names_records_shows_before_and_after_and_hides_unchanged(harness: Harness,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    customer = harness.qbo.create_customer(DisplayName="Mo Reyes", Notes="first")
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    harness.qbo.edit_customer(customer["Id"], Notes="second")
    harness.qbo_hook(customer["Id"])
    harness.qbo_hook(customer["Id"])  # a second look finds nothing new: "unchanged"
    harness.work()
    harness.qbo_hook(customer["Id"])
    harness.work()
    key = harness.api_key()
    entries = _api(harness, "GET", "audit?record=reyes", key).get_json()["entries"]
    assert entries and all(e["name"] == "Mo Reyes" for e in entries if e["entity"] == "Customer")
    synced = [e for e in entries if e["action"] == "customer.synced"]
    assert synced[0]["changes"] == [{"field": "Notes", "before": "first", "after": "second", "to": "CRM"}]
    assert not [e for e in entries if e["action"].endswith(".unchanged")]
    everything = _api(harness, "GET", "audit?record=reyes&include_unchanged=1", key).get_json()["entries"]
    assert [e for e in everything if e["action"] == "customer.unchanged"]
    assert _api(harness, "GET", "audit?since=yesterday", key).status_code == 400
    assert _api(harness, "GET", "audit?kind=settings", key).get_json()["entries"] == []
    admin(harness, "audit")
    html = harness.client.get(f"/admin/connections/{harness.connection_id}/audit?record=Mo+Reyes") \
        .get_data(as_text=True)
    assert "Mo Reyes" in html and "first → second" in html
    printed = _cli(harness, monkeypatch, "audit", str(harness.connection_id), "--kind", "customer")
    assert {e["action"] for e in printed["entries"]} <= {"customer.synced"}


def test_failures_over_the_api_and_cli(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    customer = harness.qbo.create_customer(DisplayName="Al Short")
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    contact_id = str(harness.link_of_customer(customer["Id"]).crm_contact_id)
    harness.qbo.edit_customer(customer["Id"], DisplayName="Al " + "S" * 300)
    harness.qbo_hook(customer["Id"])
    harness.work()
    key = harness.api_key()
    [failure] = _api(harness, "GET", "failures", key).get_json()["failures"]
    assert failure["state"] == "retrying" and failure["attempts"] == 1 and failure["kind"] == "event"
    assert failure["words"].startswith("The CRM refused")
    listed = _cli(harness, monkeypatch, "failures", "list", str(harness.connection_id))["failures"]
    assert [f["id"] for f in listed] == [failure["id"]]
    harness.qbo.edit_customer(customer["Id"], DisplayName="Al Short Jr")
    assert _api(harness, "POST", "failures/retry", key, {"kind": "event", "id": failure["id"]}).get_json() \
        == {"count": 1, "retried": 1}
    harness.work()
    assert harness.contact(contact_id)["display_name"] == "Al Short Jr"
    assert _api(harness, "GET", "failures", key).get_json()["failures"] == []
    assert _cli(harness, monkeypatch, "failures", "dismiss", str(harness.connection_id)) == {"dismissed": 0}
    assert not waiting(harness)


def _conflict(harness: Harness) -> tuple[str, str]:
    customer = harness.qbo.create_customer(DisplayName="Kim Park")
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    contact_id = str(harness.link_of_customer(customer["Id"]).crm_contact_id)
    harness.qbo.edit_customer(customer["Id"], Notes="from QBO")
    harness.crm_hook("updated", harness.crm_user("PATCH", f"/contacts/{contact_id}", {"notes": "from CRM"}))
    harness.qbo_hook(customer["Id"])
    harness.work()
    return customer["Id"], contact_id


def test_conflicts_over_the_api_and_flipped_in_the_cli(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    customer_id, contact_id = _conflict(harness)
    key = harness.api_key()
    [conflict] = _api(harness, "GET", "conflicts", key).get_json()["conflicts"]
    assert conflict["contact"] == "Kim Park" and conflict["rule"] == "window_qbo_wins"
    assert "so QuickBooks won" in conflict["rule_words"]
    assert harness.contact(contact_id)["notes"] == harness.qbo.customer(customer_id)["Notes"] == "from QBO"
    flipped = _cli(harness, monkeypatch, "conflicts", "flip", str(harness.connection_id), str(conflict["id"]))
    assert flipped["status"] == "flipped"
    assert harness.contact(contact_id)["notes"] == harness.qbo.customer(customer_id)["Notes"] == "from CRM"
    again = _api(harness, "POST", f"conflicts/{conflict['id']}/keep", key)
    assert again.status_code == 409 and "already flipped" in again.get_json()["error"]["message"]


def test_keep_over_the_api_writes_nothing(harness: Harness) -> None:
    customer_id, contact_id = _conflict(harness)
    key = harness.api_key()
    [conflict] = _api(harness, "GET", "conflicts", key).get_json()["conflicts"]
    kept = _api(harness, "POST", f"conflicts/{conflict['id']}/keep", key)
    assert kept.status_code == 200 and kept.get_json()["status"] == "confirmed"
    harness.work()
    assert harness.contact(contact_id)["notes"] == harness.qbo.customer(customer_id)["Notes"] == "from QBO"


def test_configure_in_the_cli_is_audited_with_who(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    printed = _cli(harness, monkeypatch, "connection", "configure", str(harness.connection_id), "--set",
                   "sync.mode=manual", "--set", "sync.fields.phone=qbo_to_crm")
    assert printed["mode"] == "manual"
    [entry] = harness.audit("settings.changed")
    assert entry.diff["by"].startswith("cli:")
    assert entry.diff["changes"] == {"sync.fields.phone": {"before": "both", "after": "qbo_to_crm"},
                                     "sync.mode": {"before": "realtime", "after": "manual"}}


def test_an_event_that_fails_for_good_is_in_the_audit_log_and_the_chart(harness: Harness) -> None:
    from sqlalchemy import select

    from crm_qb.crm.errors import CrmValidationError
    from crm_qb.db import db
    from crm_qb.models import EventStatus, InboundEvent
    from crm_qb.sync.pipeline.events import MAX_ATTEMPTS, record_failure

    customer = harness.qbo.create_customer(DisplayName="Uma Long")
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    harness.qbo.edit_customer(customer["Id"], DisplayName="Uma " + "L" * 300)
    harness.qbo_hook(customer["Id"])
    harness.work()  # the first attempt fails: the CRM refuses the name
    with harness.app.app_context():
        event_id = db.session.scalar(select(InboundEvent.id).where(InboundEvent.attempts == 1))
        assert event_id is not None
        for _ in range(MAX_ATTEMPTS - 1):  # the attempts the retries would make, with the same refusal
            record_failure(event_id, CrmValidationError("CRM PATCH /contacts/x answered 400 invalid_field"))
        assert db.session.get(InboundEvent, event_id).status == EventStatus.FAILED  # type: ignore[union-attr]
    key = harness.api_key()
    [entry] = _api(harness, "GET", "audit?outcome=failed_event", key).get_json()["entries"]
    assert entry["action"] == "event.failed" and entry["name"].startswith("Uma L")  # QuickBooks' name now
    assert "invalid_field" in entry["message"]
    health = _api(harness, "GET", "health", key).get_json()
    assert sum(h["failures"] for h in health["hourly"]) == 1 and health["failures"] == 1
    [failure] = _api(harness, "GET", "failures", key).get_json()["failures"]
    assert failure["id"] == event_id and failure["state"] == "failed" and failure["attempts"] == MAX_ATTEMPTS
