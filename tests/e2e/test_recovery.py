"""Nothing is lost and nothing is processed twice when a worker is killed mid-job or Redis is flushed."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from subprocess import Popen

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.worker import Worker
from sqlalchemy import create_engine, func, select, text, update

from crm_qb.db import db, utcnow
from crm_qb.models import AuditEntry, Connection, EventStatus, InboundEvent
from crm_qb.runtime import runtime
from crm_qb.sync.pipeline import events
from tests.support import fixture_bytes, wait_for
from tests.support.connections import add_connection, post_qbo
from workers import jobs

pytestmark = pytest.mark.e2e


def _store_event(app: Flask, client: FlaskClient) -> int:
    connection = add_connection(app, realm_id="310687")
    with app.app_context():
        row = db.session.get(Connection, connection.id)
        assert row is not None
        row.settings = {"sync": {"enabled": False}}  # the pipeline is under test here, not what sync does
        db.session.commit()
    assert post_qbo(client, fixture_bytes("qbo/webhook_cloudevents_customer_created.json")).status_code == 200
    with app.app_context():
        return int(db.session.scalars(select(InboundEvent.id)).one())


def _event(app: Flask, event_id: int) -> tuple[EventStatus, int]:
    with app.app_context():
        event = db.session.get(InboundEvent, event_id)
        assert event is not None
        result = (event.status, db.session.scalar(select(func.count()).select_from(AuditEntry)) or 0)
        db.session.rollback()
        return result


def _sweep_now(app: Flask) -> int:
    with app.app_context():
        db.session.execute(update(InboundEvent).values(received_at=utcnow() - timedelta(hours=1)))
        db.session.commit()
        return jobs.sweep_inbound_events()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_worker_killed_mid_job_is_recovered_by_the_sweep(app: Flask, client: FlaskClient, redis_client: Redis,
                                                         spawn: Callable[..., Popen[bytes]]) -> None:
    event_id = _store_event(app, client)
    blocker = create_engine(app.config["SQLALCHEMY_DATABASE_URI"]).connect()
    held = blocker.begin()
    blocker.execute(text("SELECT id FROM inbound_events WHERE id = :id FOR UPDATE"), {"id": event_id})
    worker = spawn("worker")
    job = Job.fetch(Queue("crm_qb_test.inbound", connection=redis_client).job_ids[0], connection=redis_client)
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.STARTED, what="the worker to start the job")
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    held.rollback()
    blocker.close()
    assert _event(app, event_id) == (EventStatus.PENDING, 0)

    assert _sweep_now(app) == 1
    assert spawn("worker", "--burst").wait(60) == 0
    assert _event(app, event_id) == (EventStatus.PROCESSED, 1)
    assert _sweep_now(app) == 0
    assert _event(app, event_id) == (EventStatus.PROCESSED, 1)


def test_events_survive_a_redis_flush(app: Flask, client: FlaskClient, redis_client: Redis,
                                      spawn: Callable[..., Popen[bytes]]) -> None:
    event_id = _store_event(app, client)
    redis_client.flushdb()
    assert spawn("worker", "--burst").wait(60) == 0
    assert _event(app, event_id) == (EventStatus.PENDING, 0)
    assert _sweep_now(app) == 1
    assert spawn("worker", "--burst").wait(60) == 0
    assert _event(app, event_id) == (EventStatus.PROCESSED, 1)
    assert _sweep_now(app) == 0
    assert post_qbo(client, fixture_bytes("qbo/webhook_cloudevents_customer_created.json")).json["stored"] == 0
    assert _event(app, event_id) == (EventStatus.PROCESSED, 1)


@pytest.mark.postgresql_slow  # a worker's signals and niceness: the SQLite variant keeps it in CI
def test_an_idle_worker_stops_on_sigterm(redis_client: Redis, spawn: Callable[..., Popen[bytes]]) -> None:
    """A supervisor's stop (SIGTERM) ends an idle worker at once; only a Redis failure restarts its loop."""
    worker = spawn("worker")
    wait_for(lambda: any(redis_client.hget(key, "pid") == str(worker.pid).encode()
                         for key in redis_client.scan_iter("rq:worker:*") if redis_client.type(key) == b"hash"),
             timeout=60, what="the worker to register")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0


def _thread_nices(pid: int) -> set[int]:
    """The niceness of every thread of process ``pid`` (Linux keeps one per thread), from /proc."""
    nices = set()
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        nices.add(int(stat.read_text().rsplit(")", 1)[1].split()[16]))
    return nices


@pytest.mark.postgresql_slow  # a worker's signals and niceness: the SQLite variant keeps it in CI
def test_a_worker_with_nice_runs_every_thread_at_that_niceness_and_takes_bulk_drains(
        app: Flask, client: FlaskClient, redis_client: Redis, spawn: Callable[..., Popen[bytes]]) -> None:
    """Issue 16: ``crm-qb worker --queues backfill --nice 7`` (first syncs and their backlog at a lower CPU
    priority) runs at nice +7 in all its threads and works its queue; a plain worker keeps the default priority."""
    event_id = _store_event(app, client)
    base = os.getpriority(os.PRIO_PROCESS, 0)
    bulk, plain = spawn("worker", "--queues", "backfill", "--nice", "7"), spawn("worker", "--queues", "scheduled")
    wait_for(lambda: len(Worker.all(connection=redis_client)) == 2, 60, what="both workers to listen")
    assert _thread_nices(bulk.pid) == {min(base + 7, 19)}
    assert _thread_nices(plain.pid) == {base}
    with app.app_context():
        runtime(app).redis.delete(runtime(app).keys.wake("qbo", "310687"))  # as if its live drain had been lost
        assert events.wake_connection(runtime(app).jobs, db.session.scalars(select(Connection.id)).one(),
                                      bulk=True) == 1
    wait_for(lambda: _event(app, event_id)[0] == EventStatus.PROCESSED, 60, what="the niced worker's drain")
    assert bulk.poll() is None and plain.poll() is None
