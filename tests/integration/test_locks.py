"""The renewing Redis lock: renewed while held, and a holder that lost it (expired, taken over) is told so."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest
import redis.lock
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from crm_qb.locks import POLL_SECONDS, RenewingLock, RenewingLocks


class Busy(Exception):
    pass


def test_a_held_lock_outlives_its_ttl_while_renewed(redis_client: Redis) -> None:
    lock = RenewingLock(redis_client, "test:lock:renewed", ttl=0.3, wait=0)
    assert lock.acquire()
    try:
        time.sleep(0.8)  # more than two ttls
        assert not lock.lost
        lock.ensure_held(Busy)
        assert redis_client.exists("test:lock:renewed")
        assert not RenewingLock(redis_client, "test:lock:renewed", ttl=0.3, wait=0).acquire()
    finally:
        lock.release()
    assert not redis_client.exists("test:lock:renewed")


def test_a_lock_taken_over_is_reported_lost_and_the_new_holder_keeps_it(redis_client: Redis) -> None:
    lock = RenewingLock(redis_client, "test:lock:taken", ttl=0.3, wait=0)
    assert lock.acquire()
    redis_client.set("test:lock:taken", "another-worker", px=5000)  # as if it expired and another worker took it
    deadline = time.monotonic() + 2
    while not lock.lost and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lock.lost
    with pytest.raises(Busy):
        lock.ensure_held(Busy)
    lock.release()  # logged, not raised; and the other holder's lock is left alone
    assert redis_client.get("test:lock:taken") == b"another-worker"
    redis_client.delete("test:lock:taken")


def test_renewals_failing_for_a_whole_ttl_count_as_lost(redis_client: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = RenewingLock(redis_client, "test:lock:unreachable", ttl=0.3, wait=0)
    assert lock.acquire()
    try:
        def unreachable() -> bool:
            raise RedisConnectionError("Redis went away")

        monkeypatch.setattr(lock._lock, "reacquire", unreachable)
        time.sleep(0.15)
        assert not lock.lost  # one failed renewal: the ttl still runs
        deadline = time.monotonic() + 2
        while not lock.lost and time.monotonic() < deadline:
            time.sleep(0.02)
        assert lock.lost
    finally:
        monkeypatch.undo()
        lock.release()


def test_a_waiter_asks_again_every_poll_and_gets_the_lock_once_released(redis_client: Redis,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A drain waiting for another drain of its connection (an echo, most often) starts within a poll of the
    release: the waiter sleeps POLL_SECONDS between its tries, not redis-py's default 0.1 s."""
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(redis.lock, "mod_time", SimpleNamespace(monotonic=time.monotonic, sleep=nap))
    holder = RenewingLock(redis_client, "test:lock:waited", ttl=5, wait=0)
    assert holder.acquire()
    got: list[bool] = []
    waiter = RenewingLock(redis_client, "test:lock:waited", ttl=5, wait=5)
    thread = threading.Thread(target=lambda: got.append(waiter.acquire()))
    thread.start()
    time.sleep(0.1)
    holder.release()
    thread.join(5)
    try:
        assert got == [True]
        assert naps and set(naps) == {POLL_SECONDS}
        assert POLL_SECONDS <= 0.01
    finally:
        waiter.release()


def test_a_waiter_gives_up_at_once_on_a_long_holder_and_waits_for_a_fresh_one(redis_client: Redis) -> None:
    """``long_holder``: the holder's token says when it took the lock; one that has held it that long already
    (a first sync, a call to a slow company) is not waited for, one that took it moments ago is."""
    name = "test:lock:long-holder"
    redis_client.delete(name)
    holder = RenewingLock(redis_client, name, ttl=5, wait=0)
    assert holder.acquire()
    try:
        assert redis_client.get(name).decode().count("@") == 1  # the token carries the moment it was taken
        time.sleep(0.4)
        started = time.monotonic()
        assert not RenewingLock(redis_client, name, wait=3, long_holder=0.3).acquire()
        assert time.monotonic() - started < 0.2  # gave up at once, not after its 3 s wait
    finally:
        holder.release()

    assert holder.acquire()  # a fresh holder, released within the waiter's wait: waited for, and taken
    threading.Timer(0.3, holder.release).start()
    waiter = RenewingLock(redis_client, name, wait=3, long_holder=2.0)
    started = time.monotonic()
    assert waiter.acquire()
    assert 0.2 < time.monotonic() - started < 2.0
    waiter.release()

    assert holder.acquire()  # fresh when the waiter came, long before its wait ends: waited for until it is long
    try:
        started = time.monotonic()
        assert not RenewingLock(redis_client, name, wait=3, long_holder=0.5).acquire()
        assert 0.4 < time.monotonic() - started < 0.9  # the holder's 0.5 s, not the waiter's 3 s
    finally:
        holder.release()

    redis_client.set(name, "a-token-without-a-time", px=400)  # a holder whose start is unknown: waited for
    unknown = RenewingLock(redis_client, name, wait=3, long_holder=0.1)
    assert unknown.acquire()
    unknown.release()


def test_locks_taken_together_leave_out_those_held_and_are_renewed_while_held(redis_client: Redis) -> None:
    names = [f"test:locks:row:{n}" for n in range(4)]
    single = RenewingLock(redis_client, names[1], ttl=0.3, wait=0)
    assert single.acquire()
    group = RenewingLocks(redis_client, names, ttl=0.3)
    try:
        assert group.acquire() == [names[0], names[2], names[3]]  # the single holder's row is left out
        time.sleep(0.8)  # more than two ttls: the group's one keeper renews every lock it took
        assert all(redis_client.exists(name) for name in names)
        assert not RenewingLock(redis_client, names[2], ttl=0.3, wait=0).acquire()
        assert RenewingLocks(redis_client, names, ttl=0.3).acquire() == []
    finally:
        group.release()
        single.release()
    assert not any(redis_client.exists(name) for name in names)
    assert RenewingLock(redis_client, names[2], ttl=0.3, wait=0).acquire()  # free again for a single holder
    redis_client.delete(names[2])


def test_a_lock_of_a_group_taken_over_is_left_to_its_new_holder(redis_client: Redis) -> None:
    names = ["test:locks:over:1", "test:locks:over:2"]
    group = RenewingLocks(redis_client, names, ttl=0.3)
    assert group.acquire() == names
    redis_client.set(names[0], "another-worker", px=5000)  # as if it expired and another worker took it
    time.sleep(0.5)  # a renewal finds it lost and stops renewing it; the other is still renewed
    assert redis_client.exists(names[1])
    group.release()  # logged, not raised; the other holder's lock is left alone
    assert redis_client.get(names[0]) == b"another-worker" and not redis_client.exists(names[1])
    redis_client.delete(names[0])
