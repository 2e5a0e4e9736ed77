"""Processing jobs, the sweep and the scheduler, run through a real RQ worker in burst mode."""

from __future__ import annotations

import os
import signal
import time
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue
from rq.job import JobStatus
from rq.scheduler import RQScheduler
from sqlalchemy import func, select, update

from crm_qb.app import create_app
from crm_qb.db import db, utcnow
from crm_qb.models import AuditEntry, Connection, EventStatus, InboundEvent
from crm_qb.runtime import Runtime, runtime
from crm_qb.sync.pipeline import events
from crm_qb.sync.pipeline.drain import Drain
from tests.conftest import make_settings
from tests.support import fixture_bytes, wait_for
from tests.support.connections import add_connection, count_events, disable_sync, post_qbo
from workers import jobs, niced
from workers.queues import BACKFILL, INBOUND, all_queues, enqueue, job
from workers.schedule import Periodic, promote_delayed_jobs, tick
from workers.worker import _stop_was_asked, build_worker

if TYPE_CHECKING:
    from tests.support.connections import TestConnection


def _store_one_event(app: Flask, client: FlaskClient) -> int:
    connection = add_connection(app, realm_id="310687")
    disable_sync(app, connection.id)  # these tests are about the pipeline, not about what sync does
    post_qbo(client, fixture_bytes("qbo/webhook_cloudevents_customer_created.json"))
    with app.app_context():
        return int(db.session.scalars(select(InboundEvent.id)).one())



def _audit_count(app: Flask) -> int:
    with app.app_context():
        return int(db.session.scalar(select(func.count()).select_from(AuditEntry)) or 0)


def _age_events(app: Flask, seconds: int) -> None:
    with app.app_context():
        db.session.execute(update(InboundEvent).values(received_at=utcnow() - timedelta(seconds=seconds)))
        db.session.commit()


def test_worker_processes_a_stored_event_once(app: Flask, client: FlaskClient) -> None:
    event_id = _store_one_event(app, client)
    build_worker(app).work(burst=True)
    assert count_events(app, status=EventStatus.PROCESSED) == 1
    assert _audit_count(app) == 1
    with app.app_context():
        assert jobs.drain_qbo_realm("310687") == 0
        assert events.process_event(event_id, lambda event: "processed") == 0
    assert _audit_count(app) == 1


def test_sweep_re_enqueues_only_stranded_pending_events(app: Flask, client: FlaskClient, redis_client: Redis) -> None:
    _store_one_event(app, client)
    redis_client.flushdb()  # the enqueued job is lost
    with app.app_context():
        assert jobs.sweep_inbound_events() == 0  # too recent to be called stranded
    _age_events(app, 600)
    with app.app_context():
        assert jobs.sweep_inbound_events() == 1
        assert jobs.sweep_inbound_events() == 0  # already waiting in the queue
    build_worker(app).work(burst=True)
    assert count_events(app, status=EventStatus.PROCESSED) == 1
    with app.app_context():
        assert jobs.sweep_inbound_events() == 0
    assert _audit_count(app) == 1


def _backoff_over(app: Flask) -> None:
    """Move every event's next attempt into the past (as if its backoff had been waited out)."""
    with app.app_context():
        db.session.execute(update(InboundEvent).where(InboundEvent.next_attempt_at.is_not(None))
                           .values(next_attempt_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()


def _event(app: Flask, event_id: int) -> InboundEvent:
    with app.app_context():
        event = db.session.get(InboundEvent, event_id)
        assert event is not None
        db.session.expunge(event)
        return event


def test_a_failing_event_counts_attempts_backs_off_and_gives_up(app: Flask, client: FlaskClient,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    event_id = _store_one_event(app, client)

    def explode(_events: object, _plan: object) -> None:
        raise RuntimeError("CRM answered 500")

    monkeypatch.setattr(Drain, "run_for_connection", lambda _drain, _cid, batch, plan: explode(batch, plan))
    with app.app_context():
        for attempt in range(1, events.MAX_ATTEMPTS + 1):
            with pytest.raises(RuntimeError):
                jobs.drain_qbo_realm("310687")
            event = _event(app, event_id)
            assert event.attempts == attempt
            if attempt < events.MAX_ATTEMPTS:  # backing off: a drain before its next attempt leaves it alone
                assert event.next_attempt_at is not None and event.next_attempt_at > utcnow()
                assert jobs.drain_qbo_realm("310687") == 0 and _event(app, event_id).attempts == attempt
                _backoff_over(app)
        assert jobs.drain_qbo_realm("310687") == 0  # given up: the realm's other events are not blocked
        event = _event(app, event_id)
        assert (event.status, event.attempts) == (EventStatus.FAILED, events.MAX_ATTEMPTS)
        assert event.status_reason == "RuntimeError: CRM answered 500"


def test_a_transient_failure_backs_off_for_a_day_and_the_sweep_wakes_it_when_due(
        app: Flask, client: FlaskClient, redis_client: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    from crm_qb.qbo.faults import ServerError
    from crm_qb.sync.rules.retry import TRANSIENT_SCHEDULE, total_span

    assert total_span(TRANSIENT_SCHEDULE) >= timedelta(hours=24)
    event_id = _store_one_event(app, client)

    def unavailable(_events: object, _plan: object) -> None:
        raise ServerError(message="Service Unavailable", http_status=503)

    monkeypatch.setattr(Drain, "run_for_connection", lambda _drain, _cid, batch, plan: unavailable(batch, plan))
    with app.app_context():
        for _ in range(events.MAX_ATTEMPTS * 2):  # twice what an unexpected error gets, and still pending
            with pytest.raises(ServerError):
                jobs.drain_qbo_realm("310687")
            _backoff_over(app)
        redis_client.flushdb()
        assert jobs.sweep_inbound_events() == 1  # due again, although received only now
    event = _event(app, event_id)
    assert (event.status, event.attempts) == (EventStatus.PENDING, events.MAX_ATTEMPTS * 2)
    monkeypatch.undo()
    build_worker(app).work(burst=True)
    assert _event(app, event_id).status == EventStatus.PROCESSED


def test_two_schedulers_enqueue_each_tick_once(app: Flask, redis_client: Redis, tmp_path: Path) -> None:
    other = create_app(make_settings(tmp_path / "other", str(app.config["SQLALCHEMY_DATABASE_URI"])))
    periodic = (Periodic("sweep-inbound", jobs.sweep_inbound_events, 60),)
    first = tick(app, 6000.0, periodic)
    second = tick(other, 6000.5, periodic)
    assert first == ["sweep-inbound-100"] and second == []
    assert tick(app, 6060.0, periodic) == ["sweep-inbound-101"]


def test_replay_puts_failed_events_back(app: Flask, client: FlaskClient) -> None:
    from workers.maintenance import replay_events

    event_id = _store_one_event(app, client)
    with app.app_context():
        db.session.execute(update(InboundEvent).values(status=EventStatus.FAILED, attempts=8))
        db.session.commit()
        assert replay_events("failed") == 1
    build_worker(app).work(burst=True)
    with app.app_context():
        event = db.session.get(InboundEvent, event_id)
        assert event is not None and event.status == EventStatus.PROCESSED


@job(INBOUND, timeout=30, retry_intervals=(1,))
def flaky_job(key: str) -> str:
    """Fails on its first run, succeeds on the retry (a test job)."""
    redis = runtime().redis
    if redis.incr(key) == 1:
        raise RuntimeError("transient failure")
    return "ok"


def test_a_retry_with_an_interval_is_promoted_by_the_scheduler(app: Flask, redis_client: Redis) -> None:
    keys = runtime(app).keys
    with app.app_context():
        queued = enqueue(redis_client, keys, flaky_job, "flaky-runs", job_id="flaky-1")
    assert queued is not None
    build_worker(app).work(burst=True)
    assert queued.get_status(refresh=True) == JobStatus.SCHEDULED
    delayed = RQScheduler([q.name for q in all_queues(redis_client, keys)], connection=redis_client)
    time.sleep(1.1)
    promote_delayed_jobs(delayed)
    delayed.stop()
    build_worker(app).work(burst=True)
    assert queued.get_status(refresh=True) == JobStatus.FINISHED
    assert int(redis_client.get("flaky-runs") or 0) == 2


def test_events_wait_while_a_connection_needs_reconnect_and_run_after_it(app: Flask, client: FlaskClient,
                                                                          redis_client: Redis) -> None:
    from crm_qb.models import QboStatus

    event_id = _store_one_event(app, client)
    with app.app_context():
        connection = db.session.scalars(select(Connection)).one()
        connection.qbo_status, connection.settings = QboStatus.NEEDS_RECONNECT, {}  # sync on, but cannot call QBO
        db.session.commit()
    build_worker(app).work(burst=True)
    with app.app_context():
        event = db.session.get(InboundEvent, event_id)
        assert event is not None and (event.status, event.attempts) == (EventStatus.PENDING, 0)
        connection = db.session.scalars(select(Connection)).one()
        connection.qbo_status = QboStatus.CONNECTED
        connection.settings = {"sync": {"enabled": False}}  # no QBO tokens in this test: only the plumbing
        db.session.commit()
        assert events.wake_connection(runtime(app).jobs, connection.id) == 1
    build_worker(app).work(burst=True)
    assert count_events(app, status=EventStatus.PROCESSED) == 1


def test_backfills_wait_on_their_own_queue_behind_live_changes(app: Flask, client: FlaskClient,
                                                               redis_client: Redis) -> None:
    """Issue 16: a first sync never holds the worker a live change needs (a live-only worker never takes one)."""
    from workers.queues import BACKFILL, QUEUE_NAMES, queue
    from workers.sync_jobs import backfill_connection

    _store_one_event(app, client)
    rt = runtime(app)
    assert backfill_connection.job_spec.queue == BACKFILL and QUEUE_NAMES[-1] == BACKFILL  # type: ignore[attr-defined]
    enqueue(redis_client, rt.keys, backfill_connection, 999_999, job_id="bench-backfill")
    build_worker(app, queues=("inbound", "sync", "scheduled")).work(burst=True)
    assert count_events(app, status=EventStatus.PROCESSED) == 1
    assert queue(redis_client, BACKFILL, rt.keys).job_ids == ["bench-backfill"]  # still waiting, not taken


def test_first_sync_jobs_wait_on_the_backfill_queue_for_a_worker_that_serves_it(app: Flask,
                                                                                redis_client: Redis) -> None:
    """Issue 16: a first sync's preview, run and retry are bulk work: a live-only worker never takes one."""
    from crm_qb.sync.firstsync.service import open_first_sync
    from workers.firstsync_jobs import execute_run, preview_run, retry_run
    from workers.queues import BACKFILL, queue

    connection = add_connection(app, realm_id="111")
    assert {f.job_spec.queue for f in (preview_run, execute_run, retry_run)} == {BACKFILL}  # type: ignore[attr-defined]
    with app.app_context():
        run_id = open_first_sync(None, connection.id).id
        rt = runtime()
        queued = [rt.jobs.sync_preview(run_id), rt.jobs.sync_run(run_id), rt.jobs.sync_retry(run_id)]
    assert all(item.queued for item in queued)
    build_worker(app, queues=("inbound", "sync", "scheduled")).work(burst=True)
    assert queue(redis_client, BACKFILL, rt.keys).job_ids == [item.job_id for item in queued]  # none taken


def test_a_drain_of_a_connection_waiting_for_its_first_sync_queues_no_next_turn(
        app: Flask, redis_client: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection whose events wait (its first sync not done) gets no next turn: a turn would only find them
    waiting again, and each would queue the next (during a first sync, hundreds of empty drains a minute)."""
    from crm_qb.models import EventSource
    from crm_qb.sync.firstsync.service import open_first_sync
    from crm_qb.sync.pipeline import drain as drain_module
    from workers.queues import BACKFILL, queue

    monkeypatch.setattr(drain_module, "DRAIN_BATCH", 2)
    connection = add_connection(app, realm_id="111")
    with app.app_context():
        open_first_sync(None, connection.id)  # waiting for its preview: the connection's events wait for it
        events.store(EventSource.CRM, [events.Notice(f"echo-{n}", None, "Contact", f"c{n}", "created", None)
                                       for n in range(5)], connection.id)
        db.session.commit()
        rt = runtime()
        assert jobs.drain_crm_connection(str(connection.id)) == 0
    assert queue(redis_client, INBOUND, rt.keys).count == 0 and queue(redis_client, BACKFILL, rt.keys).count == 0
    assert count_events(app, status=EventStatus.PENDING) == 5


def test_the_wake_of_a_connection_waiting_for_its_first_sync_is_parked_until_its_end(
        app: Flask, redis_client: Redis) -> None:
    """Hooks of a connection whose first sync runs (1,000 echoes for 1,000 contacts it creates) wake no drain
    each: the first drain that finds them waiting parks the wake; the run's end unparks it and wakes the backlog
    as bulk work. The watchdog does not take a parked wake for a lost drain."""
    from crm_qb.models import EventSource
    from crm_qb.sync.firstsync import store
    from crm_qb.sync.firstsync.service import open_first_sync
    from workers.queues import BACKFILL, queue
    from workers.watchdog import Watchdog

    connection = add_connection(app, realm_id="111")
    key = str(connection.id)
    with app.app_context():
        run_id = open_first_sync(None, connection.id).id
        events.store(EventSource.CRM, [events.Notice("echo-0", None, "Contact", "c0", "created", None)], connection.id)
        db.session.commit()
        rt = runtime()
        assert jobs.drain_crm_connection(key) == 0
        assert redis_client.get(rt.keys.wake("crm", key)) == jobs.PARKED.encode()
        assert rt.jobs.wake(EventSource.CRM, key) is None  # the next hook's wake: no drain
        live, bulk = queue(redis_client, INBOUND, rt.keys), queue(redis_client, BACKFILL, rt.keys)
        assert (live.count, bulk.count) == (0, 0)
        watchdog = Watchdog(redis_client, rt.keys)
        assert [watchdog.check() for _ in range(3)] == [0, 0, 0]
        assert store.move(run_id, ("waiting",), "done")  # as the run's end does, then it wakes the connection:
        db.session.commit()
        assert events.wake_connection(rt.jobs, connection.id, bulk=True) == 1
        assert (live.count, bulk.count) == (0, 1)


def test_a_wake_parked_just_as_the_first_sync_ended_is_woken_at_once(app: Flask, redis_client: Redis) -> None:
    """The run's end may wake the connection while a drain still saw it waiting, and that drain then parks the
    wake over the end's: parking checks the run again and wakes the backlog itself."""
    from crm_qb.models import EventSource
    from workers.queues import BACKFILL, queue

    connection = add_connection(app, realm_id="111")  # no first sync opened: not waiting (any more)
    with app.app_context():
        rt = runtime()
        jobs.park(rt, str(connection.id))
        assert redis_client.get(rt.keys.wake("crm", str(connection.id))) != jobs.PARKED.encode()
    assert queue(redis_client, BACKFILL, rt.keys).count == 1
    assert rt.jobs.wake(EventSource.CRM, str(connection.id)) is None  # that drain waits: a hook adds none


def _bulk_backlog(app: Flask, redis_client: Redis, monkeypatch: pytest.MonkeyPatch,
                  realm_id: str) -> tuple[TestConnection, Runtime, Queue, Queue]:
    """A connection with five CRM echoes left as a first sync's backlog (sync off: each is settled as skipped,
    cheaply and exactly once), woken as bulk work, drained two a batch; with its live and bulk queues."""
    from crm_qb.models import EventSource
    from crm_qb.sync.pipeline import drain as drain_module
    from workers.queues import BACKFILL, queue

    monkeypatch.setattr(drain_module, "DRAIN_BATCH", 2)
    connection = add_connection(app, realm_id=realm_id)
    disable_sync(app, connection.id)
    with app.app_context():
        events.store(EventSource.CRM, [events.Notice(f"echo-{n}", None, "Contact", f"c{n}", "created", None)
                                       for n in range(5)], connection.id)
        db.session.commit()
        rt = runtime()
        assert events.wake_connection(rt.jobs, connection.id, bulk=True) == 1
    return connection, rt, queue(redis_client, INBOUND, rt.keys), queue(redis_client, BACKFILL, rt.keys)


def test_a_bulk_drain_takes_its_turns_on_the_backfill_queue(app: Flask, redis_client: Redis,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A drain woken as bulk work (the backlog a first sync left) runs, turn after turn, on the backfill queue,
    never on a live-only worker; the connection's next ordinary wake is live work again."""
    from crm_qb.models import EventSource
    from workers.queues import BACKFILL

    connection, _rt, live, bulk = _bulk_backlog(app, redis_client, monkeypatch, "111")
    assert (live.count, bulk.count) == (0, 1)
    build_worker(app, queues=("inbound", "sync", "scheduled")).work(burst=True)
    assert count_events(app, status=EventStatus.PENDING) == 5  # a live-only worker never takes it
    build_worker(app, queues=(BACKFILL,)).work(burst=True, max_jobs=1)
    assert count_events(app, status=EventStatus.PENDING) == 3 and (live.count, bulk.count) == (0, 1)  # next turn
    build_worker(app, queues=(BACKFILL,)).work(burst=True)
    assert count_events(app, status=EventStatus.PENDING) == 0 and count_events(app, status=EventStatus.PROCESSED) == 5
    with app.app_context():
        events.store(EventSource.CRM, [events.Notice("live", None, "Contact", "c9", "updated", None)], connection.id)
        db.session.commit()
        assert runtime().jobs.wake(EventSource.CRM, str(connection.id)) is not None
    assert (live.count, bulk.count) == (1, 0)


def test_a_flooded_connection_drains_in_turns_behind_other_tenants(app: Flask, redis_client: Redis,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16: a drain job settles one turn of batches, then queues its next turn behind the waiting drains."""
    from crm_qb.models import EventSource
    from crm_qb.sync.pipeline import drain as drain_module
    from workers.queues import queue

    monkeypatch.setattr(drain_module, "DRAIN_BATCH", 2)
    flooded, other = add_connection(app, realm_id="111"), add_connection(app, realm_id="222")
    for connection in (flooded, other):
        disable_sync(app, connection.id)  # each event is settled as skipped: cheap, and settled exactly once
    with app.app_context():
        events.store(EventSource.CRM, [events.Notice(f"flood-{n}", None, "Contact", f"c{n}", "updated", None)
                                       for n in range(5)], flooded.id)
        events.store(EventSource.CRM, [events.Notice("live-0", None, "Contact", "c0", "updated", None)], other.id)
        db.session.commit()
        rt = runtime()
        inbound = queue(redis_client, INBOUND, rt.keys)
        jobs.wake(redis_client, rt.keys, EventSource.CRM, str(other.id))  # another tenant's drain waits
        assert jobs.drain_crm_connection(str(flooded.id)) == 2  # one turn: one batch of DRAIN_BATCH
        assert [j.args for j in inbound.jobs] == [(str(other.id),), (str(flooded.id),)]  # the next turn behind it
        assert count_events(app, status=EventStatus.PENDING) == 4
    build_worker(app).work(burst=True)
    assert count_events(app, status=EventStatus.PENDING) == 0
    assert count_events(app, status=EventStatus.PROCESSED) == 6


@job(INBOUND, timeout=30)
def report_live_busy() -> bool:
    """Whether bulk work would see live work under way now (a test job, run on a live queue or on ``backfill``)."""
    from workers.queues import live_busy

    rt = runtime()
    return live_busy(rt.redis, rt.keys)


def test_bulk_work_sees_live_jobs_waiting_or_running_on_this_host_and_not_bulk_ones(app: Flask,
                                                                                    redis_client: Redis) -> None:
    """The probe bulk work paces itself by (workers.queues.live_busy): a job waiting in a live queue, or a live job
    a worker of this host is running; not a bulk job, not a job that ended, not the mark of a worker killed
    during a live job once that job's timeout has passed."""
    from rq.job import Job

    from workers.queues import BACKFILL, live_busy, mark_live_work

    keys = runtime(app).keys
    assert not live_busy(redis_client, keys)
    enqueue(redis_client, keys, report_live_busy, job_id="bulk-probe", on=BACKFILL)
    assert not live_busy(redis_client, keys)  # bulk work waiting is not live work
    build_worker(app).work(burst=True)
    assert Job.fetch("bulk-probe", connection=redis_client).return_value() is False
    enqueue(redis_client, keys, report_live_busy, job_id="live-probe")
    assert live_busy(redis_client, keys)  # waiting for a worker
    build_worker(app).work(burst=True)
    assert Job.fetch("live-probe", connection=redis_client).return_value() is True  # running here
    assert not live_busy(redis_client, keys)  # ended: its mark says when, in the past
    mark_live_work(redis_client, keys, "killed-worker", -1)
    assert not live_busy(redis_client, keys)


def test_bulk_work_hears_of_live_jobs_that_ran_while_it_did_not_look(app: Flask, redis_client: Redis) -> None:
    """A live job that ended within the pacer's memory of live work (a second) counts as live work about for the
    host's bulk processes (``HostLook.recent``), though none runs at their look; one that ended earlier does not,
    and marks older than a minute are pruned as a live job ends."""
    import socket

    from crm_qb.sync.pacing import PACE_LIVE_MEMORY_SECONDS
    from workers.queues import HostLook, unmark_live_work

    keys = runtime(app).keys
    look = HostLook(redis_client, keys, member="bulk")
    assert not look.busy() and not look.recent()
    live_work = keys.live_work(socket.gethostname())
    enqueue(redis_client, keys, report_live_busy, job_id="live-job")
    build_worker(app).work(burst=True)
    marks = redis_client.zrange(live_work, 0, -1, withscores=True)
    assert marks and max(when for _, when in marks) <= time.time()  # the worker's mark keeps when its job ended
    unmark_live_work(redis_client, keys, "another-worker")  # a live job that ended just now
    assert not look.busy() and look.recent()
    for worker in redis_client.zrange(live_work, 0, -1):
        redis_client.zadd(live_work, {worker: time.time() - PACE_LIVE_MEMORY_SECONDS - 0.5})
    assert not look.busy() and not look.recent()
    redis_client.zadd(live_work, {"long-gone": time.time() - 120})
    enqueue(redis_client, keys, report_live_busy, job_id="another-live-job")
    build_worker(app).work(burst=True)  # a live job's end prunes the marks of workers gone for good
    assert redis_client.zscore(live_work, "long-gone") is None


def test_the_bulk_processes_of_a_host_count_each_other_at_work_and_drop_out_when_they_stop_looking(
        app: Flask, redis_client: Redis) -> None:
    """Each bulk process's look (workers.queues.HostLook) notes it at work on its host and counts the host's bulk
    processes, so that they split the host's share of a core (crm_qb.sync.pacing); one that stopped looking
    (its bulk job ended) drops out after BULK_WORK_SECONDS. Live work is seen as ``live_busy`` sees it."""
    import socket

    from redis.exceptions import ConnectionError as RedisConnectionError

    from workers.queues import BULK_WORK_SECONDS, HostLook

    keys = runtime(app).keys
    first, second = HostLook(redis_client, keys, member="a"), HostLook(redis_client, keys, member="b")
    assert not first.busy() and first.sharers() == 1  # alone on the host
    assert not second.busy() and second.sharers() == 2
    first.busy()
    assert first.sharers() == 2
    enqueue(redis_client, keys, report_live_busy, job_id="waiting-live")
    assert first.busy() and second.busy()
    # "b" stopped looking (its job ended) longer ago than BULK_WORK_SECONDS: "a" has the host's share to itself
    redis_client.zadd(keys.bulk_work(socket.gethostname()), {"b": time.time() - BULK_WORK_SECONDS - 1})
    first.busy()
    assert first.sharers() == 1
    assert redis_client.zscore(keys.bulk_work(socket.gethostname()), "b") is None  # pruned as it looked
    # another host's bulk processes share another host's cores
    redis_client.zadd(keys.bulk_work("another-host"), {"c": time.time() + BULK_WORK_SECONDS})
    first.busy()
    assert first.sharers() == 1

    class Down:
        def pipeline(self, **_: object) -> object:
            raise RedisConnectionError("down")

    failing = HostLook(Down(), keys, member="d")  # type: ignore[arg-type]
    failing.at_work = 3
    assert not failing.busy() and failing.sharers() == 1  # Redis down: no live work, no other process


@job(BACKFILL, timeout=30)
def look_as_bulk_work() -> int:
    """A bulk job's look at its host (a test job): how many bulk processes it counts at work."""
    from workers.queues import HostLook

    rt = runtime()
    look = HostLook(rt.redis, rt.keys)
    look.busy()
    return look.sharers()


def test_a_bulk_jobs_end_gives_its_part_of_the_share_back_at_once(app: Flask, redis_client: Redis) -> None:
    """When a bulk job ends, its process leaves the host's bulk processes at work at once: the next drain of a
    first sync's backlog, in another worker's bulk child, has the whole share, not half of it for 5 s."""
    import socket

    from rq.job import Job

    from workers.queues import bulk_member

    keys = runtime(app).keys
    at_work = keys.bulk_work(socket.gethostname())
    redis_client.zadd(at_work, {"another-bulk-process": time.time() + 60})
    enqueue(redis_client, keys, look_as_bulk_work, job_id="bulk-look", on=BACKFILL)
    build_worker(app).work(burst=True)
    assert Job.fetch("bulk-look", connection=redis_client).return_value() == 2  # itself and the other one
    assert redis_client.zscore(at_work, bulk_member()) is None  # gone with its job's end
    assert redis_client.zscore(at_work, "another-bulk-process") is not None


def test_bulk_jobs_and_bulk_drains_pace_themselves_by_the_live_work(app: Flask, redis_client: Redis) -> None:
    """First syncs, backfills and bulk drains get a pacer that looks at the live queues; other jobs do not."""
    from crm_qb.sync.pacing import LivePacer, no_pace
    from workers.queues import bulk_services

    rt = runtime(app)
    with app.app_context():
        pacer = bulk_services(rt).pace
        assert isinstance(pacer, LivePacer) and rt.sync_services().pace is no_pace
        assert not pacer.busy()
        enqueue(redis_client, rt.keys, report_live_busy, job_id="waiting-live")
        assert pacer.busy()
        drain_pacer = jobs._drain(events.EventSource.CRM, "1", bulk=True).services.pace
        assert isinstance(drain_pacer, LivePacer)
        assert jobs._drain(events.EventSource.CRM, "1").services.pace is no_pace
        # both keep to the installation's share of a core while live work is about (CRM_QB_BULK_SHARE_PERCENT),
        # with the process's one pacer: what one bulk job still owes when it ends, the next one takes
        assert pacer.share == drain_pacer.share == rt.settings.bulk_share == 0.10
        assert drain_pacer is pacer and bulk_services(rt).pace is pacer
        # the host's share is split among its bulk processes at work: this one counts itself at its look
        assert pacer.sharers() == 1


def test_a_bulk_jobs_share_counts_what_its_statements_cost_a_local_database(app: Flask) -> None:
    """A bulk job's share of a core counts its process's CPU and, on PostgreSQL on this host, its backends' CPU
    (crm_qb.backend_cpu): the same statement adds to the share's clock on both databases, on SQLite as the
    process's own work, on PostgreSQL as the server's."""
    from sqlalchemy import text

    from crm_qb.sync.pacing import LivePacer
    from workers.queues import bulk_services

    rt = runtime(app)
    heavy = text("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 1500000) "
                 "SELECT count(*) FROM n")
    with app.app_context():
        pacer, again = bulk_services(rt).pace, bulk_services(rt).pace
        assert isinstance(pacer, LivePacer) and isinstance(again, LivePacer)
        assert isinstance(again.cpu, partial) and again.cpu.args == (rt.backend_cpu(),)  # one watcher, built once
        db.session.execute(text("SELECT 1")).scalar()  # a connection checked out once the watcher exists
        share_before, own_before = pacer.cpu(), time.process_time()
        assert db.session.execute(heavy).scalar() == 1500000
        share, own = pacer.cpu() - share_before, time.process_time() - own_before
        db.session.rollback()
    assert share >= 0.2
    if rt.settings.is_sqlite:
        assert own >= 0.2 and share - own < 0.05  # in-process: nothing more to count
    else:
        assert share - own >= 0.2 and own < 0.1  # the server did the work: the process itself waited


def test_a_live_wake_during_a_first_syncs_backlog_hands_it_to_the_bulk_drains(app: Flask, redis_client: Redis,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """While a connection's first-sync backlog is being settled as bulk work, a drain woken as live work (a late
    echo hook, the CRM poll) takes no batch of it on a live worker: it hands over to the backfill queue. Once the
    backlog is settled, the connection's next wake is live work again."""
    from crm_qb.models import EventSource
    from workers.queues import BACKFILL

    connection, rt, live, bulk = _bulk_backlog(app, redis_client, monkeypatch, "112")
    build_worker(app, queues=(BACKFILL,)).work(burst=True, max_jobs=1)  # one turn of the backlog
    assert count_events(app, status=EventStatus.PENDING) == 3 and (live.count, bulk.count) == (0, 1)
    # The next bulk turn starts (it clears its wake) and a hook arrives meanwhile: its wake is live work.
    bulk.empty()
    redis_client.delete(rt.keys.wake(EventSource.CRM.value, str(connection.id)))
    with app.app_context():
        events.store(EventSource.CRM, [events.Notice("late-echo", None, "Contact", "c7", "created", None)],
                     connection.id)
        db.session.commit()
        assert runtime().jobs.wake(EventSource.CRM, str(connection.id)) is not None  # the hook's live wake
    assert live.count == 1
    build_worker(app, queues=("inbound", "sync", "scheduled")).work(burst=True)
    assert count_events(app, status=EventStatus.PENDING) == 4  # the live worker settled none of the backlog
    assert (live.count, bulk.count) == (0, 1)
    build_worker(app, queues=(BACKFILL,)).work(burst=True)
    assert count_events(app, status=EventStatus.PENDING) == 0
    with app.app_context():
        events.store(EventSource.CRM, [events.Notice("live", None, "Contact", "c9", "updated", None)], connection.id)
        db.session.commit()
        assert runtime().jobs.wake(EventSource.CRM, str(connection.id)) is not None
    assert (live.count, bulk.count) == (1, 0)
    build_worker(app, queues=("inbound", "sync", "scheduled")).work(burst=True)
    assert count_events(app, status=EventStatus.PENDING) == 0


def test_the_live_work_marks_and_the_probe_survive_a_redis_failure(app: Flask) -> None:
    """Pacing must never stop a job: marking live work and probing it shrug a Redis failure off (no mark, not busy)."""
    from tests.support import free_port
    from workers.queues import live_busy, mark_live_work, unmark_live_work

    gone = Redis(port=free_port(), socket_connect_timeout=0.2)
    keys = runtime(app).keys
    mark_live_work(gone, keys, "w", 30)
    unmark_live_work(gone, keys, "w")
    assert live_busy(gone, keys) is False


@job(BACKFILL, timeout=30)
def report_niceness() -> int:
    """The niceness of the thread running this job (a test job)."""
    return niced.thread_niceness()


@job(BACKFILL, timeout=1)
def overrun() -> str:
    """Runs past its one-second timeout in short steps, so the timer's exception lands between them."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.05)
    return "should have timed out"


@pytest.mark.skipif(not niced.supported(), reason="per-thread niceness is Linux's")
def test_a_worker_of_every_queue_runs_bulk_jobs_niced_and_live_jobs_as_before(app: Flask,
                                                                              redis_client: Redis) -> None:
    """A default worker serves the backfill queue too: its bulk jobs run on a niced thread (``--bulk-nice``),
    so the host's live drains get the CPU first; the worker itself, and its live jobs, keep their priority."""
    keys, own = runtime(app).keys, niced.thread_niceness()
    with app.app_context():
        bulk = enqueue(redis_client, keys, report_niceness, job_id="nice-bulk")
        live = enqueue(redis_client, keys, report_niceness, job_id="nice-live", on=INBOUND)
        plain = enqueue(redis_client, keys, report_niceness, job_id="nice-off-later")
    assert bulk is not None and live is not None and plain is not None
    build_worker(app, bulk_nice=own + 6).work(burst=True, max_jobs=2)
    assert bulk.latest_result().return_value == own + 6  # type: ignore[union-attr]
    assert live.latest_result().return_value == own  # type: ignore[union-attr]
    assert niced.thread_niceness() == own
    build_worker(app, bulk_nice=0).work(burst=True)
    assert plain.latest_result().return_value == own  # type: ignore[union-attr]


@pytest.mark.skipif(not niced.supported(), reason="per-thread niceness is Linux's")
def test_a_bulk_job_on_its_niced_thread_still_times_out(app: Flask, redis_client: Redis) -> None:
    with app.app_context():
        queued = enqueue(redis_client, runtime(app).keys, overrun, job_id="nice-overrun")
    assert queued is not None
    started = time.monotonic()
    build_worker(app, bulk_nice=10).work(burst=True)
    assert time.monotonic() - started < 8
    assert queued.get_status(refresh=True) == JobStatus.FAILED
    assert "JobTimeoutException" in (queued.latest_result().exc_string or "")  # type: ignore[union-attr]


def test_a_worker_lets_go_of_its_command_channel_at_once(app: Flask) -> None:
    """Every worker listens for RQ's commands on a pub/sub thread that waits up to 60 s per turn; ending the worker
    must not wait for that turn. redis-py 8.2.0 made the thread's stop wait for it, so each burst worker and every
    supervisor's stop took a minute when the thread had already read the unsubscribe (pyproject pins redis < 8.2)."""
    worker = build_worker(app)
    worker.subscribe()
    wait_for(lambda: worker.pubsub.subscribed, timeout=10, what="the worker's channel to be subscribed")
    worker.pubsub.unsubscribe()  # the listening thread reads the confirmation and waits to be subscribed again
    wait_for(lambda: not worker.pubsub.subscribed, timeout=10, what="the unsubscribe to be read")
    time.sleep(0.3)
    started = time.monotonic()
    worker.unsubscribe()
    assert time.monotonic() - started < 5


def test_a_stop_asked_while_the_worker_starts_is_a_warm_stop(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM after RQ registered the worker but before it installed its handlers (a supervisor that stops a
    worker it has just seen register) ends the worker's loop at once, not with the default kill."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    worker = build_worker(app)
    register = worker.register_birth

    def register_then_stop() -> None:
        register()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)  # the handler runs in the main thread at its next instruction; give it that

    monkeypatch.setattr(worker, "register_birth", register_then_stop)
    try:
        started = time.monotonic()
        assert worker.work() is False  # not burst: without the stop it would wait for jobs forever
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert _stop_was_asked(worker) and time.monotonic() - started < 10
