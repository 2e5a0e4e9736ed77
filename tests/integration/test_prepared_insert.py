"""Ingress's group INSERT as one libpq call on PostgreSQL (crm_qb/sync/pipeline/prepared.py): where it is used,
that it stores what the cursor stores, and that its errors are the cursor's."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from flask import Flask
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from crm_qb.db import db
from crm_qb.models import EventSource, EventStatus
from crm_qb.sync.pipeline import events
from crm_qb.sync.pipeline.events import Notice
from crm_qb.sync.pipeline.prepared import PreparedStatement
from tests.support.connections import count_events
from webhooks.groupcommit import GroupCommit

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])
REALM = "9130350000000020"


def _notice(n: int, key: str | None = None) -> Notice:
    return Notice(
        dedupe_key=key or f"ce:{uuid.uuid4()}",
        realm_id=REALM,
        entity="Customer",
        entity_id=str(n),
        operation="Update",
        occurred_at=datetime.now(UTC),
        payload={"n": n, "note": "caf\u00e9"},
    )


@pytest.fixture
def autocommit(app: Flask) -> Iterator[Connection]:
    """An autocommit connection, as group commit's lanes keep on PostgreSQL."""
    with app.app_context():
        conn = db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        yield conn
        conn.close()


def _prepared_names(conn: Connection) -> list[str]:
    return list(conn.execute(text("SELECT name FROM pg_prepared_statements ORDER BY name")).scalars())


def _no_cursor(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("psycopg's cursor was used")

    monkeypatch.setattr(psycopg.Connection, "cursor", refused)


def test_an_autocommit_connection_runs_the_insert_as_one_prepared_statement(
    autocommit: Connection, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, again = _notice(1), _notice(2), _notice(3)
    with monkeypatch.context() as patch:
        _no_cursor(patch)
        assert events.store(EventSource.QBO, [first, second], None, autocommit) == [first, second]
        assert events.store(EventSource.QBO, [again, first], None, autocommit) == [again]  # a duplicate skipped
    names = _prepared_names(autocommit)
    assert len(names) == 1 and names[0].startswith("crm_qb_insert_events_")  # prepared once, used twice
    assert count_events(app, status=EventStatus.PENDING) == 3  # committed by the statement itself


def test_a_connection_in_a_transaction_keeps_the_cursor_and_its_transaction(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    with app.app_context():
        conn = db.engine.connect()
        with monkeypatch.context() as patch:
            _no_cursor(patch)
            # not the libpq call, which would commit on its own
            with pytest.raises(AssertionError, match="cursor was used"), conn.begin():
                events.store(EventSource.QBO, [_notice(1)], None, conn)
        with conn.begin():
            events.store(EventSource.QBO, [_notice(2)], None, conn)
            conn.rollback()  # the cursor's statement was in the transaction: nothing of it is left
        assert _prepared_names(conn) == []
        conn.close()
    assert count_events(app) == 0


def test_a_statement_the_server_forgot_is_prepared_again(autocommit: Connection, app: Flask) -> None:
    assert len(events.store(EventSource.QBO, [_notice(1)], None, autocommit)) == 1
    autocommit.execute(text("DEALLOCATE ALL"))  # what DISCARD ALL or a pooler does behind the connection's back
    assert len(events.store(EventSource.QBO, [_notice(2)], None, autocommit)) == 1
    assert len(_prepared_names(autocommit)) == 1
    assert count_events(app, status=EventStatus.PENDING) == 2


def test_its_errors_are_sqlalchemys_and_a_lost_connection_is_invalidated(autocommit: Connection) -> None:
    statement = PreparedStatement("crm_qb_test_null", "INSERT INTO inbound_events (source) VALUES ($1) RETURNING id")
    with pytest.raises(IntegrityError) as raised:  # NOT NULL columns left out: psycopg's NotNullViolation
        events._execute(autocommit, "INSERT INTO inbound_events (source) VALUES (%s) RETURNING id", ("qbo",), statement)
    assert isinstance(raised.value.orig, psycopg.errors.NotNullViolation)
    assert not autocommit.invalidated
    assert len(events.store(EventSource.QBO, [_notice(1)], None, autocommit)) == 1  # the connection still works
    with autocommit.engine.connect() as admin:  # the server drops the connection
        admin.execute(
            text("SELECT pg_terminate_backend(:pid)"), {"pid": autocommit.connection.dbapi_connection.info.backend_pid}
        )  # type: ignore[union-attr]
    with pytest.raises(DBAPIError) as lost:
        events.store(EventSource.QBO, [_notice(2)], None, autocommit)
    assert lost.value.connection_invalidated and autocommit.invalidated


def test_group_commit_stores_through_it_and_prepares_again_on_a_replaced_connection(app: Flask) -> None:
    group = GroupCommit(lanes=1)
    with app.app_context():
        assert len(group.store(EventSource.QBO, [_notice(1)], None, lambda *_: 0)) == 1
        kept = group._free[0].connection(db.engine)
        with db.engine.connect() as admin:
            admin.execute(
                text("SELECT pg_terminate_backend(:pid)"), {"pid": kept.connection.dbapi_connection.info.backend_pid}
            )  # type: ignore[union-attr]
        assert len(group.store(EventSource.QBO, [_notice(2)], None, lambda *_: 0)) == 1  # on a fresh connection
        fresh = group._free[0].connection(db.engine)
        assert fresh is not kept and len(_prepared_names(fresh)) == 1
    assert count_events(app, status=EventStatus.PENDING) == 2
