"""Sync jobs beyond the inbound drains: the two catch-up polls, the tick that schedules them, the backfill.

Each connection has two catch-up polls, each on its own cursor: QBO's CDC (``poll_qbo_connection``) backs up
QBO's webhooks, the CRM's ``updated_since`` (``poll_crm_connection``) backs up the CRM's hooks. They run every
``sync.cdc_poll_seconds``; the poll of a side that is not answering for the connection runs every minute as the
probe that ends the outage (crm_qb.sync.pipeline.outage). Neither runs while the connection's sync is off, so
both cursors stay where sync stopped and turning it on catches up from there (``enqueue_catch_up``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from redis import Redis
from rq import get_current_job
from sqlalchemy import select

from crm_qb.db import db, utcnow
from crm_qb.keys import JobIds, RedisKeys
from crm_qb.models import CRM_CONNECTED, Connection, EventSource, QboStatus
from crm_qb.runtime import runtime
from crm_qb.sync.context import build_context
from crm_qb.sync.firstsync.service import held as first_sync_held
from crm_qb.sync.firstsync.service import resume_runs
from crm_qb.sync.pipeline import outage, slowlane
from crm_qb.sync.pipeline.backfill import run_backfill
from crm_qb.sync.pipeline.contact_now import sync_contact_now as run_contact_now
from crm_qb.sync.pipeline.crm_poll import LIVE_PAGES, LargePoll, poll_crm_changes
from crm_qb.sync.pipeline.drain import CRM_RETRIES, DEFERRING
from crm_qb.sync.pipeline.failures import CRM, QBO, side_down
from crm_qb.sync.pipeline.on_demand import drain_waiting, sync_now
from crm_qb.sync.pipeline.poll import poll_changes
from crm_qb.sync.settings import SyncSettings, sync_settings_of
from workers.followup_jobs import scan_connection_followups
from workers.queues import BACKFILL, SCHEDULED, SYNC, bulk_services, enqueue, job, running_bulk

log = logging.getLogger(__name__)

# A round of regular catch-up polls is queued over this many seconds, less than the scheduler's minute between two
# looks (workers/schedule.py), so each round is queued before the next look.
POLL_SPREAD_SECONDS = 40.0


@job(SYNC, timeout=900, retry_intervals=(30, 120, 300))
def poll_qbo_connection(connection_id: int) -> int:
    """Catch up one connection with QBO's CDC under its sync lock; return how many objects were seen."""
    services = runtime().sync_services()
    # A throttled company ends the poll at once (RealmThrottledError): RQ's retry brings it back from the delayed
    # set, and the worker serves other companies meanwhile.
    # Live, it waits for QBO and the CRM no longer than a slow side takes; then the connection is polled as bulk
    # work (pipeline/slowlane.py), with the clients' full timeouts.
    bulk = running_bulk(services.keys)
    live, crm_live = ({}, {}) if bulk else (slowlane.live_qbo_options(), slowlane.live_crm_options())
    ctx = build_context(services, connection_id, _job_id(), crm_options=crm_live, **DEFERRING, **live)
    try:
        if not ctx.settings.enabled:
            return 0
        with services.connection_lock(connection_id):
            seen = poll_changes(ctx)
        outage.note_up(connection_id, (QBO,), services.jobs)
    except Exception as exc:
        _note_outage(connection_id, exc, live=not bulk)
        raise
    finally:
        ctx.close()
        slowlane.record(services.redis, services.keys, [slowlane.Observed.of(connection_id, ctx.qbo, ctx.crm)],
                        in_lane=bulk)
        services.jobs.check_followups(connection_id, ctx.invoices_changed)
        services.jobs.push_summaries(connection_id, ctx.summaries_to_push())
    if not ctx.settings.realtime:  # scheduled (or "Sync now" of a manual connection): the waiting changes too
        drain_waiting(services, connection_id, _job_id())
    return seen


@job(SYNC, timeout=900, retry_intervals=(30, 120, 300))
def sync_connection_now(connection_id: int) -> int:
    """"Sync now": a CDC poll and every change waiting for the connection, whatever its mode; objects seen."""
    return sync_now(runtime().sync_services(), connection_id, _job_id())


@job(SYNC, timeout=300, retry_intervals=(10, 60, 300))
def sync_contact_now(connection_id: int, crm_contact_id: str, who: str = "admin") -> dict[str, Any]:
    """"Sync now" of one contact: it and its linked customer re-read and reconciled, its transactions mirrored."""
    return run_contact_now(runtime().sync_services(), connection_id, crm_contact_id, _job_id(), who).as_json()


@job(SYNC, timeout=900, retry_intervals=(30, 120, 300))
def poll_crm_connection(connection_id: int) -> int:
    """Store the CRM changes no hook announced as events and wake their drain; return how many were stored."""
    services = runtime().sync_services()
    # The CRM's probe too: one quick retry. Live, it waits for the CRM no longer than a slow one takes; then the
    # connection is polled as bulk work (pipeline/slowlane.py), with the connector's full timeout.
    bulk = running_bulk(services.keys)
    crm_options = {"max_retries": CRM_RETRIES, **({} if bulk else slowlane.live_crm_options())}
    ctx = build_context(services, connection_id, _job_id(), crm_options=crm_options)
    try:
        if not ctx.settings.enabled or not _crm_connected(connection_id):
            return 0
        try:
            stored = poll_crm_changes(ctx, page_limit=None if bulk else LIVE_PAGES)
        except LargePoll as large:  # thousands of changes (after a first sync): read them all on the bulk lane
            stored = large.stored
            enqueue(services.redis, services.keys, poll_crm_connection, connection_id,
                    job_id=JobIds.bulk_crm_poll(connection_id), on=BACKFILL)
            log.info("CRM poll of connection %s found more than %s pages of changes: handed to the bulk lane",
                     connection_id, LIVE_PAGES)
        if stored:
            services.jobs.wake(EventSource.CRM, str(connection_id))
        outage.note_up(connection_id, (CRM,), services.jobs)
        return stored
    except Exception as exc:
        _note_outage(connection_id, exc, live=not bulk)
        raise
    finally:
        ctx.close()
        slowlane.record(services.redis, services.keys, [slowlane.Observed.of(connection_id, ctx.qbo, ctx.crm)],
                        in_lane=bulk)


def _crm_connected(connection_id: int) -> bool:
    """False while the CRM's authorization is lost (HubSpot OAuth revoked): nothing to poll until reconnected."""
    status = db.session.scalar(select(Connection.crm_status).where(Connection.id == connection_id))
    db.session.rollback()
    return status == CRM_CONNECTED


def _note_outage(connection_id: int, exc: BaseException, live: bool) -> None:
    """A poll that found its side down starts the side's outage; a live poll's answer timeout is a slow side
    (the poll's end puts the connection in the slow lane), not an outage."""
    db.session.rollback()
    if (side := side_down(exc, live)) is not None:
        outage.note_down(connection_id, side, exc)


@job(SCHEDULED, timeout=120)
def schedule_cdc_polls() -> int:
    """Enqueue the catch-up polls (QBO's CDC, the CRM's) that are due for every connected connection.

    A connection that never synced (no CDC cursor yet) gets its backfill instead: CDC only looks back 30 days and
    the first link must see every customer. The backfill sets both cursors, so polls take over after it. A
    connection with a first-sync run (crm_qb/sync/firstsync) gets neither until its run is done: the run is its
    backfill, started by a person or by its auto-start; a run whose worker died is queued again here (resumed).

    The regular polls of a round are spread over ``POLL_SPREAD_SECONDS`` (``poll_delays``), an outage's probe and
    a backfill are not delayed.
    """
    rt = runtime()
    now = utcnow()
    due: list[_DuePoll] = []
    for connection in db.session.scalars(select(Connection).where(Connection.qbo_status == QboStatus.CONNECTED)
                                  .order_by(Connection.id)):
        settings = sync_settings_of(connection.settings)
        if settings.enabled and settings.mode != "manual":
            due += _due_polls(connection, settings, now)
    db.session.rollback()
    count = 0
    resume_runs(rt.jobs)
    held = {connection_id for connection_id in {poll.connection_id for poll in due} if first_sync_held(connection_id)}
    due = [poll for poll in due if poll.connection_id not in held]
    delays = poll_delays([poll.connection_id for poll in due if poll.spread], POLL_SPREAD_SECONDS)
    for poll in due:
        connection_id = poll.connection_id
        period = int(now.timestamp() // poll.every)
        if poll.kind == "backfill":
            queued = enqueue(rt.redis, rt.keys, backfill_connection, connection_id,
                             job_id=JobIds.backfill(connection_id))
        else:  # a connection whose company or CRM answers slowly, or whose first sync's backlog is still being
            # settled, is polled as bulk work (pipeline/slowlane.py)
            func, job_id = ((poll_qbo_connection, JobIds.cdc_poll(connection_id, period)) if poll.kind == QBO else
                            (poll_crm_connection, JobIds.crm_poll(connection_id, period)))
            lane = BACKFILL if slowlane.in_lane(rt.redis, rt.keys, connection_id, poll.realm_id) else None
            queued = enqueue(rt.redis, rt.keys, func, connection_id, job_id=job_id, on=lane,
                             after=delays[connection_id] if poll.spread else 0.0)
        count += 1 if queued else 0
    if count:
        log.info("enqueued %s catch-up poll(s)", count)
    return count


def poll_delays(connection_ids: Sequence[int], spread: float) -> dict[int, float]:
    """When, in seconds from now, each connection's regular polls of this round start: the connections in turn,
    ``spread / n`` apart (both polls of one connection together).

    Connections wired at the same moment fall due at the same tick, every round after, and a tick that queued all
    their polls at once kept every live worker busy with polls for a moment: the live drains behind them waited
    (docs/benchmarks-history.md, "A poll round at once"). Spread over less than the tick's minute, a round is queued
    before the next tick looks again; the first connection's polls are not delayed."""
    order = list(dict.fromkeys(connection_ids))
    return {connection_id: k * spread / len(order) for k, connection_id in enumerate(order)}


class _DuePoll(NamedTuple):
    """One catch-up poll (or, for a connection that never synced, its backfill) due at this tick."""

    connection_id: int
    realm_id: str | None
    kind: str  # QBO, CRM or "backfill"
    every: int  # its interval, seconds: the polling period in its job id
    probe: bool = False  # an outage's probe (due every minute)

    @property
    def spread(self) -> bool:
        """Whether it takes its connection's turn in the round (``poll_delays``): a regular poll; an outage's probe
        and a backfill are never delayed."""
        return self.kind != "backfill" and not self.probe


def _due_polls(connection: Connection, settings: SyncSettings, now: datetime) -> list[_DuePoll]:
    """Which of a connection's polls are due at ``now``, each with its interval and whether it is an outage's
    probe."""
    if connection.cdc_cursor is None:
        return [_DuePoll(connection.id, connection.qbo_realm_id, "backfill", settings.cdc_poll_seconds)]
    polls = []
    for side, last in ((QBO, connection.cdc_cursor), (CRM, connection.crm_polled_at)):
        if side == CRM and connection.crm_status != CRM_CONNECTED:
            continue
        probe = connection.outage_side == side
        every = outage.PROBE_EVERY_SECONDS if probe else settings.cdc_poll_seconds
        if last is None or (now - last).total_seconds() >= every:
            polls.append(_DuePoll(connection.id, connection.qbo_realm_id, side, every, probe))
    return polls


def enqueue_catch_up(redis: Redis, keys: RedisKeys, connection_id: int) -> int:
    """Enqueue both catch-up polls of a connection now (sync was turned on); return how many were queued."""
    moment = int(utcnow().timestamp())
    polls = ((poll_qbo_connection, JobIds.catch_up("cdc", connection_id, moment)),
             (poll_crm_connection, JobIds.catch_up("crm", connection_id, moment)))
    return sum(1 for func, job_id in polls if enqueue(redis, keys, func, connection_id, job_id=job_id))


@job(BACKFILL, timeout=6 * 3600, retry_intervals=(60, 300, 900))
def backfill_connection(connection_id: int) -> dict[str, object]:
    """Backfill one connection in full (customers, transactions, contacts; then the CDC cursor); return the report."""
    rt = runtime()
    report = run_backfill(bulk_services(rt), connection_id, job_id=_job_id())
    # A backfill can touch thousands of invoices: one scan of the connection, not one job per invoice.
    enqueue(rt.redis, rt.keys, scan_connection_followups, connection_id,
            job_id=JobIds.followups_after_backfill(connection_id))
    return report.to_json()


def _job_id() -> str | None:
    current = get_current_job()
    return current.id if current else None
