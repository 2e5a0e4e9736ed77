"""Draining inbound events: every pending event of one QBO realm (or one CRM connection), in arrival order.

Ingress does not start one job per event: it wakes one drain per realm (or connection), which works through
every pending event of it. A burst of a thousand webhooks therefore costs one job, and the drain fetches the
changes of a whole batch with one query per entity type (``units``).

A drain lists a batch of pending events, then, per connection, takes the connection's sync lock, re-checks which
events are still pending, fetches the QBO state for the batch in bulk and runs one unit of work per customer /
contact / transaction. No database transaction is open during the HTTP calls: each unit stores its result and
marks its events processed in one short transaction at the end. A drain killed mid-way leaves its events
pending; the sweep re-runs them and the stored base makes the re-run write nothing twice (the echo of our own
write equals the base). A failing unit counts an attempt on its own events only; the others go on, and the
drain raises the first failure at the end so the job is retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, select

from crm_qb.db import db
from crm_qb.models import Connection, EventSource, InboundEvent, QboStatus
from crm_qb.qbo.tokens import NeedsReconnectError
from crm_qb.sync.context import SyncContext, build_context, settings_of
from crm_qb.sync.pipeline import events
from crm_qb.sync.pipeline.events import EventRef
from crm_qb.sync.pipeline.fetch import ChangeCache
from crm_qb.sync.pipeline.units import Unit, crm_units, qbo_units
from crm_qb.sync.services import SyncServices

log = logging.getLogger(__name__)

DRAIN_BATCH = 200
ROUTED_STATUSES = (QboStatus.CONNECTED, QboStatus.NEEDS_RECONNECT)

Plan = Callable[[SyncContext, list[EventRef]], list[Unit]]


@dataclass(frozen=True)
class Drain:
    """One drain run: the services it uses and the job it runs in (for the audit log)."""

    services: SyncServices
    job_id: str | None = None
    changes: ChangeCache | None = None  # CDC answers the realm's drains read (pipeline/fetch.py)

    def __post_init__(self) -> None:
        if self.changes is None:
            object.__setattr__(self, "changes", ChangeCache(self.services.redis, self.services.keys))

    def qbo_realm(self, realm_id: str) -> int:
        """Sync every pending QBO event of ``realm_id`` (coalesced per customer); return how many were settled."""
        routes = _connections_of_realm(realm_id)
        where = (InboundEvent.source == EventSource.QBO) & (InboundEvent.realm_id == realm_id)
        return _drain(where, lambda batch: self.apply_qbo_batch(batch, routes))

    def crm_connection(self, connection_id: int) -> int:
        """Sync every pending CRM event of one connection (coalesced per contact); return how many were settled."""
        where = (InboundEvent.source == EventSource.CRM) & (InboundEvent.connection_id == connection_id)
        return _drain(where, lambda batch: self.run_for_connection(connection_id, batch, crm_units))

    def apply_qbo_batch(self, batch: list[EventRef], connection_ids: list[int]) -> None:
        """Sync a batch of one realm's events for every connection of the realm, each under its connection lock."""
        if not connection_ids:
            events.ignore([event.id for event in batch], "unknown realm")
            return
        for connection_id in connection_ids:
            self.run_for_connection(connection_id, batch, qbo_units)

    def run_for_connection(self, connection_id: int, batch: list[EventRef], plan: Plan) -> None:
        """Run ``plan``'s units for ``batch`` under the connection's lock, unless it is off or disconnected."""
        if not settings_of(connection_id).enabled:
            events.skip_disabled(connection_id, self.job_id, batch)
            return
        if not _connected(connection_id):
            # Needs reconnect or disconnected: call nobody, count no attempt, keep the events pending.
            # Reconnecting wakes the drains again (events.wake_connection), so no change made meanwhile is lost.
            log.info("connection %s is not connected to QuickBooks; %s event(s) wait for reconnect", connection_id,
                     len(batch))
            return
        ctx = build_context(self.services, connection_id, self.job_id)
        ctx.qbo_changes = self.changes
        try:
            with self.services.connection_lock(connection_id):
                still = events.still_pending(batch)
                if still:
                    _run_units(ctx, plan(ctx, still))
        except NeedsReconnectError as exc:
            # Expected, not a failure: the grant is gone (now marked); the events wait for the reconnect.
            log.warning("connection %s needs reconnect (%s); %s event(s) wait for it", connection_id, exc.reason,
                        len(batch))
        finally:
            ctx.close()
            # Invoices mirrored by this drain (committed unit by unit) get their follow-ups checked right away,
            # and changed customers their summary pushed to the CRM when the connection asks for it.
            self.services.jobs.check_followups(connection_id, ctx.invoices_changed)
            self.services.jobs.push_summaries(connection_id, ctx.summaries_to_push())


def _drain(where: ColumnElement[bool], apply: Callable[[list[EventRef]], None]) -> int:
    """Apply pending events batch by batch (each seen once per run); raise the first failure at the end."""
    settled, after, failure = 0, 0, None
    while True:
        batch = events.pending(where, after, DRAIN_BATCH)
        if not batch:
            break
        after = batch[-1].id
        try:
            apply(batch)
        except _Recorded as exc:
            failure = failure or exc.cause
        except Exception as exc:
            db.session.rollback()
            for event in batch:
                events.record_failure(event.id, exc)
            failure = failure or exc
        settled += events.count_settled([event.id for event in batch])
        if len(batch) < DRAIN_BATCH:
            break
    if failure is not None:
        raise failure
    return settled


def _connections_of_realm(realm_id: str) -> list[int]:
    ids = list(db.session.scalars(
        select(Connection.id).where(Connection.qbo_realm_id == realm_id, Connection.qbo_status.in_(ROUTED_STATUSES))
        .order_by(Connection.id)
    ))
    db.session.rollback()
    return ids


def _connected(connection_id: int) -> bool:
    status = db.session.scalar(select(Connection.qbo_status).where(Connection.id == connection_id))
    db.session.rollback()
    return status == QboStatus.CONNECTED


def _run_units(ctx: SyncContext, units: list[Unit]) -> None:
    """Run every unit; a failing unit counts an attempt on its events and the first failure is re-raised."""
    failure: Exception | None = None
    for unit in units:
        try:
            outcome = unit.run()
            log.info("sync %s connection=%s job=%s: %s", unit.label, ctx.connection_id, ctx.job_id, outcome)
        except NeedsReconnectError:
            db.session.rollback()
            raise  # no unit of this connection can run until it is reconnected; its events wait, uncounted
        except Exception as exc:
            db.session.rollback()
            log.warning("sync %s connection=%s job=%s failed: %s", unit.label, ctx.connection_id, ctx.job_id,
                        type(exc).__name__)
            for event_id in unit.events:
                events.record_failure(event_id, exc)
            failure = failure or exc
    if failure is not None:
        raise _Recorded(failure)


class _Recorded(Exception):
    """A unit failure whose attempts are already counted (the drain must not count them again)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause
