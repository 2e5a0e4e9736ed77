"""A connection whose QuickBooks grant is gone is an expected condition: one log line, no traceback, and its
events wait for the reconnect (issue 10 item 16: every ``up`` used to log a traceback for its stale demo connection).

Real QBO sandbox (the grant revoked as Intuit would), real worker, signed webhooks.
"""

from __future__ import annotations

import logging

import pytest

from crm_qb.db import db
from crm_qb.models import Connection, EventStatus, InboundEvent, QboStatus
from crm_qb.runtime import runtime
from tests.support import sync as support
from tests.support.sync import Harness

qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness


def test_a_revoked_grant_is_one_log_line_and_the_events_wait(harness: Harness,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    h = harness
    with h.app.app_context():
        row = db.session.get(Connection, h.connection_id)
        assert row is not None and row.qbo_refresh_token_encrypted is not None
        refresh_token = runtime(h.app).secrets.decrypt(row.qbo_refresh_token_encrypted)
        row.qbo_access_expires_at = row.created_at  # the access token is due for a refresh
        db.session.commit()
    assert h.qbo.sandbox.oauth.revoke(refresh_token)  # the grant is gone at "Intuit"
    customer = h.qbo.create_customer(DisplayName="Waits For Reconnect")
    h.qbo_hook(customer["Id"], "created")

    caplog.clear()
    with caplog.at_level(logging.INFO):
        h.work()

    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()], caplog.text
    assert "must be reconnected" in caplog.text or "reconnect" in caplog.text
    with h.app.app_context():
        row = db.session.get(Connection, h.connection_id)
        assert row is not None and row.qbo_status == QboStatus.NEEDS_RECONNECT
        statuses = {event.status for event in db.session.query(InboundEvent).all()}
        db.session.rollback()
    assert statuses == {EventStatus.PENDING}  # waiting for the reconnect, not failed


def test_a_job_stopped_by_a_needed_reconnect_is_logged_in_one_line(harness: Harness,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    from workers.queues import enqueue
    from workers.sync_jobs import poll_qbo_connection

    h = harness
    with h.app.app_context():
        h.app.extensions["crm_qb"].qbo().store.mark_needs_reconnect(str(h.connection_id), "invalid_grant")
        rt = runtime(h.app)
        enqueue(rt.redis, rt.keys, poll_qbo_connection, h.connection_id, job_id="poll-needs-reconnect")
    caplog.clear()
    with caplog.at_level(logging.INFO):
        h.work()
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()], caplog.text
    [line] = [r.getMessage() for r in caplog.records if "poll-needs-reconnect stopped" in r.getMessage()]
    assert "must be reconnected" in line
