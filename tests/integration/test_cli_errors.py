"""Every ``crm-qb`` command, given bad input, ends with one line naming what to fix and exit code 2 (issue 10 item 12).

Before the fix: ``backfill --dry-run`` without QBO settings was a ValueError traceback naming ``QBO_DISCOVERY_URL``
without its prefix, a busy sandbox port was an OSError traceback, ``Error: no connection 99`` (exit 1) differed in
style from ``crm-qb: ...`` (exit 2), click's usage errors took three lines, and an unreachable Redis or an
un-migrated database was a traceback.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from crm_qb.cli import main
from tests.conftest import REDIS_TEST_URL
from tests.support import free_port


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A migrated SQLite instance with connection 1 connected to realm 9130 (QBO settings deliberately absent)."""
    values = {"CRM_QB_INSTANCE_PATH": str(tmp_path / "instance"), "CRM_QB_REDIS_URL": REDIS_TEST_URL,
              "CRM_QB_ENCRYPTION_KEY": os.environ["CRM_QB_TEST_ENCRYPTION_KEY"], "CRM_QB_SECRET_KEY": "x" * 32,
              "CRM_QB_QUEUE_PREFIX": "crm_qb_test"}
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=values).exit_code == 0
    added = runner.invoke(main, ["connection", "add", "--crm-url", "https://crm.example.com", "--crm-token", "t"],
                          env=values)
    assert added.exit_code == 0, added.output
    from sqlalchemy import create_engine, text

    engine = create_engine(f"sqlite:///{tmp_path / 'instance' / 'crm_qb.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(text("UPDATE connections SET qbo_realm_id = '9130', qbo_status = 'connected'"))
    engine.dispose()
    return values


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something listens on."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        yield int(listener.getsockname()[1])


def _one_line_error(args: list[str], env: dict[str, str], needle: str) -> str:
    result = CliRunner().invoke(main, args, env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert result.exit_code == 2, (args, result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("crm-qb: "), (args, result.stderr)
    assert needle in lines[0], (args, lines[0])
    assert "Traceback" not in result.output
    return lines[0]


BAD_INPUT = [
    (["connection", "show", "99"], "no connection 99"),
    (["connection", "show", "abc"], "CONNECTION_ID"),
    (["connection", "add", "--crm-token", "t"], "--crm-url"),
    (["connection", "add", "--crm-url", "crm.example.com", "--crm-token", "t"], "--crm-url"),
    (["connection", "add", "--crm-url", "https://a.example", "--crm-token", "t", "--crm-web-origin", "nope"],
     "--crm-web-origin"),
    (["connection", "configure", "99", "--set", "sync.enabled=true"], "no connection 99"),
    (["connection", "configure", "1", "--set", "bogus=1"], "unknown setting"),
    (["connection", "configure", "1", "--set", "sync.conflict_policy=loudest"], "sync.conflict_policy"),
    (["connection", "configure", "1", "--set", "panel.push_summary=maybe"], "panel.push_summary"),
    (["connection", "configure", "1", "--crm-web-origin", "ftp://x"], "--crm-web-origin"),
    (["connection", "rotate", "1"], "--api-key"),
    (["connection", "rotate", "99", "--api-key"], "no connection 99"),
    (["connection", "demo"], "--crm-url"),
    (["admin-url", "99"], "no connection 99"),
    (["admin-url", "1", "--expires-in", "0"], "--expires-in"),
    (["panel-url", "99", "c1"], "no connection 99"),
    (["panel-url", "1", "c1", "--ttl", "0"], "--ttl"),
    (["panel-url", "1", "c" * 200], "CRM_CONTACT_ID"),
    (["followups", "configure", "99"], "no connection 99"),
    (["followups", "configure", "1", "--days", "x"], "rule_days"),
    (["followups", "scan", "99"], "no connection 99"),
    (["backfill", "99"], "no connection 99"),
    (["backfill", "1", "--dry-run"], "CRM_QB_QBO_DISCOVERY_URL"),
    (["backfill", "1", "--dry-run", "--enqueue"], "--dry-run"),
    (["sync", "preview", "99"], "no connection 99"),
    (["sync", "preview", "1"], "CRM_QB_QBO_DISCOVERY_URL"),
    (["sync", "preview", "1", "--from", "2024-01-01"], "both --from and --to"),
    (["sync", "preview", "1", "--from", "x", "--to", "2024-01-01"], "--from"),
    (["sync", "preview", "1", "--from", "2024-02-01", "--to", "2024-01-01"], "before it starts"),
    (["sync", "status", "1"], "has no first sync"),
    (["sync", "start", "1", "--history"], "has no history import"),
    (["sync", "report", "99"], "no connection 99"),
    (["sync", "retry", "1"], "has no first sync"),
    (["sync", "configure", "99", "--auto-start"], "no connection 99"),
    (["replay", "--status", "bogus"], "--status"),
    (["replay", "--connection", "99"], "no connection 99"),
    (["web", "--workers", "0"], "--workers"),
    (["nope"], "No such command 'nope'"),
]


@pytest.mark.parametrize(("args", "needle"), BAD_INPUT, ids=[" ".join(a)[:40] for a, _ in BAD_INPUT])
def test_bad_input_is_one_line_naming_what_to_fix(env: dict[str, str], args: list[str], needle: str) -> None:
    _one_line_error(args, env, needle)


@pytest.mark.parametrize("command", [["sandbox", "qbo"], ["sandbox", "crm"], ["sandbox", "hubspot"], ["web"]])
def test_a_busy_port_is_one_line_naming_the_option(env: dict[str, str], busy_port: int, command: list[str]) -> None:
    line = _one_line_error([*command, "--port", str(busy_port)], env, "--port")
    assert str(busy_port) in line


def test_up_checks_every_port_first(env: dict[str, str], busy_port: int) -> None:
    _one_line_error(["up", "--port", str(free_port()), "--qbo-sandbox-port", str(busy_port)], env,
                    "--qbo-sandbox-port")


@pytest.mark.parametrize(
    ("overrides", "args", "needle"),
    [
        ({"CRM_QB_MODE": "bogus"}, ["connection", "list"], "CRM_QB_MODE"),
        ({"CRM_QB_LOG_LEVEL": "loud"}, ["scheduler"], "CRM_QB_LOG_LEVEL"),
        ({"CRM_QB_EVENT_RETENTION_DAYS": "-1"}, ["worker", "--burst"], "CRM_QB_EVENT_RETENTION_DAYS"),
        ({"CRM_QB_OPERATOR_TOKEN": "short"}, ["connection", "list"], "CRM_QB_OPERATOR_TOKEN"),
        ({"CRM_QB_DATABASE_URL": "mysql://x/y"}, ["db", "upgrade"], "CRM_QB_DATABASE_URL"),
        ({"CRM_QB_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"}, ["connection", "list"],
         "CRM_QB_DATABASE_URL"),
        ({"CRM_QB_REDIS_URL": "redis://127.0.0.1:1/0"}, ["worker", "--burst"], "CRM_QB_REDIS_URL"),
    ],
)
def test_a_bad_setting_or_an_unreachable_service_is_one_line(env: dict[str, str], overrides: dict[str, str],
                                                              args: list[str], needle: str) -> None:
    _one_line_error(args, {**env, **overrides}, needle)


def test_up_without_redis_names_the_setting(env: dict[str, str]) -> None:
    ports = [str(free_port()) for _ in range(3)]
    _one_line_error(["up", "--port", ports[0], "--qbo-sandbox-port", ports[1], "--crm-sandbox-port", ports[2]],
                    {**env, "CRM_QB_REDIS_URL": "redis://127.0.0.1:1/0"}, "CRM_QB_REDIS_URL")


def test_a_database_without_the_schema_says_to_upgrade(env: dict[str, str], tmp_path: Path) -> None:
    fresh = {**env, "CRM_QB_INSTANCE_PATH": str(tmp_path / "fresh")}
    _one_line_error(["connection", "list"], fresh, "crm-qb db upgrade")


def test_help_and_good_input_still_exit_zero(env: dict[str, str]) -> None:
    assert CliRunner().invoke(main, ["--help"], env=env).exit_code == 0
    assert CliRunner().invoke(main, ["connection", "show", "1"], env=env).exit_code == 0
