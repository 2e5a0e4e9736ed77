"""The backfill's transaction walk in a process of its own (``crm_qb.sync.pipeline.mirrorproc``,
``workers.mirror_child``), against the seeded QBO sandbox realm and the reference CRM of ``test_backfill``."""

from __future__ import annotations

import io
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from crm_qb.db import db
from crm_qb.errors import ConfigError
from crm_qb.models import FolderItem
from crm_qb.runtime import mirror_starter, runtime
from crm_qb.sync.pipeline.backfill import TRANSACTIONS, run_backfill, serve_transactions
from crm_qb.sync.pipeline.mirrorproc import MirrorChild, MirrorProcessError, Task, decode_error
from crm_qb.sync.services import ConnectionGoneError
from tests.conftest import make_settings
from tests.integration.test_backfill import PAGE, crm_server, qbo_sandbox, seeded
from tests.integration.test_backfill import TRANSACTIONS as SEEDED_TRANSACTIONS
from tests.support.sync import Harness

__all__ = ["crm_server", "qbo_sandbox", "seeded"]  # the fixtures, shared with test_backfill


def _folder_rows(h: Harness) -> list[tuple[Any, ...]]:
    with h.app.app_context():
        rows = db.session.execute(select(FolderItem.txn_type, FolderItem.qbo_id, FolderItem.qbo_customer_id,
                                         FolderItem.status, FolderItem.total, FolderItem.balance,
                                         FolderItem.qbo_sync_token).order_by(FolderItem.txn_type,
                                                                             FolderItem.qbo_id)).all()
        db.session.rollback()
    return [tuple(row) for row in rows]


def test_the_runtime_starts_the_transaction_walk_in_a_process_and_the_folder_is_the_one_thread_walk_s(
        seeded: Harness) -> None:
    h = seeded
    started: list[tuple[Task, MirrorChild]] = []
    with h.app.app_context():
        services = runtime(h.app).sync_services()
        assert services.mirror_process is not None  # a file database: the runtime's services use a process

        def start(task: Task) -> MirrorChild:
            assert services.mirror_process is not None
            child = services.mirror_process(task)
            started.append((task, child))
            return child

        seen: list[int] = []
        report = run_backfill(replace(services, mirror_process=start), h.connection_id, page_size=PAGE,
                              progress=lambda phase, counts: seen.append(counts.pages) if phase == TRANSACTIONS
                              else None)
    assert [task.connection_id for task, _child in started] == [h.connection_id]
    child = started[0][1]
    assert child.process.returncode == 0 and child.finished
    counts = report.phases[TRANSACTIONS]
    assert counts.seen == counts.created == SEEDED_TRANSACTIONS and counts.failed == 0
    assert sum(counts.by_type.values()) == SEEDED_TRANSACTIONS
    assert seen == list(range(1, counts.pages + 1)) and counts.pages >= SEEDED_TRANSACTIONS // PAGE
    by_process = _folder_rows(h)
    assert len(by_process) == SEEDED_TRANSACTIONS

    # The one-process walk (no starter) finds every item as the process left it, and changes none.
    with h.app.app_context():
        again = run_backfill(replace(runtime(h.app).sync_services(), mirror_process=None), h.connection_id,
                             page_size=PAGE)
    assert again.phases[TRANSACTIONS].unchanged == SEEDED_TRANSACTIONS
    assert _folder_rows(h) == by_process


# A child that reports one page of 5 transactions, then dies before the rest.
_DIES = ("import sys, json; sys.stdin.readline(); "
         "print(json.dumps({'page': {'entity': 'Invoice', 'counts': {'seen': 5, 'created': 5, "
         "'by_type': {'Invoice': 5}}}}), flush=True); sys.exit(3)")


def test_a_transaction_process_that_dies_stops_the_backfill_for_a_retry_which_completes(seeded: Harness) -> None:
    h = seeded
    with h.app.app_context():
        services = runtime(h.app).sync_services()
        dying = replace(services, mirror_process=lambda task: MirrorChild.start([sys.executable, "-c", _DIES], b""))
        with pytest.raises(MirrorProcessError, match="exit code 3"):
            run_backfill(dying, h.connection_id, page_size=PAGE)
        report = run_backfill(services, h.connection_id, page_size=PAGE)  # the job's retry
        items = int(db.session.scalar(select(func.count()).select_from(FolderItem)) or 0)
        db.session.rollback()
    assert report.phases[TRANSACTIONS].created == SEEDED_TRANSACTIONS
    assert items == SEEDED_TRANSACTIONS


def test_the_process_reports_what_stopped_its_walk_with_its_type(seeded: Harness) -> None:
    """An error of the walk goes to the parent typed (a gone connection is permanent, not a retry)."""
    out = io.StringIO()
    with seeded.app.app_context():
        serve_transactions(runtime(seeded.app).sync_services(), Task(987654, None, PAGE, False, "WARNING"),
                           io.StringIO(), out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    error = decode_error(json.loads(lines[0])["error"])
    assert isinstance(error, ConnectionGoneError)


def test_no_process_for_a_database_in_memory_or_when_turned_off(tmp_path: Path) -> None:
    base = make_settings(tmp_path)  # SQLite in the instance folder: shared between processes
    assert mirror_starter(base) is not None
    assert mirror_starter(replace(base, database_url="sqlite://")) is None
    assert mirror_starter(replace(base, database_url="sqlite:///:memory:")) is None
    assert make_settings(tmp_path, backfill_process="0").backfill_process is False
    assert mirror_starter(make_settings(tmp_path, backfill_process="off")) is None
    assert make_settings(tmp_path, backfill_process="1").backfill_process is True
    with pytest.raises(ConfigError, match="CRM_QB_BACKFILL_PROCESS"):
        make_settings(tmp_path, backfill_process="maybe")
