"""Connections made for a test, the signed requests they receive, and their rows read or set directly."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from crm_qb.connections import create_connection
from crm_qb.db import db
from crm_qb.models import Connection, InboundEvent, QboStatus
from crm_qb.runtime import runtime
from crm_qb.signatures import sign_crm, sign_qbo
from tests.conftest import VERIFIER_TOKEN


@dataclass(frozen=True)
class TestConnection:
    """The id and the once-shown secrets of a connection made for a test."""

    id: int
    api_key: str
    crm_hook_secret: str


def add_connection(app: Flask, realm_id: str | None = None, crm_url: str = "http://127.0.0.1:9/crm") -> TestConnection:
    """Create a connection, optionally already connected to ``realm_id``."""
    with app.app_context():
        created = create_connection(runtime(app).secrets, crm_url=crm_url, crm_token="t")
        row = db.session.get(Connection, created.connection.id)
        assert row is not None
        if realm_id:
            row.qbo_realm_id, row.qbo_status = realm_id, QboStatus.CONNECTED
            db.session.commit()
        return TestConnection(row.id, created.api_key, created.crm_hook_secret)


def post_qbo(client: FlaskClient, body: bytes, token: str = VERIFIER_TOKEN, **headers: str) -> Any:
    """POST ``body`` to the QBO webhook, signed with ``token``."""
    return client.post("/webhooks/qbo", data=body, content_type="application/json",
                       headers={"intuit-signature": sign_qbo(body, token), **headers})


def crm_body(*events: dict[str, Any]) -> bytes:
    """A CRM change-hook body."""
    return json.dumps({"events": list(events)}).encode()


def post_crm(client: FlaskClient, connection_id: int, secret: str, body: bytes, at: float | None = None) -> Any:
    """POST ``body`` to the CRM hook of ``connection_id``, signed with ``secret`` at time ``at``."""
    header = sign_crm(body, secret, int(at if at is not None else time.time()))
    return client.post(f"/webhooks/crm/{connection_id}", data=body, content_type="application/json",
                       headers={"X-CRM-Signature": header})


def count_events(app: Flask, **where: Any) -> int:
    """How many inbound events match ``where`` (column=value)."""
    with app.app_context():
        query = select(func.count()).select_from(InboundEvent)
        for column, value in where.items():
            query = query.where(getattr(InboundEvent, column) == value)
        return int(db.session.scalar(query) or 0)


def set_connection(app: Flask, connection_id: int, **values: object) -> None:
    """Set columns of a connection row directly (test setup)."""
    with app.app_context():
        row = db.session.get(Connection, connection_id)
        assert row is not None
        for name, value in values.items():
            setattr(row, name, value)
        db.session.commit()


def connection_row(app: Flask, connection_id: int) -> Connection:
    """The connection's row as stored now, detached from the session."""
    with app.app_context():
        row = db.session.get(Connection, connection_id)
        assert row is not None
        db.session.expunge(row)
        return row


def disable_sync(app: Flask, connection_id: int) -> None:
    """Turn the connection's sync off (for tests of the plumbing, not of what the sync does)."""
    set_connection(app, connection_id, settings={"sync": {"enabled": False}})
