"""A per-company request budget shared by every process through Redis.

The same budget, with its own keys, paces each HubSpot portal (``crm_qb.crm.hubspot.limits``).

Intuit allows 500 requests per minute and 10 in flight per realm and app (docs/qbo/facts.md §4). Each request takes a
*slot*: one entry in a rolling-window sorted set (scored by grant, then release time) and one lease in an
in-flight sorted set (scored by lease expiry). QuickBooks meters every item of a batch request as a call and caps
the batch endpoint at 40 requests a minute on top (docs/qbo/facts.md §4), so a batch of N items takes N window
entries (its ``cost``, reserved before it is sent: a batch larger than what is left waits whole) and one entry in a
third sorted set, the batch window. All checks and the grant happen in one Lua script, so no two processes can take
the last slot. A lease expires on its own, so a process killed with -9 gives its slot back after
``lease_seconds`` instead of shrinking the budget forever. QuickBooks counts a request when it arrives, a little
after our grant, so releasing a slot restarts its window entry from the release: a slot is reused only a full
window after QuickBooks counted it, never a few milliseconds early (which QuickBooks would answer with a 429).

When QuickBooks throttles a realm anyway (a 429 asks for 60 s), ``hold_off`` marks the realm: no slot is granted
to any process until the mark expires. A caller with a ``timeout`` learns at once that no slot will come in time
(``RateBudgetTimeout``), so a drain gives its worker back and waits in RQ's delayed set instead of sleeping
(``RealmThrottledError``; docs/architecture.md §7).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from redis import Redis

from crm_qb.errors import TransientError
from crm_qb.keys import RedisKeys

log = logging.getLogger(__name__)

# KEYS: window zset, inflight zset, hold-off marker, batch window zset. ARGV: now, window, per_window, concurrent,
# lease id, lease expiry, cost, batches per window (0: not a batch request). Returns {1, 0} when granted,
# {-1, seconds} while the realm is held off, else {0, seconds until a slot may free up}.
_ACQUIRE = """
local held = redis.call('PTTL', KEYS[3])
if held > 0 then
  return {-1, tostring(held / 1000)}
end
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local per_window = tonumber(ARGV[3])
local concurrent = tonumber(ARGV[4])
local lease_id = ARGV[5]
local lease_expiry = tonumber(ARGV[6])
local cost = tonumber(ARGV[7])
local batches = tonumber(ARGV[8])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZCARD', KEYS[2]) >= concurrent then
  local soonest = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  return {0, tostring(tonumber(soonest[2]) - now)}
end
if batches > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now - window)
  local sent = redis.call('ZCARD', KEYS[4])
  if sent >= batches then
    local oldest = redis.call('ZRANGE', KEYS[4], sent - batches, sent - batches, 'WITHSCORES')
    return {0, tostring(tonumber(oldest[2]) + window - now)}
  end
end
local used = redis.call('ZCARD', KEYS[1])
if used + cost > per_window then
  local freeing = redis.call('ZRANGE', KEYS[1], used + cost - per_window - 1, used + cost - per_window - 1,
    'WITHSCORES')
  return {0, tostring(tonumber(freeing[2]) + window - now)}
end
for i = 1, cost do
  redis.call('ZADD', KEYS[1], now, lease_id .. ':' .. i)
end
redis.call('ZADD', KEYS[2], lease_expiry, lease_id)
local ttl = math.ceil(math.max(window, lease_expiry - now) * 1000) + 1000
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
if batches > 0 then
  redis.call('ZADD', KEYS[4], now, lease_id)
  redis.call('PEXPIRE', KEYS[4], ttl)
end
return {1, '0'}
"""


BATCH_PER_MINUTE = 40  # Intuit's cap on batch requests per realm and app (docs/qbo/facts.md §4)
WAIT_HOURS_KEPT = 49  # the health panel shows two days of rate-limit waits


class RateBudgetTimeout(TransientError):
    """No slot became free within the caller's timeout; the work was not done and should be retried."""


class RealmThrottledError(TransientError):
    """The realm is throttled or its budget is spent for now: the call was not made; come back after
    ``retry_after`` seconds (raised instead of waiting by clients that must not hold a worker: the drains)."""


@dataclass(frozen=True)
class Slot:
    """A granted slot: the realm, the lease id and the grant time on the budget's clock."""

    realm_id: str
    lease_id: str
    granted_at: float
    cost: int = 1
    batch: bool = False


class RateBudget:
    """At most ``per_minute`` requests (batch items counted one by one), ``batch_per_minute`` batch requests per
    rolling ``window`` seconds and ``concurrent`` in flight, per realm."""

    def __init__(
        self,
        redis: Redis,
        per_minute: int = 500,
        concurrent: int = 10,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        *,
        window: float = 60.0,
        lease_seconds: float = 150.0,
        poll_interval: float = 0.05,
        keys: RedisKeys | None = None,
        key: Callable[[str, str], str] | None = None,
        name: str = "QBO",
        batch_per_minute: int = BATCH_PER_MINUTE,
    ) -> None:
        if per_minute < 1 or concurrent < 1 or batch_per_minute < 1:
            raise ValueError(f"per_minute, concurrent and batch_per_minute must be positive, got {per_minute!r}, "
                             f"{concurrent!r}, {batch_per_minute!r}")
        if window <= 0 or lease_seconds <= 0 or poll_interval <= 0:
            raise ValueError("window, lease_seconds and poll_interval must be positive")
        self._redis = redis
        self.per_minute = per_minute
        self.concurrent = concurrent
        self.batch_per_minute = batch_per_minute
        self._clock = clock
        self._sleep = sleep
        self._window = window
        self._lease_seconds = lease_seconds  # longer than any request may run (Intuit times out at 120 s)
        self._poll = poll_interval
        # ``key`` names the sorted sets of another service's budget (HubSpot's portals: RedisKeys.hubspot_budget).
        self._key_of = key or (keys or RedisKeys()).rate_budget
        self._name = name
        self._acquire_script = redis.register_script(_ACQUIRE)

    @contextmanager
    def slot(self, realm_id: str, timeout: float | None = None, cost: int = 1, batch: bool = False) -> Iterator[Slot]:
        """Block until a slot for ``realm_id`` is free (``cost`` counts batch items), hold it, release it."""
        granted = self.acquire(realm_id, timeout=timeout, cost=cost, batch=batch)
        try:
            yield granted
        finally:
            self.release(granted)

    def acquire(self, realm_id: str, timeout: float | None = None, cost: int = 1, batch: bool = False) -> Slot:
        """Wait for and take a slot of ``cost`` window entries (and a batch-window entry when ``batch``: a batch
        request); raise RateBudgetTimeout when ``timeout`` seconds pass first."""
        if not 1 <= cost <= self.per_minute:
            raise ValueError(f"cost must be between 1 and {self.per_minute}, got {cost!r}")
        deadline = None if timeout is None else self._clock() + timeout
        lease_id = uuid.uuid4().hex
        started = self._clock()
        while True:
            now = self._clock()
            wait, held = self._try_acquire(realm_id, lease_id, now, cost, batch)
            if wait is None:
                if now > started:
                    self._record_wait(realm_id, now - started, now)
                return Slot(realm_id=realm_id, lease_id=lease_id, granted_at=now, cost=cost, batch=batch)
            if deadline is not None and (now >= deadline or (held and now + wait > deadline)):
                log.warning("%s rate budget: no slot within %s s account=%s", self._name, timeout, realm_id)
                raise RateBudgetTimeout(f"no {self._name} request slot free for {realm_id} within {timeout} s",
                                        retry_after=wait)
            self._sleep(self._pause(wait, now, deadline))

    def release(self, slot: Slot) -> None:
        """Give the in-flight lease back; the window entries stay, counted from now, until they age out."""
        now = self._clock()
        entries = {f"{slot.lease_id}:{i}": now for i in range(1, slot.cost + 1)}
        with self._redis.pipeline(transaction=True) as pipe:  # the lease goes only with the entries moved
            pipe.zadd(self._key(slot.realm_id, "window"), entries, xx=True)  # xx: never re-add an aged-out one
            if slot.batch:
                pipe.zadd(self._key(slot.realm_id, "batches"), {slot.lease_id: now}, xx=True)
            pipe.zrem(self._key(slot.realm_id, "inflight"), slot.lease_id)
            pipe.execute()

    def hold_off(self, realm_id: str, seconds: float) -> None:
        """Grant no slot of ``realm_id`` to anyone for ``seconds`` (QuickBooks throttled it); never shortens one."""
        key, millis = self._key(realm_id, "holdoff"), max(1, int(seconds * 1000))
        if int(self._redis.pttl(key)) < millis:
            self._redis.set(key, "1", px=millis)
        log.warning("QBO throttled realm=%s: no requests for %.0f s", realm_id, seconds)

    def held_off(self, realm_id: str) -> float:
        """Seconds left of the realm's hold-off (0 when none)."""
        return max(0.0, int(self._redis.pttl(self._key(realm_id, "holdoff"))) / 1000)

    def in_flight(self, realm_id: str) -> int:
        """How many unexpired leases the realm holds now."""
        key = self._key(realm_id, "inflight")
        return int(self._redis.zcount(key, f"({self._clock()}", "+inf"))

    def _try_acquire(self, realm_id: str, lease_id: str, now: float, cost: int,
                     batch: bool) -> tuple[float | None, bool]:
        """(None, False) when granted, else the seconds until a slot may free up and whether the realm is held off."""
        keys = [self._key(realm_id, "window"), self._key(realm_id, "inflight"), self._key(realm_id, "holdoff"),
                self._key(realm_id, "batches")]
        args: list[str | float | int] = [repr(now), self._window, self.per_minute, self.concurrent, lease_id,
                                         repr(now + self._lease_seconds), cost,
                                         self.batch_per_minute if batch else 0]
        granted, wait = self._acquire_script(keys=keys, args=args)
        if int(granted) == 1:
            return None, False
        return max(0.0, float(wait)), int(granted) == -1

    def _pause(self, wait: float, now: float, deadline: float | None) -> float:
        """Poll soon (a released lease frees a slot at any moment) but never past the deadline."""
        # The small random part spreads waiting processes so they do not all retry at the same instant.
        pause = min(max(wait, 0.001), self._poll) * (0.5 + random.random() / 2)
        if deadline is not None:
            pause = min(pause, max(deadline - now, 0.001))
        return pause

    def waited(self, realm_id: str, hours: int = 48) -> list[float]:
        """Seconds spent waiting for a slot in each of the last ``hours`` hours, oldest first (the health panel)."""
        now_hour = int(self._clock() // 3600)
        keys = [self._key(realm_id, f"waited:{hour}") for hour in range(now_hour - hours + 1, now_hour + 1)]
        return [float(value or 0) for value in self._redis.mget(keys)]

    def _record_wait(self, realm_id: str, seconds: float, now: float) -> None:
        """Add ``seconds`` of waiting to the realm's counter of this hour (kept WAIT_HOURS_KEPT hours)."""
        key = self._key(realm_id, f"waited:{int(now // 3600)}")
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.incrbyfloat(key, round(seconds, 3))
            pipe.expire(key, WAIT_HOURS_KEPT * 3600)
            pipe.execute()

    def _key(self, realm_id: str, part: str) -> str:
        return self._key_of(realm_id, part)
