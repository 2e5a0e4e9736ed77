"""The inbound-event state machine: every change reported to crm-qb is a row that moves through these states.

::

    stored ──▶ pending ──▶ processed      (a unit of sync work settled it, in the transaction of its result)
      │           ├──────▶ ignored        (unknown realm; or an entity crm-qb does not sync, decided at storing)
      │           └──────▶ failed         (its retry schedule ran out; ``replay`` puts it back to pending)
      ├─ rejected: an identifier no backend can store (too long, a NUL); kept with the reason, never synced
      └─ duplicate: dropped by the unique (source, dedupe_key) constraint, not by a check

Ingress stores notices (``store``) and commits before anything is enqueued; drains read pending batches
(``pending``), re-check them under the connection's lock (``still_pending``), and each unit of work marks its own
events processed (``mark_processed``: a guarded UPDATE, so two racing drains apply an event once). A failed unit
counts an attempt on its events only (``record_failure``), by the kind of failure (crm_qb.sync.rules.retry):
waiting (a lock, a rate limit) counts nothing; a transient failure backs the event off along a schedule of about
24 hours (``next_attempt_at``: drains and the sweep leave it until then), anything else along 8 attempts. The
rest of a batch whose side went down waits without an attempt (``defer``), and a connection that answers again
releases its waiting events at once (``release``, from crm_qb.sync.pipeline.outage). Events of a connection
whose sync is off are settled with an audit entry (``skip_disabled``; the catch-up polls bring those changes
back when it is turned on); events of a connection that must reconnect stay pending, uncounted, and
``wake_connection`` re-wakes them once it is connected again. The sweep finds pending events nobody is working on
(``stranded``).

Which QBO entities are synced is the transaction registry's list plus customers and the reference lists
(``is_synced``), so a type added to the registry is never stored as ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from functools import partial
from itertools import chain
from typing import Any

from sqlalchemy import ColumnElement, TypeDecorator, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection as DbConnection
from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.dml import Insert

from crm_qb.db import db, utcnow
from crm_qb.jobqueue import JobQueue
from crm_qb.models import AuditEntry, Connection, EventSource, EventStatus, InboundEvent
from crm_qb.models.types import fit_values, storable_key
from crm_qb.sync.pipeline.failures import kind_of
from crm_qb.sync.pipeline.prepared import PreparedStatement
from crm_qb.sync.rules.retry import ERROR_SCHEDULE, TRANSIENT_SCHEDULE, WAIT, next_delay
from crm_qb.sync.transactions import registry

log = logging.getLogger(__name__)

MAX_ATTEMPTS = len(ERROR_SCHEDULE) + 1  # an unexpected or permanent failure fails the event at its 8th attempt
CUSTOMER = "Customer"
CONTACT = "Contact"
ACTIVITY = "Activity"  # a CRM activity (DESIGN §9): drained with the connection's contacts, applied by sync/time
# Reference lists whose changes are noted (audited) but need no sync of their own.
NOTED_QBO_ENTITIES: tuple[str, ...] = ("Term", "PaymentMethod", "Preferences")
DEDUPE_KEY_LENGTH = 400


@dataclass(frozen=True)
class Notice:
    """One entity change as ingress parsed it, ready to be stored as an inbound event."""

    dedupe_key: str
    realm_id: str | None
    entity: str
    entity_id: str | None
    operation: str
    occurred_at: datetime | None
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def synced(self) -> bool:
        """Whether crm-qb acts on this entity type (others are recorded and ignored)."""
        return is_synced(self.entity)


@dataclass(frozen=True)
class EventRef:
    """What the sync needs of one inbound event (read before the work, outside any write transaction)."""

    id: int
    entity: str
    entity_id: str | None
    operation: str
    occurred_at: datetime | None
    payload: Mapping[str, Any]
    received_at: datetime | None = None  # when ingress received it (crm-qb's clock): fetch.py's cache rule


def reported_version(event: EventRef) -> str | None:
    """The CRM version the event says its change produced, or None when it does not say.

    HubSpot's hooks and the CRM poll store it as ``payload["version"]``; a REST contract hook for a created or
    updated contact carries the contact as the change left it (docs/architecture.md §5), whose ``version`` is that
    version: an echo of crm-qb's own write, or of a contact the backfill created, reports the version its link
    already agreed on and is settled without reading the contact again.
    """
    version = event.payload.get("version")
    if version is None and event.payload.get("type") in ("contact.created", "contact.updated"):
        contact = event.payload.get("contact")
        version = contact.get("version") if isinstance(contact, Mapping) else None
    return None if version is None or isinstance(version, bool) else str(version)


def is_synced(entity: str) -> bool:
    """Whether a QBO entity's changes are synced (customers, registered transaction types, noted lists)."""
    return entity == CUSTOMER or entity in NOTED_QBO_ENTITIES or entity in registry.NAMES


def store(source: EventSource, notices: Sequence[Notice], connection_id: int | None = None,
          conn: DbConnection | None = None, received: Sequence[datetime] | None = None) -> list[Notice]:
    """Insert notices as events (pending, or ignored when not synced), skipping duplicates; the new pending ones.

    The caller commits, then wakes a drain for what this returns (the hot path of every webhook: one INSERT).
    ``conn`` is the transaction to insert in: ingress's group commit passes its own Core connection and gets
    the statement as the driver takes it (``_DriverInsert``), which costs less than the ORM session's or a Core
    ``insert()``'s; default, the session's.

    ``received`` is each notice's receipt time (its request's, from group commit), default now. Requests stored
    in one group keep their own times, so a drain can tell a burst still arriving in separate requests from one
    request carrying many changes (pipeline/burst.py).
    """
    if not notices:
        return []
    rows = [_row(source, n, connection_id) for n in notices]
    if received is not None:
        for row, when in zip(rows, received, strict=True):
            row["received_at"] = when
    if conn is not None:
        inserted = _DriverInsert.of(conn.dialect).run(conn, rows)
    else:
        inserted = _insert_core(db.session.connection(), rows)
    return [n for n in notices if storable_key(n.dedupe_key, DEDUPE_KEY_LENGTH) in inserted]


def _insert_core(connection: DbConnection, rows: list[dict[str, Any]]) -> set[str]:
    """Insert ``rows`` with SQLAlchemy's skip-duplicates statement; the keys stored as pending."""
    stmt = _insert_statement(connection.dialect.name)
    # Parameters passed separately (not .values(rows)) keep the compiled statement in SQLAlchemy's cache.
    result = connection.execute(stmt, rows) if len(rows) > 1 else connection.execute(stmt, rows[0])
    return {row.dedupe_key for row in result if row.status == EventStatus.PENDING}


_INSERTS: dict[str, Insert] = {}


def _insert_statement(dialect: str) -> Insert:
    """The skip-duplicates INSERT ... RETURNING of events for ``dialect``, built once (it runs per webhook)."""
    stmt = _INSERTS.get(dialect)
    if stmt is None:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        table = InboundEvent.__table__  # Core, not the ORM bulk path
        stmt = _INSERTS[dialect] = (insert(table).on_conflict_do_nothing(index_elements=["source", "dedupe_key"])
                                    .returning(table.c.dedupe_key, table.c.status))
    return stmt


ROWS_PER_INSERT = 200  # events in one driver-level INSERT (13 parameters each: within SQLite's and PostgreSQL's caps)
_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


class _DriverInsert:
    """The skip-duplicates INSERT of events as SQL text with positional parameters, for one dialect.

    The same statement as ``_insert_statement`` (both backends spell ``ON CONFLICT ... DO NOTHING RETURNING``
    alike), without SQLAlchemy building a cache key and parameters for a Core statement on every call: each value
    goes through its column type's own bind processing (``Key``'s check, UTC times, JSON). On SQLite the text for
    a number of rows is made once (``VALUES (...), (...)``). On PostgreSQL the rows go as one JSON parameter
    (``json_populate_recordset`` into the table's own row type, after the same bind processing): one text for
    every group size, prepared on the server once (no parse and plan per group), where a text per size was
    parsed again on the client for every group of 4 rows or more, and one string to send where psycopg adapted
    13 parameters a row (or 13 arrays) in Python. It runs on the connection's DBAPI cursor (``_execute``), or on
    a psycopg connection in autocommit (group commit's lanes) as one libpq call of the prepared statement
    (``prepared.py``), with errors, a lost connection and execution events handled as ``exec_driver_sql``
    handles them. Built per dialect on first use.
    """

    _BUILT: dict[tuple[str, str], _DriverInsert] = {}

    def __init__(self, dialect: Dialect) -> None:
        table = InboundEvent.__table__
        sample = _row(EventSource.QBO, Notice("", None, "", None, "", None), None)
        self.columns = (*sample, "received_at")  # every column _row fills, and the receipt time (default: now)
        self.processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
                           for name in self.columns]
        mark = _PLACEHOLDERS[dialect.paramstyle]
        self._values = "(" + ", ".join([mark] * len(self.columns)) + ")"
        self._head = f"INSERT INTO {table.name} ({', '.join(self.columns)}) "
        self._tail = " ON CONFLICT (source, dedupe_key) DO NOTHING RETURNING dedupe_key, status"
        self._texts: dict[int, str] = {}
        self._json = dialect.name == "postgresql"
        self._prepared: PreparedStatement | None = None
        if self._json:  # the column types' own processing, without the driver-level wrapping (e.g. Jsonb)
            self.processors = [_decorated(table.c[name].type, dialect) for name in self.columns]
            names = ", ".join(self.columns)
            self._texts[0] = (f"{self._head}SELECT {names} FROM json_populate_recordset(NULL::{table.name}, "
                              f"{mark}){self._tail}")
            if dialect.driver == "psycopg":  # one libpq call where psycopg's cursor makes several (prepared.py)
                text = self._texts[0].replace(mark, "$1")
                digest = hashlib.sha256(text.encode()).hexdigest()[:12]
                self._prepared = PreparedStatement(f"crm_qb_insert_events_{digest}", text)

    @classmethod
    def of(cls, dialect: Dialect) -> _DriverInsert:
        """The statement for ``dialect`` (it depends only on the dialect and its driver)."""
        key = (dialect.name, dialect.driver)
        built = cls._BUILT.get(key)
        if built is None:
            built = cls._BUILT[key] = cls(dialect)
        return built

    def text(self, rows: int) -> str:
        """The statement inserting ``rows`` events (PostgreSQL: any number)."""
        if self._json:
            return self._texts[0]
        text = self._texts.get(rows)
        if text is None:
            text = self._texts[rows] = self._head + "VALUES " + ", ".join([self._values] * rows) + self._tail
        return text

    def run(self, connection: DbConnection, rows: list[dict[str, Any]]) -> set[str]:
        """Insert ``rows`` (``ROWS_PER_INSERT`` to a statement); the keys stored as pending."""
        now, pending = utcnow(), EventStatus.PENDING.value
        inserted: set[str] = set()
        for start in range(0, len(rows), ROWS_PER_INSERT):
            page = rows[start:start + ROWS_PER_INSERT]
            values = [[value if process is None else process(value)
                       for value, process in zip(self._values_of(row, now), self.processors, strict=True)]
                      for row in page]
            if self._json:
                records = [dict(zip(self.columns, row, strict=True)) for row in values]
                params: tuple[Any, ...] = (json.dumps(records, default=_json_value, separators=(",", ":")),)
            else:
                params = tuple(chain(*values))
            inserted.update(key for key, status in _execute(connection, self.text(len(page)), params,
                                                            self._prepared)
                            if status == pending)
        return inserted

    def _values_of(self, row: dict[str, Any], now: datetime) -> list[Any]:
        return [row[name] if name != "received_at" else row.get(name, now) for name in self.columns]


def _execute(connection: DbConnection, statement: str, params: tuple[Any, ...],
             prepared: PreparedStatement | None = None) -> Sequence[Any]:
    """Run ``statement`` on ``connection``'s DBAPI cursor; its rows. What ``exec_driver_sql`` does for it, less
    the result object: SQLAlchemy's execution context, cursor wrapper and result metadata cost a group more CPU
    (about 90 to 130 µs on PostgreSQL) than psycopg's own execute (docs/benchmarks-history.md). With ``prepared`` (the
    same statement for libpq, on psycopg), on a connection where it means the same (autocommit, idle), it runs
    as one libpq call instead of the cursor's several (``prepared.py``).

    Errors are SQLAlchemy's as for any statement: a DBAPI error is raised as its ``DBAPIError`` (IntegrityError,
    OperationalError, ...), and one the dialect calls a disconnect invalidates the connection and says so
    (``connection_invalidated``: group commit retries the group once on a fresh connection). While any execution
    event listens on the connection or its engine (instrumentation; the tests' probes), the statement goes
    through ``exec_driver_sql`` so that every listener sees it.
    """
    if connection._has_events or connection.engine._has_events:
        return connection.exec_driver_sql(statement, params).all()
    dialect = connection.dialect
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None  # a live Connection always has one (it raises when invalidated)
    cursor = None
    try:
        if prepared is not None and PreparedStatement.usable(dbapi_connection):
            return prepared.run(dbapi_connection, connection.info, params)
        cursor = dbapi_connection.cursor()
        cursor.execute(statement, params)
        return cursor.fetchall()
    except dialect.loaded_dbapi.Error as exc:
        lost = dialect.is_disconnect(exc, dbapi_connection, cursor)
        if lost:
            connection.invalidate(exc)
        raise DBAPIError.instance(statement, params, exc, dialect.loaded_dbapi.Error,
                                  hide_parameters=connection.engine.hide_parameters,
                                  connection_invalidated=lost, dialect=dialect) from exc
    finally:
        if cursor is not None:
            with suppress(Exception):  # a cursor of a connection that is already gone: nothing to release
                cursor.close()


def _decorated(column_type: Any, dialect: Dialect) -> Callable[[Any], Any] | None:
    """A column type's own bind processing (a ``TypeDecorator``'s ``process_bind_param``), or None."""
    if not isinstance(column_type, TypeDecorator):
        return None
    return partial(column_type.process_bind_param, dialect=dialect)


def _json_value(value: Any) -> Any:
    """How a row value that JSON has no type for is sent: a time as ISO 8601, an enum member as its value."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def storable(dedupe_key: str) -> str:
    """The deduplication key as stored (a long one keeps its start and gains a hash of the whole)."""
    return storable_key(dedupe_key, DEDUPE_KEY_LENGTH)


def _row(source: EventSource, notice: Notice, connection_id: int | None) -> dict[str, Any]:
    ignore = None if source != EventSource.QBO or notice.synced else f"entity {notice.entity} is not synced"
    row, problems = fit_values(InboundEvent.__table__, {
        "source": source, "dedupe_key": storable_key(notice.dedupe_key, DEDUPE_KEY_LENGTH),
        "connection_id": connection_id, "realm_id": notice.realm_id, "entity": notice.entity,
        "entity_id": notice.entity_id, "operation": notice.operation, "occurred_at": notice.occurred_at,
        "payload": notice.payload, "status": EventStatus.IGNORED if ignore else EventStatus.PENDING,
        "status_reason": ignore, "attempts": 0,
    })
    if problems:  # one event that cannot be stored as given is kept as rejected; the rest of its batch is stored
        row.update(status=EventStatus.REJECTED, status_reason="rejected: " + "; ".join(problems))
    return row


def due(now: datetime) -> ColumnElement[bool]:
    """Pending events that are not backing off at ``now``."""
    return (InboundEvent.status == EventStatus.PENDING) & (
        InboundEvent.next_attempt_at.is_(None) | (InboundEvent.next_attempt_at <= now))


def pending(where: ColumnElement[bool], after: int, limit: int, now: datetime | None = None) -> list[EventRef]:
    """Up to ``limit`` due pending events matching ``where`` with ids above ``after``, oldest first; ends the read.

    Events backing off after a failure (``next_attempt_at`` later than ``now``) are left for later.
    """
    rows = db.session.scalars(
        select(InboundEvent).where(where, due(now or utcnow()), InboundEvent.id > after)
        .order_by(InboundEvent.id).limit(limit)
    ).all()
    events = [EventRef(r.id, r.entity, r.entity_id, r.operation, r.occurred_at, dict(r.payload or {}), r.received_at)
              for r in rows]
    db.session.rollback()
    return events


def still_pending(events: Sequence[EventRef]) -> list[EventRef]:
    """The events no other drain settled while this one waited for the lock."""
    ids = set(db.session.scalars(select(InboundEvent.id).where(
        InboundEvent.id.in_([e.id for e in events]), InboundEvent.status == EventStatus.PENDING)))
    db.session.rollback()
    return [event for event in events if event.id in ids]


def change_pending(realm_id: str, entity: str, entity_id: str) -> bool:
    """Whether a QBO change of this object waits in the inbox: its own unit will look at the object with QBO's
    state (found through the pending events' index, so the inbox's size does not matter)."""
    found = db.session.scalar(select(InboundEvent.id).where(
        InboundEvent.status == EventStatus.PENDING, InboundEvent.source == EventSource.QBO,
        InboundEvent.realm_id == realm_id, InboundEvent.entity == entity, InboundEvent.entity_id == entity_id,
    ).limit(1))
    db.session.rollback()
    return found is not None


def count_settled(ids: Sequence[int]) -> int:
    """How many of ``ids`` are processed or ignored (under the lock: settled by the caller's drain)."""
    count = db.session.scalar(select(func.count()).select_from(InboundEvent).where(
        InboundEvent.id.in_(list(ids)), InboundEvent.status.in_((EventStatus.PROCESSED, EventStatus.IGNORED))))
    db.session.rollback()
    return int(count or 0)


def mark_processed(events: Iterable[int], connection_id: int | None) -> int:
    """Mark pending ``events`` processed (in the caller's transaction); return how many were still pending."""
    ids = list(events)
    if not ids:
        return 0
    values: dict[str, Any] = {"status": EventStatus.PROCESSED, "processed_at": utcnow()}
    if connection_id is not None:
        values["connection_id"] = connection_id
    result = db.session.execute(
        update(InboundEvent).where(InboundEvent.id.in_(ids), InboundEvent.status == EventStatus.PENDING)
        .values(**values))
    return _rowcount(result)


def ignore(ids: Sequence[int], reason: str) -> None:
    """Settle pending events as ignored with ``reason`` (committed)."""
    db.session.execute(update(InboundEvent).where(InboundEvent.id.in_(list(ids)),
                                                  InboundEvent.status == EventStatus.PENDING)
                       .values(status=EventStatus.IGNORED, status_reason=reason, processed_at=utcnow()))
    db.session.commit()


def record_failure(event_id: int, exc: BaseException, now: datetime | None = None,
                   schedule: tuple[float, ...] = TRANSIENT_SCHEDULE) -> None:
    """Count a failed attempt in its own transaction and schedule the next; give up (failed) past the schedule.

    Waiting (a lock, a rate limit) is no attempt and changes nothing. ``schedule`` is the transient one
    (``CRM_QB_RETRY_SCHEDULE``).
    """
    kind = kind_of(exc)
    if kind == WAIT:
        return
    event = db.session.get(InboundEvent, event_id)
    if event is None or event.status != EventStatus.PENDING:
        db.session.rollback()
        return
    event.attempts += 1
    event.status_reason = f"{type(exc).__name__}: {exc}"[:2000]
    delay = next_delay(kind, event.attempts, schedule)
    if delay is None:
        event.status, event.next_attempt_at = EventStatus.FAILED, None
        db.session.add_all(_gave_up(event))  # the audit log shows failures too (the Failures page lists the event)
    else:
        event.next_attempt_at = (now or utcnow()) + delay
    db.session.commit()
    log.warning("inbound event %s failed (attempt %s, %s): %s%s", event_id, event.attempts, kind,
                type(exc).__name__, "; given up" if delay is None else f"; next attempt in {delay}")


def defer(ids: Sequence[int], until: datetime, reason: str) -> None:
    """Let pending events wait until ``until`` without counting an attempt (their side is down; committed)."""
    if ids:
        db.session.execute(update(InboundEvent).where(InboundEvent.id.in_(list(ids)),
                                                      InboundEvent.status == EventStatus.PENDING)
                           .values(next_attempt_at=until, status_reason=reason[:2000]))
    db.session.commit()


def next_attempt_of(ids: Sequence[int]) -> datetime | None:
    """The earliest time one of ``ids`` is tried again (None when none is backing off); ends the read."""
    when = db.session.scalar(select(func.min(InboundEvent.next_attempt_at)).where(
        InboundEvent.id.in_(list(ids)), InboundEvent.status == EventStatus.PENDING))
    db.session.rollback()
    return _aware(when) if when else None


def release(where: ColumnElement[bool]) -> int:
    """Make every backing-off pending event matching ``where`` due now (committed); return how many."""
    result = db.session.execute(update(InboundEvent).where(
        where, InboundEvent.status == EventStatus.PENDING, InboundEvent.next_attempt_at.is_not(None))
        .values(next_attempt_at=None))
    db.session.commit()
    return _rowcount(result)


def _gave_up(event: InboundEvent) -> list[AuditEntry]:
    """Audit entries of an event that failed for good (outcome ``failed_event``, not a failed record): for its
    connection, or for every connection of its realm when no drain settled it for one yet (a QBO event)."""
    owners = [event.connection_id] if event.connection_id is not None else list(db.session.scalars(
        select(Connection.id).where(Connection.qbo_realm_id == event.realm_id))) if event.realm_id else []
    ref = EventRef(event.id, event.entity, event.entity_id, event.operation, event.occurred_at, {})
    return [AuditEntry(connection_id=owner, inbound_event_id=event.id, action="event.failed",
                       direction=event_direction(ref), entity=event.entity, entity_id=event.entity_id,
                       diff={"operation": event.operation, "attempts": event.attempts}, outcome="failed_event",
                       message=event.status_reason) for owner in owners]


def skip_disabled(connection_id: int, job_id: str | None, events: Sequence[EventRef]) -> None:
    """Settle the events of a connection whose sync is turned off, each with an audit entry (committed)."""
    for event in events:
        db.session.add(AuditEntry(
            connection_id=connection_id, inbound_event_id=event.id, job_id=job_id, action="sync.disabled",
            direction=event_direction(event), entity=event.entity, entity_id=event.entity_id,
            diff={"operation": event.operation}, outcome="skipped",
        ))
    mark_processed([event.id for event in events], connection_id)
    db.session.commit()


def event_direction(event: EventRef) -> str:
    """The sync direction an event starts: QBO events go to the CRM, CRM events to QBO."""
    return "crm_to_qbo" if event.entity in (CONTACT, ACTIVITY) else "qbo_to_crm"


def process_event(event_id: int, apply: Callable[[InboundEvent], str]) -> int:
    """Claim and apply one event in one transaction; return 1 if this call processed it, else 0."""
    try:
        return _claim_and_apply(event_id, apply)
    except Exception as exc:
        db.session.rollback()
        record_failure(event_id, exc)
        raise


def _claim_and_apply(event_id: int, apply: Callable[[InboundEvent], str]) -> int:
    # The guarded UPDATE is the claim: a concurrent run blocks on the row (PostgreSQL) or the write lock
    # (SQLite) and then finds the status changed, so the work inside this transaction happens once.
    claimed = _rowcount(db.session.execute(
        update(InboundEvent).where(InboundEvent.id == event_id, InboundEvent.status == EventStatus.PENDING)
        .values(status=EventStatus.PROCESSED, processed_at=utcnow())))
    if not claimed:
        db.session.rollback()
        return 0
    event = db.session.get(InboundEvent, event_id)
    assert event is not None  # the claim just updated it
    outcome = apply(event)
    if outcome != "processed":
        event.status, event.status_reason = EventStatus.IGNORED, outcome
    db.session.commit()
    log.info("inbound event %s (%s %s %s): %s", event_id, event.source.value, event.entity, event.operation, outcome)
    return 1


def drain_key(source: EventSource, realm_id: str | None, connection_id: int | None) -> str | None:
    """What a drain of an event is keyed by: its realm for QBO events, its connection for CRM events."""
    return realm_id if source == EventSource.QBO else (str(connection_id) if connection_id is not None else None)


def stranded(received_before: datetime, limit: int, now: datetime | None = None) -> list[tuple[EventSource, str]]:
    """The (source, drain key) of pending events nobody works on, sorted; ends the read.

    Those received before ``received_before`` and never failed, and those whose backoff ended by ``now``.
    """
    now = now or utcnow()
    never_failed = InboundEvent.next_attempt_at.is_(None) & (InboundEvent.received_at <= received_before)
    rows = db.session.execute(
        select(InboundEvent.source, InboundEvent.realm_id, InboundEvent.connection_id)
        .where(InboundEvent.status == EventStatus.PENDING,
               never_failed | (InboundEvent.next_attempt_at <= now))
        .group_by(InboundEvent.source, InboundEvent.realm_id, InboundEvent.connection_id)
        .limit(limit)
    ).all()
    db.session.rollback()
    keys = {(row.source, drain_key(row.source, row.realm_id, row.connection_id)) for row in rows}
    return sorted(((source, key) for source, key in keys if key), key=lambda k: (k[0].value, k[1]))


def replay(status: EventStatus, connection_id: int | None, jobs: JobQueue) -> int:
    """Put events of ``status`` (failed, or pending) back to pending and wake their drains; return how many."""
    query = select(InboundEvent.id).where(InboundEvent.status == status)
    if connection_id is not None:
        query = query.where(InboundEvent.connection_id == connection_id)
    ids = list(db.session.scalars(query.order_by(InboundEvent.id)))
    if status == EventStatus.FAILED and ids:
        db.session.execute(
            update(InboundEvent).where(InboundEvent.id.in_(ids)).values(status=EventStatus.PENDING, attempts=0,
                                                                        next_attempt_at=None))
    elif ids:  # stuck pending events: due at once
        db.session.execute(update(InboundEvent).where(InboundEvent.id.in_(ids)).values(next_attempt_at=None))
    db.session.commit()
    rows = db.session.execute(
        select(InboundEvent.source, InboundEvent.realm_id, InboundEvent.connection_id)
        .where(InboundEvent.id.in_(ids)).distinct()
    ).all() if ids else []
    db.session.rollback()
    for row in rows:
        key = drain_key(row.source, row.realm_id, row.connection_id)
        if key:
            jobs.wake(row.source, key)
    return len(ids)


def of_connection(connection_id: int, realm_id: str | None) -> ColumnElement[bool]:
    """Events that concern a connection: its CRM events, and the QBO events of its realm."""
    own = InboundEvent.connection_id == connection_id
    if not realm_id:
        return own
    return own | ((InboundEvent.source == EventSource.QBO) & (InboundEvent.realm_id == realm_id))


def wake_connection(jobs: JobQueue, connection_id: int, *, bulk: bool = False, now: bool = False) -> int:
    """Wake the drains of a connection's pending events (after it is (re)connected; ``bulk``: as bulk work, after
    its first sync; ``now``: even those waiting in the delayed set, at the end of an outage); how many woke."""
    rows = db.session.execute(
        select(InboundEvent.source, InboundEvent.realm_id).distinct()
        .where(InboundEvent.status == EventStatus.PENDING,
               (InboundEvent.connection_id == connection_id) | (InboundEvent.source == EventSource.QBO))
    ).all()
    realm = db.session.scalar(select(Connection.qbo_realm_id).where(Connection.id == connection_id))
    db.session.rollback()
    woken = {(EventSource.CRM, str(connection_id)) for row in rows if row.source == EventSource.CRM}
    if realm:
        woken |= {(EventSource.QBO, realm) for row in rows if row.source == EventSource.QBO and row.realm_id == realm}
    return sum(1 for source, key in woken if jobs.wake(source, key, bulk=bulk, now=now))


def _aware(value: datetime) -> datetime:
    """A timestamp read through an aggregate with its UTC zone (SQLite may hand it back naive)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _rowcount(result: Any) -> int:
    """The rows an UPDATE touched (an UPDATE always answers with a cursor result)."""
    assert isinstance(result, CursorResult)
    return int(result.rowcount or 0)
