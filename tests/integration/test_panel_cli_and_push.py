"""``crm-qb panel-url`` prints URLs that open the panel; push_summary PUTs the summary to a real reference CRM."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from click.testing import CliRunner
from flask import Flask
from itsdangerous import URLSafeSerializer

from crm_qb.app import create_app
from crm_qb.cli import main
from crm_qb.config import Settings, load_settings
from crm_qb.db import db
from crm_qb.models import Connection
from crm_qb.runtime import runtime
from crm_qb.sandbox.crm.server import RunningServer, start_server
from crm_qb.sandbox.crm.state import SandboxConfig
from crm_qb.web.readmodels.summary import push_summary
from tests.conftest import REDIS_TEST_URL, make_settings
from tests.support.folder import APP_BASE, apply, company, link, txn

PUBLIC = "http://127.0.0.1:5999"


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A migrated SQLite instance for the CLI, and the environment that reaches it."""
    env = {"CRM_QB_INSTANCE_PATH": str(tmp_path), "CRM_QB_REDIS_URL": REDIS_TEST_URL,
           "CRM_QB_ENCRYPTION_KEY": os.environ["CRM_QB_TEST_ENCRYPTION_KEY"], "CRM_QB_SECRET_KEY": "cli-secret",
           "CRM_QB_PUBLIC_URL": PUBLIC, "CRM_QB_QBO_ENVIRONMENT": "production"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert CliRunner().invoke(main, ["db", "upgrade"]).exit_code == 0
    return env


def cli(*args: str) -> str:
    """Run crm-qb with ``args``; return its output (exit code 0 asserted)."""
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output.strip()


def test_panel_url_opens_the_contacts_panel(cli_env: dict[str, str]) -> None:
    created = json.loads(cli("connection", "add", "--crm-url", "https://crm.example.com/api", "--crm-token", "t"))
    url = cli("panel-url", str(created["id"]), "ct 1/2", "--ttl", "120")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == PUBLIC and parts.path == f"/panel/{created['id']}/contacts/ct%201%2F2"
    token = parse_qs(parts.query)["token"][0]
    expires = URLSafeSerializer("x").load_payload(token.split(".")[0].encode())["e"]
    assert abs(expires - (time.time() + 120)) < 5
    app = create_app(load_settings(cli_env))
    response = app.test_client().get(f"{parts.path}?{parts.query}")
    assert response.status_code == 200 and "Not linked to QuickBooks" in response.get_data(as_text=True)
    assert response.headers["Content-Security-Policy"].endswith("frame-ancestors https://crm.example.com")


def test_panel_url_star_prints_the_embed_template(cli_env: dict[str, str]) -> None:
    created = json.loads(cli("connection", "add", "--crm-url", "https://crm.example.com", "--crm-token", "t"))
    template = cli("panel-url", str(created["id"]), "*")
    assert template.startswith(f"{PUBLIC}/panel/{created['id']}/embed/{{id}}?token=")
    app = create_app(load_settings(cli_env))
    response = app.test_client().get(urlsplit(template.replace("{id}", "c7")).path + "?" + urlsplit(template).query)
    assert response.status_code == 302 and f"/panel/{created['id']}/contacts/c7?token=" in response.headers["Location"]


def test_panel_url_for_an_unknown_connection_is_one_clear_line(cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(main, ["panel-url", "42", "c1"])
    assert result.exit_code != 0 and "no connection 42" in result.output and "Traceback" not in result.output


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Production QBO with deep links on the local sandbox host."""
    return make_settings(tmp_path, database_url, qbo_environment="production", qbo_app_base=APP_BASE)


@pytest.fixture
def crm() -> Iterator[RunningServer]:
    """A real reference CRM on 127.0.0.1 whose API token is the one add_connection stores ("t")."""
    running = start_server("127.0.0.1", 0, SandboxConfig(token="t"))
    yield running
    running.stop()


def crm_contact(crm: RunningServer) -> str:
    """Create a contact in the reference CRM; return its id."""
    with requests.Session() as http:
        http.trust_env = False
        response = http.post(f"{crm.url}/contacts", json={"first_name": "Ada"},
                             headers={"Authorization": "Bearer t"}, timeout=5)
        response.raise_for_status()
        return str(response.json()["id"])


def stored_summary(crm: RunningServer, contact_id: str) -> object:
    """The QuickBooks summary the CRM holds for the contact."""
    with requests.Session() as http:
        http.trust_env = False
        response = http.get(f"{crm.url}/contacts/{contact_id}", headers={"Authorization": "Bearer t"}, timeout=5)
        return response.json()["quickbooks"]


@pytest.mark.parametrize("push", [True, False])
def test_push_summary_only_when_the_connection_asks(app: Flask, crm: RunningServer, push: bool) -> None:
    contact_id = crm_contact(crm)
    conn = company(app, crm_url=crm.url, settings={"panel": {"push_summary": push}})
    link(app, conn.id, contact_id, "24", payment_terms="Net 15")
    apply(app, conn.id, "Invoice", txn("Invoice", "1", "24"))
    with app.app_context():
        assert push_summary(runtime(app), conn.id, contact_id) is push
        assert push_summary(runtime(app), conn.id, "not-linked") is False
        assert db.session.get(Connection, conn.id) is not None
    summary = stored_summary(crm, contact_id)
    if push:
        assert isinstance(summary, dict)
        assert summary["terms"] == "Net 15" and summary["open_balance"]["home"] == "100.00"
        assert summary["counts"] == {"Invoice": 1}
    else:
        assert summary is None
