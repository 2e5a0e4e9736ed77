"""The drain watchdog wakes again a drain lost with a killed worker (issue 11 item 4), instead of the sweep.

The two ways a worker loses a drain are reproduced on Redis exactly as a kill leaves them: a job popped from the
queue by a worker that died before starting it (the wake stays set), and a job marked started by a worker that no
longer exists.
"""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from sqlalchemy import select

from crm_qb.db import db
from crm_qb.keys import RedisKeys
from crm_qb.models import Connection, EventSource, EventStatus
from crm_qb.runtime import runtime
from crm_qb.sync.pipeline import events
from tests.support import fixture_bytes
from tests.support.connections import add_connection, count_events, disable_sync, post_qbo
from workers.queues import BACKFILL, INBOUND, queue
from workers.watchdog import Watchdog
from workers.worker import build_worker

REALM = "310687"


def _stored_event_and_its_wake(app: Flask, client: FlaskClient) -> tuple[RedisKeys, str]:
    connection = add_connection(app, realm_id=REALM)
    disable_sync(app, connection.id)  # the plumbing is under test, not what the sync does
    assert post_qbo(client, fixture_bytes("qbo/webhook_cloudevents_customer_created.json")).status_code == 200
    keys = runtime(app).keys
    inbound = queue(runtime(app).redis, INBOUND, keys)
    [job_id] = inbound.job_ids
    return keys, job_id


def test_a_drain_job_taken_by_a_worker_that_died_is_woken_again(app: Flask, client: FlaskClient,
                                                               redis_client: Redis) -> None:
    keys, job_id = _stored_event_and_its_wake(app, client)
    inbound = queue(redis_client, INBOUND, keys)
    assert redis_client.lpop(inbound.key) is not None  # a worker's pop, then kill -9: the job is gone, the wake stays
    assert redis_client.exists(keys.wake(EventSource.QBO.value, REALM))
    watchdog = Watchdog(redis_client, keys)

    assert watchdog.check() == 0  # first sight: only a suspect (it could be between a live worker's pop and start)
    assert watchdog.check() == 1
    [new_job] = inbound.job_ids
    assert new_job != job_id
    build_worker(app).work(burst=True)
    assert count_events(app, status=EventStatus.PROCESSED) == 1
    assert watchdog.check() == 0 and watchdog.check() == 0  # nothing lost any more


def test_a_drain_job_started_by_a_dead_worker_is_woken_again(app: Flask, client: FlaskClient,
                                                             redis_client: Redis) -> None:
    keys, job_id = _stored_event_and_its_wake(app, client)
    inbound = queue(redis_client, INBOUND, keys)
    redis_client.lpop(inbound.key)
    redis_client.delete(keys.wake(EventSource.QBO.value, REALM))  # the drain began: it cleared its wake
    job = Job.fetch(job_id, connection=redis_client)
    with redis_client.pipeline() as pipe:  # what a worker records when it starts a job (rq.worker.base)
        Execution.create(job, ttl=600, pipeline=pipe, worker_name="gone-worker")  # no such worker: it died
        job.prepare_for_execution("gone-worker", pipe)
        pipe.execute()
    assert job_id in StartedJobRegistry(queue=inbound).get_job_ids()
    watchdog = Watchdog(redis_client, keys)

    assert watchdog.check() == 0
    assert watchdog.check() == 1
    assert Job.fetch(job_id, connection=redis_client).get_status() == JobStatus.FAILED
    assert job_id not in StartedJobRegistry(queue=inbound).get_job_ids()
    build_worker(app).work(burst=True)
    assert count_events(app, status=EventStatus.PROCESSED) == 1


def test_a_waiting_or_running_drain_is_left_alone(app: Flask, client: FlaskClient, redis_client: Redis) -> None:
    keys, _job_id = _stored_event_and_its_wake(app, client)
    watchdog = Watchdog(redis_client, keys)
    assert [watchdog.check() for _ in range(3)] == [0, 0, 0]
    assert len(queue(redis_client, INBOUND, keys).job_ids) == 1


def test_a_bulk_drain_waiting_or_started_on_the_backfill_queue_is_watched_there(app: Flask, client: FlaskClient,
                                                                               redis_client: Redis) -> None:
    """A drain woken as bulk work waits on the backfill queue: left alone while it waits there (not taken for lost
    and woken again as live work), woken again as bulk work when a dead worker held it."""
    keys, _job_id = _stored_event_and_its_wake(app, client)
    inbound, bulk = queue(redis_client, INBOUND, keys), queue(redis_client, BACKFILL, keys)
    redis_client.lpop(inbound.key)
    redis_client.delete(keys.wake(EventSource.QBO.value, REALM))  # as if that live drain had run
    with app.app_context():
        assert events.wake_connection(runtime(app).jobs, db.session.scalars(select(Connection.id)).one(), bulk=True)
    [job_id] = bulk.job_ids
    watchdog = Watchdog(redis_client, keys)
    assert [watchdog.check() for _ in range(3)] == [0, 0, 0]
    assert bulk.job_ids == [job_id] and inbound.count == 0

    redis_client.lpop(bulk.key)
    redis_client.delete(keys.wake(EventSource.QBO.value, REALM))
    job = Job.fetch(job_id, connection=redis_client)
    with redis_client.pipeline() as pipe:
        Execution.create(job, ttl=600, pipeline=pipe, worker_name="gone-worker")
        job.prepare_for_execution("gone-worker", pipe)
        pipe.execute()
    assert job_id in StartedJobRegistry(queue=bulk).get_job_ids()
    assert watchdog.check() == 0 and watchdog.check() == 1
    assert Job.fetch(job_id, connection=redis_client).get_status() == JobStatus.FAILED
    assert inbound.count == 0 and len(bulk.job_ids) == 1  # woken again, still as bulk work
    build_worker(app, queues=(BACKFILL,)).work(burst=True)
    assert count_events(app, status=EventStatus.PROCESSED) == 1
