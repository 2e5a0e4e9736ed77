"""The scheduler: enqueues periodic jobs (the inbox sweep; later the CDC poll, overdue scan, token refresh).

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

from crm_qb.runtime import runtime
from workers import jobs
from workers.queues import enqueue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Periodic:
    """A job function run every ``every`` seconds."""

    name: str
    func: Callable[..., Any]
    every: int


PERIODIC = (Periodic("sweep-inbound", jobs.sweep_inbound_events, 60),)


def tick(app: Flask, now: float, periodic: tuple[Periodic, ...] = PERIODIC) -> list[str]:
    """Enqueue every periodic job that is due at ``now``; return the job ids enqueued."""
    rt = runtime(app)
    enqueued = []
    for item in periodic:
        period = int(now // item.every)
        key = f"{rt.settings.queue_prefix}:schedule:{item.name}:{period}"
        if rt.redis.set(key, "1", nx=True, ex=item.every * 2):
            job_id = f"{item.name}-{period}"
            with app.app_context():
                if enqueue(rt.redis, rt.settings.queue_prefix, item.func, job_id=job_id):
                    enqueued.append(job_id)
    return enqueued


def run_scheduler(app: Flask, stop: threading.Event, interval: float = 1.0) -> None:
    """Tick every ``interval`` seconds until ``stop`` is set; Redis outages are logged and waited out."""
    log.info("scheduler started: %s", ", ".join(f"{p.name} every {p.every}s" for p in PERIODIC))
    while not stop.is_set():
        try:
            for job_id in tick(app, time.time()):
                log.info("enqueued %s", job_id)
        except RedisError as exc:
            log.warning("scheduler cannot reach Redis (%s); retrying", type(exc).__name__)
        stop.wait(interval)
