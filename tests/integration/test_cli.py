"""The ``crm-qb`` command: schema, connections, and clear errors for bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text

from crm_qb.cli import main
from tests.conftest import REDIS_TEST_URL


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("CRM_QB_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("CRM_QB_REDIS_URL", REDIS_TEST_URL)
    monkeypatch.setenv("CRM_QB_ENCRYPTION_KEY", os.environ["CRM_QB_TEST_ENCRYPTION_KEY"])
    monkeypatch.setenv("CRM_QB_SECRET_KEY", "x")
    result = CliRunner().invoke(main, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    return CliRunner()


def test_connection_add_prints_its_secrets_once_and_stores_them_protected(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["connection", "add", "--crm-url", "https://crm.example.com/api/",
                                  "--crm-token", "crm-token-123", "--name", "Acme"])
    assert result.exit_code == 0, result.output
    created = json.loads(result.output)
    assert set(created) == {"id", "name", "crm_url", "api_key", "crm_hook_secret"}
    assert created["crm_url"] == "https://crm.example.com/api"
    dump = "\n".join(str(r) for r in create_engine(f"sqlite:///{tmp_path / 'crm_qb.sqlite3'}").connect()
                     .execute(text("SELECT * FROM connections")))
    for secret in (created["api_key"], created["crm_hook_secret"], "crm-token-123"):
        assert secret not in dump
    shown = runner.invoke(main, ["connection", "show", str(created["id"])])
    assert shown.exit_code == 0
    assert json.loads(shown.output)["qbo"]["status"] == "not_connected"
    assert created["api_key"] not in shown.output
    listed = runner.invoke(main, ["connection", "list"])
    assert [json.loads(line)["name"] for line in listed.output.splitlines()] == ["Acme"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["connection", "add", "--crm-url", "crm.example.com", "--crm-token", "t"], "--crm-url must be an http(s) URL"),
        (["connection", "add", "--crm-url", "https://crm.example.com", "--crm-token", " "], "--crm-token must not be"),
        (["connection", "show", "42"], "no connection 42"),
    ],
)
def test_bad_input_is_one_clear_line(runner: CliRunner, args: list[str], message: str) -> None:
    result = runner.invoke(main, args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_bad_setting_names_itself(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_QB_DATABASE_URL", "mysql://nope")
    result = runner.invoke(main, ["connection", "list"])
    assert result.exit_code == 2
    assert "CRM_QB_DATABASE_URL must be a sqlite:/// or postgresql:// URL" in result.output
