"""``crm-qb followups configure|scan``: settings shown and changed, clear errors, a scan run now."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner

from crm_qb.cli import main
from crm_qb.config import Settings
from tests.conftest import settings_env
from tests.support import followups
from tests.support.followups import QBO_OVERRIDES, World

# What this file tests does not depend on the database: its SQLite variants run in CI, its PostgreSQL ones with the
# slow tests (tests/conftest.py), to keep CI under 15 minutes.
pytestmark = pytest.mark.postgresql_slow


settings, crm, world = followups.settings_fixture, followups.crm_fixture, followups.world_fixture


@pytest.fixture
def runner(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """A CLI runner whose environment points at the test's database and Redis."""
    for name, value in {**settings_env(settings), **{f"CRM_QB_{k.upper()}": v for k, v in QBO_OVERRIDES.items()}
                        }.items():
        monkeypatch.setenv(name, value)
    return CliRunner()


def test_configure_shows_changes_and_resets_the_settings(runner: CliRunner, world: World) -> None:
    connection = str(world.connection_id)
    shown = runner.invoke(main, ["followups", "configure", connection])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["rule_days"] == [1, 14, 30]
    changed = runner.invoke(main, ["followups", "configure", connection, "--days", "30,7", "--tag", "--tag-name",
                                   "Late payer", "--title-template", "Chase {invoice_number}", "--disable"])
    assert changed.exit_code == 0, changed.output
    assert {k: v for k, v in json.loads(changed.output).items() if k != "description_template"} == {
        "enabled": False, "rule_days": [7, 30], "title_template": "Chase {invoice_number}", "tag_enabled": True,
        "tag": "Late payer"}
    reset = runner.invoke(main, ["followups", "configure", connection, "--reset", "--days", "2"])
    assert json.loads(reset.output)["rule_days"] == [2] and json.loads(reset.output)["tag_enabled"] is False


@pytest.mark.parametrize(("args", "message"), [
    (["--days", "1,x"], "rule_days: 'x' is not a whole number"),
    (["--days", "0"], "rule_days[0]: must be a whole number >= 1"),
    (["--title-template", "Pay {amout}"], "title_template: unknown placeholder {amout}"),
    (["--description-template", "{"], "description_template: unmatched '{'"),
])
def test_bad_settings_are_one_clear_line(runner: CliRunner, world: World, args: list[str], message: str) -> None:
    result = runner.invoke(main, ["followups", "configure", str(world.connection_id), *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
    assert json.loads(runner.invoke(main, ["followups", "configure", str(world.connection_id)]).output)[
        "rule_days"] == [1, 14, 30]


def test_unknown_connection_is_one_clear_line(runner: CliRunner, world: World) -> None:
    for args in (["configure", "999"], ["scan", "999"]):
        result = runner.invoke(main, ["followups", *args])
        assert result.exit_code == 2 and "no connection 999" in result.output


def test_scan_now_creates_the_due_tasks(runner: CliRunner, world: World) -> None:
    contact = world.contact("c1")
    world.invoice("101", "c1", due=datetime.now(UTC).date() - timedelta(days=20))
    result = runner.invoke(main, ["followups", "scan", str(world.connection_id)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["created"] == 1  # 20 days overdue: the 14-day rule only
    assert [task["title"][-17:] for task in world.tasks(contact)] == ["(14 days overdue)"]
    again = runner.invoke(main, ["followups", "scan", str(world.connection_id), "--invoice", "101"])
    assert json.loads(again.output)["created"] == 0
