"""The RQ side of the queue port (``crm_qb.jobqueue.JobQueue``): which job function and job id each request means.

The app factory builds one per app; views and the ingress reach it as ``runtime().jobs`` and never import a job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from redis import Redis
from rq.registry import FailedJobRegistry
from rq.worker import Worker

from crm_qb.jobqueue import Enqueued, QueueStats
from crm_qb.keys import JobIds, RedisKeys
from crm_qb.models import EventSource
from crm_qb.sync.pipeline import slowlane
from workers import firstsync_jobs, followup_jobs, jobs, qbo_jobs, review_jobs, summary_jobs, sync_jobs
from workers.queues import BACKFILL, all_queues, enqueue


class RqJobQueue:
    """``JobQueue`` over the installation's RQ queues."""

    def __init__(self, redis: Redis, keys: RedisKeys) -> None:
        self._redis, self._keys = redis, keys

    def wake(self, source: EventSource, key: str, *, bulk: bool = False, now: bool = False) -> str | None:
        """Make sure a drain runs for ``key`` (on the ``backfill`` queue when ``bulk``; ``now``: even when the
        one holding the wake waits in the delayed set); its job id if new."""
        return jobs.wake(self._redis, self._keys, source, key, bulk=bulk, now=now)

    def backfill(self, connection_id: int) -> Enqueued:
        """Queue the connection's backfill."""
        return self._enqueue(sync_jobs.backfill_connection, JobIds.backfill(connection_id), connection_id)

    def load_company(self, connection_id: int) -> Enqueued:
        """Queue reading the connection's company details."""
        return self._enqueue(qbo_jobs.load_company_details, JobIds.load_company(connection_id), str(connection_id))

    def check_followups(self, connection_id: int, qbo_invoice_ids: Iterable[str]) -> int:
        """Queue one follow-up check per changed invoice (one already waiting reads fresh state: not doubled); on
        the bulk lane while the connection is in the slow lane (they call the CRM)."""
        ids = list(qbo_invoice_ids)
        return followup_jobs.enqueue_after_sync(self._redis, self._keys, connection_id, ids,
                                                on=self._lane_of(connection_id, ids))

    def push_summaries(self, connection_id: int, qbo_customer_ids: Iterable[str]) -> int:
        """Queue one summary push per changed customer (one already waiting reads fresh state: not doubled); on
        the bulk lane while the connection is in the slow lane (they call the CRM)."""
        ids = list(qbo_customer_ids)
        return summary_jobs.enqueue_pushes(self._redis, self._keys, connection_id, ids,
                                           on=self._lane_of(connection_id, ids))

    def _lane_of(self, connection_id: int, ids: Sequence[str]) -> str | None:
        """``backfill`` for the CRM work of a connection in the slow lane (crm_qb.sync.pipeline.slowlane), else
        None (the job's own queue); no Redis call when there is nothing to queue."""
        return BACKFILL if ids and slowlane.in_lane(self._redis, self._keys, connection_id) else None

    def flip_conflict(self, connection_id: int, conflict_id: int) -> Enqueued:
        """Queue the flip of a conflict."""
        return self._enqueue(review_jobs.flip_conflict, JobIds.flip_conflict(conflict_id), connection_id,
                             conflict_id)

    def catch_up(self, connection_id: int) -> int:
        """Queue both catch-up polls of the connection now (after sync was turned on)."""
        return sync_jobs.enqueue_catch_up(self._redis, self._keys, connection_id)

    def sync_now(self, connection_id: int) -> Enqueued:
        """Queue "Sync now" for the connection (one at a time)."""
        return self._enqueue(sync_jobs.sync_connection_now, JobIds.sync_now(connection_id), connection_id)

    def sync_contact_now(self, connection_id: int, crm_contact_id: str, who: str) -> Enqueued:
        """Queue "Sync now" of one contact (one at a time per contact)."""
        return self._enqueue(sync_jobs.sync_contact_now, JobIds.sync_contact_now(connection_id, crm_contact_id),
                             connection_id, crm_contact_id, who)

    def resolve_review(self, connection_id: int, link_id: int, action: str, candidate: str | None,
                       who: str) -> Enqueued:
        """Queue resolving one waiting record (one at a time per record)."""
        return self._enqueue(review_jobs.resolve_review, JobIds.resolve_review(link_id), connection_id, link_id,
                             action, candidate, who)

    def sync_preview(self, run_id: int) -> Enqueued:
        """Queue a run's preview."""
        return self._enqueue(firstsync_jobs.preview_run, JobIds.sync_run_job("preview", run_id), run_id)

    def sync_run(self, run_id: int) -> Enqueued:
        """Queue a started run (a no-op while its job waits or runs; a dead worker's job is queued again)."""
        return self._enqueue(firstsync_jobs.execute_run, JobIds.sync_run_job("run", run_id), run_id)

    def sync_retry(self, run_id: int, record_ids: Sequence[int] | None = None) -> Enqueued:
        """Queue the retry of a run's failed records (only ``record_ids`` when given)."""
        if record_ids is None:
            return self._enqueue(firstsync_jobs.retry_run, JobIds.sync_run_job("retry", run_id), run_id)
        ids = sorted(int(i) for i in record_ids)
        return self._enqueue(firstsync_jobs.retry_run, JobIds.sync_retry_records(run_id, ids), run_id, ids)

    def stats(self) -> QueueStats:
        """Workers alive, and jobs waiting and failed per queue."""
        queues = all_queues(self._redis, self._keys)
        return QueueStats(workers=Worker.count(connection=self._redis),
                          depth={q.name: q.count for q in queues},
                          failed={q.name: FailedJobRegistry(queue=q).count for q in queues})

    def _enqueue(self, func: Callable[..., Any], job_id: str, *args: Any) -> Enqueued:
        return Enqueued(job_id, enqueue(self._redis, self._keys, func, *args, job_id=job_id) is not None)
