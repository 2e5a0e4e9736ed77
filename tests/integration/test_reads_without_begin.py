"""On PostgreSQL a read outside a transaction opens none (no BEGIN, no ROLLBACK), and everything that needs a
transaction still has one: writes stay atomic and see each other, row locks hold, savepoints and server-side
cursors work, an autocommit connection commits at once (crm_qb/reads_without_begin.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from psycopg.pq import TransactionStatus
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import OperationalError

from crm_qb.db import db
from crm_qb.models import ContactLink, LinkState
from crm_qb.reads_without_begin import ReadWithoutBegin
from tests.support.connections import add_connection

ON_POSTGRESQL = pytest.mark.parametrize("backend", ["postgresql"])


@pytest.fixture
def connection_id(app: Flask) -> int:
    return add_connection(app).id


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield
        db.session.rollback()


def _status() -> TransactionStatus:
    """The server-side transaction state of the session's current connection."""
    dbapi = db.session.connection().connection.dbapi_connection
    assert dbapi is not None
    return TransactionStatus(dbapi.info.transaction_status)


def _links(connection_id: int) -> int:
    return int(db.session.scalar(select(func.count()).select_from(ContactLink)
                                 .where(ContactLink.connection_id == connection_id)) or 0)


def _link(connection_id: int, n: int) -> ContactLink:
    return ContactLink(connection_id=connection_id, qbo_customer_id=str(n), crm_contact_id=f"ct_{n}",
                       state=LinkState.LINKED)


@ON_POSTGRESQL
def test_the_apps_connections_use_the_cursor(app: Flask, ctx: None) -> None:
    dbapi = db.session.connection().connection.dbapi_connection
    assert isinstance(dbapi.cursor(), ReadWithoutBegin)


@ON_POSTGRESQL
def test_a_read_leaves_no_transaction_open(app: Flask, ctx: None, connection_id: int) -> None:
    """psycopg's own BEGIN would leave the connection in a transaction until the ROLLBACK that ends the read."""
    assert _links(connection_id) == 0
    assert _status() == TransactionStatus.IDLE
    db.session.execute(select(ContactLink.id).where(ContactLink.connection_id == connection_id)).all()
    assert _status() == TransactionStatus.IDLE


@ON_POSTGRESQL
def test_writes_after_reads_are_one_transaction_that_sees_itself(app: Flask, ctx: None, connection_id: int) -> None:
    assert _links(connection_id) == 0  # a read first: outside any transaction
    db.session.add(_link(connection_id, 1))
    db.session.flush()
    assert _status() == TransactionStatus.INTRANS  # the write opened it
    assert _links(connection_id) == 1  # a read inside it sees the write
    db.session.add(_link(connection_id, 2))
    db.session.flush()
    db.session.rollback()
    assert _links(connection_id) == 0  # both undone together
    db.session.add_all([_link(connection_id, 3), _link(connection_id, 4)])
    db.session.commit()
    assert _links(connection_id) == 2


@ON_POSTGRESQL
def test_a_row_lock_is_held_in_a_transaction(app: Flask, ctx: None, connection_id: int, postgres_url: str) -> None:
    row = db.session.execute(select(ContactLink.__table__.c.id).where(ContactLink.connection_id == connection_id)
                             .with_for_update()).all()
    assert row == []
    assert _status() == TransactionStatus.INTRANS
    db.session.rollback()
    db.session.add(_link(connection_id, 1))
    db.session.commit()
    db.session.execute(select(ContactLink.id).where(ContactLink.connection_id == connection_id)
                       .with_for_update()).all()
    other = create_engine(postgres_url)
    try:
        with other.connect() as conn, pytest.raises(OperationalError):  # the lock is still held: NOWAIT fails
            conn.execute(text("SELECT id FROM contact_links WHERE connection_id = :c FOR UPDATE NOWAIT"),
                         {"c": connection_id}).all()
    finally:
        other.dispose()


@ON_POSTGRESQL
def test_a_savepoint_and_a_server_side_cursor_work(app: Flask, ctx: None, connection_id: int) -> None:
    db.session.add(_link(connection_id, 1))
    db.session.commit()
    with db.session.begin_nested():
        db.session.add(_link(connection_id, 2))
    nested = db.session.begin_nested()
    db.session.add(_link(connection_id, 3))
    db.session.flush()
    nested.rollback()
    db.session.commit()
    assert _links(connection_id) == 2
    streamed = db.session.execute(select(ContactLink.qbo_customer_id).where(ContactLink.connection_id == connection_id)
                                  .order_by(ContactLink.id).execution_options(yield_per=1)).scalars().all()
    assert streamed == ["1", "2"]


@ON_POSTGRESQL
def test_an_autocommit_connection_commits_each_write(app: Flask, ctx: None, connection_id: int) -> None:
    """The webhooks' group commit writes on an autocommit connection: its inserts are committed at once."""
    with db.engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.execute(text("INSERT INTO contact_links (connection_id, qbo_customer_id, state, review_candidates, base,"
                          " qbo_owned, qbo_active, created_at, updated_at) VALUES (:c, '9', 'linked', '[]', '{}',"
                          " '{}', true, now(), now())"), {"c": connection_id})
        dbapi: Any = conn.connection.dbapi_connection
        assert dbapi.info.transaction_status == TransactionStatus.IDLE
        conn.rollback()  # nothing to undo: it was committed
    assert _links(connection_id) == 1
