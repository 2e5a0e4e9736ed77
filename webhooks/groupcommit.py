"""Group commit: the webhooks a process receives at the same moment share one INSERT batch and one COMMIT.

Every webhook is committed before it is acknowledged (DESIGN.md §1). gunicorn's gthread workers (``crm-qb web``)
serve several requests of a process at once; instead of a transaction and a Redis round trip each, the requests
that arrive while a commit is under way join the next one. The first of them (the leader) stores every waiting
request's notices, commits once, hands each request its own new events, and has the drain of every realm or
connection they touched woken once (``_Waker``: before a lone request answers; for requests stored together, by
the process's waker thread after they answer, in rounds ``WAKE_WINDOW_SECONDS`` apart). A request alone is
committed at once, exactly as before; one that arrives during a commit waits for it (up to
``SPARE_LANE_AFTER_SECONDS`` on PostgreSQL, then it takes the spare lane). If the shared transaction fails,
each request of the group is stored again on its own, so one request that cannot be stored fails alone (and its
sender retries it).

A process commits through *lanes*: a lane is one database connection kept between groups (``_Lane``), used by one
leader at a time, instead of a connection taken from the pool per group (the pool's check-out, on PostgreSQL a
``SELECT 1`` round trip for ``pool_pre_ping``, and its check-in cost more than the INSERT;
docs/benchmarks-history.md). On PostgreSQL a process has two lanes, the second a spare: a request that arrives
while a group commits waits for it (and leads the next group, on the same lane, with every request waiting by
then), unless that commit takes longer than ``SPARE_LANE_AFTER_SECONDS`` (5 ms; a WAL flush on a busy disk): then
it commits on the spare lane with the requests waiting, instead of waiting for the first to finish. Quick commits
thus make larger groups (fewer INSERTs, round trips and WAL flushes per webhook) and slow ones do not hold the next
group. SQLite has one writer at a time, so one lane.

Requests wait without a shared condition: each waits on its own ticket, and the leader that finishes a group
releases the members of its group, and hands its lane straight to the first request waiting, which leads every
request waiting by then. The lane is handed on before the drains are woken, so the next group's commit
overlaps this group's Redis round trip.

The group's notices of one stream (QBO, or one CRM connection) go in one INSERT (``events.store`` with the lane's
connection: SQL text for the driver). On PostgreSQL a lane's connection runs in autocommit: a group whose notices
fit one INSERT statement is committed by that statement itself, one round trip where BEGIN, INSERT and COMMIT
took three; the statement is atomic and has committed when it returns, so nothing is answered before it is
durable. A group that needs more statements takes a transaction of its own from the pool. A connection that
fails is dropped, and a group that met a lost connection is tried once more on a fresh one.

The committer belongs to the app (``Runtime.ingress``, built by the app factory), not to a module: two apps of
one process (tests build many) never share lanes, and a forked child opens its own connections.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

from crm_qb.db import db, utcnow
from crm_qb.models import EventSource
from crm_qb.runtime import Wake
from crm_qb.sync.pipeline import events
from crm_qb.sync.pipeline.events import Notice

log = logging.getLogger(__name__)
POSTGRESQL_LANES = 2  # one group flushing its commit while the next stores (README, Benchmarks)
# A request waits this long for the group committing before it takes a process's spare lane (PostgreSQL): a quick
# commit is waited for (larger groups, fewer commits), a slow WAL flush does not hold the next group (README).
SPARE_LANE_AFTER_SECONDS = 0.005
# The waker thread's rounds are at least this far apart: the keys added meanwhile go together at the window's end.
WAKE_WINDOW_SECONDS = 0.02


def _held_lock() -> threading.Lock:
    lock = threading.Lock()
    lock.acquire()
    return lock


@dataclass(eq=False)
class _Ticket:
    """One request's notices and, once its group has committed, its new events (or the error).

    Its request waits on ``_signal`` (a lock held from the start) until a leader releases it: either its group
    is settled, or ``lane`` was handed to it and it leads the requests waiting.
    """

    source: EventSource
    notices: Sequence[Notice]
    connection_id: int | None
    new: list[Notice] = field(default_factory=list)
    error: BaseException | None = None
    settled: bool = False
    lane: _Lane | None = None
    received_at: datetime = field(default_factory=utcnow)  # the request's own receipt time, kept in the group
    _signal: threading.Lock = field(default_factory=_held_lock, repr=False)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a leader settles this request or hands it a lane (or ``timeout`` seconds pass: False)."""
        return self._signal.acquire(timeout=-1 if timeout is None else timeout)

    def release(self) -> None:
        """Let the waiting request go on (settled, or leading)."""
        self._signal.release()

    def wake_keys(self) -> set[str]:
        """The drains this request's new events need: realms (QBO) or its connection (CRM)."""
        if self.error is not None:
            return set()
        if self.source == EventSource.CRM:
            return {str(self.connection_id)} if self.new else set()
        return {n.realm_id for n in self.new if n.realm_id}


class _Lane:
    """A leader's database connection, kept between groups (only the leader holding the lane uses it).

    It belongs to one engine and one process: a forked child opens its own.
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


def lanes_for(engine: Engine) -> int:
    """How many groups of one process may commit at once on ``engine`` (SQLite: one writer at a time)."""
    return POSTGRESQL_LANES if engine.dialect.name == "postgresql" else 1


class GroupCommit:
    """Commits the concurrent stores of one process together (one per app: ``Runtime.ingress``)."""

    def __init__(self, lanes: int | None = None, spare_after: float = SPARE_LANE_AFTER_SECONDS,
                 wake_window: float = WAKE_WINDOW_SECONDS) -> None:
        self._lock = threading.Lock()
        self._waiting: list[_Ticket] = []
        self._free: list[_Lane] = []
        self._opened = 0
        self._lanes = lanes  # None: as many as the engine allows (``lanes_for``)
        self._spare_after = spare_after
        self._waker = _Waker(wake_window)

    def store(self, source: EventSource, notices: Sequence[Notice], connection_id: int | None,
              wake: Wake) -> list[Notice]:
        """Store and commit ``notices`` (with whoever else is storing now), wake their drains; the new ones."""
        ticket = _Ticket(source, notices, connection_id)
        engine = db.engine
        with self._lock:
            lane = self._free_lane(engine, spare=False)
            if lane is None:  # a group is committing: wait to be settled, or to be handed a lane
                timed = not self._waiting and self._spare_free(engine)
                self._waiting.append(ticket)
        if lane is None:
            lane = self._await(ticket, engine, timed)
        if lane is not None:
            self._lead(ticket, lane, engine, wake)
        if ticket.error is not None:
            raise ticket.error
        return ticket.new

    def _await(self, ticket: _Ticket, engine: Engine, timed: bool) -> _Lane | None:
        """Wait until ``ticket``'s group is settled (None) or a lane is handed to it (the lane: it leads). When
        ``timed`` and the commit under way takes longer than ``_spare_after``, take the spare lane instead.

        Only the first request to wait while a spare lane is free waits with that timeout (``timed``): it is
        the one that takes the spare, with every request waiting by then, so the others would wake at their
        timeout only to find themselves in its group, and while no lane is free a lane that frees is handed to
        the first request waiting anyway. Each of those wake-ups was a context switch and a GIL hand-over for
        nothing (docs/benchmarks-history.md).
        """
        if not ticket.wait(self._spare_after if timed else None):
            with self._lock:
                lane = self._free_lane(engine, spare=True) if _waits(ticket, self._waiting) else None
                if lane is not None:
                    self._waiting.remove(ticket)
                    return lane
            ticket.wait()  # a leader took it into its group or handed it a lane meanwhile, or no lane is left
        lane, ticket.lane = ticket.lane, None
        return lane

    def _spare_free(self, engine: Engine) -> bool:
        """Whether a lane could be taken now beside the ones committing (under ``_lock``)."""
        return bool(self._free) or self._opened < (self._lanes or lanes_for(engine))

    def _free_lane(self, engine: Engine, spare: bool) -> _Lane | None:
        """A lane to commit on, or None; under ``_lock``. While no group is committing, a free lane (or the first
        one); while one is, a spare lane (a free one, or a new one while under the limit) only when ``spare``."""
        if self._opened > len(self._free) and not spare:
            return None
        if self._free:
            return self._free.pop()
        if self._opened < (self._lanes or lanes_for(engine)):
            self._opened += 1
            return _Lane()
        return None

    def _lead(self, ticket: _Ticket, lane: _Lane, engine: Engine, wake: Wake) -> None:
        """Commit ``ticket`` with every request waiting, hand the lane on, wake the drains, release the group."""
        with self._lock:
            group, self._waiting = [ticket, *self._waiting], []
        try:
            _commit(group, lane, engine)
        except BaseException as exc:  # every member must learn its fate: none may answer uncommitted
            for member in group:
                if not member.settled:
                    member.error, member.settled = exc, True
        finally:
            alone = self._hand_on(lane) and len(group) == 1
        try:
            self._waker.wake({source: set().union(*(t.wake_keys() for t in group if t.source == source))
                              for source in (EventSource.QBO, EventSource.CRM)}, wake, now=alone)
        finally:
            for member in group[1:]:
                member.release()

    def _hand_on(self, lane: _Lane) -> bool:
        """Give ``lane`` to the first request waiting (it leads those waiting by then), or free it; whether
        nobody else is storing now (no request waits and every lane is free)."""
        with self._lock:
            successor = self._waiting.pop(0) if self._waiting else None
            if successor is None:
                self._free.append(lane)
            idle = successor is None and len(self._free) == self._opened
        if successor is not None:
            successor.lane = lane
            successor.release()
        return idle


class _Waker:
    """Sends the wakes of one process's groups: a lone request's before it answers, the others' after.

    A request alone in its process (its group has no other member, none waits, no other lane commits) is
    answered after its drain was woken, as before, when no wake is under way: sequential deliveries (and tests)
    see the drain queued when the answer arrives. When requests are stored together, nobody waits for the Redis
    round trip: the keys go to the process's waker thread, which sends every key added until it gets to them in
    one round, and each answer leaves one round trip sooner. After a round the thread lets its window
    (``WAKE_WINDOW_SECONDS``, 20 ms from the round's start) pass before the next: the keys added meanwhile, a
    lone request's included, wait for the window's end and go in one round, so a burst costs one Redis round
    trip per window per process where it cost nearly one per group. The last commit before the window ends is
    still followed by a round that starts after it (the trailing edge), so no key waits for a later request.
    Either way a key is sent after the commit it follows. A process killed after answering and before its
    waker thread sent the keys (at most a window later) leaves committed events unwoken: the next webhook of
    the realm or connection wakes them, or the sweep does (README, Benchmarks). The thread is started on first
    need, and again in a forked child (threads do not survive a fork).
    """

    def __init__(self, window: float = WAKE_WINDOW_SECONDS) -> None:
        self._window = window
        self._lock = threading.Lock()
        self._busy = False  # a wake is under way, or the thread was told to send what is pending
        self._pending: dict[EventSource, set[str]] = {}
        self._wanted = threading.Semaphore(0)
        self._thread_pid = 0
        self._wake: Wake | None = None

    def wake(self, keys: dict[EventSource, set[str]], wake: Wake, now: bool) -> None:
        """Wake the drains of ``keys`` with ``wake``: before returning when ``now`` and no wake is under way,
        else by the waker thread (without waiting)."""
        if not any(keys.values()):
            return
        with self._lock:
            inline = now and not self._busy
            if not inline:
                self._add(keys, wake)
                if self._busy:
                    return  # the wake under way leaves them to the thread's next round
            self._busy = True
        if not inline:
            self._to_thread()
            return
        try:
            _send(keys, wake)
        finally:
            with self._lock:
                self._busy = bool(self._pending)  # keys added meanwhile: the thread's now
            if self._busy:
                self._to_thread()

    def _add(self, keys: dict[EventSource, set[str]], wake: Wake) -> None:
        for source, found in keys.items():
            if found:
                self._pending.setdefault(source, set()).update(found)
        self._wake = wake

    def _to_thread(self) -> None:
        """Have the waker thread send what is pending (only the one that set ``_busy`` calls this)."""
        if self._thread_pid != os.getpid():
            self._thread_pid = os.getpid()
            threading.Thread(target=self._run, name="crm-qb-waker", daemon=True).start()
        self._wanted.release()

    def _run(self) -> None:
        """The waker thread: send what is pending, round after round until nothing is left; then wait."""
        while True:
            self._wanted.acquire()
            while True:
                with self._lock:
                    keys, self._pending, wake = self._pending, {}, self._wake
                    if not keys or wake is None:
                        self._busy = False
                        break
                started = time.monotonic()
                try:
                    _send(keys, wake)
                except Exception:  # a side channel: the events are committed, and the sweep wakes them
                    log.exception("waking drains failed; the sweep will enqueue them")
                rest = self._window - (time.monotonic() - started)
                if rest > 0:
                    time.sleep(rest)


def _waits(ticket: _Ticket, waiting: list[_Ticket]) -> bool:
    """Whether ``ticket`` is still in ``waiting`` (by identity: no leader has taken it)."""
    return any(t is ticket for t in waiting)


def _send(keys: dict[EventSource, set[str]], wake: Wake) -> None:
    for source, found in keys.items():
        if found:
            wake(source, found)


def _commit(group: list[_Ticket], lane: _Lane, engine: Engine, retried: bool = False) -> None:
    """Store the group and commit on ``lane`` (each request alone if that fails); settle every ticket."""
    try:
        conn = lane.connection(engine)
        if autocommits(engine) and _one_statement(group):
            _store(group, conn)  # committed when the statement returns
        elif autocommits(engine):
            with engine.begin() as tx:  # several statements: one transaction, from the pool
                _store(group, tx)
        else:
            with conn.begin():  # leaving the block commits
                _store(group, conn)
    except Exception as exc:
        lane.drop()
        if isinstance(exc, DBAPIError) and exc.connection_invalidated and not retried:
            _commit(group, lane, engine, retried=True)  # the kept connection was lost: once more, a fresh one
            return
        if len(group) == 1:
            group[0].error, group[0].settled = exc, True
            return
        for ticket in group:
            _commit([ticket], lane, engine, retried=True)
        return
    for ticket in group:
        ticket.settled = True


def _streams(group: list[_Ticket]) -> dict[tuple[EventSource, int | None], list[_Ticket]]:
    """The group's requests by what their events are stored under: the source and (CRM) the connection."""
    streams: dict[tuple[EventSource, int | None], list[_Ticket]] = {}
    for ticket in group:
        streams.setdefault((ticket.source, ticket.connection_id), []).append(ticket)
    return streams


def _one_statement(group: list[_Ticket]) -> bool:
    """Whether storing the group is one INSERT (up to ``events.ROWS_PER_INSERT`` notices of one stream)."""
    return len(_streams(group)) == 1 and sum(len(t.notices) for t in group) <= events.ROWS_PER_INSERT


def _store(group: list[_Ticket], conn: Connection) -> None:
    """Insert the group's notices, one ``events.store`` (one INSERT) per stream; give each request its new ones.

    Each notice is new for the first request of the group that sent its key: a webhook delivered twice at the
    same moment is stored once and counted once, as it would be if the two came one after the other.
    """
    for (source, connection_id), tickets in _streams(group).items():
        notices = [n for t in tickets for n in t.notices]
        received = [t.received_at for t in tickets for _ in t.notices]
        inserted = {id(n) for n in events.store(source, notices, connection_id, conn, received)}
        claimed: set[str] = set()
        for ticket in tickets:
            mine = {events.storable(n.dedupe_key) for n in ticket.notices} - claimed
            ticket.new = [n for n in ticket.notices if id(n) in inserted and events.storable(n.dedupe_key) in mine]
            claimed |= mine
