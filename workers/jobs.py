"""The inbound jobs: drain a realm's (or connection's) pending events, and sweep up stranded ones.

Thin wrappers: each takes ids, builds the services it needs once, and hands over to the pipeline
(``crm_qb.sync.pipeline``), where the event state machine and the drain live. A wake is a Redis ``SET NX``
whose value becomes part of the job id; the drain clears it before it reads the pending events, so an event
arriving while a drain runs always wakes another one and is never left behind. Jobs run in the app context that
the worker pushes (see ``workers.worker``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import timedelta

from redis import Redis
from rq import get_current_job
from rq.job import JobStatus

from crm_qb.db import utcnow
from crm_qb.keys import JobIds, RedisKeys
from crm_qb.models import EventSource
from crm_qb.qbo.faults import THROTTLE_WAIT_SECONDS
from crm_qb.qbo.ratebudget import RealmThrottledError
from crm_qb.runtime import Runtime, runtime
from crm_qb.sync.firstsync.service import held as first_sync_held
from crm_qb.sync.pipeline import events, slowlane
from crm_qb.sync.pipeline.drain import Drain
from crm_qb.sync.services import ConnectionBusyError
from workers.queues import (
    BACKFILL,
    INBOUND,
    SCHEDULED,
    bulk_services,
    enqueue,
    enqueue_in,
    fetch_job,
    job,
    running_bulk,
)

log = logging.getLogger(__name__)

SWEEP_BATCH = 5000
WAKE_TTL_SECONDS = 600
# A drain job's turn: this many batches (pipeline/drain.py's DRAIN_BATCH each) per connection, then the next turn
# queues behind the other tenants' drains.
TURN_BATCHES = 1
# How long a drain whose connection is held by a long sync (a first sync, a backfill) waits in RQ's delayed set.
BUSY_WAIT_SECONDS = 5.0
TURN_MARGIN_SECONDS = 1.0  # a drain waiting for its connection's next turn (outage) comes back this much after it
# The value of a parked wake (``park``): the connection's CRM events wait for its first sync, whose end wakes them.
PARKED = "parked"
# Deletes a parked wake, and only a parked one (a drain's token stays).
_UNPARK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def wake(redis: Redis, keys: RedisKeys, source: EventSource, key: str, *, bulk: bool = False,
         now: bool = False) -> str | None:
    """Make sure a drain job will run for ``key`` (a realm id or a connection id); return its job id if new.

    ``bulk``: the drain is bulk work (the backlog a first sync left, e.g. the echoes of the contacts it created,
    or the changes of a company that answers slowly) and goes to the ``backfill`` queue, which live-only workers
    never serve and a worker started with ``--nice`` runs at a lower CPU priority; its further turns stay there
    (``_deferring``), and until the backlog is settled, a drain of ``key`` woken as live work (a late echo hook,
    the CRM poll) hands over to it (``keys.bulk_backlog``) instead of taking a batch of the backlog on a live
    worker.

    ``now``: when the drain holding the wake waits in RQ's delayed set (for an outage's next turn, a busy lock),
    a drain is queued now all the same (the end of an outage releases its events at once); the delayed one later
    finds nothing left."""
    token = uuid.uuid4().hex[:16]
    if bulk:  # a first sync's end (or a bulk drain's next turn): its connection's wake may be parked
        redis.eval(_UNPARK, 1, keys.wake(source.value, key), PARKED)
        redis.set(keys.bulk_backlog(source.value, key), 1, ex=WAKE_TTL_SECONDS)
    # The command itself, not ``redis.set(..., nx=True, ex=...)``: the same SET, without the client's argument
    # handling, which cost 20 to 40 µs of CPU more a call (every webhook group pays it; docs/benchmarks-history.md).
    if not redis.execute_command(  # type: ignore[no-untyped-call]
            "SET", keys.wake(source.value, key), token, "NX", "EX", WAKE_TTL_SECONDS):
        if not (now and _waits_delayed(redis, keys, source, key)):
            return None  # a drain job is queued and has not started yet: it will see the new events
        redis.set(keys.wake(source.value, key), token, ex=WAKE_TTL_SECONDS)
    job_id = JobIds.drain(source.value, key, token)
    enqueue(redis, keys, _DRAINS[source], key, job_id=job_id, on=BACKFILL if bulk else None)
    return job_id


def _waits_delayed(redis: Redis, keys: RedisKeys, source: EventSource, key: str) -> bool:
    """Whether the drain holding ``key``'s wake waits in RQ's delayed set (``defer``)."""
    held = redis.get(keys.wake(source.value, key))
    token = held.decode() if isinstance(held, bytes) else held
    if token is None or token == PARKED:
        return False
    job = fetch_job(redis, JobIds.drain(source.value, key, token))
    return job is not None and job.get_status() == JobStatus.SCHEDULED


def defer(redis: Redis, keys: RedisKeys, source: EventSource, key: str, seconds: float,
          reason: str = "QuickBooks throttled its company", *, bulk: bool = False) -> str | None:
    """Wake a drain for ``key`` in ``seconds`` from RQ's delayed set (its company is throttled, or its
    connection's lock is held by a long sync); its job id if new.

    The delayed drain holds the wake meanwhile, so the events that arrive while it waits add no jobs: the
    delayed drain will see them. When another drain is already queued, that one meets the same wait and defers
    itself, so nothing more is needed.
    """
    token = uuid.uuid4().hex[:16]
    if not redis.set(keys.wake(source.value, key), token, nx=True, ex=int(seconds) + WAKE_TTL_SECONDS):
        return None
    job_id = JobIds.drain(source.value, key, token)
    enqueue_in(redis, keys, seconds, _DRAINS[source], key, job_id=job_id, on=BACKFILL if bulk else None)
    log.info("drain of %s %s deferred %.0f s (%s)", source.value, key, seconds, reason)
    return job_id


@job(INBOUND, timeout=600, retry_intervals=(5, 30, 120))
def drain_qbo_realm(realm_id: str) -> int:
    """Sync every pending QBO event of ``realm_id`` (coalesced per customer); return how many were settled."""
    return _deferring(EventSource.QBO, realm_id, lambda drain: drain.qbo_realm(realm_id))


@job(INBOUND, timeout=600, retry_intervals=(5, 30, 120))
def drain_crm_connection(connection_id: str) -> int:
    """Sync every pending CRM event of one connection (coalesced per contact); return how many were settled."""
    return _deferring(EventSource.CRM, connection_id, lambda drain: drain.crm_connection(int(connection_id)))


def _deferring(source: EventSource, key: str, run: Callable[[Drain], int]) -> int:
    """Run a drain for one turn; when its company is throttled or its connection is held by a long sync, give
    the worker back and come back later (``defer``); when its turn ran out, queue the next turn behind the
    drains already waiting (``wake``), so a tenant's flood of events does not hold back the others'. A bulk drain
    (one running from the ``backfill`` queue) comes back there, and so does a live one whose key is a first
    sync's backlog or a company that answers slowly (``slowlane``)."""
    rt = runtime()
    bulk = running_bulk(rt.keys)
    if not bulk and rt.redis.exists(rt.keys.bulk_backlog(source.value, key), rt.keys.slow_lane(source.value, key)):
        # A first sync's backlog is still being settled as bulk work, or the key's company answers slowly
        # (pipeline/slowlane.py): this live wake (a hook, the CRM poll) would take a batch of it on a live worker.
        # Its events are settled by the bulk drains instead, in their order (what arrived now is behind the
        # backlog either way).
        rt.redis.delete(rt.keys.wake(source.value, key))
        wake(rt.redis, rt.keys, source, key, bulk=True)
        return 0
    drain = _drain(source, key, bulk)
    try:
        settled = run(drain)
    except RealmThrottledError as exc:
        defer(rt.redis, rt.keys, source, key, exc.retry_after or THROTTLE_WAIT_SECONDS, bulk=bulk)
        return 0
    except ConnectionBusyError:
        defer(rt.redis, rt.keys, source, key, BUSY_WAIT_SECONDS, "its connection is being synced by another job",
              bulk=bulk)
        return 0
    finally:  # however it ended: a company that answered slowly moves to the bulk lane, a quick one leaves it
        slowlane.record(rt.redis, rt.keys, drain.observed, in_lane=bulk)
    if drain.unfinished:
        wake(rt.redis, rt.keys, source, key, bulk=bulk)
    elif drain.turn_waits:  # back just after the next turn begins (its events are due by then)
        defer(rt.redis, rt.keys, source, key, min(drain.turn_waits) + TURN_MARGIN_SECONDS,
              "a side of its connection is down: its next turn", bulk=bulk)
    elif source == EventSource.CRM and int(key) in drain.held:
        park(rt, key)
    elif bulk:  # the backlog is settled: the key's next wake is live work again
        rt.redis.delete(rt.keys.bulk_backlog(source.value, key))
    return settled


def park(rt: Runtime, connection_id: str) -> None:
    """Park the wake of a connection whose CRM events wait for its first sync: hooks then wake no drain (each
    would only find them waiting) until the run's end wakes one (``wake(bulk=True)`` unparks). A first sync
    creating 1,000 contacts gets 1,000 hooks back while it runs: without this, 1,000 drain jobs on live workers.

    The wake expires like any (``WAKE_TTL_SECONDS``), and the sweep still wakes drains for stranded events. If the
    run ended while this drain looked, its end's wake may have been overwritten here: checked again, and woken."""
    name = rt.keys.wake(EventSource.CRM.value, connection_id)
    rt.redis.set(name, PARKED, ex=WAKE_TTL_SECONDS)
    if not first_sync_held(int(connection_id)):
        wake(rt.redis, rt.keys, EventSource.CRM, connection_id, bulk=True)


_DRAINS: dict[EventSource, Callable[[str], int]] = {
    EventSource.QBO: drain_qbo_realm,
    EventSource.CRM: drain_crm_connection,
}


def _drain(source: EventSource, key: str, bulk: bool = False) -> Drain:
    """Clear the wake of ``key`` (new events now wake another drain) and set up this drain's run (a bulk drain's
    units give way to live work under way, crm_qb.sync.pacing)."""
    rt = runtime()
    rt.redis.delete(rt.keys.wake(source.value, key))
    current = get_current_job()
    services = bulk_services(rt) if bulk else rt.sync_services()
    return Drain(services, current.id if current else None, turn=TURN_BATCHES, live=not bulk)


def drain_all_pending(rt: Runtime) -> int:
    """Queue a drain for every due pending event at once, whatever wake keys say (after Redis came back empty)."""
    period = int(utcnow().timestamp() // 60)
    return sum(1 for source, key in events.stranded(utcnow(), SWEEP_BATCH)
               if enqueue(rt.redis, rt.keys, _DRAINS[source], key,
                          job_id=JobIds.sweep_drain(source.value, key, period)))


@job(SCHEDULED, timeout=300)
def sweep_inbound_events() -> int:
    """Enqueue drains for events stored but not processed within the sweep delay; return how many drains."""
    rt = runtime()
    stranded = events.stranded(utcnow() - timedelta(seconds=rt.settings.sweep_after_seconds), SWEEP_BATCH)
    period = int(utcnow().timestamp() // 60)
    count = sum(1 for source, key in stranded
                if enqueue(rt.redis, rt.keys, _DRAINS[source], key, job_id=JobIds.sweep_drain(source.value, key,
                                                                                                period)))
    if count:
        log.warning("sweep enqueued %s drain job(s) for stranded inbound events", count)
    return count
