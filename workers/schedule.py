"""The scheduler: enqueues periodic jobs, moves delayed RQ jobs (retries with backoff) back onto their queues, and
runs the drain watchdog (``workers.watchdog``: a drain lost with a killed worker is woken again within seconds).

Several schedulers may run at once (for availability): a Redis ``SET NX EX`` per job and period decides which
one enqueues, and the job id carries the period, so a tick is never enqueued twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask
from redis.exceptions import RedisError
from rq.scheduler import RQScheduler

from crm_qb.keys import JobIds
from crm_qb.runtime import runtime
from workers import followup_jobs, jobs, maintenance, qbo_jobs, sync_jobs
from workers.queues import all_queues, enqueue
from workers.watchdog import CHECK_EVERY_SECONDS, Watchdog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Periodic:
    """A job function run every ``every`` seconds."""

    name: str
    func: Callable[..., Any]
    every: int


PERIODIC = (
    Periodic("sweep-inbound", jobs.sweep_inbound_events, 60),
    # Polls run per connection at its own sync.cdc_poll_seconds (default 300); this tick only finds the due ones.
    Periodic("cdc-poll", sync_jobs.schedule_cdc_polls, 60),
    Periodic("followup-scans", followup_jobs.enqueue_followup_scans, followup_jobs.SCAN_EVERY_SECONDS),
    Periodic("qbo-refresh-idle-tokens", qbo_jobs.refresh_idle_tokens, qbo_jobs.REFRESH_EVERY_SECONDS),
    Periodic("prune-inbound-payloads", maintenance.prune_inbound_payloads, maintenance.PRUNE_EVERY_SECONDS),
)


def tick(app: Flask, now: float, periodic: tuple[Periodic, ...] = PERIODIC) -> list[str]:
    """Enqueue every periodic job that is due at ``now``; return the job ids enqueued."""
    rt = runtime(app)
    enqueued = []
    for item in periodic:
        period = int(now // item.every)
        if rt.redis.set(rt.keys.schedule_tick(item.name, period), "1", nx=True, ex=item.every * 2):
            job_id = JobIds.periodic(item.name, period)
            with app.app_context():
                if enqueue(rt.redis, rt.keys, item.func, job_id=job_id):
                    enqueued.append(job_id)
    return enqueued


def run_scheduler(app: Flask, stop: threading.Event, interval: float = 1.0) -> None:
    """Tick every ``interval`` seconds until ``stop`` is set; Redis outages are logged and waited out."""
    log.info("scheduler started: %s", ", ".join(f"{p.name} every {p.every}s" for p in PERIODIC))
    rt = runtime(app)
    delayed = RQScheduler([q.name for q in all_queues(rt.redis, rt.keys)], connection=rt.redis)
    watchdog, watched_at = Watchdog(rt.redis, rt.keys), 0.0
    while not stop.is_set():
        try:
            for job_id in tick(app, time.time()):
                log.info("enqueued %s", job_id)
            promote_delayed_jobs(delayed)
            if time.monotonic() - watched_at >= CHECK_EVERY_SECONDS:
                watched_at = time.monotonic()
                watchdog.check()
        except RedisError as exc:
            log.warning("scheduler cannot reach Redis (%s); retrying", type(exc).__name__)
        stop.wait(interval)
    delayed.stop()


def promote_delayed_jobs(delayed: RQScheduler) -> None:
    """Move delayed jobs that are due (RQ retries with intervals) onto their queues; one scheduler at a time."""
    if delayed.should_reacquire_locks:
        delayed.acquire_locks()
    if delayed.acquired_locks:
        delayed.heartbeat()
        delayed.enqueue_scheduled_jobs()
