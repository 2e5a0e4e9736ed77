"""The scheduled refresh of idle connections' tokens, and what a refused refresh token does."""

from __future__ import annotations

from datetime import timedelta

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient

from crm_qb.db import db, utcnow
from crm_qb.models import Connection, QboStatus
from crm_qb.qbo.tokens import NeedsReconnectError
from crm_qb.runtime import runtime
from tests.support import oauth as oauth_helpers
from tests.support.connections import add_connection, set_connection
from tests.support.oauth import LiveSandbox, connect
from workers.qbo_jobs import (
    REFRESH_EVERY_SECONDS,
    connections_due_for_refresh,
    refresh_connection_tokens,
    refresh_idle_tokens,
)
from workers.schedule import PERIODIC, tick
from workers.worker import build_worker

sandbox, settings = oauth_helpers.sandbox_fixture, oauth_helpers.sandbox_settings


def _connected(app: Flask, client: FlaskClient) -> int:
    conn = add_connection(app)
    assert connect(client, app, conn.id).status_code == 303
    return conn.id


def test_idle_or_soon_expiring_connections_are_due(app: Flask) -> None:
    now = utcnow()
    cases = {  # name: (status, access token expired at, refresh token expires at, due?)
        "idle a week": (QboStatus.CONNECTED, now - timedelta(days=8), now + timedelta(days=92), True),
        "idle a day": (QboStatus.CONNECTED, now - timedelta(days=1), now + timedelta(days=99), False),
        "refresh token ends soon": (QboStatus.CONNECTED, now - timedelta(hours=2), now + timedelta(days=20), True),
        "busy, refresh token ends soon": (QboStatus.CONNECTED, now + timedelta(minutes=30),
                                          now + timedelta(days=20), False),
        "needs reconnect": (QboStatus.NEEDS_RECONNECT, now - timedelta(days=30), now + timedelta(days=70), False),
        "disconnected": (QboStatus.DISCONNECTED, now - timedelta(days=30), now + timedelta(days=70), False),
    }
    ids = {}
    for name, (status, access, refresh, _) in cases.items():
        ids[name] = add_connection(app, realm_id=f"realm-{len(ids)}").id
        set_connection(app, ids[name], qbo_status=status, qbo_access_expires_at=access, qbo_refresh_expires_at=refresh,
             qbo_access_token_encrypted="x", qbo_refresh_token_encrypted="y")
    with app.app_context():
        due = connections_due_for_refresh(now)
    assert due == sorted(ids[name] for name, case in cases.items() if case[3])


def test_the_scheduled_refresh_renews_an_idle_connection_through_a_worker(app: Flask, client: FlaskClient) -> None:
    assert ("qbo-refresh-idle-tokens", REFRESH_EVERY_SECONDS) in {(p.name, p.every) for p in PERIODIC}
    connection_id = _connected(app, client)
    with app.app_context():
        old = runtime(app).qbo().store.load(str(connection_id)).tokens
    set_connection(app, connection_id, qbo_access_expires_at=utcnow() - timedelta(days=8))
    periodic = tuple(p for p in PERIODIC if p.name == "qbo-refresh-idle-tokens")
    assert tick(app, utcnow().timestamp(), periodic)  # the scheduler queues the scan ...
    build_worker(app).work(burst=True)  # ... which queues the refresh; one burst runs both
    with app.app_context():
        row = db.session.get(Connection, connection_id)
        new = runtime(app).qbo().store.load(str(connection_id)).tokens
        assert row.qbo_status == QboStatus.CONNECTED
        assert utcnow() + timedelta(minutes=59) < row.qbo_access_expires_at
        assert row.qbo_refresh_expires_at > utcnow() + timedelta(days=100)
        assert new.access_token != old.access_token and new.refresh_token != old.refresh_token
        assert connections_due_for_refresh(utcnow()) == []
        assert refresh_idle_tokens() == 0


def test_a_refused_refresh_token_marks_the_connection_and_stops_every_call_to_intuit(
    app: Flask, client: FlaskClient, sandbox: LiveSandbox
) -> None:
    connection_id = _connected(app, client)
    with app.app_context():
        services = runtime(app).qbo()
        sandbox.sandbox.oauth.revoke(services.store.load(str(connection_id)).tokens.refresh_token)
    set_connection(app, connection_id, qbo_access_expires_at=utcnow() - timedelta(days=8))
    with app.app_context():
        assert refresh_connection_tokens(str(connection_id)) == "needs_reconnect"
        row = db.session.get(Connection, connection_id)
        assert row.qbo_status == QboStatus.NEEDS_RECONNECT and "invalid_grant" in row.qbo_status_reason
        assert connections_due_for_refresh(utcnow()) == []
        assert refresh_connection_tokens(str(connection_id)) == "skipped"
        with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:  # any HTTP call would fail
            with pytest.raises(NeedsReconnectError):
                services.tokens.access_token(str(connection_id))
            with services.client_for(row) as qbo, pytest.raises(NeedsReconnectError):
                qbo.read("Customer", "1")
            assert len(mock.calls) == 0
    assert client.get("/healthz").json["status"] == "degraded"  # the details (with the id) need the operator token
