"""At most ``CRM_QB_BULK_JOBS_PER_HOST`` bulk jobs at once on one host (opt-in; 0, the default, is no limit),
so its other workers stay on live work.

A worker serving every queue (the default ``crm-qb worker``) takes a bulk job (a first sync, a backfill, the
backlog of drains a first sync leaves) only when no live job waits, and then holds it: a first sync of a large
company runs for minutes, pacing itself (``crm_qb.sync.pacing``) but keeping its worker. Two such workers on a host
could both sit in bulk jobs (the first sync and its own backlog), leaving the host's live drains to whatever
live-only worker there is: tenants' live edits then queued behind a first sync, which is what DESIGN §8 rules out.

So a bulk job needs one of the host's slots: a worker dequeues from the bulk queue only while a slot is free,
takes the slot atomically when it gets a bulk job (one that lost the race goes back to the front of its queue),
and meanwhile listens to the live queues only. A slot is a lease renewed while the job runs: a worker killed in
the middle of a bulk job frees it within ``LEASE_SECONDS``. Slots are per host because what a bulk job takes from
live work is the host's CPU; another host's workers take bulk jobs from their own slots. A Redis failure never
stops bulk work: the slot is then taken as granted, and the job meets Redis's failure itself.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from redis import Redis
from redis.exceptions import RedisError

from crm_qb.keys import RedisKeys

log = logging.getLogger(__name__)

LEASE_SECONDS = 30.0  # a slot whose holder stopped renewing it (a killed worker) is free after this long
RENEW_SECONDS = 10.0  # how often a running bulk job's worker renews its slot's lease
RECHECK_SECONDS = 2  # a worker listening to the live queues only looks again this often whether a slot is free

# Drop expired leases; grant (or renew) when the holder has a slot already or one is free.
_ACQUIRE = """
local now, lease, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[4]) or redis.call('ZCARD', KEYS[1]) < cap then
  redis.call('ZADD', KEYS[1], now + lease, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 1000))
  return 1
end
return 0
"""


@dataclass
class BulkSlots:
    """The bulk-job slots of one host: ``limit`` of them, shared by its workers through Redis."""

    redis: Redis
    keys: RedisKeys
    limit: int
    host: str = field(default_factory=socket.gethostname)
    lease: float = LEASE_SECONDS

    @property
    def key(self) -> str:
        return self.keys.bulk_slots(self.host)

    def full(self) -> bool:
        """Whether every slot is held (by a lease not yet ended); False when Redis fails."""
        try:
            return int(self.redis.zcount(self.key, time.time(), "+inf")) >= self.limit
        except RedisError:
            return False

    def acquire(self, holder: str) -> bool:
        """Take a slot for ``holder`` (True), or renew the one it holds; False when all are held by others."""
        try:
            granted = self.redis.eval(_ACQUIRE, 1, self.key, time.time(), self.lease, self.limit, holder)
        except RedisError as exc:
            log.warning("bulk slot of %s not taken (%s): running the bulk job anyway", holder, type(exc).__name__)
            return True
        return bool(granted)

    def release(self, holder: str) -> None:
        """Give ``holder``'s slot back (a failure leaves it to expire with its lease)."""
        try:
            self.redis.zrem(self.key, holder)
        except RedisError as exc:
            log.warning("bulk slot of %s not given back (%s): it frees when its lease ends", holder,
                        type(exc).__name__)

    @contextmanager
    def held(self, holder: str, renew_every: float = RENEW_SECONDS) -> Iterator[None]:
        """Keep ``holder``'s slot (already acquired) while the block runs, renewing its lease; release it after."""
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(renew_every):
                self.acquire(holder)

        renewer = threading.Thread(target=renew, name=f"bulk-slot {holder}", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            self.release(holder)
