"""A pooled PostgreSQL connection is pinged only after it sat idle (crm_qb/idle_ping.py), and a lost one is still
replaced: before its use when it was idle, at its first statement when it was not."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from crm_qb.db import db
from crm_qb.idle_ping import IDLE_PING_SECONDS, ping_when_idle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(postgres_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """An engine of one pooled connection whose pings are counted (``engine.pings``)."""
    made = create_engine(postgres_url, pool_size=1, max_overflow=0)
    ping_when_idle(made, 2.0, clock)
    pings: list[int] = []
    real_ping = made.dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        pings.append(1)
        return real_ping(dbapi_connection)

    monkeypatch.setattr(made.dialect, "do_ping", counted)
    made.pings = pings  # type: ignore[attr-defined]
    yield made
    made.dispose()


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(postgres_url: str, pid: int) -> None:
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    admin.dispose()


def test_a_new_connection_and_one_just_handed_back_are_not_pinged(engine: Engine, clock: Clock) -> None:
    first = _backend_pid(engine)  # opened now: not pinged
    clock.now += 1.9
    assert _backend_pid(engine) == first  # back in the pool 1.9 s ago: not pinged, and the same connection
    clock.now += 1.9
    assert _backend_pid(engine) == first
    assert engine.pings == []  # type: ignore[attr-defined]


def test_a_connection_idle_for_the_interval_is_pinged_and_replaced_when_it_was_lost(
        engine: Engine, clock: Clock, postgres_url: str) -> None:
    first = _backend_pid(engine)
    clock.now += 2.0
    assert _backend_pid(engine) == first  # idle 2 s: pinged, alive, kept
    assert len(engine.pings) == 1  # type: ignore[attr-defined]
    _terminate(postgres_url, first)
    clock.now += 5.0
    replaced = _backend_pid(engine)  # the ping finds it gone: a fresh connection, no error for the caller
    assert replaced != first
    assert len(engine.pings) == 2  # type: ignore[attr-defined]
    clock.now += 0.5
    assert _backend_pid(engine) == replaced  # the fresh one is not pinged again at once
    assert len(engine.pings) == 2  # type: ignore[attr-defined]


def test_a_connection_lost_within_the_interval_fails_one_statement_and_the_pool_recovers(
        engine: Engine, clock: Clock, postgres_url: str) -> None:
    first = _backend_pid(engine)
    _terminate(postgres_url, first)
    clock.now += 0.5  # not idle long enough for a ping: the statement meets the lost connection
    with pytest.raises(DBAPIError) as lost, engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert lost.value.connection_invalidated
    assert _backend_pid(engine) != first  # the next use gets a working connection
    assert engine.pings == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_apps_postgresql_engine_pings_idle_connections_only(app: Flask) -> None:
    with app.app_context():
        assert not db.engine.pool._pre_ping  # the per-check-out ping is off
        with db.engine.connect() as conn:
            record = conn.connection._connection_record
            assert record is not None
        assert IDLE_PING_SECONDS > 0 and "crm_qb_checked_in_at" in record.info
