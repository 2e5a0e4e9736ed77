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
from dataclasses import dataclass, field

from redis import Redis
from redis.exceptions import RedisError

from crm_qb.keys import RedisKeys
from crm_qb.locks import RenewingLock

log = logging.getLogger(__name__)

LEASE_SECONDS = 30.0  # a slot whose holder stopped renewing it (a killed worker) is free after this long
RECHECK_SECONDS = 2  # a worker listening to the live queues only looks again this often whether a slot is free


class NoSlot:
    """What a worker holds when Redis failed as it asked for a slot: the bulk job runs, nothing is given back."""

    def release(self) -> None:
        """Nothing was taken."""


@dataclass
class BulkSlots:
    """The bulk-job slots of one host: ``limit`` of them, each a ``RenewingLock`` (crm_qb.locks) in Redis, shared by
    the host's workers. The lock's renewal (every third of ``lease``) is the lease a killed worker stops renewing."""

    redis: Redis
    keys: RedisKeys
    limit: int
    host: str = field(default_factory=socket.gethostname)
    lease: float = LEASE_SECONDS

    def slot_keys(self) -> list[str]:
        return [f"{self.keys.bulk_slots(self.host)}:{n}" for n in range(self.limit)]

    def full(self) -> bool:
        """Whether every slot is held (by a lock not yet expired); False when Redis fails."""
        try:
            return int(self.redis.exists(*self.slot_keys())) >= self.limit
        except RedisError:
            return False

    def acquire(self) -> RenewingLock | NoSlot | None:
        """A free slot, taken and renewed until released; None when all are held by others."""
        try:
            for key in self.slot_keys():
                slot = RenewingLock(self.redis, key, ttl=self.lease, wait=0)
                if slot.acquire():
                    return slot
        except RedisError as exc:
            log.warning("no bulk slot taken (%s): running the bulk job anyway", type(exc).__name__)
            return NoSlot()
        return None
