"""The shared rate budget on real Redis: limits hold across threads and processes, and leases expire."""

from __future__ import annotations

import multiprocessing
import threading
import time
import uuid

import pytest
import responses
from redis import Redis

from crm_qb.qbo.client import QboClient
from crm_qb.qbo.ratebudget import RateBudget, RateBudgetTimeout, RealmThrottledError
from tests.conftest import REDIS_TEST_URL
from tests.support.clock import FakeTime

# Keys carry a per-run id so that two test runs sharing the Redis database cannot mix their counts.
RUN = uuid.uuid4().hex[:8]
REALM = f"realm-{RUN}"
GRANTS = f"probe:{RUN}:grants"
IN_FLIGHT = f"probe:{RUN}:in_flight"
PEAKS = f"probe:{RUN}:peaks"
# A short window keeps the test fast; the limits are the same code paths as Intuit's 500/60 s and 10.
LIMIT, WINDOW, CONCURRENT = 8, 0.5, 3


def make_budget(redis: Redis, clock: FakeTime, **kwargs: float) -> RateBudget:
    return RateBudget(redis, clock=clock, sleep=clock.sleep, **kwargs)  # type: ignore[arg-type]


def test_the_request_over_the_minute_limit_waits_for_the_oldest_to_age_out(redis_client: Redis) -> None:
    clock = FakeTime()
    budget = make_budget(redis_client, clock, per_minute=3)
    start = clock.now
    for _ in range(3):
        with budget.slot(REALM):
            clock.now += 1

    with budget.slot(REALM) as fourth:
        pass

    # The oldest was released at start + 1; it counts from then (QBO counted it somewhere in between).
    assert fourth.granted_at >= start + 61
    assert fourth.granted_at < start + 61.1


def test_the_window_rolls(redis_client: Redis) -> None:
    clock = FakeTime()
    budget = make_budget(redis_client, clock, per_minute=2)
    with budget.slot(REALM):
        pass
    clock.now += 30
    with budget.slot(REALM):
        pass

    with budget.slot(REALM) as third:
        pass

    assert third.granted_at >= 1_000_060
    assert third.granted_at < 1_000_061


def test_realms_have_separate_budgets(redis_client: Redis) -> None:
    clock = FakeTime()
    budget = make_budget(redis_client, clock, per_minute=1)
    with budget.slot("a"):
        pass

    with budget.slot("b") as other:
        pass

    assert other.granted_at == clock.now
    assert clock.slept == []


def test_concurrency_limit_blocks_until_a_slot_is_released(redis_client: Redis) -> None:
    clock = FakeTime()
    budget = make_budget(redis_client, clock, concurrent=2)
    first, second = budget.acquire(REALM), budget.acquire(REALM)

    with pytest.raises(RateBudgetTimeout):
        budget.acquire(REALM, timeout=1.0)
    budget.release(first)
    third = budget.acquire(REALM, timeout=1.0)

    assert budget.in_flight(REALM) == 2
    budget.release(second)
    budget.release(third)
    assert budget.in_flight(REALM) == 0


def test_a_lease_never_released_expires(redis_client: Redis) -> None:
    clock = FakeTime()
    budget = make_budget(redis_client, clock, concurrent=1, lease_seconds=150)
    budget.acquire(REALM)  # its holder "dies" without releasing

    late = budget.acquire(REALM)

    assert late.granted_at >= 1_000_150


def test_a_batch_costs_one_slot_per_item(redis_client: Redis) -> None:
    clock = FakeTime()
    budget = make_budget(redis_client, clock, per_minute=5)
    with budget.slot(REALM, cost=3):
        pass

    with budget.slot(REALM, cost=3) as second:
        pass

    assert second.granted_at >= 1_000_060
    with pytest.raises(ValueError, match="cost"):
        budget.acquire(REALM, cost=6)


def test_a_batch_larger_than_what_is_left_waits_whole(redis_client: Redis) -> None:
    clock = FakeTime()
    budget = make_budget(redis_client, clock, per_minute=10)
    start = clock.now
    for _ in range(7):  # 3 places left
        with budget.slot(REALM):
            clock.now += 1

    with budget.slot(REALM, cost=5, batch=True) as batch:
        pass

    # 5 items need the two oldest entries (released at start + 1 and + 2) to age out: nothing is sent early.
    assert batch.granted_at >= start + 62
    assert batch.granted_at < start + 62.1


def test_batch_requests_have_their_own_cap_per_minute(redis_client: Redis) -> None:
    clock = FakeTime()
    budget = make_budget(redis_client, clock, per_minute=500, batch_per_minute=2)
    start = clock.now
    for _ in range(2):
        with budget.slot(REALM, cost=1, batch=True):
            clock.now += 1
    with budget.slot(REALM) as plain:  # a plain request is not held by the batch cap
        pass

    with budget.slot(REALM, cost=1, batch=True) as third_batch:
        pass

    assert plain.granted_at == start + 2
    assert third_batch.granted_at >= start + 61  # the first batch (released at start + 1) aged out
    assert third_batch.granted_at < start + 61.1


def test_invalid_limits_are_refused(redis_client: Redis) -> None:
    with pytest.raises(ValueError, match="positive"):
        RateBudget(redis_client, per_minute=0)
    with pytest.raises(ValueError, match="batch_per_minute"):
        RateBudget(redis_client, batch_per_minute=0)


def shared_budget(redis: Redis) -> RateBudget:
    return RateBudget(redis, per_minute=LIMIT, concurrent=CONCURRENT, window=WINDOW, poll_interval=0.01)


def one_request(budget: RateBudget, redis: Redis, run: str) -> None:
    """Take a slot and record, in Redis, the grant time and how many requests were in flight."""
    with budget.slot(f"realm-{run}", timeout=30) as slot:
        redis.rpush(f"probe:{run}:grants", repr(slot.granted_at))
        redis.rpush(f"probe:{run}:peaks", redis.incr(f"probe:{run}:in_flight"))
        time.sleep(0.01)
        redis.decr(f"probe:{run}:in_flight")


def run_threads(threads: int, requests_each: int, run: str = RUN) -> None:
    """Make requests from ``threads`` threads; ``run`` carries the parent's key id into a spawned process."""
    redis = Redis.from_url(REDIS_TEST_URL)
    budget = shared_budget(redis)
    workers = [threading.Thread(target=lambda: [one_request(budget, redis, run) for _ in range(requests_each)])
               for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    redis.close()


def assert_limits_held(redis: Redis, expected: int) -> None:
    grants = sorted(float(g) for g in redis.lrange(GRANTS, 0, -1))
    peaks = [int(p) for p in redis.lrange(PEAKS, 0, -1)]
    assert len(grants) == expected  # every request was served
    busiest = max(sum(1 for g in grants[i:] if g < start + WINDOW) for i, start in enumerate(grants))
    assert busiest <= LIMIT
    # LIMIT per WINDOW forces the run to span at least this long, so the limit really was in force.
    assert grants[-1] - grants[0] >= (-(-expected // LIMIT) - 1) * WINDOW
    assert max(peaks) <= CONCURRENT
    assert abs(grants[0] - time.time()) < 60  # grants are on the real clock


def test_many_threads_never_exceed_the_limits(redis_client: Redis) -> None:
    run_threads(threads=12, requests_each=3)

    assert_limits_held(redis_client, expected=36)


def test_several_processes_never_exceed_the_limits(redis_client: Redis) -> None:
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=run_threads, args=(3, 3, RUN)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)

    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    assert_limits_held(redis_client, expected=36)


def hold_a_slot_forever(realm: str, ready: threading.Event) -> None:
    redis = Redis.from_url(REDIS_TEST_URL)
    RateBudget(redis, concurrent=1, lease_seconds=2.0).acquire(realm)
    ready.set()
    time.sleep(600)


def test_a_killed_process_gives_its_slot_back_when_the_lease_expires(redis_client: Redis) -> None:
    context = multiprocessing.get_context("spawn")
    ready = context.Event()
    holder = context.Process(target=hold_a_slot_forever, args=(REALM, ready))
    holder.start()
    assert ready.wait(30)
    holder.kill()  # SIGKILL: no finally, no release
    holder.join(10)
    budget = RateBudget(redis_client, concurrent=1, lease_seconds=2.0, poll_interval=0.02)
    assert budget.in_flight(REALM) == 1  # the dead process still holds its lease...

    with budget.slot(REALM, timeout=30):  # ...until it expires (2 s): the slot is granted, not refused at 30 s
        assert budget.in_flight(REALM) == 1  # the slot is ours now: the dead holder's lease is gone


def test_a_held_off_realm_grants_no_slot_and_a_deadline_learns_it_at_once(redis_client: Redis) -> None:
    clock = FakeTime()
    budget = RateBudget(redis_client, per_minute=LIMIT, concurrent=CONCURRENT, clock=clock, sleep=clock.sleep)
    budget.hold_off(REALM, 30)
    budget.hold_off(REALM, 5)  # never shortens a hold-off
    assert 29 < budget.held_off(REALM) <= 30

    with pytest.raises(RateBudgetTimeout) as caught:
        budget.acquire(REALM, timeout=2.0)
    assert clock.slept == []  # no waiting: the hold-off outlasts the deadline
    assert caught.value.retry_after is not None and 29 < caught.value.retry_after <= 30
    other = f"other-{RUN}"
    with budget.slot(other):  # only that realm is held off
        pass


def test_a_deferring_client_holds_the_realm_off_and_raises_instead_of_sleeping(redis_client: Redis) -> None:
    budget = RateBudget(redis_client, per_minute=LIMIT, concurrent=CONCURRENT)
    slept: list[float] = []
    realm = f"throttled-{RUN}"
    with responses.RequestsMock() as mocked:
        mocked.get(f"https://qbo.test/v3/company/{realm}/customer/2", status=429)
        client = QboClient("https://qbo.test", realm, lambda: "t", lambda _stale: "t", budget, sleep=slept.append,
                           defer_throttling=True, slot_timeout=2.0)
        with pytest.raises(RealmThrottledError) as caught:
            client.read("Customer", "2")
        assert caught.value.retry_after == 60 and slept == []
        assert 59 < budget.held_off(realm) <= 60
        with pytest.raises(RealmThrottledError):  # the next call is not even sent while the realm is held off
            client.read("Customer", "2")
        assert len(mocked.calls) == 1
