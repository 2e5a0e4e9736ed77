"""``GET /healthz``: 200 with details when healthy, 503 when a dependency is down."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from crm_qb.app import create_app
from tests.conftest import make_settings


def test_healthy_service_reports_each_dependency(app: Flask, client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]
    assert set(body["checks"]["queues"]["depth"]) == {"crm_qb_test.inbound", "crm_qb_test.sync",
                                                      "crm_qb_test.scheduled"}
    assert body["checks"]["connections"] == {"ok": True, "total": 0, "needs_reconnect": []}


def test_unreachable_redis_is_503(app: Flask, tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "down", str(app.config["SQLALCHEMY_DATABASE_URI"]),
                             redis_url="redis://127.0.0.1:1/0")
    response = create_app(settings).test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json["checks"]["redis"] == {"ok": False, "error": "ConnectionError"}


def test_unknown_paths_get_json_errors(client: FlaskClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"
    assert client.get("/webhooks/qbo").status_code == 405
