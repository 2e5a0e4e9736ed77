"""``crm-qb connection demo`` (``wire_demo``, ``start_demo_sync``) against both sandboxes as real processes: a new
connection's first sync is open before its company is connected, so the scheduler never backfills it before its
preview, whether it then starts by itself (the default, ``crm-qb up``) or waits for ``crm-qb sync preview`` and
``sync start`` (``--no-backfill``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from redis import Redis
from sqlalchemy import select

from crm_qb.app import create_app
from crm_qb.config import Settings
from crm_qb.db import db
from crm_qb.demo import start_demo_sync, wire_demo
from crm_qb.keys import JobIds
from crm_qb.models import Connection, QboStatus, SyncRun
from crm_qb.sync.firstsync import store
from crm_qb.sync.firstsync.service import held
from tests.conftest import _migrate, _truncate, make_settings
from tests.support import free_port, stop_all
from tests.support.e2e import start_crm_sandbox, start_sandbox
from workers.queues import fetch_job
from workers.sync_jobs import schedule_cdc_polls


@pytest.fixture
def demo(settings: Settings, tmp_path: Path, redis_client: Redis) -> Iterator[tuple[Flask, dict[str, Any], str]]:
    """An app pointed at a QBO sandbox (a realm of 3 customers) and a reference CRM, both real processes."""
    qbo_proc, qbo = start_sandbox(["crm_qb.cli", "sandbox", "qbo", "--port", str(free_port())], tmp_path / "qbo.log")
    processes = [qbo_proc]
    try:
        crm_proc, crm = start_crm_sandbox("rest", free_port(), tmp_path / "crm.log")
        processes.append(crm_proc)
        api = str(qbo["api_base"])
        full = make_settings(tmp_path, settings.database_url, qbo_environment="local",
                             qbo_client_id=qbo["client_id"], qbo_client_secret=qbo["client_secret"],
                             qbo_discovery_url=qbo["discovery_url"], qbo_api_base=api, qbo_app_base=api,
                             qbo_redirect_uri="http://127.0.0.1:9/qbo/callback", public_url="http://127.0.0.1:9")
        app = create_app(full)
        _migrate(app)
        if not full.is_sqlite:
            _truncate(app)
        realm = requests.post(f"{api}/_sandbox/realms", json={"customers": 3}, timeout=10).json()["realm_id"]
        yield app, crm, str(realm)
    finally:
        stop_all(processes)


def _wire(app: Flask, crm: dict[str, Any], realm: str) -> int:
    made = wire_demo(app, crm_url=str(crm["api_base"]), crm_token=str(crm["token"]), realm_id=realm,
                     web_url="http://127.0.0.1:9")
    return int(made["id"])


def _first_sync(app: Flask, connection_id: int) -> SyncRun:
    with app.app_context():
        run = db.session.scalars(select(SyncRun).where(SyncRun.connection_id == connection_id,
                                                       SyncRun.kind == store.FIRST)).one()
        db.session.expunge(run)
        return run


def test_a_demo_wired_without_its_backfill_waits_for_its_preview_and_the_scheduler_leaves_it(
        demo: tuple[Flask, dict[str, Any], str], redis_client: Redis) -> None:
    app, crm, realm = demo
    connection_id = _wire(app, crm, realm)
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        assert connection is not None and connection.qbo_status == QboStatus.CONNECTED
        assert connection.cdc_cursor is None  # never synced: without its open first sync, a tick would backfill it
        assert held(connection_id)
        schedule_cdc_polls()  # a scheduler tick right after the wiring
    assert fetch_job(redis_client, JobIds.backfill(connection_id)) is None
    run = _first_sync(app, connection_id)
    assert (run.state, run.auto_start) == (store.WAITING, False)
    assert fetch_job(redis_client, JobIds.sync_run_job("preview", run.id)) is None  # it waits for its operator


def test_a_demo_wired_with_its_first_sync_previews_it_and_starts_it_by_itself(
        demo: tuple[Flask, dict[str, Any], str], redis_client: Redis) -> None:
    app, crm, realm = demo
    connection_id = _wire(app, crm, realm)
    start_demo_sync(app, connection_id)
    run = _first_sync(app, connection_id)
    assert (run.state, run.auto_start) == (store.PREVIEWING, True)
    assert fetch_job(redis_client, JobIds.sync_run_job("preview", run.id)) is not None
    with app.app_context():
        schedule_cdc_polls()
    assert fetch_job(redis_client, JobIds.backfill(connection_id)) is None
