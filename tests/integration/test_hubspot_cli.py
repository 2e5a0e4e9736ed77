"""``crm-qb connection add --crm hubspot``: a private-app connection set up against the local HubSpot, or one
waiting for the OAuth install, and the one-line errors of a wrong combination."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from crm_qb.cli import main
from crm_qb.sandbox.hubspot.server import RunningServer, start_server
from crm_qb.sandbox.hubspot.state import SandboxConfig
from tests.conftest import REDIS_TEST_URL

TOKEN = "pat-na1-cli"


@pytest.fixture
def hubspot() -> Iterator[RunningServer]:
    running = start_server("127.0.0.1", 0, SandboxConfig(token=TOKEN, portal_id=777001))
    yield running
    running.stop()


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hubspot: RunningServer) -> CliRunner:
    for name, value in {"INSTANCE_PATH": str(tmp_path), "REDIS_URL": REDIS_TEST_URL, "SECRET_KEY": "x",
                        "ENCRYPTION_KEY": os.environ["CRM_QB_TEST_ENCRYPTION_KEY"],
                        "HUBSPOT_API_BASE": hubspot.url}.items():
        monkeypatch.setenv(f"CRM_QB_{name}", value)
    assert CliRunner().invoke(main, ["db", "upgrade"]).exit_code == 0
    return CliRunner()


def test_a_private_app_token_connects_at_once(runner: CliRunner, hubspot: RunningServer) -> None:
    result = runner.invoke(main, ["connection", "add", "--crm", "hubspot", "--hubspot-token", TOKEN])
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert (created["crm_kind"], created["crm_account_id"], created["crm_status"]) == ("hubspot", "777001",
                                                                                      "connected")
    assert created["crm_url"] == hubspot.url and TOKEN not in result.output
    names = [p["name"] for p in requests.get(f"{hubspot.url}/crm/v3/properties/contacts", timeout=10,
                                             headers={"Authorization": f"Bearer {TOKEN}"}).json()["results"]]
    assert {"qb_notes", "qb_open_balance", "qb_shipping_address"} <= set(names)
    shown = json.loads(runner.invoke(main, ["connection", "show", str(created["id"])]).output)
    assert shown["crm"] == {"status": "connected", "reason": None, "account_id": "777001", "auth": "token",
                            "access_token_expires_at": None}
    assert shown["crm_web_origin"] == "https://app.hubspot.com"


@pytest.mark.parametrize(("args", "message"), [
    (["--hubspot-token", "wrong"], "INVALID_AUTHENTICATION"),
    ([], "either --hubspot-token"),
    (["--hubspot-token", TOKEN, "--hubspot-oauth"], "either --hubspot-token"),
    (["--hubspot-oauth"], "CRM_QB_HUBSPOT_CLIENT_ID"),
])
def test_wrong_combinations_are_one_clear_line(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(main, ["connection", "add", "--crm", "hubspot", *args])
    assert result.exit_code != 0 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_an_oauth_connection_waits_for_its_install(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_QB_HUBSPOT_CLIENT_ID", "cid")
    monkeypatch.setenv("CRM_QB_HUBSPOT_CLIENT_SECRET", "csecret")
    result = runner.invoke(main, ["connection", "add", "--crm", "hubspot", "--hubspot-oauth", "--name", "Acme"])
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert (created["crm_status"], created["crm_account_id"], created["name"]) == ("not_connected", None, "Acme")
