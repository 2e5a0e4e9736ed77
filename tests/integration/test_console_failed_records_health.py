"""Failed records (audit failures nobody retried or dismissed) count in /healthz, its details, the connection's
health JSON and the Health page, beside failed events; dismissing them clears the count.

A real CDC poll against the QBO sandbox meets a rename the reference CRM refuses (too long for it): that leaves
one failed record (the audit entry) and one failed event (for ``crm-qb replay``), each dismissed on its own.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from crm_qb.runtime import EXTENSION_KEY, runtime
from tests.integration.test_console_api_cli import _api
from tests.support import sync as support
from tests.support.console import admin
from tests.support.sync import Harness

qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness

OPERATOR = "operator-token-" + "y" * 24


def _details(harness: Harness) -> Any:
    answer = harness.client.get("/healthz/details", headers={"Authorization": f"Bearer {OPERATOR}"})
    assert answer.status_code == 200
    return answer.get_json()


def _page(harness: Harness) -> str:
    return harness.client.get(f"/admin/connections/{harness.connection_id}/health").get_data(as_text=True)


def test_failed_records_are_counted_in_health_until_dismissed(harness: Harness,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    rt = runtime(harness.app)
    monkeypatch.setitem(harness.app.extensions, EXTENSION_KEY,
                        replace(rt, settings=replace(rt.settings, operator_token=OPERATOR)))
    customer = harness.qbo.create_customer(DisplayName="Ivy Stone")
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    contact_id = str(harness.link_of_customer(customer["Id"]).crm_contact_id)
    assert harness.client.get("/healthz").get_json()["status"] == "ok"
    harness.qbo.edit_customer(customer["Id"], DisplayName="Ivy " + "S" * 300)  # no webhook: the poll finds it
    with harness.app.app_context():
        from workers.sync_jobs import poll_qbo_connection

        poll_qbo_connection(harness.connection_id)
    assert harness.contact(contact_id)["display_name"] == "Ivy Stone"  # the CRM refused the name
    assert len(harness.qbo.customer(customer["Id"])["DisplayName"]) == 304
    key = harness.api_key()
    failures = _api(harness, "GET", "failures", key).get_json()["failures"]
    record = next(f for f in failures if f["kind"] == "record")
    event = next(f for f in failures if f["kind"] == "event")

    health = _api(harness, "GET", "health", key).get_json()
    assert health["failed_records"] == 1 and health["events"]["failed"] == 1 and health["status"] == "degraded"
    details = _details(harness)
    assert details["status"] == "degraded" and details["checks"]["records"] == {"failed": 1}
    [failing] = details["checks"]["connections"]["failing"]
    assert failing["id"] == harness.connection_id and (failing["failed_records"], failing["failed_events"]) == (1, 1)
    admin(harness, "health")
    html = _page(harness)
    assert '<dd id="failed-records">1</dd>' in html and '<dd id="failed-events">1</dd>' in html

    dismissed = _api(harness, "POST", "failures/dismiss", key, {"kind": "event", "id": event["id"]})
    assert dismissed.status_code == 200, dismissed.get_data(as_text=True)
    health = _api(harness, "GET", "health", key).get_json()
    assert (health["failed_records"], health["events"]["failed"], health["status"]) == (1, 0, "degraded")
    assert harness.client.get("/healthz").get_json()["status"] == "degraded"  # the record alone keeps it so
    [failing] = _details(harness)["checks"]["connections"]["failing"]
    assert (failing["failed_records"], failing["failed_events"]) == (1, 0)

    assert _api(harness, "POST", "failures/dismiss", key, {"kind": "record", "id": record["id"]}).status_code == 200
    health = _api(harness, "GET", "health", key).get_json()
    assert (health["failed_records"], health["status"]) == (0, "ok")
    details = _details(harness)
    assert details["checks"]["records"] == {"failed": 0} and details["checks"]["connections"]["failing"] == []
    assert harness.client.get("/healthz").get_json()["status"] == "ok"
    assert '<dd id="failed-records">0</dd>' in _page(harness)
    assert harness.contact(contact_id)["display_name"] == "Ivy Stone"  # dismissing writes to neither side
