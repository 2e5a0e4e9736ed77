"""The catch-up poll of a HubSpot connection: changes HubSpot never delivered as webhooks still become events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import cast

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select

from crm_qb.connections import create_hubspot_connection
from crm_qb.crm.factory import connector_for
from crm_qb.db import db, utcnow
from crm_qb.models import Connection, EventSource, EventStatus, InboundEvent
from crm_qb.runtime import runtime
from crm_qb.sandbox.hubspot.server import RunningServer, start_server
from crm_qb.sandbox.hubspot.state import SandboxConfig
from crm_qb.sync.context import SyncContext
from crm_qb.sync.pipeline.crm_poll import poll_crm_changes

TOKEN = "pat-na1-poll"


@pytest.fixture
def hubspot() -> Iterator[RunningServer]:
    """A local HubSpot that sends no webhooks (no target URL: every event is dropped)."""
    running = start_server("127.0.0.1", 0, SandboxConfig(token=TOKEN))
    yield running
    running.stop()


def poll(app: Flask, connection_id: int) -> list[str]:
    """Run one poll; the contact ids of the new events."""
    with app.app_context():
        before = db.session.scalar(select(func.max(InboundEvent.id))) or 0
        connection = db.session.get(Connection, connection_id)
        assert connection is not None
        crm = connector_for(connection, runtime(app).sync_services().crm_environment())
        try:  # the poll reads only these of a sync context (no QuickBooks needed)
            poll_crm_changes(cast(SyncContext, SimpleNamespace(connection_id=connection_id, crm=crm, job_id=None)))
        finally:
            crm.close()
        return [str(e) for e in db.session.scalars(select(InboundEvent.entity_id).where(InboundEvent.id > before))]


def user_edit(hubspot: RunningServer, method: str, path: str, properties: dict[str, str]) -> str:
    answer = requests.request(method, f"{hubspot.url}/_sandbox/objects/contacts{path}", timeout=10,
                              json={"properties": properties})
    answer.raise_for_status()
    return str(answer.json()["id"])


def test_the_poll_stores_each_changed_version_once(app: Flask, hubspot: RunningServer) -> None:
    with app.app_context():
        connection_id = create_hubspot_connection(runtime(app).secrets, api_base=hubspot.url, token=TOKEN,
                                                  portal_id="62515").connection.id
    early = user_edit(hubspot, "POST", "", {"email": "early@example.com", "firstname": "Early"})
    assert poll(app, connection_id) == [early]  # the first poll looks back an hour
    with app.app_context():
        row = db.session.get(Connection, connection_id)
        assert row is not None and row.crm_cursor is not None
    assert poll(app, connection_id) == []  # the overlap re-reads "early": the same version stores nothing
    hubspot.sandbox.clock.advance(300)
    late = user_edit(hubspot, "POST", "", {"email": "late@example.com", "firstname": "Late"})
    assert poll(app, connection_id) == [late]
    assert poll(app, connection_id) == []  # the same versions again: nothing new
    hubspot.sandbox.clock.advance(5)
    user_edit(hubspot, "PATCH", f"/{late}", {"phone": "555"})
    assert poll(app, connection_id) == [late]
    with app.app_context():
        rows = db.session.scalars(select(InboundEvent).where(InboundEvent.source == EventSource.CRM)).all()
        assert {(r.entity_id, r.operation, r.status) for r in rows} == {
            (early, "updated", EventStatus.PENDING), (late, "updated", EventStatus.PENDING)}
        assert len(rows) == 3
        cursor = db.session.get(Connection, connection_id).crm_cursor  # type: ignore[union-attr]
        assert cursor is not None and cursor > utcnow() + timedelta(seconds=200)  # the stamp seen, not "now"
