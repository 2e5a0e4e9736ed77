"""The drain watchdog: a drain lost with a killed worker is started again within seconds, not at the next sweep.

A wake is a Redis ``SET NX`` per realm or connection, held while its drain job waits in the queue (``jobs.wake``),
so that a burst of webhooks enqueues one drain. A worker killed after it took that job from the queue but before
the drain began (RQ pops the job first; the drain clears the wake when it starts) loses the job while the wake
stays, and every later event of that realm or connection found the wake set and woke nothing: new events waited
for the sweep (minutes). A worker killed in the middle of a drain leaves that drain's own events pending too.

The scheduler runs ``Watchdog.check`` every couple of seconds. A wake whose job no longer waits anywhere (not in
its queue, not delayed or scheduled, not run by a live worker) is cleared and the drain woken again; a drain job
that a dead worker was running is taken off the started registry (recorded as failed) and its drain woken again.
A suspect must be seen on two checks in a row, so a job in the instant between RQ's pop and its start is never
mistaken for a lost one; and a wrong guess costs only an extra drain, which finds its events settled (guarded
claims). Whether a worker lives is decided as for job ids (``queues.worker_alive``): its pid on this host, its
registration elsewhere. The sync lock a killed drain held expires by itself within its short ttl (``locks``).
A drain is looked for in the queue it was put on: ``inbound``, or ``backfill`` for a bulk drain (the backlog a first
sync left, ``jobs.wake(bulk=True)``), and a lost bulk drain is woken again as bulk work.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from redis import Redis
from rq import Queue
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, StartedJobRegistry

from crm_qb.keys import JobIds, RedisKeys
from crm_qb.models import EventSource
from workers import jobs
from workers.queues import BACKFILL, INBOUND, fetch_job, queue, worker_alive

log = logging.getLogger(__name__)

CHECK_EVERY_SECONDS = 2.0
_WAITING = (JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.CREATED)
DRAIN_QUEUES = (INBOUND, BACKFILL)  # a drain is live work, or bulk work (the backlog a first sync left)
_DRAIN_SOURCES = {"workers.jobs.drain_qbo_realm": EventSource.QBO, "workers.jobs.drain_crm_connection": EventSource.CRM}


@dataclass
class Watchdog:
    """Finds drains lost with their worker and wakes them again; remembers last check's suspects."""

    redis: Redis
    keys: RedisKeys
    suspects: set[str] = field(default_factory=set)

    def check(self) -> int:
        """One round: re-wake the lost drains seen on two checks in a row; return how many were woken."""
        found = {**self._lost_wakes(), **self._dead_drains()}
        confirmed = {name: target for name, target in found.items() if name in self.suspects}
        self.suspects = set(found) - set(confirmed)
        woken = 0
        for name, (source, key, job) in confirmed.items():
            self._settle(name, job)
            bulk = job is not None and job.origin == self.keys.queue(BACKFILL)  # a bulk drain stays bulk work
            woken += 1 if jobs.wake(self.redis, self.keys, source, key, bulk=bulk) else 0
            log.warning("watchdog: drain %s of %s %s was lost with its worker; woken again", job.id if job else name,
                        source.value, key)
        return woken

    def _lost_wakes(self) -> dict[str, tuple[EventSource, str, Job | None]]:
        """Wakes whose drain job waits nowhere: ``{wake key: (source, key, job)}``."""
        lost: dict[str, tuple[EventSource, str, Job | None]] = {}
        prefix = self.keys.wake("", "")[:-1]  # "<prefix>:wake:"
        for raw in self.redis.scan_iter(match=f"{prefix}*", count=1000):
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            source_name, _, key = name[len(prefix):].partition(":")
            token = self.redis.get(name)
            if token is None or source_name not in {s.value for s in EventSource}:
                continue
            text = token.decode() if isinstance(token, bytes) else str(token)
            if text == jobs.PARKED:
                continue  # no drain on purpose: the connection's events wait for its first sync (``jobs.park``)
            job = fetch_job(self.redis, JobIds.drain(source_name, key, text))
            if not self._waiting(job):
                lost[name] = (EventSource(source_name), key, job)
        return lost

    def _dead_drains(self) -> dict[str, tuple[EventSource, str, Job | None]]:
        """Drain jobs marked started whose worker is gone: ``{job id: (source, key, job)}``."""
        dead: dict[str, tuple[EventSource, str, Job | None]] = {}
        for job_id in (job_id for name in DRAIN_QUEUES
                       for job_id in StartedJobRegistry(queue=queue(self.redis, name, self.keys)).get_job_ids()):
            job = fetch_job(self.redis, job_id)
            source = _DRAIN_SOURCES.get(job.func_name or "") if job is not None else None
            if job is not None and source is not None and job.args and not worker_alive(self.redis, job):
                dead[job.id] = (source, str(job.args[0]), job)
        return dead

    def _waiting(self, job: Job | None) -> bool:
        """Whether ``job`` still waits in its queue, is delayed, or runs on a live worker."""
        if job is None:
            return False
        status = job.get_status(refresh=False)
        if status == JobStatus.QUEUED:  # in the queue it was put on: inbound, or backfill for a bulk drain
            return self.redis.lpos(Queue(job.origin, connection=self.redis).key, job.id) is not None
        if status == JobStatus.STARTED:
            return worker_alive(self.redis, job)
        return status in _WAITING

    def _settle(self, name: str, job: Job | None) -> None:
        """Clear a lost wake (so waking works again) or retire a dead worker's drain job."""
        if job is not None and job.get_status(refresh=False) == JobStatus.STARTED:
            origin = Queue(job.origin, connection=self.redis)
            started = StartedJobRegistry(queue=origin)
            started.remove_executions(job)
            job.set_status(JobStatus.FAILED)
            FailedJobRegistry(queue=origin).add(
                job, exc_string="worker died while running the drain (found by the watchdog)")
        if name.startswith(self.keys.wake("", "")[:-1]):
            self.redis.delete(name)
