"""Health: a minimal public liveness answer; the details behind the operator token or a connection's API key.

Issue 11 item 8: ``/healthz`` was public and listed connection ids and reconnect reasons. Issue 10 item 13: it said
"ok" while a company needed reconnecting; now it says "degraded" (still 200) and the details list the failing
connections, and failed events are counted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from crm_qb.app import create_app
from crm_qb.config import Settings
from crm_qb.db import db
from crm_qb.models import EventSource, EventStatus, InboundEvent, QboStatus
from tests.conftest import make_settings
from tests.support.connections import add_connection, set_connection

OPERATOR = "operator-token-" + "x" * 24


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, operator_token=OPERATOR)


def _details(client: FlaskClient, token: str | None = OPERATOR) -> object:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get("/healthz/details", headers=headers)


def _needs_reconnect(app: Flask) -> int:
    conn = add_connection(app, realm_id="9130")
    set_connection(app, conn.id, qbo_status=QboStatus.NEEDS_RECONNECT,
                   qbo_status_reason="refresh token revoked by Intuit (invalid_grant)")
    return conn.id


def _failed_event(app: Flask, realm: str = "9130", connection_id: int | None = None) -> None:
    with app.app_context():
        db.session.add(InboundEvent(source=EventSource.QBO if connection_id is None else EventSource.CRM,
                                    dedupe_key=f"k{realm}{connection_id}", realm_id=realm,
                                    connection_id=connection_id, entity="Customer", entity_id="1",
                                    operation="Update", payload={}, status=EventStatus.FAILED,
                                    status_reason="PermanentError: refused", attempts=8))
        db.session.commit()


def test_the_public_answer_is_minimal(app: Flask, client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "checks": {"database": {"ok": True}, "redis": {"ok": True}}}
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_connection_that_needs_reconnecting_makes_it_degraded_without_naming_it(app: Flask,
                                                                                   client: FlaskClient) -> None:
    _needs_reconnect(app)
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json["status"] == "degraded"
    assert "invalid_grant" not in response.get_data(as_text=True) and "connections" not in response.json["checks"]


def test_failed_events_make_it_degraded(app: Flask, client: FlaskClient) -> None:
    add_connection(app, realm_id="9130")
    _failed_event(app)
    assert client.get("/healthz").json["status"] == "degraded"


def test_details_need_the_operator_token(app: Flask, client: FlaskClient) -> None:
    assert _details(client, None).status_code == 401
    assert _details(client, "wrong").status_code == 401
    unset = create_app(make_settings(Path(app.instance_path).parent / "other",
                                     str(app.config["SQLALCHEMY_DATABASE_URI"])))
    refused = unset.test_client().get("/healthz/details", headers={"Authorization": f"Bearer {OPERATOR}"})
    assert refused.status_code == 401 and "not set" in refused.json["error"]["message"]


def test_details_list_the_failing_connections_and_count_events(app: Flask, client: FlaskClient) -> None:
    broken = _needs_reconnect(app)
    healthy = add_connection(app, realm_id="4620")
    failing = add_connection(app, realm_id="7777")
    _failed_event(app, realm="7777")
    _failed_event(app, realm="none", connection_id=failing.id)
    response = _details(client)
    assert response.status_code == 200
    body = response.json
    assert body["status"] == "degraded"
    checks = body["checks"]
    assert checks["database"] == {"ok": True, "backend": app.extensions["crm_qb"].settings.database_url.split(
        ":")[0].split("+")[0]}
    assert set(checks["queues"]["depth"]) == {"crm_qb_test.inbound", "crm_qb_test.sync", "crm_qb_test.scheduled",
                                                   "crm_qb_test.backfill"}
    assert checks["events"]["failed"] == 2 and checks["events"]["pending"] == 0
    connections = checks["connections"]
    assert connections["total"] == 3 and not connections["ok"]
    assert connections["needs_reconnect"] == [{"id": broken,
                                               "reason": "refresh token revoked by Intuit (invalid_grant)"}]
    assert {item["id"]: (item["needs_reconnect"], item["failed_events"]) for item in connections["failing"]} == {
        broken: (True, 0), failing.id: (False, 2)}
    assert healthy.id not in [item["id"] for item in connections["failing"]]


def test_a_connection_reads_its_own_health_with_its_api_key(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app, realm_id="9130")
    other = add_connection(app, realm_id="4620")
    ok = client.get(f"/api/v1/connections/{conn.id}/health", headers={"Authorization": f"Bearer {conn.api_key}"})
    assert ok.status_code == 200 and ok.json["status"] == "ok" and ok.json["qbo"]["status"] == "connected"
    _failed_event(app, realm="9130")
    set_connection(app, conn.id, qbo_status=QboStatus.NEEDS_RECONNECT, qbo_status_reason="consent revoked")
    bad = client.get(f"/api/v1/connections/{conn.id}/health", headers={"Authorization": f"Bearer {conn.api_key}"})
    assert bad.json["status"] == "degraded" and bad.json["qbo"]["reason"] == "consent revoked"
    assert bad.json["events"]["failed"] == 1
    assert client.get(f"/api/v1/connections/{conn.id}/health",
                      headers={"Authorization": f"Bearer {other.api_key}"}).status_code == 404
    assert client.get(f"/api/v1/connections/{conn.id}/health").status_code == 401


def test_unreachable_redis_is_503(app: Flask, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "down", str(app.config["SQLALCHEMY_DATABASE_URI"]),
                             redis_url="redis://127.0.0.1:1/0")
    response = create_app(settings).test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["status"] == "unavailable"
    assert response.json["checks"]["redis"] == {"ok": False, "error": "ConnectionError"}


def test_unknown_paths_get_json_errors(client: FlaskClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get("/webhooks/qbo").status_code == 405


def test_an_outage_makes_it_degraded_and_the_details_say_which_side_and_why(app: Flask, client: FlaskClient) -> None:
    from crm_qb.qbo.faults import ServerError
    from crm_qb.sync.pipeline import outage

    conn = add_connection(app, realm_id="9130")
    with app.app_context():
        outage.note_down(conn.id, "qbo", ServerError(message="Service Unavailable", http_status=503))
    public = client.get("/healthz")
    assert public.status_code == 200 and public.json["status"] == "degraded"
    assert "Service Unavailable" not in public.get_data(as_text=True)
    [failing] = _details(client).json["checks"]["connections"]["failing"]  # type: ignore[attr-defined]
    assert failing["id"] == conn.id and failing["outage"]["side"] == "qbo"
    assert "ServerError" in failing["outage"]["reason"] and failing["outage"]["since"]
    with app.app_context():
        assert outage.note_up(conn.id, ("crm",), app.extensions["crm_qb"].jobs) == 0  # the other side: still down
        assert client.get("/healthz").json["status"] == "degraded"
        outage.note_up(conn.id, ("qbo",), app.extensions["crm_qb"].jobs)
    assert client.get("/healthz").json["status"] == "ok"
