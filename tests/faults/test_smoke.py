"""CI smoke of the fault suite: small bursts with short faults that crm-qb survives today, on SQLite.

One system of real processes (tests.faults.rig) serves the whole module, each scenario on its own records; each
test sends a burst with one scenario's fault halfway (the same code as ``scripts/faults``, tests.faults.run)
and asserts that every change arrived, none was duplicated, within the deadline. Only scenarios that pass today
belong here (CI must stay green); the others are run by ``scripts/faults`` and listed in README.md's
"Fault suite" section. To add one once it is fixed, put its name in SMOKE, or in OWN_REDIS_SMOKE for a scenario
that kills or flushes Redis (``run_scenario`` gives it a system of its own with its own redis-server).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis import Redis

from tests.conftest import REDIS_TEST_URL
from tests.faults.rig import Rig, start_rig
from tests.faults.run import Row, run_on_rig, run_scenario
from tests.faults.scenarios import SCENARIOS, Options
from tests.faults.workload import Sizes

pytestmark = pytest.mark.e2e

SMOKE = ("worker-kill", "crm-storm", "duplicates", "qbo-outage", "qbo-slow")
OWN_REDIS_SMOKE = ("redis-restart",)
# A 20 s outage and its recovery: `scripts/test`, not CI, which keeps tests/integration/test_retry_outage.py
# (a one-hour outage on a fake clock) for the same subject.
SLOW_SMOKE = ("qbo-outage",)
SIZES = Sizes(qbo_edits=12, crm_edits=12, invoices=3, burst_seconds=4.0)
OPTIONS = Options(storm_seconds=6.0, web_down_seconds=6.0, outage_seconds=20.0)
DEADLINE_SECONDS = 90.0


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    """One system for the module on a fresh SQLite file and the flushed Redis test database."""
    redis = Redis.from_url(REDIS_TEST_URL)
    redis.flushdb()
    logs = tmp_path_factory.mktemp("faults")
    started = start_rig(logs, f"sqlite:///{logs / 'crm_qb.sqlite3'}", len(SMOKE) * SIZES.records * 2,
                        redis_url=REDIS_TEST_URL)
    yield started
    started.close()
    redis.flushdb()
    redis.close()


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW_SMOKE else name
                                  for name in SMOKE])
def test_a_burst_through_the_fault_loses_and_duplicates_nothing(name: str, rig: Rig) -> None:
    index = SMOKE.index(name)
    records = SIZES.records * 2  # enough for two passes per record
    row = Row(name, "sqlite", deadline=DEADLINE_SECONDS)
    run_on_rig(rig, rig.pairs[index * records:(index + 1) * records], SCENARIOS[name], SCENARIOS[name].sizes(SIZES),
               OPTIONS, DEADLINE_SECONDS, row)

    assert row.error is None, f"{row.markdown()}\n{_tails(rig.tmp)}"
    assert sum(row.sent.values()) == SIZES.qbo_edits + SIZES.crm_edits + SIZES.invoices
    assert not row.lost and not row.duplicated, f"{row.markdown()}\n{_tails(rig.tmp)}"
    assert row.converge is not None


@pytest.mark.slow  # its own redis-server and a restart: about 100 s (`scripts/test`, not CI)
@pytest.mark.parametrize("name", OWN_REDIS_SMOKE)
def test_a_burst_through_a_redis_fault_loses_and_duplicates_nothing(name: str, tmp_path: Path) -> None:
    row = run_scenario(SCENARIOS[name], "sqlite", SIZES, OPTIONS, DEADLINE_SECONDS, tmp_path / name)
    assert row.error is None, f"{row.markdown()}\n{_tails(tmp_path / name, nested=True)}"
    assert sum(row.sent.values()) == SIZES.qbo_edits + SIZES.crm_edits + SIZES.invoices
    assert not row.lost and not row.duplicated, f"{row.markdown()}\n{_tails(tmp_path / name, nested=True)}"
    assert row.converge is not None


def _tails(folder: Path, lines: int = 20, nested: bool = False) -> str:
    parts = []
    for path in sorted(folder.glob("**/*.log" if nested else "*.log")):
        parts.append(f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:]))
    return "\n".join(parts)
