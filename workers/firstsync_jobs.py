"""Jobs of the first sync and history imports: compute a preview, run (or resume) a run, retry its failures.

Each takes a run id and reloads the run; the state machine is the domain's (crm_qb/sync/firstsync/service.py):
a job finding its run in another state does nothing, so a job queued twice, or retried after its run moved on,
is harmless.

All three are bulk work on the ``backfill`` queue (served last; a worker started with ``--queues
inbound,sync,scheduled`` never takes them): a preview walks every customer, contact and transaction, a run writes
them, and either lasts minutes, so none may hold the worker a live change needs.
"""

from __future__ import annotations

from rq import get_current_job

from crm_qb.runtime import runtime
from crm_qb.sync.firstsync import service
from workers.queues import BACKFILL, bulk_services, job


@job(BACKFILL, timeout=6 * 3600, retry_intervals=(30, 120, 300))
def preview_run(run_id: int) -> str | None:
    """Compute the run's preview; return its state after (None: it was not waiting for one)."""
    rt = runtime()
    run = service.compute_preview(bulk_services(rt), run_id, job_id=_job_id(),
                                  page_size=rt.settings.backfill_page_size)
    return run.state if run is not None else None


@job(BACKFILL, timeout=6 * 3600, retry_intervals=(60, 300, 900))
def execute_run(run_id: int) -> str | None:
    """Run (or resume) a started run; return its state after (None: it was not running)."""
    rt = runtime()
    run = service.execute(bulk_services(rt), run_id, job_id=_job_id(), page_size=rt.settings.backfill_page_size)
    return run.state if run is not None else None


@job(BACKFILL, timeout=3600, retry_intervals=(60, 300))
def retry_run(run_id: int, record_ids: list[int] | None = None) -> int:
    """Try a finished run's failed records (only ``record_ids`` when given) again; return how many succeeded."""
    return service.retry_failed(bulk_services(runtime()), run_id, job_id=_job_id(), record_ids=record_ids)


def _job_id() -> str | None:
    current = get_current_job()
    return current.id if current else None
