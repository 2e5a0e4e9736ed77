"""Worker start-up: an RQ worker that runs every job inside the app context.

``SimpleWorker`` runs jobs in the worker process itself (no fork per job): lower latency, and the database
connection pool is never shared across a fork. Killing the process kills the job it runs; the sweep then
re-enqueues the event and the job's guarded claim keeps the result exactly-once.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from rq.worker import SimpleWorker

from crm_qb.db import db
from crm_qb.qbo.tokens import NeedsReconnectError, NotConnectedError
from crm_qb.runtime import runtime
from workers.queues import QUEUE_NAMES, all_queues

# Conditions a person must act on (reconnect QuickBooks), already recorded on the connection where they arise:
# a job stopped by one is reported in one line, not with a traceback (a traceback says "bug").
EXPECTED: tuple[type[BaseException], ...] = (NeedsReconnectError, NotConnectedError)


class AppWorker(SimpleWorker):
    """An RQ worker that pushes the Flask app context around each job and cleans the session after it."""

    flask_app: Flask

    def perform_job(self, job: Any, queue: Any) -> bool:
        with self.flask_app.app_context():
            try:
                return bool(super().perform_job(job, queue))
            finally:
                db.session.remove()

    def handle_exception(self, job: Any, *exc_info: Any) -> None:
        """Log an expected condition (EXPECTED) in one line; anything else as RQ does, with its traceback."""
        if not isinstance(exc_info[1], EXPECTED):
            super().handle_exception(job, *exc_info)
            return
        self.log.warning("Worker %s: job %s stopped: %s", self.name, job.id, exc_info[1])
        for handler in self._exc_handlers:
            if handler(job, *exc_info) is False:
                break


def build_worker(app: Flask, name: str | None = None, queues: tuple[str, ...] = QUEUE_NAMES) -> AppWorker:
    """A worker for ``app`` serving ``queues`` (default every queue), ingress first."""
    rt = runtime(app)
    served = [q for q in all_queues(rt.redis, rt.keys) if q.name in {rt.keys.queue(name) for name in queues}]
    worker = AppWorker(served, connection=rt.redis, name=name)
    worker.flask_app = app
    return worker


def run_worker(app: Flask, *, burst: bool = False, name: str | None = None,
               queues: tuple[str, ...] = QUEUE_NAMES) -> bool:
    """Work until stopped (or, with ``burst``, until the queues are empty)."""
    # No with_scheduler: RQ would fork a scheduler process that outlives a killed worker. Promoting delayed
    # jobs (retries with intervals) is done by ``crm-qb scheduler`` instead (workers.schedule).
    return bool(build_worker(app, name, queues).work(burst=burst))
