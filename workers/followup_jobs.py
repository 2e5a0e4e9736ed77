"""Follow-up jobs: the hourly fan-out to one scan per connection, and scans of one connection or invoice.

Each job takes ids, reloads state and is safe to run twice (``crm_qb.sync.followups`` reserves every task in the
database before it talks to the CRM). A transient CRM failure fails the job so RQ retries it later; whatever
the failed run left pending is finished by the retry or the next scan.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from redis import Redis
from rq.job import Job
from sqlalchemy import select

from crm_qb.db import db, utcnow
from crm_qb.keys import JobIds, RedisKeys
from crm_qb.models import Connection
from crm_qb.runtime import runtime
from crm_qb.sync.followups import service as followups
from workers.queues import BACKFILL, SCHEDULED, SYNC, bulk_services, enqueue, job

log = logging.getLogger(__name__)

SCAN_EVERY_SECONDS = 3600


@job(SCHEDULED, timeout=300)
def enqueue_followup_scans() -> int:
    """Enqueue this period's follow-up scan of every connection; return how many were newly enqueued."""
    rt = runtime()
    period = int(utcnow().timestamp() // SCAN_EVERY_SECONDS)
    ids = list(db.session.scalars(select(Connection.id).order_by(Connection.id)))
    db.session.rollback()
    count = sum(1 for connection_id in ids
                if enqueue(rt.redis, rt.keys, scan_connection_followups, connection_id,
                           job_id=JobIds.followup_scan(connection_id, period)))
    log.info("enqueued %s follow-up scan(s) for period %s", count, period)
    return count


@job(BACKFILL, timeout=1800, retry_intervals=(60, 300, 900))
def scan_connection_followups(connection_id: int) -> dict[str, Any]:
    """Run the follow-up scan of one connection now, as bulk work; return what it did.

    A scan checks every open follow-up of its connection against the CRM and makes the tasks due: after a first
    sync of an old company that is thousands of rows (a hundred per CRM call where the CRM can read and create
    tasks in batches, else a call or two each). On a live queue the hourly scan of such a connection held a live
    worker for seconds (a benchmark tenant just after its 3,000-customer first sync: 14.6 s), while the other
    tenants' changes waited for it. It runs on the bulk lane and gives way to live work before each batch and row
    (crm_qb.sync.pacing); a scan of one invoice after it synced (``scan_invoice_followups``) is still live work."""
    return followups.scan_connection(bulk_services(runtime()), int(connection_id)).to_json()


@job(SYNC, timeout=300, retry_intervals=(30, 120, 600))
def scan_invoice_followups(connection_id: int, qbo_invoice_id: str) -> dict[str, Any]:
    """Bring one invoice's follow-ups up to date (after it was synced); return what was done."""
    return followups.scan_invoice(runtime().sync_services(), int(connection_id), str(qbo_invoice_id)).to_json()


@job(SYNC, timeout=300, retry_intervals=(30, 120, 600))
def close_invoice_followups(connection_id: int, qbo_invoice_id: str, reason: str) -> dict[str, Any]:
    """Complete one invoice's open follow-ups with ``reason`` (paid, voided, deleted, moved, ...)."""
    return followups.close_followups(runtime().sync_services(), int(connection_id), str(qbo_invoice_id),
                                     reason).to_json()


def enqueue_invoice_scan(redis: Redis, keys: RedisKeys, connection_id: int, qbo_invoice_id: str,
                         on: str | None = None) -> Job | None:
    """Enqueue scan_invoice_followups for one invoice (on queue ``on`` when given); None when one is already
    waiting (it reads fresh state)."""
    return enqueue(redis, keys, scan_invoice_followups, int(connection_id), str(qbo_invoice_id),
                   job_id=JobIds.followup_invoice(connection_id, qbo_invoice_id), on=on)


def enqueue_after_sync(redis: Redis, keys: RedisKeys, connection_id: int, invoice_ids: Iterable[str],
                       on: str | None = None) -> int:
    """Ask for a follow-up check of every invoice a sync job just changed (on queue ``on`` when given); return how
    many scans were queued."""
    return sum(1 for invoice_id in sorted(invoice_ids)
               if enqueue_invoice_scan(redis, keys, connection_id, invoice_id, on=on) is not None)
