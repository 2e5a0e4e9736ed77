"""Draining inbound events: every pending event of one QBO realm (or one CRM connection), in arrival order.

Ingress does not start one job per event: it wakes one drain per realm (or connection), which works through
every pending event of it. A burst of a thousand webhooks therefore costs one job, and the drain fetches the
changes of a whole batch with one query per entity type (``units``).

A QBO drain first lets a burst of the realm's webhooks that is still arriving arrive (``burst``: at most a second; a
single edit never waits), then routes the realm's new events to every connection of the realm (``routing``: one
delivery per connection, so each connection settles a change for itself). A drain lists a batch of pending events,
then, per connection, takes the connection's sync lock, re-checks which events are still pending, fetches the QBO
state for the batch in bulk and runs one unit of work per customer / contact / transaction. No database transaction
is open during the HTTP calls: each unit stores its result and marks its events processed in one short transaction
at the end. A drain killed mid-way leaves its events pending; the watchdog or the sweep re-runs them and the stored
base makes the re-run write nothing twice (the echo of our own write equals the base). A failing unit counts an
attempt on its own events only (by the kind of failure: crm_qb.sync.rules.retry) and the others go on; when the
failure says a side is down (QBO or the CRM not answering) the connection is marked in an outage and the rest of the
batch waits for that side without attempts, rather than spending the clients' retries once per record. Waiting for
the connection's lock, or for a throttled company, counts no attempt either. The drain raises the first failure at
the end so the job is retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import ColumnElement, select

from crm_qb.crm.errors import CrmNeedsReconnectError
from crm_qb.db import db, utcnow
from crm_qb.models import CRM_CONNECTED, Connection, EventSource, InboundEvent, QboStatus
from crm_qb.qbo.ratebudget import RealmThrottledError
from crm_qb.qbo.tokens import NeedsReconnectError
from crm_qb.sync.context import SyncContext, build_context, settings_of
from crm_qb.sync.firstsync.service import held as first_sync_held
from crm_qb.sync.pacing import no_pace
from crm_qb.sync.pipeline import burst, events, outage, routing, slowlane
from crm_qb.sync.pipeline.events import EventRef
from crm_qb.sync.pipeline.failures import kind_of, side_down
from crm_qb.sync.pipeline.fetch import ChangeCache
from crm_qb.sync.pipeline.units import Unit, crm_units, qbo_units
from crm_qb.sync.rules.retry import ERROR
from crm_qb.sync.services import ConnectionBusyError, SyncServices

log = logging.getLogger(__name__)

DRAIN_BATCH = 200
# A drain never waits for a throttled company: RealmThrottledError ends it and the job comes back from RQ's
# delayed set (workers.jobs), so one throttled tenant does not hold a worker that other tenants need.
# Nor long for a company that answers 5xx or not at all: one quick retry (within 0.5 s, full jitter) rides out a
# blip; past it the event backs off on its own schedule (5 s first) and the connection's outage begins
# (pipeline/outage.py), instead of a worker sleeping through the client's default five (about 15 s) per drain.
DEFERRING: dict[str, Any] = {"defer_throttling": True, "slot_timeout": 2.0, "max_retries": 1, "backoff_cap": 0.5}
# The CRM connector likewise retries a 5xx or a network failure once (its first backoff step: 0.25 to 0.5 s),
# not four times (about 5.6 s asleep on average): a CRM that fails would otherwise hold a worker per change.
CRM_RETRIES = 1
# Nor for long on its connection's lock: another drain holds it for moments, but a first sync holds it for
# minutes. After this wait the drain ends with ConnectionBusyError (no attempt counted) and comes back from RQ's
# delayed set too, instead of holding a worker for LOCK_WAIT_SECONDS, once per hook that woke it.
DRAIN_LOCK_WAIT_SECONDS = 2.0
# And not at all for a holder that has held it this long already: a first sync, or a drain waiting for a company
# that answers slowly (pipeline/slowlane.py), will not be done within the wait. An echo's wait is for a drain that
# took the lock moments ago.
DRAIN_LONG_HOLDER_SECONDS = 1.0
ROUTED_STATUSES = (QboStatus.CONNECTED, QboStatus.NEEDS_RECONNECT)
# What stops every unit of a connection for now, in planning as in running: a grant gone (reconnect) or a throttled
# company. Not an attempt: the events wait, uncounted, for the reconnect or for the deferred drain.
NOT_AN_ATTEMPT: tuple[type[Exception], ...] = (NeedsReconnectError, RealmThrottledError, CrmNeedsReconnectError)

Plan = Callable[[SyncContext, list[EventRef]], list[Unit]]


@dataclass(frozen=True)
class Drain:
    """One drain run: the services it uses and the job it runs in (for the audit log)."""

    services: SyncServices
    job_id: str | None = None
    # The connection whose waiting changes this run syncs although its mode is scheduled or manual (the scheduled
    # poll, "Sync now"); events of other such connections stay pending, uncounted, for their own turn.
    scheduled_for: int | None = None
    changes: ChangeCache | None = None  # CDC answers the realm's drains read (pipeline/fetch.py)
    # At most this many batches per connection in one run (None: until nothing is pending). A job that drains
    # with a turn wakes a new drain at the back of the queue when its turn ran out (``unfinished``), so one
    # tenant's flood of events (a first sync's echoes) takes turns with the other tenants' drains.
    turn: int | None = None
    unfinished: list[int] = field(default_factory=list)  # connections whose turn ran out with events left
    held: list[int] = field(default_factory=list)  # connections whose events wait for their first sync
    # Seconds until the next turn of each connection whose events wait for it (a side is down): the job comes
    # back then from RQ's delayed set, so they do not wait for the sweep when no new change wakes a drain.
    turn_waits: list[float] = field(default_factory=list)
    # How each connection's clients fared (the slowest answer of QBO or the CRM): the job puts a slow side's
    # connection on the bulk lane, and takes a quick one's off it (slowlane).
    observed: list[slowlane.Observed] = field(default_factory=list)
    # A live drain (not one on the bulk lane): it waits for QBO and the CRM no longer than a slow side takes and does
    # not send a call that got no answer again (slowlane.live_qbo_options, live_crm_options); a bulk one waits the
    # clients' timeouts.
    live: bool = False

    def __post_init__(self) -> None:
        if self.changes is None:
            object.__setattr__(self, "changes", ChangeCache(self.services.redis, self.services.keys))

    def qbo_realm(self, realm_id: str) -> int:
        """Route the realm's new events to its connections, then sync each connection's deliveries; settled count.

        Each connection of the realm gets its own delivery of every change (``routing``), so one connection
        settling a change never hides it from another; a failure of one connection does not stop the others.
        """
        routes = _connections_of_realm(realm_id)
        if not routes:
            routing.ignore_unrouted(realm_id, "unknown realm")
            return 0
        if burst.settle(realm_id) and self.changes is not None:  # a burst was arriving: let it, read it by CDC
            self.changes.burst = True
        routing.route_realm(realm_id, routes)
        routing.settle_orphans(realm_id, routes)
        settled, failure, busy = 0, None, None
        for connection_id in routes:
            where = ((InboundEvent.source == EventSource.QBO) & (InboundEvent.realm_id == realm_id)
                     & (InboundEvent.connection_id == connection_id))
            try:
                settled += self._drain(connection_id, where,
                                       partial(self.run_for_connection, connection_id, plan=qbo_units))
            except RealmThrottledError:
                raise  # the company is throttled for every connection of it
            except ConnectionBusyError as exc:
                busy = busy or exc  # this connection's deliveries wait for its lock; the others go on
            except Exception as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        if busy is not None:
            raise busy
        return settled

    def crm_connection(self, connection_id: int) -> int:
        """Sync every pending CRM event of one connection (coalesced per contact); return how many were settled."""
        where = (InboundEvent.source == EventSource.CRM) & (InboundEvent.connection_id == connection_id)
        return self._drain(connection_id, where,
                           lambda batch: self.run_for_connection(connection_id, batch, crm_units))

    def _drain(self, connection_id: int, where: ColumnElement[bool],
               apply: Callable[[list[EventRef]], None]) -> int:
        """``_drain`` within this run's turn; note the connection when its turn ran out with events left."""
        settled, more = _drain(where, apply, self.turn)
        if more:
            self.unfinished.append(connection_id)
        return settled

    def run_for_connection(self, connection_id: int, batch: list[EventRef], plan: Plan) -> None:
        """Run ``plan``'s units for ``batch`` under the connection's lock, unless it is off or disconnected; raise
        ``_Waiting`` when its events wait for something that wakes the drain again."""
        settings = settings_of(connection_id)
        if not settings.enabled:
            events.skip_disabled(connection_id, self.job_id, batch)
            return
        if not settings.realtime and self.scheduled_for != connection_id:
            log.info("connection %s syncs %s; %s event(s) wait for it", connection_id, settings.mode, len(batch))
            raise _Waiting
        if first_sync_held(connection_id):
            # Nothing is written before the operator starts the first sync (crm_qb/sync/firstsync); the run covers
            # what these events announce, and its end wakes the drains for what changed meanwhile.
            log.info("connection %s waits for its first sync; %s event(s) wait for it", connection_id, len(batch))
            self.held.append(connection_id)
            raise _Waiting
        state = _state_of(connection_id)
        if not state.connected:
            # Needs reconnect or disconnected (QuickBooks or the CRM): call nobody, count no attempt, keep the
            # events pending. Reconnecting wakes the drains again (events.wake_connection), so no change made
            # meanwhile is lost.
            log.info("connection %s is not connected to QuickBooks or its CRM; %s event(s) wait for reconnect",
                     connection_id, len(batch))
            raise _Waiting
        options: dict[str, Any] = dict(DEFERRING)
        crm_options: dict[str, Any] = {"max_retries": CRM_RETRIES}
        if state.down is not None:
            # A side is down: one drain per turn calls it, once, without the client's retry; the others' events
            # wait for the next turn (or the end of the outage, which wakes them). A failing company would
            # otherwise hold a worker other tenants need for every change it receives.
            wait = outage.take_turn(self.services.redis, self.services.keys, connection_id, state.since)
            if wait is not None:
                outage.hold(connection_id, [event.id for event in batch], state.down,
                            utcnow() + timedelta(seconds=wait))
                self.turn_waits.append(wait)
                raise _Waiting
            options["max_retries"] = crm_options["max_retries"] = 0
        if self.live:
            options |= slowlane.live_qbo_options()
            crm_options |= slowlane.live_crm_options()
        ctx = build_context(self.services, connection_id, self.job_id, crm_options=crm_options, **options)
        ctx.qbo_changes = self.changes
        try:
            with self.services.connection_lock(connection_id, wait=DRAIN_LOCK_WAIT_SECONDS,
                                               long_holder=DRAIN_LONG_HOLDER_SECONDS):
                still = events.still_pending(batch)
                if still:
                    self._run(ctx, plan, still)
        except (NeedsReconnectError, CrmNeedsReconnectError) as exc:
            # Expected, not a failure: the grant is gone (now marked); the events wait for the reconnect.
            log.warning("connection %s needs reconnect (%s); %s event(s) wait for it", connection_id, exc.reason,
                        len(batch))
        finally:
            ctx.close()
            self.observed.append(slowlane.Observed.of(connection_id, ctx.qbo, ctx.crm))
            # Invoices mirrored by this drain (committed unit by unit) get their follow-ups checked right away,
            # and changed customers their summary pushed to the CRM when the connection asks for it.
            self.services.jobs.check_followups(connection_id, ctx.invoices_changed)
            self.services.jobs.push_summaries(connection_id, ctx.summaries_to_push())

    def _run(self, ctx: SyncContext, plan: Plan, batch: list[EventRef]) -> None:
        """Plan and run the units of ``batch``; a side that answered ends its outage, one that did not starts it."""
        try:
            units = plan(ctx, batch)
        except NOT_AN_ATTEMPT:
            db.session.rollback()
            raise
        except Exception as exc:
            db.session.rollback()
            if len(batch) > 1 and kind_of(exc) == ERROR:
                # One record may have broken the batch's bulk fetch: plan each alone, so only that one fails.
                log.warning("planning %s events for connection=%s failed (%s); trying each alone", len(batch),
                            ctx.connection_id, type(exc).__name__)
                self._run_each(ctx, plan, batch)
                return
            if (side := side_down(exc, self.live)) is not None:
                outage.note_down(ctx.connection_id, side, exc)
            for event in batch:
                events.record_failure(event.id, exc, schedule=self.services.retry_schedule)
            raise _Recorded(exc) from exc
        succeeded = _run_units(ctx, units, self.services.retry_schedule, self.services.pace, self.live)
        if succeeded:
            outage.note_up(ctx.connection_id, outage.BOTH, self.services.jobs)

    def _run_each(self, ctx: SyncContext, plan: Plan, batch: list[EventRef]) -> None:
        """Run ``batch`` one event at a time; raise the first failure (already recorded) at the end."""
        failure: _Recorded | None = None
        for event in batch:
            try:
                self._run(ctx, plan, [event])
            except _Recorded as exc:
                failure = failure or exc
        if failure is not None:
            raise failure


def _drain(where: ColumnElement[bool], apply: Callable[[list[EventRef]], None],
           turn: int | None = None) -> tuple[int, bool]:
    """Apply pending events batch by batch (each seen once per run), at most ``turn`` batches; raise the first
    failure at the end. Return how many were settled and whether the turn ran out with a full batch behind it."""
    settled, after, failure, batches = 0, 0, None, 0
    more = False
    while True:
        batch = events.pending(where, after, DRAIN_BATCH)
        if not batch:
            break
        after = batch[-1].id
        try:
            apply(batch)
        except _Recorded as exc:
            failure = failure or exc.cause
        except _Waiting:
            break  # the connection waits (its first sync, its schedule, a reconnect), which wakes its drains again
        except (RealmThrottledError, ConnectionBusyError):
            raise  # not an attempt: the events wait, uncounted, for the deferred drain
        except Exception as exc:
            db.session.rollback()
            for event in batch:
                events.record_failure(event.id, exc)
            failure = failure or exc
        settled += events.count_settled([event.id for event in batch])
        batches += 1
        if len(batch) < DRAIN_BATCH:
            break
        if turn is not None and batches >= turn:
            more = True
            break
    if failure is not None:
        raise failure
    return settled, more


def _connections_of_realm(realm_id: str) -> list[int]:
    ids = list(db.session.scalars(
        select(Connection.id).where(Connection.qbo_realm_id == realm_id, Connection.qbo_status.in_(ROUTED_STATUSES))
        .order_by(Connection.id)
    ))
    db.session.rollback()
    return ids


@dataclass(frozen=True)
class _State:
    connected: bool  # to QuickBooks and to its CRM
    down: str | None  # the side in an outage (crm_qb.sync.pipeline.outage), if any
    since: datetime | None  # when that outage began


def _state_of(connection_id: int) -> _State:
    row = db.session.execute(select(Connection.qbo_status, Connection.crm_status, Connection.outage_side,
                                    Connection.outage_since).where(Connection.id == connection_id)).first()
    db.session.rollback()
    if row is None:
        return _State(False, None, None)
    return _State(row.qbo_status == QboStatus.CONNECTED and row.crm_status == CRM_CONNECTED, row.outage_side,
                  row.outage_since)


def _run_units(ctx: SyncContext, units: list[Unit], schedule: tuple[float, ...],
               pace: Callable[[], None] = no_pace, live: bool = False) -> int:
    """Run every unit; return how many succeeded. A failing unit counts an attempt on its events; after a side
    went down (or, in a ``live`` drain, did not answer in time: it is slow) the remaining units wait for it
    uncounted; the first failure is re-raised at the end. ``pace`` is called before each unit (a bulk drain's: it
    gives way to live work, crm_qb.sync.pacing)."""
    failure: Exception | None = None
    succeeded = 0
    for index, unit in enumerate(units):
        pace()
        try:
            outcome = unit.run()
            succeeded += 1
            log.info("sync %s connection=%s job=%s: %s", unit.label, ctx.connection_id, ctx.job_id, outcome)
        except NOT_AN_ATTEMPT:
            db.session.rollback()
            raise  # no unit of this connection can run now (reconnect, or throttled); its events wait, uncounted
        except Exception as exc:
            db.session.rollback()
            log.warning("sync %s connection=%s job=%s failed: %s", unit.label, ctx.connection_id, ctx.job_id,
                        type(exc).__name__)
            for event_id in unit.events:
                events.record_failure(event_id, exc, schedule=schedule)
            failure = failure or exc
            if (side := side_down(exc)) is not None:
                slow = side_down(exc, live) is None  # a live timeout: the drain's end puts it in the slow lane
                if not slow:
                    outage.note_down(ctx.connection_id, side, exc)
                _wait_for_side(ctx.connection_id, units[index + 1:], unit, side, slow)
                break
    if failure is not None:
        raise _Recorded(failure)
    return succeeded


def _wait_for_side(connection_id: int, rest: list[Unit], failed: Unit, side: str, slow: bool = False) -> None:
    """Let the units after ``failed`` wait, uncounted, until its next attempt (or until ``side`` answers); a
    ``slow`` side's, for the bulk lane that drain will then hand them to (no outage to end)."""
    until = events.next_attempt_of(failed.events) or utcnow()
    ids = [event_id for unit in rest for event_id in unit.events]
    if slow:
        events.defer(ids, until, f"waiting: {slowlane.SIDE_NAMES[side]} answers slowly; synced as bulk work")
    else:
        outage.hold(connection_id, ids, side, until)


class _Waiting(Exception):
    """The connection's events wait for something else to wake their drain (its first sync's end, its scheduled
    sync, a reconnect): the drain stops there, and queues no next turn (which would only find them waiting)."""


class _Recorded(Exception):
    """A unit failure whose attempts are already counted (the drain must not count them again)."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause
