"""Group commit: the webhooks a process receives at the same moment share one INSERT batch and one COMMIT.

Every webhook is committed before it is acknowledged (DESIGN.md §1). gunicorn's gthread workers (``crm-qb web``)
serve several requests of a process at once; instead of a transaction and a Redis round trip each, the requests
that arrive while a commit is under way join the next one. The first of them (the leader) stores every waiting
request's notices, commits once, wakes the drain of every realm or connection they touched once, and hands each
request its own new events; only then does each request answer. Nobody waits on a timer: a request alone is
committed at once, exactly as before. If the shared transaction fails, each request of the group is stored again
on its own, so one request that cannot be stored fails alone (and its sender retries it).

Only one group of a process commits at a time, so the process keeps one database connection for it
(``_Lane``) instead of taking one from the pool per group: the pool's check-out (on PostgreSQL a ``SELECT 1``
round trip, ``pool_pre_ping``) and check-in cost more than the INSERT (README, Benchmarks). The group's notices of
one stream (QBO, or one CRM connection) go in one INSERT. On PostgreSQL that connection runs in autocommit: a
group whose notices fit one INSERT statement is committed by that statement itself, one round trip where BEGIN,
INSERT and COMMIT took three; the statement is atomic and has committed when it returns, so nothing is answered
before it is durable. A group that needs more statements takes a transaction of its own from the pool. A
connection that fails is dropped, and a group that met a lost connection is tried once more on a fresh one.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from crm_qb.db import db
from crm_qb.models import EventSource
from crm_qb.sync.pipeline import events
from crm_qb.sync.pipeline.events import Notice

Wake = Callable[[EventSource, set[str]], int]


@dataclass
class _Ticket:
    """One request's notices and, once its group has committed, its new events (or the error)."""

    source: EventSource
    notices: Sequence[Notice]
    connection_id: int | None
    done: bool = False
    new: list[Notice] = field(default_factory=list)
    error: BaseException | None = None

    def wake_keys(self) -> set[str]:
        """The drains this request's new events need: realms (QBO) or its connection (CRM)."""
        if self.source == EventSource.CRM:
            return {str(self.connection_id)} if self.new else set()
        return {n.realm_id for n in self.new if n.realm_id}


class _Lane:
    """The group leader's database connection, kept between groups (only the leader of the moment uses it).

    It belongs to one engine and one process: a new app (tests build many) or a forked child opens its own.
    """

    def __init__(self) -> None:
        self._conn: Connection | None = None
        self._engine: Engine | None = None
        self._pid = 0

    def connection(self, engine: Engine) -> Connection:
        """The kept connection to ``engine``, opened on first use (or after ``drop``); autocommit on PostgreSQL."""
        if self._conn is not None and (self._engine is not engine or self._pid != os.getpid()):
            self.drop()
        if self._conn is None:
            conn = engine.connect()
            if autocommits(engine):
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            self._conn, self._engine, self._pid = conn, engine, os.getpid()
        return self._conn

    def drop(self) -> None:
        """Forget the connection (closed when it is this process's; a forked parent's is left alone)."""
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            try:
                conn.close()
            except Exception:  # a connection that is already broken: nothing more to release
                conn.invalidate()


def autocommits(engine: Engine) -> bool:
    """Whether the kept connection to ``engine`` commits each statement itself (PostgreSQL: a round trip each
    for BEGIN and COMMIT saved; SQLite's are calls into the library, not worth leaving a transaction for)."""
    return engine.dialect.name == "postgresql"


class GroupCommit:
    """Commits the concurrent stores of one process together (one per process: module-level ``GROUP``)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: list[_Ticket] = []
        self._busy = False
        self._lane = _Lane()

    def store(self, source: EventSource, notices: Sequence[Notice], connection_id: int | None,
              wake: Wake) -> list[Notice]:
        """Store and commit ``notices`` (with whoever else is storing now), wake their drains; the new ones."""
        ticket = _Ticket(source, notices, connection_id)
        with self._cond:
            self._waiting.append(ticket)
            while not ticket.done and self._busy:
                self._cond.wait()
            group: list[_Ticket] = []
            if not ticket.done:  # nobody is committing and ours is not done: lead the waiting group
                self._busy, group, self._waiting = True, self._waiting, []
        if group:
            try:
                self._commit(group, wake)
            except BaseException as exc:  # every member must learn its fate: none may answer uncommitted
                for member in group:
                    if not member.done:
                        member.error, member.done = exc, True
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
        if ticket.error is not None:
            raise ticket.error
        return ticket.new

    def _commit(self, group: list[_Ticket], wake: Wake, retried: bool = False) -> None:
        """Store the group and commit (each request alone if that fails), then wake each drain once."""
        engine = db.engine
        try:
            conn = self._lane.connection(engine)
            if autocommits(engine) and _one_statement(group, engine):
                _store(group, conn)  # committed when the statement returns
            elif autocommits(engine):
                with engine.begin() as tx:  # several statements: one transaction, from the pool
                    _store(group, tx)
            else:
                with conn.begin():  # leaving the block commits
                    _store(group, conn)
        except Exception as exc:
            self._lane.drop()
            if isinstance(exc, DBAPIError) and exc.connection_invalidated and not retried:
                self._commit(group, wake, retried=True)  # the kept connection was lost: once more, a fresh one
                return
            if len(group) == 1:
                group[0].error, group[0].done = exc, True
                return
            for ticket in group:
                self._commit([ticket], wake, retried=True)
            return
        for source in (EventSource.QBO, EventSource.CRM):
            keys = set().union(*(t.wake_keys() for t in group if t.source == source))
            if keys:
                wake(source, keys)
        for ticket in group:
            ticket.done = True


def _streams(group: list[_Ticket]) -> dict[tuple[EventSource, int | None], list[_Ticket]]:
    """The group's requests by what their events are stored under: the source and (CRM) the connection."""
    streams: dict[tuple[EventSource, int | None], list[_Ticket]] = {}
    for ticket in group:
        streams.setdefault((ticket.source, ticket.connection_id), []).append(ticket)
    return streams


def _one_statement(group: list[_Ticket], engine: Engine) -> bool:
    """Whether storing the group is one INSERT (SQLAlchemy sends up to its page size of rows in one statement)."""
    return (len(_streams(group)) == 1
            and sum(len(t.notices) for t in group) <= engine.dialect.insertmanyvalues_page_size)


def _store(group: list[_Ticket], conn: Connection) -> None:
    """Insert the group's notices, one ``events.store`` (one INSERT) per stream; give each request its new ones.

    Each notice is new for the first request of the group that sent its key: a webhook delivered twice at the
    same moment is stored once and counted once, as it would be if the two came one after the other.
    """
    for (source, connection_id), tickets in _streams(group).items():
        notices = [n for t in tickets for n in t.notices]
        inserted = {id(n) for n in events.store(source, notices, connection_id, conn)}
        claimed: set[str] = set()
        for ticket in tickets:
            mine = {events.storable(n.dedupe_key) for n in ticket.notices} - claimed
            ticket.new = [n for n in ticket.notices if id(n) in inserted and events.storable(n.dedupe_key) in mine]
            claimed |= mine


GROUP = GroupCommit()
