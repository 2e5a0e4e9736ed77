"""Routing a realm's QBO events to each of its connections: one delivery per connection, exactly once.

Issue 10 item 1 / issue 11 item 3: a change of a company synced by two connections must be applied for both.
"""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from crm_qb.db import db
from crm_qb.models import EventSource, EventStatus, InboundEvent, QboStatus
from crm_qb.sync.pipeline import routing
from tests.support import fixture_bytes
from tests.support.connections import add_connection, disable_sync, post_qbo, set_connection
from workers import jobs

REALM = "310687"  # the realm of the webhook fixtures


def _deliveries(app: Flask) -> list[tuple[int | None, str | None, EventStatus]]:
    with app.app_context():
        rows = db.session.execute(select(InboundEvent.connection_id, InboundEvent.entity_id, InboundEvent.status)
                                  .where(InboundEvent.source == EventSource.QBO).order_by(InboundEvent.id)).all()
        db.session.rollback()
        return [(row[0], row[1], row[2]) for row in rows]


def _two_connections_and_an_event(app: Flask, client: FlaskClient) -> tuple[int, int]:
    first, second = add_connection(app, realm_id=REALM), add_connection(app, realm_id=REALM)
    disable_sync(app, first.id)  # the routing is under test here, not what the sync does
    disable_sync(app, second.id)
    assert post_qbo(client, fixture_bytes("qbo/webhook_cloudevents_customer_created.json")).status_code == 200
    return first.id, second.id


def test_a_realm_event_is_settled_once_for_each_connection_of_the_realm(app: Flask, client: FlaskClient) -> None:
    first, second = _two_connections_and_an_event(app, client)
    with app.app_context():
        assert jobs.drain_qbo_realm(REALM) == 2
        assert jobs.drain_qbo_realm(REALM) == 0  # nothing left: each delivery was settled once
    [(c1, entity_id, s1), (c2, entity_id2, s2)] = _deliveries(app)
    assert (c1, c2) == (first, second) and entity_id == entity_id2
    assert s1 == s2 == EventStatus.PROCESSED


def test_routing_twice_or_after_a_crash_makes_no_second_delivery(app: Flask, client: FlaskClient,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = _two_connections_and_an_event(app, client)

    def crash(_ids: object, _connections: object) -> None:
        raise RuntimeError("killed between the claim and the copies")

    with app.app_context(), monkeypatch.context() as patch:
        patch.setattr(routing, "_insert_copies", crash)
        with pytest.raises(RuntimeError):
            routing.route_realm(REALM, [first, second])
        db.session.rollback()
    assert _deliveries(app)[0][0] is None  # the claim rolled back with the copies: still unrouted
    with app.app_context():
        assert routing.route_realm(REALM, [first, second]) == 1
        assert routing.route_realm(REALM, [first, second]) == 0
    assert [row[0] for row in _deliveries(app)] == [first, second]


def test_deliveries_of_a_disconnected_connection_are_ignored_not_left_pending(app: Flask,
                                                                              client: FlaskClient) -> None:
    first, second = _two_connections_and_an_event(app, client)
    with app.app_context():
        routing.route_realm(REALM, [first, second])
    set_connection(app, second, qbo_status=QboStatus.DISCONNECTED)
    with app.app_context():
        assert jobs.drain_qbo_realm(REALM) == 1
    statuses = {row[0]: row[2] for row in _deliveries(app)}
    assert statuses == {first: EventStatus.PROCESSED, second: EventStatus.IGNORED}
