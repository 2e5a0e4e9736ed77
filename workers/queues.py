"""Queue names, the job decorator and enqueueing: declared once, here.

Jobs are plain module functions taking JSON-safe ids; ``@job(...)`` only records which queue they run on and
their timeout/retry policy. Nothing here opens a connection at import time: callers pass the Redis client and
the installation's keys. Job ids are deterministic (``crm_qb.keys.JobIds``), so enqueueing the same work twice
while it waits is a no-op (``unique=True``), and the sweep can tell whether an event's job is still alive.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError
from rq import Queue, Retry, get_current_job
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.worker import Worker

from crm_qb.backend_cpu import BackendCpu
from crm_qb.keys import RedisKeys
from crm_qb.procstat import read_process
from crm_qb.sync.pacing import PACE_LIVE_MEMORY_SECONDS, LivePacer

if TYPE_CHECKING:
    from crm_qb.runtime import Runtime
    from crm_qb.sync.services import SyncServices

log = logging.getLogger(__name__)

INBOUND = "inbound"
SYNC = "sync"
SCHEDULED = "scheduled"
# Backfills (first syncs) last: a worker takes one only when no live change is waiting, and a worker started with
# ``crm-qb worker --queues inbound,sync,scheduled`` never takes one, so live edits never queue behind a first sync.
BACKFILL = "backfill"
QUEUE_NAMES = (INBOUND, SYNC, SCHEDULED, BACKFILL)
LIVE_QUEUE_NAMES = (INBOUND, SYNC, SCHEDULED)

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class JobSpec:
    """How a job function runs: its queue, timeout (seconds) and retry policy for transient failures."""

    queue: str
    timeout: int = 300
    retry_intervals: tuple[int, ...] = ()


def job(queue: str, *, timeout: int = 300, retry_intervals: tuple[int, ...] = ()) -> Callable[[F], F]:
    """Mark a function as a job running on ``queue``; it is still called directly in tests."""
    if queue not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {queue!r}; known: {', '.join(QUEUE_NAMES)}")

    def mark(func: F) -> F:
        func.job_spec = JobSpec(queue, timeout, retry_intervals)  # type: ignore[attr-defined]
        return func

    return mark


def queue(redis: Redis, name: str, keys: RedisKeys) -> Queue:
    """The RQ queue ``name`` of the installation."""
    return Queue(keys.queue(name), connection=redis)


def all_queues(redis: Redis, keys: RedisKeys) -> list[Queue]:
    """Every queue, in the order a worker should serve them (ingress first)."""
    return [queue(redis, name, keys) for name in QUEUE_NAMES]


# A live job's mark is kept this long after it ended (HostLook.recent reads the last second of it).
LIVE_MARK_KEPT_SECONDS = 60.0


def mark_live_work(redis: Redis, keys: RedisKeys, worker_name: str, timeout: float) -> None:
    """Note that ``worker_name`` (on this host) runs a live job for at most ``timeout`` seconds (``live_busy``).
    A Redis failure is left to the job itself to meet: the mark only paces bulk work."""
    try:
        redis.zadd(keys.live_work(socket.gethostname()), {worker_name: datetime.now(UTC).timestamp() + timeout})
    except RedisError as exc:
        log.warning("live work of %s not marked (%s)", worker_name, type(exc).__name__)


def unmark_live_work(redis: Redis, keys: RedisKeys, worker_name: str) -> None:
    """Note that ``worker_name`` ended its live job: its mark now says when, so that the host's bulk processes know
    live work was about even when none of them looked while it ran (``HostLook.recent``). A mark left by a Redis
    failure expires with its timeout."""
    now, live_work = datetime.now(UTC).timestamp(), keys.live_work(socket.gethostname())
    try:
        with redis.pipeline(transaction=False) as pipe:
            pipe.zadd(live_work, {worker_name: now})
            pipe.zremrangebyscore(live_work, "-inf", now - LIVE_MARK_KEPT_SECONDS)  # workers gone for good
            pipe.execute()
    except RedisError as exc:
        log.warning("live work of %s not unmarked (%s)", worker_name, type(exc).__name__)


def live_busy(redis: Redis, keys: RedisKeys) -> bool:
    """Whether live work is under way that bulk work should give way to: a job waiting in a live queue (no worker
    free for it, on any host), or a live job running on this host (its CPU is the one bulk work here takes).
    A worker killed during a live job leaves its mark until that job's timeout: bulk work is paced meanwhile,
    never stopped (crm_qb.sync.pacing). A Redis failure says no: pacing must never stop bulk work."""
    try:
        with redis.pipeline(transaction=False) as pipe:
            _ask_live(pipe, keys, socket.gethostname(), datetime.now(UTC).timestamp())
            return any(int(count) for count in pipe.execute())
    except RedisError:
        return False


def _ask_live(pipe: Pipeline, keys: RedisKeys, host: str, now: float) -> int:
    """Put ``live_busy``'s questions in ``pipe`` (each answers a count, any of them non-zero: live work under way);
    return how many answers they make."""
    for name in LIVE_QUEUE_NAMES:
        pipe.llen(Queue.redis_queue_namespace_prefix + keys.queue(name))
    pipe.zcount(keys.live_work(host), now, "+inf")
    return len(LIVE_QUEUE_NAMES) + 1


def bulk_services(rt: Runtime) -> SyncServices:
    """The services of a bulk job (a first sync's preview, run or retry, a backfill, a bulk drain, the follow-up
    scan, the transaction walk's process): its items give way to live work, and while live work is about the
    host's bulk processes keep together to a share of one core (``CRM_QB_BULK_SHARE_PERCENT``;
    crm_qb.sync.pacing), counting what their statements cost PostgreSQL when the database runs on this host. The
    process's bulk jobs share one pacer."""
    return replace(rt.sync_services(), pace=rt.bulk_pacer(partial(_bulk_pacer, rt)))


def _bulk_pacer(rt: Runtime) -> LivePacer:
    """A bulk process's pacer: it looks at the live queues and this host's live jobs and bulk processes, and counts
    the process's CPU and its local database backends'."""
    look = HostLook(rt.redis, rt.keys)
    return LivePacer(look.busy, sharers=look.sharers, recent=look.recent, share=rt.settings.bulk_share,
                     cpu=partial(bulk_cpu_seconds, rt.backend_cpu()))


def bulk_member() -> str:
    """How this process is named among its host's bulk processes at work (``HostLook``)."""
    return f"{socket.gethostname()}:{os.getpid()}"


# A bulk process counts as at work on its host this long after its last look: longer than the longest rest
# between two looks (crm_qb.sync.pacing's max_rest) and a long item, so a process at work never drops out.
BULK_WORK_SECONDS = 5.0


@dataclass
class HostLook:
    """A bulk process's look at its host, one Redis round trip: whether live work is under way (``live_busy``),
    whether a live job of the host ended within the last second (``recent``), and how many of the host's bulk
    processes are at work, this one included, which it notes as it looks.

    Each bulk process keeps to its part of the host's share of a core: a worker of every queue has a bulk child,
    and a first sync in one and the drains of its backlog in another would otherwise take twice the share. A
    process drops out as its bulk job ends (``end_bulk_work``), or ``BULK_WORK_SECONDS`` after its last look (one
    killed, or waiting for an answer: it takes no CPU meanwhile). A Redis failure says no live work and no other
    process, as ``live_busy`` does."""

    redis: Redis
    keys: RedisKeys
    member: str = field(default_factory=bulk_member)
    at_work: int = 1
    seen_recently: bool = False

    def busy(self) -> bool:
        """Whether live work is under way; notes this process at work and counts the host's bulk processes."""
        now, host = datetime.now(UTC).timestamp(), socket.gethostname()
        bulk = self.keys.bulk_work(host)
        try:
            with self.redis.pipeline(transaction=False) as pipe:
                live = _ask_live(pipe, self.keys, host, now)
                pipe.zcount(self.keys.live_work(host), now - PACE_LIVE_MEMORY_SECONDS, "+inf")
                pipe.zremrangebyscore(bulk, "-inf", now)
                pipe.zadd(bulk, {self.member: now + BULK_WORK_SECONDS})
                pipe.expire(bulk, int(BULK_WORK_SECONDS) * 2)
                pipe.zcount(bulk, now, "+inf")
                answers = pipe.execute()
        except RedisError:
            self.at_work, self.seen_recently = 1, False
            return False
        self.at_work = max(1, int(answers[-1]))
        self.seen_recently = bool(int(answers[live]))
        return any(int(count) for count in answers[:live])

    def sharers(self) -> int:
        """The host's bulk processes at work at the last look, this one included."""
        return self.at_work

    def recent(self) -> bool:
        """Whether, at the last look, a live job of this host had run within the pacer's memory of live work
        (``PACE_LIVE_MEMORY_SECONDS``): a bulk process that did not look meanwhile (it waited for its next job, or
        an answer) still owes the rest of what it used, which it would otherwise be forgiven."""
        return self.seen_recently


def end_bulk_work(redis: Redis, keys: RedisKeys) -> None:
    """Note that this process's bulk job ended: the host's other bulk processes have its part of the share back
    at once, not ``BULK_WORK_SECONDS`` later (the drains of a first sync's backlog are jobs of a few seconds that
    alternate between two workers' bulk children). A Redis failure leaves the mark to expire."""
    try:
        redis.zrem(keys.bulk_work(socket.gethostname()), bulk_member())
    except RedisError as exc:
        log.warning("the end of this process's bulk work not noted (%s)", type(exc).__name__)


def bulk_cpu_seconds(backends: BackendCpu) -> float:
    """What a bulk process's share counts: its own CPU (every thread) and its local database backends'
    (crm_qb.backend_cpu)."""
    return time.process_time() + backends.seconds()


def parse_queue_names(text: str) -> tuple[str, ...]:
    """Comma-separated queue names, in QUEUE_NAMES' order; ValueError naming an unknown or empty list."""
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = sorted(names - set(QUEUE_NAMES))
    if unknown or not names:
        raise ValueError(f"unknown queue(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(QUEUE_NAMES)}")
    return tuple(name for name in QUEUE_NAMES if name in names)


def running_bulk(keys: RedisKeys) -> bool:
    """Whether the current job was taken from the ``backfill`` queue (bulk work: a first sync, a bulk drain)."""
    current = get_current_job()
    return current is not None and current.origin == keys.queue(BACKFILL)


def enqueue(redis: Redis, keys: RedisKeys, func: Callable[..., Any], *args: Any, job_id: str,
            on: str | None = None, after: float = 0.0) -> Job | None:
    """Enqueue ``func(*args)`` under ``job_id`` on its queue (or on queue ``on``); return None when that job is
    already waiting, delayed or running. ``after`` > 0: put it in RQ's delayed set, due that many seconds from now
    (``crm-qb scheduler`` promotes it), under the same rule."""
    if after > 0:
        return None if _holds_its_id(redis, job_id) else enqueue_in(redis, keys, after, func, *args, job_id=job_id,
                                                                     on=on)
    try:
        return _enqueue_unique(redis, keys, func, args, job_id, on)
    except DuplicateJobError:
        if _holds_its_id(redis, job_id):
            return None
        return _enqueue_unique(redis, keys, func, args, job_id, on)


def _holds_its_id(redis: Redis, job_id: str) -> bool:
    """Whether job ``job_id`` still waits, is delayed or runs; one that ended or was abandoned is deleted, which
    frees its id."""
    existing = fetch_job(redis, job_id)
    if existing is not None and not _is_finished_or_abandoned(redis, existing):
        return True
    if existing is not None:
        existing.delete()
    return False


def enqueue_in(redis: Redis, keys: RedisKeys, seconds: float, func: Callable[..., Any], *args: Any,
               job_id: str, on: str | None = None) -> Job:
    """Put ``func(*args)`` in RQ's delayed set, due in ``seconds`` (the scheduler moves it to its queue, or to queue
    ``on``, then)."""
    spec: JobSpec = func.job_spec  # type: ignore[attr-defined]
    retry = Retry(max=len(spec.retry_intervals), interval=list(spec.retry_intervals)) if spec.retry_intervals \
        else None
    return queue(redis, _queue_name(spec, on), keys).enqueue_in(
        timedelta(seconds=max(seconds, 0.0)), func, *args, job_id=job_id, job_timeout=spec.timeout, retry=retry,
        result_ttl=600, failure_ttl=7 * 24 * 3600)


def _queue_name(spec: JobSpec, on: str | None) -> str:
    if on is not None and on not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {on!r}; known: {', '.join(QUEUE_NAMES)}")
    return on or spec.queue


def _enqueue_unique(
    redis: Redis, keys: RedisKeys, func: Callable[..., Any], args: tuple[Any, ...], job_id: str,
    on: str | None = None,
) -> Job:
    spec: JobSpec = func.job_spec  # type: ignore[attr-defined]
    retry = None
    if spec.retry_intervals:
        retry = Retry(max=len(spec.retry_intervals), interval=list(spec.retry_intervals))
    return queue(redis, _queue_name(spec, on), keys).enqueue_call(
        func, args=args, job_id=job_id, timeout=spec.timeout, retry=retry, unique=True,
        result_ttl=600, failure_ttl=7 * 24 * 3600,
    )


def fetch_job(redis: Redis, job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=redis)
    except NoSuchJobError:
        return None


def _is_finished_or_abandoned(redis: Redis, existing: Job) -> bool:
    """A job that ended, or whose worker died under it (kill -9), no longer holds its id."""
    status = existing.get_status(refresh=True)
    if status in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED, None):
        return True
    if status == JobStatus.STARTED:
        return not worker_alive(redis, existing)
    return False


def worker_alive(redis: Redis, running: Job) -> bool:
    """Whether the worker running ``running`` still lives; a dead local pid or an overdue job says no."""
    if running.started_at is not None:
        overdue = datetime.now(UTC) - running.started_at.replace(tzinfo=UTC)
        if overdue > timedelta(seconds=(running.timeout or 300) + 60):
            return False
    name = running.worker_name
    worker = name and Worker.find_by_key(Worker.redis_worker_namespace_prefix + name, connection=redis)
    if not worker:
        return False
    if worker.hostname == socket.gethostname() and worker.pid:
        return _pid_alive(worker.pid)
    return True


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs. A zombie does not: a killed worker's bulk child (``workers.bulk_process``) is
    killed with it and left to an init that may not reap it soon, so the signal test alone would call it alive."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = read_process(pid)  # None: no /proc (not Linux), or it ended just now: the signal test's answer stands
    return stat is None or stat.state not in ("Z", "X")
