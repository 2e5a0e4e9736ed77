"""Worker start-up: an RQ worker that runs every job inside the app context.

``SimpleWorker`` runs jobs in the worker process itself (no fork per job): lower latency, and the database
connection pool is never shared across a fork. Killing the process kills the job it runs; the sweep then
re-enqueues the event and the job's guarded claim keeps the result exactly-once.

Redis going away is survived, not fatal: RQ's work loop quits on an error it does not expect (Redis dying in the
middle of a job, while RQ records the job's end), so ``run_worker`` waits until Redis answers again, starts a new
work loop, and wakes the drain of every pending event, since a Redis that restarted empty has lost the queued jobs
and the wake keys (the events themselves are in the database: nothing is lost, and the guarded claim keeps each
applied once).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

from flask import Flask
from redis import Redis
from redis.exceptions import RedisError
from rq.timeouts import JobTimeoutException, TimerDeathPenalty
from rq.worker import SimpleWorker

from crm_qb.crm.errors import CrmNeedsReconnectError
from crm_qb.db import db
from crm_qb.locks import RenewingLock
from crm_qb.qbo.ratebudget import RealmThrottledError
from crm_qb.qbo.tokens import NeedsReconnectError, NotConnectedError
from crm_qb.runtime import runtime
from workers import niced
from workers.bulkslots import RECHECK_SECONDS, BulkSlots, NoSlot
from workers.jobs import drain_all_pending
from workers.queues import (
    BACKFILL,
    LIVE_QUEUE_NAMES,
    QUEUE_NAMES,
    all_queues,
    end_bulk_work,
    mark_live_work,
    unmark_live_work,
)

log = logging.getLogger(__name__)

REDIS_WAIT_SECONDS = 1.0
DEFAULT_JOB_TIMEOUT = 600  # a live job's mark without a timeout of its own (RQ's default is 180 s)

# Conditions a person must act on (reconnect QuickBooks or the CRM), already recorded on the connection where they
# arise: a job stopped by one is reported in one line, not with a traceback (a traceback says "bug").
# A throttled company (RealmThrottledError) is expected too: the job is retried from RQ's delayed set.
EXPECTED: tuple[type[BaseException], ...] = (NeedsReconnectError, NotConnectedError, RealmThrottledError,
                                             CrmNeedsReconnectError)


class ThreadTimeout(TimerDeathPenalty):
    """RQ's timer death penalty (it raises the timeout in the job's thread), given a fresh subclass of the
    exception: RQ's sets the message by patching the class it is given, which would rename every later timeout."""

    def __init__(self, timeout: Any, exception: type[BaseException] = JobTimeoutException, **kwargs: Any) -> None:
        super().__init__(timeout, type(exception.__name__, (exception,), {}), **kwargs)  # type: ignore[no-untyped-call]


class AppWorker(SimpleWorker):
    """An RQ worker that pushes the Flask app context around each job and cleans the session after it.

    A bulk job (the ``backfill`` queue: first syncs and their backlog) runs on a thread of its own at CPU
    niceness ``bulk_nice`` (``workers.niced``), so a worker that serves every queue (the default) gives
    the CPU to the live drains of the host's other workers while it runs one. Its timeout is then enforced with
    RQ's timer (a signal only reaches the main thread).
    """

    flask_app: Flask
    bulk_nice: int = 0
    bulk_slots: BulkSlots | None = None  # this host's bulk-job slots, when the worker serves the bulk queue
    bulk_slot: RenewingLock | NoSlot | None = None  # the slot taken for the bulk job just dequeued
    on_stop: Callable[[], None] | None = None  # called when a stop is asked: this worker's bulk child stops too

    def bootstrap(self, *args: Any, **kwargs: Any) -> None:
        """RQ's start-up, with a stop asked during it (SIGTERM, SIGINT) kept for the loop to honour.

        RQ registers the worker in Redis before it installs its own signal handlers; a supervisor that stops a
        worker it has just seen register would otherwise kill it with the default action (exit -15) instead of a
        warm shutdown. Here the stop is recorded and RQ's loop, which checks it first, ends at once (exit 0)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop_during_start_up)
        super().bootstrap(*args, **kwargs)

    def _stop_during_start_up(self, _signum: int, _frame: Any) -> None:
        self._stop_requested = True
        if self.on_stop is not None:
            self.on_stop()

    def request_stop(self, signum: Any, frame: Any) -> None:
        """RQ's warm shutdown, passed on at once to this worker's bulk child (``workers.bulk_process``)."""
        if self.on_stop is not None:
            self.on_stop()
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None) -> Any:
        """RQ's dequeue, from the live queues only while every bulk slot of this host is held
        (``workers.bulkslots``); a bulk job dequeued when the last slot was just taken goes back to the front."""
        slots = self.bulk_slots
        if slots is None:
            return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
        if self.bulk_slot is not None:  # taken for a job this worker never ran: give it back, it would be renewed
            self.bulk_slot.release()
            self.bulk_slot = None
        every = list(self._ordered_queues)
        bulk_name = runtime(self.flask_app).keys.queue(BACKFILL)
        live = [q for q in every if q.name != bulk_name]
        blocking = timeout is not None  # burst mode (None): look once, as RQ does
        wait = min(timeout or RECHECK_SECONDS, RECHECK_SECONDS) if blocking else None
        idle_since = time.monotonic()
        try:
            while True:
                self._ordered_queues = live if slots.full() else every
                result = super().dequeue_job_and_maintain_ttl(wait, RECHECK_SECONDS if blocking else None)
                if result is not None:
                    job, queue = result
                    if queue.name != bulk_name:
                        return result
                    self.bulk_slot = slots.acquire()
                    if self.bulk_slot is not None:
                        return result
                    queue.push_job_id(job.id, at_front=True)  # another worker took the last slot first
                    continue
                if not blocking or (max_idle_time is not None and time.monotonic() - idle_since >= max_idle_time):
                    return None
        finally:
            self._ordered_queues = every

    def perform_job(self, job: Any, queue: Any) -> bool:
        rt = runtime(self.flask_app)
        if job.origin != rt.keys.queue(BACKFILL):
            return self._perform(job, queue)
        slot, self.bulk_slot = self.bulk_slot, None
        try:
            if self.bulk_nice > 0 and niced.supported():
                return niced.run(self.bulk_nice, partial(self._perform_bulk, job, queue), name=f"bulk {job.id}")
            return self._perform(job, queue)
        finally:
            end_bulk_work(rt.redis, rt.keys)  # its part of the host's bulk share goes back to the others at once
            if slot is not None:
                slot.release()

    def _perform_bulk(self, job: Any, queue: Any) -> bool:
        self.death_penalty_class = ThreadTimeout  # this thread's own; the worker's class keeps the signal one
        try:
            return self._perform(job, queue)
        finally:
            del self.death_penalty_class

    def _perform(self, job: Any, queue: Any) -> bool:
        rt = runtime(self.flask_app)
        live = job.origin in {rt.keys.queue(name) for name in LIVE_QUEUE_NAMES}
        if live:  # bulk work on this host gives way while it runs (workers.queues.live_busy)
            mark_live_work(rt.redis, rt.keys, self.name, job.timeout or DEFAULT_JOB_TIMEOUT)
        try:
            with self.flask_app.app_context():
                try:
                    return bool(super().perform_job(job, queue))
                finally:
                    db.session.remove()
        finally:
            if live:
                unmark_live_work(rt.redis, rt.keys, self.name)

    def handle_exception(self, job: Any, *exc_info: Any) -> None:
        """Log an expected condition (EXPECTED) in one line; anything else as RQ does, with its traceback."""
        if not isinstance(exc_info[1], EXPECTED):
            super().handle_exception(job, *exc_info)
            return
        self.log.warning("Worker %s: job %s stopped: %s", self.name, job.id, exc_info[1])
        for handler in self._exc_handlers:
            if handler(job, *exc_info) is False:
                break


def build_worker(app: Flask, name: str | None = None, queues: tuple[str, ...] = QUEUE_NAMES,
                 bulk_nice: int = niced.DEFAULT_BULK_NICE, on_stop: Callable[[], None] | None = None) -> AppWorker:
    """A worker for ``app`` serving ``queues`` (default every queue), ingress first; its bulk jobs run at
    niceness ``bulk_nice`` (0: like any job); ``on_stop`` is called when it is asked to stop."""
    rt = runtime(app)
    served = [q for q in all_queues(rt.redis, rt.keys) if q.name in {rt.keys.queue(name) for name in queues}]
    worker = AppWorker(served, connection=rt.redis, name=name)
    worker.flask_app = app
    worker.bulk_nice = bulk_nice
    worker.on_stop = on_stop
    if BACKFILL in queues and rt.settings.bulk_jobs_per_host > 0:
        worker.bulk_slots = BulkSlots(rt.redis, rt.keys, rt.settings.bulk_jobs_per_host)
    return worker


def lower_priority(nice: int, queues: tuple[str, ...] = QUEUE_NAMES, idle: bool = False) -> int:
    """Lower this process's CPU priority by ``nice`` (0: unchanged) and, with ``idle``, put it in Linux's idle
    scheduling class; return its niceness after.

    For a worker of bulk work (``--queues backfill --nice 10``): the first syncs and their backlog then take only
    the CPU that live drains leave. Linux keeps a niceness per thread, and a thread inherits its creator's: called
    before the app and the worker start any thread, it covers them all. An unprivileged process cannot raise its
    priority again, which is why it is a whole worker's, not a job's: a worker that also serves live queues would
    run live drains niced too (warned about here).

    Niceness only weighs the CPU's shares: a niced bulk job that is running when a live drain wakes still holds its
    core until the scheduler's next turn. The idle class (``SCHED_IDLE``) is the other way round: a thread of it
    gets a core only when no normal one wants it, and yields it as soon as one does. On the 2-core bench a
    3,000-customer first sync beside live load then added about half as much to the live workers' wait for a core
    (README, Benchmarks). Refused for a worker of live queues (their drains would wait for every other process)."""
    live = [name for name in queues if name != BACKFILL]
    if idle and live:
        raise ValueError(f"the idle CPU priority is for a worker of the {BACKFILL} queue only, "
                         f"not of {', '.join(live)}")
    if idle:
        set_idle()
    if nice <= 0:
        return os.getpriority(os.PRIO_PROCESS, 0)
    if live:
        log.warning("worker runs at nice %s and serves live queue(s) %s: their drains are niced too; "
                    "use --queues %s for a niced worker", nice, ",".join(live), BACKFILL)
    return os.nice(nice)


def set_idle() -> None:
    """Put this thread, and every thread and process it starts later, in Linux's idle scheduling class (elsewhere
    there is no such class: the niceness alone then lowers the priority, said once in the log)."""
    policy = getattr(os, "SCHED_IDLE", None)
    if policy is None or not hasattr(os, "sched_setscheduler"):
        log.warning("this system has no idle CPU priority (Linux SCHED_IDLE): the worker runs at its niceness only")
        return
    os.sched_setscheduler(0, policy, os.sched_param(0))


def run_worker(app: Flask, *, burst: bool = False, name: str | None = None,
               queues: tuple[str, ...] = QUEUE_NAMES, bulk_nice: int = niced.DEFAULT_BULK_NICE,
               on_stop: Callable[[], None] | None = None) -> bool:
    """Work until stopped (or, with ``burst``, until the queues are empty); a Redis failure restarts the loop.
    ``on_stop``: called as soon as a stop is asked (SIGTERM, SIGINT)."""
    # No with_scheduler: RQ would fork a scheduler process that outlives a killed worker. Promoting delayed
    # jobs (retries with intervals) is done by ``crm-qb scheduler`` instead (workers.schedule).
    worked, restarts = False, 0
    while True:
        worker = build_worker(app, name if not restarts or name is None else f"{name}-{restarts}", queues, bulk_nice,
                              on_stop)
        try:
            worked = bool(worker.work(burst=burst)) or worked
        except RedisError as exc:  # raised outside RQ's loop (start-up, teardown): the same recovery
            log.warning("worker %s: Redis failed (%s)", worker.name, type(exc).__name__)
        if burst or _stop_was_asked(worker):
            return worked
        restarts += 1
        log.warning("worker %s stopped unexpectedly; starting again once Redis answers", worker.name)
        if not _wait_for_redis(runtime(app).redis):
            return worked  # told to stop while waiting
        with app.app_context():
            log.warning("worker restarted: queued %s drain(s) for pending events", requeue_pending(app))


def _wait_for_redis(redis: Redis) -> bool:
    """Block until Redis answers a PING (True), or until SIGTERM/SIGINT asks this process to stop (False)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_args: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.is_set():
            try:
                if redis.ping():
                    return True
            except RedisError:
                pass  # still down: wait and ask again
            stop.wait(REDIS_WAIT_SECONDS)
        return False
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def requeue_pending(app: Flask) -> int:
    """Queue a drain for every due pending event (Redis may have lost the queued drains); return how many."""
    try:
        return drain_all_pending(runtime(app))
    finally:
        db.session.remove()


def _stop_was_asked(worker: AppWorker) -> bool:
    """Whether the loop ended because someone asked the worker to stop (SIGTERM, SIGINT), not because Redis failed.

    RQ marks a stop asked during a job with ``_stop_requested``, but an idle worker's warm shutdown only records
    ``_shutdown_requested_date`` and leaves its loop: checking the flag alone restarted an idle worker on SIGTERM,
    so ``systemctl stop`` or a supervisor had to wait for its SIGKILL.
    """
    return bool(getattr(worker, "_stop_requested", False) or getattr(worker, "_shutdown_requested_date", None))
