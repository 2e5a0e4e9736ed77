"""A host's workers run at most CRM_QB_BULK_JOBS_PER_HOST bulk jobs at once; the others stay on live work
(workers.bulkslots, issue 16: live edits are not queued behind a first sync). Real Redis, real RQ workers."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from flask import Flask
from redis import Redis

from crm_qb.config import Settings
from crm_qb.keys import RedisKeys
from crm_qb.runtime import runtime
from tests.conftest import make_settings
from workers.bulkslots import BulkSlots, NoSlot
from workers.queues import BACKFILL, INBOUND, QUEUE_NAMES, enqueue, job, queue
from workers.worker import build_worker

# What the queues hold is all the dequeue looks at; the database does not matter here.
pytestmark = pytest.mark.postgresql_slow


KEYS = RedisKeys("crm_qb_test")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The test app's settings with one bulk slot per host (the default is no limit)."""
    return make_settings(tmp_path, database_url, bulk_jobs_per_host="1")


@job(BACKFILL, timeout=60)
def bulk_job(key: str) -> None:
    """A bulk test job: records how many of this host's bulk slots are held while it runs."""
    rt = runtime()
    slots = BulkSlots(rt.redis, rt.keys, rt.settings.bulk_jobs_per_host)
    rt.redis.rpush(key, int(rt.redis.exists(*slots.slot_keys())))


@job(INBOUND, timeout=60)
def live_job(key: str) -> None:
    """A live test job: records that it ran."""
    runtime().redis.rpush(key, "live")


def _queued(app: Flask, redis: Redis, func: object, name: str) -> str:
    with app.app_context():
        made = enqueue(redis, runtime(app).keys, func, "ran", job_id=name)
    assert made is not None
    return str(made.id)


def test_a_worker_leaves_bulk_jobs_to_the_slot_holder_and_takes_live_ones(app: Flask, redis_client: Redis) -> None:
    first, second = build_worker(app, "w-first"), build_worker(app, "w-second")
    assert first.bulk_slots is not None and first.bulk_slots.limit == 1
    one, two = _queued(app, redis_client, bulk_job, "bulk-1"), _queued(app, redis_client, bulk_job, "bulk-2")

    got = first.dequeue_job_and_maintain_ttl(1)
    assert got is not None and got[0].id == one
    assert first.bulk_slots.full()

    live = _queued(app, redis_client, live_job, "live-1")
    got = second.dequeue_job_and_maintain_ttl(1)
    assert got is not None and got[0].id == live

    started = time.monotonic()
    assert second.dequeue_job_and_maintain_ttl(1, max_idle_time=2) is None  # the other bulk job is left waiting
    assert time.monotonic() - started >= 2
    bulk_queue = queue(redis_client, BACKFILL, runtime(app).keys)
    assert bulk_queue.job_ids == [two]
    assert [q.name for q in second._ordered_queues] == [runtime(app).keys.queue(n) for n in QUEUE_NAMES]

    assert first.bulk_slot is not None
    first.bulk_slot.release()
    got = second.dequeue_job_and_maintain_ttl(1, max_idle_time=5)
    assert got is not None and got[0].id == two
    assert second.bulk_slot is not None
    second.bulk_slot.release()


def test_a_bulk_job_dequeued_after_the_last_slot_went_goes_back_to_the_front(app: Flask, redis_client: Redis,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    worker = build_worker(app, "w-late")
    assert worker.bulk_slots is not None
    one, two = _queued(app, redis_client, bulk_job, "bulk-a"), _queued(app, redis_client, bulk_job, "bulk-b")
    other = worker.bulk_slots.acquire()
    assert other is not None
    real_full, looks = worker.bulk_slots.full, []

    def full() -> bool:  # the slot looks free once, but another worker takes it before this one dequeues: the race
        looks.append(1)
        return False if len(looks) == 1 else real_full()

    monkeypatch.setattr(worker.bulk_slots, "full", full)

    assert worker.dequeue_job_and_maintain_ttl(1, max_idle_time=2) is None
    assert queue(redis_client, BACKFILL, runtime(app).keys).job_ids == [one, two]
    other.release()


def test_a_bulk_job_holds_its_slot_while_it_runs_and_gives_it_back(app: Flask, redis_client: Redis) -> None:
    _queued(app, redis_client, bulk_job, "bulk-run")
    worker = build_worker(app, "w-run")
    worker.work(burst=True)
    assert redis_client.lrange("ran", 0, -1) == [b"1"]
    assert worker.bulk_slots is not None and not worker.bulk_slots.full()


def test_a_slot_whose_holder_stopped_renewing_frees_when_its_lease_ends(redis_client: Redis) -> None:
    slots = BulkSlots(redis_client, KEYS, 1, host="h", lease=0.5)
    redis_client.set(slots.slot_keys()[0], "killed-worker", px=500)  # its holder stopped renewing it
    assert slots.full() and slots.acquire() is None
    time.sleep(0.6)
    assert not slots.full()
    taken = slots.acquire()
    assert taken is not None
    taken.release()


def test_a_held_slot_is_renewed_past_its_lease_and_released_after(redis_client: Redis) -> None:
    slots = BulkSlots(redis_client, KEYS, 1, host="h", lease=0.5)
    held = slots.acquire()  # renewed every third of its lease
    assert held is not None
    time.sleep(1.2)
    assert slots.full() and slots.acquire() is None
    held.release()
    assert not slots.full()


def test_two_slots_admit_two_holders(redis_client: Redis) -> None:
    slots = BulkSlots(redis_client, KEYS, 2, host="h")
    a = slots.acquire()
    assert a is not None and not slots.full()
    b = slots.acquire()
    assert b is not None and slots.full()
    assert slots.acquire() is None
    a.release()
    b.release()


def test_no_limit_or_no_bulk_queue_means_no_slots(tmp_path: Path, redis_client: Redis) -> None:
    from crm_qb.app import create_app

    unlimited = create_app(make_settings(tmp_path, f"sqlite:///{tmp_path / 'a.sqlite3'}"))  # the default
    assert build_worker(unlimited).bulk_slots is None
    limited = create_app(make_settings(tmp_path, f"sqlite:///{tmp_path / 'b.sqlite3'}", bulk_jobs_per_host="1"))
    assert build_worker(limited, queues=(INBOUND,)).bulk_slots is None
    assert build_worker(limited).bulk_slots is not None


def test_a_redis_failure_never_stops_bulk_work() -> None:
    broken = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    slots = BulkSlots(broken, KEYS, 1, host="h")
    assert not slots.full()
    granted = slots.acquire()
    assert isinstance(granted, NoSlot)
    granted.release()
