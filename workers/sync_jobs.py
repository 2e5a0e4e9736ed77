"""Sync jobs beyond the inbound drains: the per-connection CDC poll, the tick that schedules it, the backfill."""

from __future__ import annotations

import logging

from rq import get_current_job
from sqlalchemy import select

from crm_qb.db import db, utcnow
from crm_qb.keys import JobIds
from crm_qb.models import Connection, QboStatus
from crm_qb.runtime import runtime
from crm_qb.sync.context import build_context
from crm_qb.sync.pipeline.backfill import run_backfill
from crm_qb.sync.pipeline.poll import poll_changes
from crm_qb.sync.settings import sync_settings_of
from workers.followup_jobs import scan_connection_followups
from workers.queues import BACKFILL, SCHEDULED, SYNC, enqueue, job

log = logging.getLogger(__name__)


@job(SYNC, timeout=900, retry_intervals=(30, 120, 300))
def poll_qbo_connection(connection_id: int) -> int:
    """Catch up one connection with QBO's CDC under its sync lock; return how many objects were seen."""
    services = runtime().sync_services()
    ctx = build_context(services, connection_id, _job_id())
    try:
        if not ctx.settings.enabled:
            return 0
        with services.connection_lock(connection_id):
            return poll_changes(ctx)
    finally:
        ctx.close()
        services.jobs.check_followups(connection_id, ctx.invoices_changed)
        services.jobs.push_summaries(connection_id, ctx.summaries_to_push())


@job(SCHEDULED, timeout=120)
def schedule_cdc_polls() -> int:
    """Enqueue a CDC poll for every connected connection whose last poll is older than its interval.

    A connection that never synced (no CDC cursor yet) gets its backfill instead: CDC only looks back 30 days and
    the first link must see every customer. The backfill sets the cursor, so polls take over after it.
    """
    rt = runtime()
    now = utcnow()
    due = []
    for connection in db.session.scalars(select(Connection).where(Connection.qbo_status == QboStatus.CONNECTED)):
        settings = sync_settings_of(connection.settings)
        last = connection.cdc_cursor
        if settings.enabled and (last is None or (now - last).total_seconds() >= settings.cdc_poll_seconds):
            due.append((connection.id, settings.cdc_poll_seconds, last is None))
    db.session.rollback()
    count = 0
    for connection_id, every, never_synced in due:
        period = int(now.timestamp() // every)
        if never_synced:
            queued = enqueue(rt.redis, rt.keys, backfill_connection, connection_id,
                             job_id=JobIds.backfill(connection_id))
        else:
            queued = enqueue(rt.redis, rt.keys, poll_qbo_connection, connection_id,
                             job_id=JobIds.cdc_poll(connection_id, period))
        count += 1 if queued else 0
    if count:
        log.info("enqueued %s CDC poll(s)", count)
    return count


@job(BACKFILL, timeout=6 * 3600, retry_intervals=(60, 300, 900))
def backfill_connection(connection_id: int) -> dict[str, object]:
    """Backfill one connection in full (customers, transactions, contacts; then the CDC cursor); return the report."""
    rt = runtime()
    report = run_backfill(rt.sync_services(), connection_id, job_id=_job_id())
    # A backfill can touch thousands of invoices: one scan of the connection, not one job per invoice.
    enqueue(rt.redis, rt.keys, scan_connection_followups, connection_id,
            job_id=JobIds.followups_after_backfill(connection_id))
    return report.to_json()


def _job_id() -> str | None:
    current = get_current_job()
    return current.id if current else None
