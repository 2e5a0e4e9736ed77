"""``crm-qb connection demo`` (``wire_demo``, ``start_demo_sync``) against the QBO sandbox and the reference CRM: a
new connection's first sync is open before its company is connected, so the scheduler never backfills it before
its preview, whether it then starts by itself (the default, ``crm-qb up``) or waits for ``crm-qb sync preview`` and
``sync start`` (``--no-backfill``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from redis import Redis

from crm_qb.config import Settings
from crm_qb.db import db
from crm_qb.demo import start_demo_sync, wire_demo
from crm_qb.keys import JobIds
from crm_qb.models import Connection, QboStatus, SyncRun
from crm_qb.sandbox.crm.server import RunningServer
from crm_qb.sync.firstsync import store
from crm_qb.sync.firstsync.service import held
from tests.support import sync as support
from tests.support.sync import CRM_TOKEN, QboSandbox, qbo_settings
from workers.queues import fetch_job
from workers.sync_jobs import schedule_cdc_polls

qbo_sandbox = support.qbo_sandbox
crm_server = support.crm_server


@pytest.fixture
def settings(tmp_path: Path, database_url: str, qbo_sandbox: QboSandbox) -> Settings:
    """The test's settings, crm-qb's QBO endpoints pointed at the sandbox."""
    return qbo_settings(tmp_path, database_url, qbo_sandbox)


def _wire(app: Flask, qbo: QboSandbox, crm: RunningServer) -> int:
    made = wire_demo(app, crm_url=crm.url, crm_token=CRM_TOKEN, realm_id=qbo.realm_id, web_url="http://127.0.0.1:9")
    return int(made["id"])


def _first_sync(app: Flask, connection_id: int) -> SyncRun:
    with app.app_context():
        run = store.latest(connection_id, store.FIRST)
        assert run is not None
        db.session.expunge(run)
        return run


def test_a_demo_wired_without_its_backfill_waits_for_its_preview_and_the_scheduler_leaves_it(
        app: Flask, qbo_sandbox: QboSandbox, crm_server: RunningServer, redis_client: Redis) -> None:
    connection_id = _wire(app, qbo_sandbox, crm_server)
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
        app: Flask, qbo_sandbox: QboSandbox, crm_server: RunningServer, redis_client: Redis) -> None:
    connection_id = _wire(app, qbo_sandbox, crm_server)
    start_demo_sync(app, connection_id)
    run = _first_sync(app, connection_id)
    assert (run.state, run.auto_start) == (store.PREVIEWING, True)
    assert fetch_job(redis_client, JobIds.sync_run_job("preview", run.id)) is not None
    with app.app_context():
        schedule_cdc_polls()
    assert fetch_job(redis_client, JobIds.backfill(connection_id)) is None
