"""Group commit at ingress: concurrent webhooks of one process share a commit and a wake, each committed first."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial

import pytest
from flask import Flask
from redis import Redis
from rq import Queue
from sqlalchemy import event, update

from crm_qb.db import db, utcnow
from crm_qb.models import EventSource, EventStatus, InboundEvent
from crm_qb.runtime import runtime
from crm_qb.sync.pipeline.events import Notice
from tests.support.connections import add_connection, count_events, post_qbo
from webhooks import inbox
from webhooks.groupcommit import POSTGRESQL_LANES, GroupCommit, autocommits, lanes_for
from workers import jobs

REALMS = ["9130350000000010", "9130350000000011", "9130350000000012"]
INBOUND_QUEUE = "crm_qb_test.inbound"


def _notice(realm: str, n: int) -> Notice:
    return Notice(dedupe_key=f"ce:{uuid.uuid4()}", realm_id=realm, entity="Customer", entity_id=str(n),
                  operation="Update", occurred_at=datetime.now(UTC), payload={})


def _no_wake(_source: EventSource, _keys: set[str]) -> int:
    return 0


class _Inserts:
    """Counts the INSERTs of inbound events on ``app``'s engine and holds the first ``hold`` of them until
    ``go`` is set (each in its own thread: held INSERTs are groups in flight at once); the database refuses an
    INSERT of a notice whose key starts with ``ce:refused``."""

    def __init__(self, app: Flask, hold: int = 0) -> None:
        self.count = 0
        self.held = threading.Semaphore(0)
        self.go = threading.Event()
        self._hold = hold
        self._lock = threading.Lock()
        with app.app_context():
            event.listen(db.engine, "before_cursor_execute", self._seen)

    def _seen(self, *args: object) -> None:
        if not str(args[2]).lstrip().upper().startswith("INSERT INTO INBOUND_EVENTS"):
            return
        with self._lock:
            self.count += 1
            hold = self.count <= self._hold
        if hold:
            self.held.release()
            assert self.go.wait(30)
        if "ce:refused" in str(args[3]):
            raise RuntimeError("the database refused the INSERT")

    def wait_held(self, count: int) -> None:
        """Block until ``count`` INSERTs are held at once."""
        for _ in range(count):
            assert self.held.acquire(timeout=30)


def _storer(app: Flask, group: GroupCommit, wake: Callable[[EventSource, set[str]], int] = _no_wake
            ) -> Callable[[list[Notice]], list[Notice]]:
    def store(notices: list[Notice]) -> list[Notice]:
        with app.app_context():
            return group.store(EventSource.QBO, notices, None, wake)
    return store


def test_requests_arriving_during_a_commit_share_the_next_one_and_each_gets_its_own_events(app: Flask) -> None:
    group = GroupCommit(lanes=1)
    inserts = _Inserts(app, hold=1)  # the first group's INSERT waits until the others are queued behind it
    wakes: list[tuple[EventSource, set[str]]] = []
    commits: list[int] = []

    def wake(source: EventSource, keys: set[str]) -> int:
        wakes.append((source, set(keys)))
        return len(keys)

    with app.app_context():
        event.listen(db.engine, "commit", lambda _conn: commits.append(1))
        autocommit = autocommits(db.engine)
    store = _storer(app, group, wake)
    batches = [[_notice(REALMS[i % 3], i), _notice(REALMS[i % 3], 100 + i)] for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(store, batches[0])
        inserts.wait_held(1)
        rest = [pool.submit(store, batch) for batch in batches[1:]]
        _wait_until(lambda: len(group._waiting) == 5)  # every other request queued behind the running commit
        inserts.go.set()
        results = [first.result(30), *(future.result(30) for future in rest)]
    _wait_until(lambda: not group._waker._busy)  # the groups answered first; the waker thread woke their drains

    assert [len(new) for new in results] == [2] * 6
    assert all({n.dedupe_key for n in new} == {n.dedupe_key for n in batch}
               for new, batch in zip(results, batches, strict=True))
    assert inserts.count == 2  # one INSERT per group, not one per request
    assert len(commits) == (0 if autocommit else 2)  # PostgreSQL: each group's one INSERT commits itself
    # One wake per realm per group at most: the first group's, then the second's (or both in one round).
    assert wakes in ([(EventSource.QBO, {REALMS[0]}), (EventSource.QBO, set(REALMS))], [(EventSource.QBO, set(REALMS))])
    assert count_events(app, status=EventStatus.PENDING) == 12
    # Each request keeps its own receipt time in the group (a drain counts separate arrivals: pipeline/burst.py).
    with app.app_context():
        from sqlalchemy import select

        from crm_qb.models import InboundEvent
        received = dict(db.session.execute(select(InboundEvent.entity_id, InboundEvent.received_at)).all())
    assert all(received[str(i)] == received[str(100 + i)] for i in range(6))  # one request, one time
    assert len({received[str(i)] for i in range(6)}) == 6


def test_only_the_first_request_waiting_times_out_for_the_spare_lane(app: Flask,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The first request to wait while a spare lane is free waits with the timeout and takes the spare with every
    request waiting by then; the others wait untimed (a timeout would wake them only to find themselves in its
    group); while both lanes commit, nobody waits with a timeout (a lane that frees is handed on anyway)."""
    from webhooks.groupcommit import _Ticket

    timeouts: list[float | None] = []
    wait = _Ticket.wait

    def recorded(ticket: _Ticket, timeout: float | None = None) -> bool:
        timeouts.append(timeout)
        return wait(ticket, timeout)

    monkeypatch.setattr(_Ticket, "wait", recorded)
    group = GroupCommit(lanes=2, spare_after=0.2)
    inserts = _Inserts(app, hold=2)
    store = _storer(app, group)
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(store, [_notice(REALMS[0], 0)])
        inserts.wait_held(1)  # lane one commits; the spare is free
        waiting = [pool.submit(store, [_notice(REALMS[1], n)]) for n in (1, 2, 3)]
        inserts.wait_held(1)  # the first of them took the spare lane after 0.2 s, with the other two
        assert group._waiting == [] and group._free == []
        late = pool.submit(store, [_notice(REALMS[2], 4)])  # both lanes commit now
        _wait_until(lambda: len(group._waiting) == 1)
        inserts.go.set()
        results = [f.result(30) for f in [first, *waiting, late]]
    assert [len(new) for new in results] == [1] * 5
    assert timeouts[0] == 0.2 and timeouts[1:3] == [None, None]  # the first waiter's timeout only
    assert 0.2 not in timeouts[3:]  # the late request and the second waits of the first: untimed
    assert inserts.count == 3  # lane one, the spare with the three waiting, the late one
    assert count_events(app, status=EventStatus.PENDING) == 5


def test_a_commit_failure_answers_5xx_to_every_request_of_the_group_and_stores_none(
        app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """The database refuses every INSERT while a group forms: each webhook of the group (and the first one's)
    is answered 500, none is answered before its commit, and no event of any of them is stored."""
    add_connection(app, realm_id=REALMS[0])
    group = runtime(app).ingress
    monkeypatch.setattr(group, "_lanes", 1)  # the group waits behind the first commit (no spare lane)
    inserts = _Inserts(app, hold=1)
    refuse = threading.Event()

    def refused(*args: object) -> None:
        if refuse.is_set() and str(args[2]).lstrip().upper().startswith("INSERT INTO INBOUND_EVENTS"):
            raise RuntimeError("the database is down")

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", refused)
    bodies = [json.dumps([{"specversion": "1.0", "id": str(uuid.uuid4()), "source": "intuit.test",
                           "type": "qbo.customer.updated.v1", "datacontenttype": "application/json",
                           "time": "2026-12-02T01:00:00.000Z", "intuitentityid": str(n),
                           "intuitaccountid": REALMS[0], "data": {}}]).encode() for n in range(4)]
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(lambda: post_qbo(app.test_client(), bodies[0]))
        inserts.wait_held(1)
        rest = [pool.submit(lambda b=b: post_qbo(app.test_client(), b)) for b in bodies[1:]]
        _wait_until(lambda: len(group._waiting) == 3)  # one group of three waits behind the first commit
        refuse.set()
        assert not any(f.done() for f in [first, *rest])  # nobody answered before its commit's outcome
        inserts.go.set()
        answers = [f.result(30) for f in [first, *rest]]
    assert [a.status_code for a in answers] == [500] * 4
    assert all(a.json["error"]["code"] == "internal_error" for a in answers)
    assert count_events(app) == 0


def test_two_groups_commit_at_once_and_the_requests_arriving_meanwhile_join_the_next(app: Flask) -> None:
    group = GroupCommit(lanes=2)
    inserts = _Inserts(app, hold=2)
    store = _storer(app, group)
    batches = [[_notice(REALMS[0], i)] for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        first = [pool.submit(store, batch) for batch in batches[:2]]
        inserts.wait_held(2)  # two groups in flight at the same moment, one per lane
        rest = [pool.submit(store, batch) for batch in batches[2:]]
        _wait_until(lambda: len(group._waiting) == 4)
        inserts.go.set()
        results = [future.result(30) for future in [*first, *rest]]

    assert [[n.dedupe_key for n in new] for new in results] == [[n.dedupe_key for n in b] for b in batches]
    assert inserts.count in (3, 4)  # the four waiting went in one group, or two if both lanes took some
    assert group._opened == 2 and len(group._free) == 2
    assert count_events(app, status=EventStatus.PENDING) == 6


def test_a_quick_commit_is_waited_for_and_a_slow_one_gives_the_next_group_the_spare_lane(app: Flask) -> None:
    for spare_after, lanes in ((30.0, 1), (0.05, 2)):  # the first commit is held for 0.3 s
        group = GroupCommit(lanes=2, spare_after=spare_after)
        inserts = _Inserts(app, hold=1)
        store = _storer(app, group)
        with ThreadPoolExecutor(2) as pool:
            first = pool.submit(store, [_notice(REALMS[0], 1)])
            inserts.wait_held(1)
            second = pool.submit(store, [_notice(REALMS[1], 2)])
            threading.Event().wait(0.3)
            inserts.go.set()
            assert [len(f.result(30)) for f in (first, second)] == [1, 1]
        assert group._opened == lanes  # waited for the first lane, or took the spare after 0.05 s
        with app.app_context():
            event.remove(db.engine, "before_cursor_execute", inserts._seen)
    assert count_events(app, status=EventStatus.PENDING) == 4


def test_a_group_that_commits_while_a_wake_is_under_way_answers_and_its_wake_follows(app: Flask) -> None:
    group = GroupCommit(lanes=2)
    wakes: list[tuple[EventSource, set[str]]] = []
    first_wake_entered, release_first_wake = threading.Event(), threading.Event()

    def wake(source: EventSource, keys: set[str]) -> int:
        if not wakes:
            first_wake_entered.set()
            assert release_first_wake.wait(30)
        wakes.append((source, set(keys)))
        return len(keys)

    store = _storer(app, group, wake)
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(store, [_notice(REALMS[0], 1)])
        assert first_wake_entered.wait(30)  # committed; its wake is under way (and its lane free again)
        second = pool.submit(store, [_notice(REALMS[1], 2)]).result(30)  # answered without waiting for it
        third = pool.submit(store, [_notice(REALMS[2], 3)]).result(30)
        assert not first.done() and wakes == []
        release_first_wake.set()
        assert len(first.result(30)) == 1
    _wait_until(lambda: len(wakes) == 2 and not group._waker._busy)
    assert len(second) == len(third) == 1
    assert wakes == [(EventSource.QBO, {REALMS[0]}), (EventSource.QBO, {REALMS[1], REALMS[2]})]  # one round
    with app.app_context():  # the waker is idle again: a lone request is woken before it answers
        group.store(EventSource.QBO, [_notice(REALMS[0], 4)], None, wake)
        assert wakes[-1] == (EventSource.QBO, {REALMS[0]})
    assert count_events(app, status=EventStatus.PENDING) == 4


def test_requests_stored_together_answer_without_waiting_for_their_wake(app: Flask) -> None:
    group = GroupCommit(lanes=1)
    inserts = _Inserts(app, hold=1)
    wakes: list[tuple[EventSource, set[str]]] = []
    release_wakes = threading.Event()

    def wake(source: EventSource, keys: set[str]) -> int:
        assert release_wakes.wait(30)  # Redis is slow: the requests must not wait for it
        wakes.append((source, set(keys)))
        return len(keys)

    store = _storer(app, group, wake)
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(store, [_notice(REALMS[0], 1)])
        inserts.wait_held(1)
        rest = [pool.submit(store, [_notice(REALMS[n], n)]) for n in (1, 2)]
        _wait_until(lambda: len(group._waiting) == 2)
        inserts.go.set()
        assert [len(f.result(30)) for f in [first, *rest]] == [1, 1, 1]  # all answered, nothing woken yet
        assert wakes == []
        release_wakes.set()
    _wait_until(lambda: not group._waker._busy)
    assert set().union(*(keys for _, keys in wakes)) == set(REALMS)  # every realm woken, after its commit
    assert len(wakes) <= 2  # the second group's keys waited for the first round and went in one


def test_a_failing_group_does_not_fail_the_group_on_the_other_lane(app: Flask) -> None:
    group = GroupCommit(lanes=2)
    inserts = _Inserts(app, hold=2)
    store = _storer(app, group)
    bad = Notice(dedupe_key="ce:refused", realm_id=REALMS[0], entity="Customer", entity_id="1",
                 operation="Update", occurred_at=None, payload={})
    good = [_notice(REALMS[1], 1)]
    with ThreadPoolExecutor(2) as pool:
        failing, passing = pool.submit(store, [bad]), pool.submit(store, good)
        inserts.wait_held(2)
        inserts.go.set()
        assert _raised(failing)
        assert [n.dedupe_key for n in passing.result(30)] == [good[0].dedupe_key]
    with app.app_context():  # both lanes are usable afterwards
        assert len(group.store(EventSource.QBO, [_notice(REALMS[2], 2)], None, _no_wake)) == 1
    assert count_events(app, status=EventStatus.PENDING) == 2


def test_a_request_that_cannot_be_stored_fails_alone(app: Flask) -> None:
    group = GroupCommit(lanes=1)
    inserts = _Inserts(app, hold=1)
    store = _storer(app, group)
    bad = Notice(dedupe_key="ce:refused", realm_id=REALMS[0], entity="Customer", entity_id="1",
                 operation="Update", occurred_at=None, payload={})
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(store, [_notice(REALMS[0], 1)])
        inserts.wait_held(1)
        failing, passing = pool.submit(store, [bad]), pool.submit(store, [_notice(REALMS[1], 2)])
        _wait_until(lambda: len(group._waiting) == 2)  # the bad request and a good one in the same group
        inserts.go.set()
        assert len(first.result(30)) == 1
        assert _raised(failing)
        assert len(passing.result(30)) == 1
    assert count_events(app, status=EventStatus.PENDING) == 2


def test_a_lost_connection_is_replaced_and_the_group_stored(app: Flask) -> None:
    group = GroupCommit(lanes=1)
    with app.app_context():
        assert len(group.store(EventSource.QBO, [_notice(REALMS[0], 1)], None, _no_wake)) == 1
        kept = group._free[0].connection(db.engine)
        kept.connection.dbapi_connection.close()  # type: ignore[union-attr]  # the server or network dropped it
        new = group.store(EventSource.QBO, [_notice(REALMS[0], 2)], None, _no_wake)
        assert group._free[0].connection(db.engine) is not kept
    assert len(new) == 1
    assert count_events(app, status=EventStatus.PENDING) == 2


def test_a_connection_lost_in_the_middle_of_a_group_is_replaced_and_the_whole_group_stored(app: Flask) -> None:
    group = GroupCommit(lanes=1)
    store = _storer(app, group)
    with app.app_context():
        assert len(group.store(EventSource.QBO, [_notice(REALMS[0], 0)], None, _no_wake)) == 1
        kept = group._free[0].connection(db.engine)
    inserts = _Inserts(app, hold=1)
    batches = [[_notice(REALMS[0], i)] for i in range(1, 4)]
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(store, batches[0])
        inserts.wait_held(1)  # the first group's INSERT is on its way: its connection drops now
        rest = [pool.submit(store, batch) for batch in batches[1:]]
        _wait_until(lambda: len(group._waiting) == 2)
        kept.connection.dbapi_connection.close()  # type: ignore[union-attr]
        inserts.go.set()
        results = [future.result(30) for future in [first, *rest]]
    assert [len(new) for new in results] == [1, 1, 1]
    assert count_events(app, status=EventStatus.PENDING) == 4


def test_a_forked_child_commits_on_its_own_connection_and_leaves_the_parents_alone(app: Flask) -> None:
    group = GroupCommit(lanes=1)
    with app.app_context():
        assert len(group.store(EventSource.QBO, [_notice(REALMS[0], 1)], None, _no_wake)) == 1
        kept = group._free[0].connection(db.engine)
        pid = os.fork()
        if pid == 0:  # the child: what a gunicorn worker forked from a master that had served does
            _child_stores(group, kept)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert len(group.store(EventSource.QBO, [_notice(REALMS[0], 3)], None, _no_wake)) == 1
        assert group._free[0].connection(db.engine) is kept  # the parent's connection was not touched
    assert count_events(app, status=EventStatus.PENDING) == 3


def _child_stores(group: GroupCommit, parents: object) -> None:
    code = 1
    try:
        db.engine.dispose(close=False)  # the parent's pooled connections stay the parent's
        new = group.store(EventSource.QBO, [_notice(REALMS[0], 2)], None, _no_wake)
        code = 0 if len(new) == 1 and group._free[0].connection(db.engine) is not parents else 2
    finally:
        os._exit(code)


def test_each_app_has_its_own_committer(app: Flask, settings: object) -> None:
    from crm_qb.app import create_app

    other = create_app(settings)  # type: ignore[arg-type]
    assert isinstance(runtime(app).ingress, GroupCommit)
    assert runtime(app).ingress is not runtime(other).ingress
    with app.app_context():
        expected = POSTGRESQL_LANES if db.engine.dialect.name == "postgresql" else 1
        assert lanes_for(db.engine) == expected
    with other.app_context():
        db.engine.dispose()


def test_concurrent_webhooks_through_the_view_are_all_stored_once(app: Flask) -> None:
    add_connection(app, realm_id=REALMS[0])
    bodies = [json.dumps([{"specversion": "1.0", "id": str(uuid.uuid4()), "source": "intuit.test",
                           "type": "qbo.customer.updated.v1", "datacontenttype": "application/json",
                           "time": "2026-12-02T01:00:00.000Z", "intuitentityid": str(n),
                           "intuitaccountid": REALMS[0], "data": {}}]).encode() for n in range(40)]

    def send(body: bytes) -> int:
        response = post_qbo(app.test_client(), body)
        return int(response.json["stored"]) if response.status_code == 200 else -1

    with ThreadPoolExecutor(8) as pool:
        stored = list(pool.map(send, bodies + bodies))  # each delivered twice, concurrently
    assert sorted(stored) == [0] * 40 + [1] * 40
    assert count_events(app, status=EventStatus.PENDING) == 40


def _raised(future: Future[list[Notice]]) -> bool:
    try:
        future.result(30)
    except Exception:
        return True
    return False


def _wait_until(condition: Callable[[], bool], seconds: float = 30) -> None:
    deadline = datetime.now(UTC).timestamp() + seconds
    while not condition():
        assert datetime.now(UTC).timestamp() < deadline, "condition not met in time"
        threading.Event().wait(0.01)


def test_the_driver_level_insert_stores_what_the_core_insert_stores(app: Flask) -> None:
    from sqlalchemy import select

    from crm_qb.models import InboundEvent
    from crm_qb.sync.pipeline import events

    def kinds(prefix: str) -> list[Notice]:
        return [Notice(f"{prefix}:synced", REALMS[0], "Customer", "7", "Update", datetime(2026, 12, 2, 1, tzinfo=UTC),
                       {"note": "caf\u00e9", "n": [1, 2]}),
                Notice(f"{prefix}:ignored", REALMS[0], "Vendor", "8", "Create", None, {}),
                Notice(f"{prefix}:rejected", REALMS[0], "Customer", "x" * 500, "Update", None, {"a": None})]

    def columns(key: str) -> dict[str, object]:
        row = db.session.scalars(select(InboundEvent).where(InboundEvent.dedupe_key == key)).one()
        return {c.name: getattr(row, c.key) for c in InboundEvent.__table__.c
                if c.name not in ("id", "dedupe_key", "received_at")}

    with app.app_context():
        driver = db.engine.connect()
        with driver.begin():
            new_driver = events.store(EventSource.QBO, kinds("driver"), None, driver)
        driver.close()
        new_core = events.store(EventSource.QBO, kinds("core"))  # the session's Core INSERT
        db.session.commit()
        assert [n.dedupe_key for n in new_driver] == ["driver:synced"]
        assert [n.dedupe_key for n in new_core] == ["core:synced"]
        for kind in ("synced", "ignored", "rejected"):
            assert columns(f"driver:{kind}") == columns(f"core:{kind}")
        received = db.session.scalars(select(InboundEvent.received_at)).all()
        assert all(r.tzinfo is not None and abs(datetime.now(UTC) - r).total_seconds() < 60 for r in received)


def test_a_group_larger_than_one_statement_is_stored_in_pages_once_each(app: Flask) -> None:
    from crm_qb.sync.pipeline import events

    notices = [_notice(REALMS[0], n) for n in range(events.ROWS_PER_INSERT * 2 + 7)]
    inserts = _Inserts(app)
    with app.app_context():
        first = GroupCommit().store(EventSource.QBO, notices, None, _no_wake)
        extra = _notice(REALMS[0], 1000)
        again = GroupCommit().store(EventSource.QBO, [*notices[-3:], extra], None, _no_wake)
    assert [n.dedupe_key for n in first] == [n.dedupe_key for n in notices]
    assert again == [extra]  # the repeated ones were stored once, by the first
    assert inserts.count == 3 + 1
    assert count_events(app) == len(notices) + 1


def _wake_recorder() -> tuple[list[tuple[float, set[str]]], Callable[[EventSource, set[str]], int]]:
    """A wake that records when it was called (monotonic time) and with which keys."""
    calls: list[tuple[float, set[str]]] = []

    def wake(_source: EventSource, keys: set[str]) -> int:
        calls.append((time.monotonic(), set(keys)))
        return len(keys)

    return calls, wake


def _open_window(app: Flask, group: GroupCommit, wake: Callable[[EventSource, set[str]], int]) -> None:
    """Have ``group``'s waker thread send one round (two requests stored together), so its window opens."""
    inserts = _Inserts(app, hold=1)
    store = _storer(app, group, wake)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(store, [_notice(REALMS[0], 100)])
        inserts.wait_held(1)
        second = pool.submit(store, [_notice(REALMS[0], 101)])
        _wait_until(lambda: len(group._waiting) == 1)
        inserts.go.set()
        assert [len(f.result(30)) for f in (first, second)] == [1, 1]
    with app.app_context():
        event.remove(db.engine, "before_cursor_execute", inserts._seen)


def test_wakes_within_the_window_are_coalesced_and_sent_after_the_last_commit(app: Flask) -> None:
    window = 0.5
    group = GroupCommit(lanes=1, wake_window=window)
    calls, wake = _wake_recorder()
    _open_window(app, group, wake)
    _wait_until(lambda: len(calls) == 1)  # the waker thread's round: its window is open now
    opened = calls[0][0]
    committed = []
    with app.app_context():
        for n, realm in enumerate(REALMS):  # lone requests during the window: answered without a wake
            assert len(group.store(EventSource.QBO, [_notice(realm, n)], None, wake)) == 1
            committed.append(time.monotonic())
            assert len(calls) == 1
    assert committed[-1] - opened < window, "the machine was too slow for this test's window"
    _wait_until(lambda: not group._waker._busy)
    assert [keys for _, keys in calls] == [{REALMS[0]}, set(REALMS)]  # one round for the three
    assert calls[1][0] >= committed[-1] and calls[1][0] - opened >= window * 0.99  # at the window's end
    with app.app_context():  # idle again: a lone request is woken before it answers, as before
        group.store(EventSource.QBO, [_notice(REALMS[1], 9)], None, wake)
        assert calls[-1][1] == {REALMS[1]} and len(calls) == 3
    assert count_events(app, status=EventStatus.PENDING) == 2 + len(REALMS) + 1


def test_a_process_killed_before_its_coalesced_wake_leaves_the_event_to_the_sweep(app: Flask,
                                                                                 redis_client: Redis) -> None:
    add_connection(app, realm_id=REALMS[1])
    group = GroupCommit(lanes=1, wake_window=30)  # the window outlives the process
    with app.app_context():
        keys, wake = runtime(app).keys, partial(inbox._wake_with, runtime(app).jobs)
        pid = os.fork()
        if pid == 0:  # a gunicorn worker answers a webhook during its waker's window and is killed (-9) right after
            # Sent means queued: the wake key is set a command before the job is (workers.jobs.wake), and a
            # child killed between the two would leave no job for REALMS[0] (a race of the test, not of ingress).
            inbound = Queue(INBOUND_QUEUE, connection=redis_client)
            _child_answers_during_the_window(group, wake, lambda: inbound.count == 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert count_events(app, status=EventStatus.PENDING) == 1  # committed before it answered
        assert not redis_client.exists(keys.wake(EventSource.QBO.value, REALMS[1]))  # and never woken
        assert jobs.sweep_inbound_events() == 0  # too recent to be called stranded
        db.session.execute(update(InboundEvent).values(received_at=utcnow() - timedelta(
            seconds=runtime(app).settings.sweep_after_seconds + 1)))
        db.session.commit()
        assert jobs.sweep_inbound_events() == 1  # the sweep wakes it
    queued = Queue(INBOUND_QUEUE, connection=redis_client).jobs
    assert [job.args for job in queued] == [(REALMS[0],), (REALMS[1],)]


def _child_answers_during_the_window(group: GroupCommit, wake: Callable[[EventSource, set[str]], int],
                                     first_woken: Callable[[], bool]) -> None:
    code = 1
    try:
        db.engine.dispose(close=False)
        group._waker.wake({EventSource.QBO: {REALMS[0]}}, wake, now=False)  # a round of the waker thread
        _wait_until(first_woken)  # sent: the thread's window is open
        code = 0 if len(group.store(EventSource.QBO, [_notice(REALMS[1], 1)], None, wake)) == 1 else 2
    finally:
        os._exit(code)  # no cleanup, no thread finishing its round: what kill -9 leaves


def test_the_driver_insert_skips_sqlalchemys_result_and_keeps_its_errors(app: Flask,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Without execution listeners the group's INSERT runs on the DBAPI cursor (no ``exec_driver_sql``); a DBAPI
    error is still SQLAlchemy's ``DBAPIError``, and a lost connection is invalidated and says so."""
    from sqlalchemy.engine import Connection
    from sqlalchemy.exc import DBAPIError, IntegrityError

    from crm_qb.sync.pipeline import events

    def refused(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("exec_driver_sql was used")

    with app.app_context():
        conn = db.engine.connect()
        if autocommits(db.engine):
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        with monkeypatch.context() as patch:
            patch.setattr(Connection, "exec_driver_sql", refused)
            stored = _notice(REALMS[0], 1)
            with conn.begin() if not autocommits(db.engine) else conn:
                assert events.store(EventSource.QBO, [stored], None, conn) == [stored]
            assert count_events(app, status=EventStatus.PENDING) == 1
            conn = db.engine.connect()
            with pytest.raises(IntegrityError):  # the DBAPI's error, raised as SQLAlchemy's class for it
                events._execute(conn, "INSERT INTO inbound_events (source) VALUES (NULL)", ())
            assert not conn.invalidated
            conn.close()
            conn = db.engine.connect()
            conn.connection.dbapi_connection.close()  # type: ignore[union-attr]  # the server dropped it
            try:
                events.store(EventSource.QBO, [_notice(REALMS[0], 2)], None, conn)
            except DBAPIError as exc:
                assert exc.connection_invalidated
            else:
                raise AssertionError("storing on a lost connection did not fail")
            assert conn.invalidated
        conn.close()


def test_execution_listeners_still_see_the_driver_insert(app: Flask) -> None:
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", record)
        try:
            assert len(GroupCommit().store(EventSource.QBO, [_notice(REALMS[0], 1)], None, _no_wake)) == 1
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
    assert any(s.lstrip().upper().startswith("INSERT INTO INBOUND_EVENTS") for s in seen)
