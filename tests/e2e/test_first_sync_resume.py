"""A first sync whose worker is killed (SIGKILL) mid-run resumes from its last saved page, not from zero.

The worker is a real ``crm-qb worker`` process; QBO (with injected latency, so the run takes long enough to be
killed in the middle) and the CRM (the reference CRM, then the local HubSpot) answer over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from redis import Redis
from rq.job import JobStatus
from sqlalchemy import func, select

from crm_qb.app import create_app
from crm_qb.db import db, utcnow
from crm_qb.keys import JobIds
from crm_qb.models import SyncRun, SyncRunRecord
from crm_qb.runtime import runtime
from crm_qb.sandbox.crm.server import start_server
from crm_qb.sandbox.crm.state import SandboxConfig as CrmConfig
from crm_qb.sandbox.hubspot import server as hubspot_server
from crm_qb.sync.firstsync import service, store
from tests.conftest import _migrate, _truncate, settings_env
from tests.support import ROOT, wait_for
from tests.support import sync as support
from tests.support.e2e import Crm, crm_connection
from tests.support.sync import QboSandbox, connect_qbo, qbo_settings
from workers.queues import fetch_job
from workers.worker import build_worker

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # whole crm-qb runs of minutes: `scripts/test`, not CI
qbo_sandbox = support.qbo_sandbox

CUSTOMERS, PAGE = 30, 2


@dataclass
class Resumable:
    """A migrated crm-qb app with one connection to a seeded QBO realm and an empty CRM of either kind."""

    app: Flask
    qbo: QboSandbox
    crm: Crm
    connection_id: int

    def work(self) -> None:
        """Drain every queued job with a real RQ worker in burst mode, in this process."""
        build_worker(self.app).work(burst=True)

    def contacts(self) -> list[dict[str, Any]]:
        """Every CRM contact (section 6 shape)."""
        return self.crm.contacts()


@contextmanager
def crm_on_thread(crm_kind: str) -> Iterator[dict[str, Any]]:
    """The reference CRM or the local HubSpot served on a thread; its ``/_sandbox/info``."""
    running = hubspot_server.start_server() if crm_kind == "hubspot" else start_server(config=CrmConfig(token="t"))
    try:
        yield requests.get(f"{running.url}/_sandbox/info", timeout=10).json()
    finally:
        running.stop()


@pytest.fixture
def seeded(crm_kind: str, tmp_path: Path, database_url: str, redis_client: Redis,
           qbo_sandbox: QboSandbox) -> Iterator[Resumable]:
    """A connection to a seeded realm of 30 customers and a few transactions, and to a CRM of ``crm_kind``."""
    body = {"customers": CUSTOMERS, "transactions": 6, "multicurrency": False, "seed": 3}
    qbo_sandbox.realm_id = qbo_sandbox.post("/_sandbox/realms", body)["realm_id"]
    settings = qbo_settings(tmp_path, database_url, qbo_sandbox)
    app = create_app(settings)
    _migrate(app)
    if not settings.is_sqlite:
        _truncate(app)
    with crm_on_thread(crm_kind) as info:
        connection_id, _ = crm_connection(app, crm_kind, info)
        connect_qbo(app, connection_id, qbo_sandbox.realm_id)
        yield Resumable(app, qbo_sandbox, Crm(crm_kind, str(info["api_base"]), str(info["token"])), connection_id)
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def worker_process(h: Resumable, log: Path) -> subprocess.Popen[bytes]:
    """``crm-qb worker`` with the harness's settings and 2-row pages."""
    settings = runtime(h.app).settings
    env = {**os.environ, **settings_env(settings), "CRM_QB_BACKFILL_PAGE_SIZE": str(PAGE),
           "CRM_QB_QBO_ENVIRONMENT": "local", "CRM_QB_QBO_CLIENT_ID": settings.qbo_client_id or "",
           "CRM_QB_QBO_CLIENT_SECRET": settings.qbo_client_secret or "",
           "CRM_QB_QBO_REDIRECT_URI": settings.qbo_redirect_uri or "",
           "CRM_QB_QBO_DISCOVERY_URL": settings.qbo_discovery_url or "",
           "CRM_QB_QBO_API_BASE": settings.qbo_api_base or "", "CRM_QB_QBO_APP_BASE": settings.qbo_app_base or ""}
    return subprocess.Popen([sys.executable, "-m", "crm_qb.cli", "worker"], env=env, cwd=ROOT,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT)


def queued_again(h: Resumable, run_id: int) -> bool:
    """Start the run again (``service.start``, as the scheduler's resume does); whether its job now waits in a
    queue for a worker."""
    with h.app.app_context():
        assert service.start(runtime(h.app).jobs, run_id) is True  # the run is still running: resumable
        job = fetch_job(runtime(h.app).redis, JobIds.sync_run_job("run", run_id))
        return job is not None and job.get_status(refresh=True) == JobStatus.QUEUED


def checkpoint(h: Resumable, run_id: int) -> dict[str, Any]:
    with h.app.app_context():
        run = store.run_of(run_id)
        assert run is not None
        result = dict(run.checkpoint or {})
        db.session.rollback()
        return result


def customer_records(h: Resumable, run_id: int) -> list[tuple[str, int, Any]]:
    with h.app.app_context():
        rows = db.session.execute(select(SyncRunRecord.object_id, SyncRunRecord.attempts, SyncRunRecord.updated_at)
                                  .where(SyncRunRecord.run_id == run_id, SyncRunRecord.stage == "run",
                                         SyncRunRecord.entity == "Customer")).all()
        db.session.rollback()
        return [(str(r[0]), int(r[1]), r[2]) for r in rows]


def test_a_killed_worker_resumes_after_its_last_page(seeded: Resumable, tmp_path: Path) -> None:
    h = seeded
    with h.app.app_context():
        run = service.open_first_sync(runtime(h.app).jobs, h.connection_id)
        run_id = run.id
    h.work()  # the preview, in this process
    faults = {"realm": h.qbo.realm_id, "latency_ms": 300, "error_rate": 0}
    requests.post(f"{h.qbo.url}/_sandbox/faults", json=faults, timeout=10).raise_for_status()
    with h.app.app_context():
        assert service.start(runtime(h.app).jobs, run_id) is True

    worker = worker_process(h, tmp_path / "worker.log")
    try:
        wait_for(lambda: checkpoint(h, run_id).get("customers", 0) >= 3 * PAGE, timeout=120,
                 what="the run to save three pages of customers")
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
    killed_at = utcnow()
    saved = checkpoint(h, run_id)
    before = customer_records(h, run_id)
    assert len(before) == saved["customers"] < CUSTOMERS  # stopped in the middle
    with h.app.app_context():
        assert db.session.scalar(select(SyncRun.state).where(SyncRun.id == run_id)) == "running"
        db.session.rollback()

    requests.delete(f"{h.qbo.url}/_sandbox/faults", timeout=10).raise_for_status()
    # The dead worker's job is queued again once RQ sees its worker gone: asked again until then, as the scheduler's
    # resume does every tick (the killed worker's bulk child, which ran it, can outlive the wait above by moments
    # on a loaded host, and while it does the job still counts as running: workers.queues.worker_alive).
    wait_for(lambda: queued_again(h, run_id), timeout=30, what="the dead worker's job to be queued again")
    h.work()

    with h.app.app_context():
        run = store.run_of(run_id)
        assert run is not None and run.state == "done"
        status = service.status_json(run)
        preview = service.preview_json(run)
        duplicates = db.session.scalar(select(func.count()).select_from(SyncRunRecord).where(
            SyncRunRecord.run_id == run_id, SyncRunRecord.attempts > 1))
        db.session.rollback()
    after = customer_records(h, run_id)
    assert len(after) == CUSTOMERS and duplicates == 0
    kept = {object_id: stamp for object_id, _, stamp in before}
    # The pages saved before the kill were not walked again: their records are untouched.
    assert all(stamp == kept[object_id] for object_id, _, stamp in after if object_id in kept)
    assert sum(1 for _, _, stamp in after if stamp > killed_at) == CUSTOMERS - len(before)
    assert status["failed"] <= 2 and {k: status["counts"][k] for k in ("link", "create_in_qbo", "transactions")} \
        == {k: preview[k] for k in ("link", "create_in_qbo", "transactions")}
    emails = [c.get("email") for c in h.contacts() if c.get("email")]
    assert len(emails) == len(set(emails))  # no contact created twice
