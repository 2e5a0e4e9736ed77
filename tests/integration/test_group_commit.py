"""Group commit at ingress: concurrent webhooks of one process share a commit and a wake, each committed first."""

from __future__ import annotations

import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from flask import Flask
from sqlalchemy import event

from crm_qb.db import db
from crm_qb.models import EventSource, EventStatus
from crm_qb.sync.pipeline.events import Notice
from tests.support.connections import add_connection, count_events, post_qbo
from webhooks.groupcommit import GroupCommit, autocommits

REALMS = ["9130350000000010", "9130350000000011", "9130350000000012"]


def _notice(realm: str, n: int) -> Notice:
    return Notice(dedupe_key=f"ce:{uuid.uuid4()}", realm_id=realm, entity="Customer", entity_id=str(n),
                  operation="Update", occurred_at=datetime.now(UTC), payload={})


def test_requests_arriving_during_a_commit_share_the_next_one_and_each_gets_its_own_events(app: Flask) -> None:
    group = GroupCommit()
    first_wake_entered, release_first_wake = threading.Event(), threading.Event()
    wakes: list[tuple[EventSource, set[str]]] = []
    commits: list[int] = []
    inserts: list[int] = []

    def count_insert(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO INBOUND_EVENTS"):
            inserts.append(1)

    def wake(source: EventSource, keys: set[str]) -> int:
        wakes.append((source, set(keys)))
        if len(wakes) == 1:  # hold the first group's leader until the others are waiting
            first_wake_entered.set()
            assert release_first_wake.wait(30)
        return len(keys)

    def store(notices: list[Notice]) -> list[Notice]:
        with app.app_context():
            return group.store(EventSource.QBO, notices, None, wake)

    with app.app_context():
        event.listen(db.engine, "commit", lambda _conn: commits.append(1))
        event.listen(db.engine, "before_cursor_execute", count_insert)
        autocommit = autocommits(db.engine)
    batches = [[_notice(REALMS[i % 3], i), _notice(REALMS[i % 3], 100 + i)] for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(store, batches[0])
        assert first_wake_entered.wait(30)
        rest = [pool.submit(store, batch) for batch in batches[1:]]
        _wait_until(lambda: len(group._waiting) == 5)  # every other request queued behind the running commit
        release_first_wake.set()
        results = [first.result(30), *(future.result(30) for future in rest)]

    assert [len(new) for new in results] == [2] * 6
    assert all({n.dedupe_key for n in new} == {n.dedupe_key for n in batch}
               for new, batch in zip(results, batches, strict=True))
    assert len(inserts) == 2  # one INSERT per group, not one per request
    assert len(commits) == (0 if autocommit else 2)  # PostgreSQL: each group's one INSERT commits itself
    assert wakes == [(EventSource.QBO, {REALMS[0]}), (EventSource.QBO, set(REALMS))]  # one wake per realm per group
    assert count_events(app, status=EventStatus.PENDING) == 12


def test_a_request_that_cannot_be_stored_fails_alone(app: Flask) -> None:
    group = GroupCommit()
    bad = Notice(dedupe_key=None, realm_id=REALMS[0], entity="Customer", entity_id="1",  # type: ignore[arg-type]
                 operation="Update", occurred_at=None, payload={})
    with app.app_context():
        try:
            group.store(EventSource.QBO, [bad], None, lambda _s, _k: 0)
        except Exception:
            failed = True
        else:
            failed = False
        new = group.store(EventSource.QBO, [_notice(REALMS[1], 1)], None, lambda _s, _k: 0)
    assert failed and len(new) == 1


def test_a_lost_connection_is_replaced_and_the_group_stored(app: Flask) -> None:
    group = GroupCommit()
    with app.app_context():
        assert len(group.store(EventSource.QBO, [_notice(REALMS[0], 1)], None, lambda _s, _k: 0)) == 1
        kept = group._lane.connection(db.engine)
        kept.connection.dbapi_connection.close()  # type: ignore[union-attr]  # the server or network dropped it
        new = group.store(EventSource.QBO, [_notice(REALMS[0], 2)], None, lambda _s, _k: 0)
        assert group._lane.connection(db.engine) is not kept
    assert len(new) == 1
    assert count_events(app, status=EventStatus.PENDING) == 2


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


def _wait_until(condition: object, seconds: float = 30) -> None:
    deadline = datetime.now(UTC).timestamp() + seconds
    while not condition():  # type: ignore[operator]
        assert datetime.now(UTC).timestamp() < deadline, "condition not met in time"
        threading.Event().wait(0.01)
