"""``POST /webhooks/crm/<connection_id>`` with activity hooks (DESIGN §6, §9): stored beside contact hooks, as
events of entity ``Activity``, one drain per connection; a malformed activity event is a 400 naming its field."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from crm_qb.db import db
from crm_qb.models import EventStatus, InboundEvent
from tests.support.connections import add_connection, crm_body, post_crm

CONTACT = {"id": "evt-c", "type": "contact.updated", "occurred_at": "2026-11-20T10:00:00Z",
           "contact": {"id": "c-1", "first_name": "Zoë"}}
CREATED = {"id": "evt-a1", "type": "activity.created", "occurred_at": "2026-11-20T10:00:01Z",
           "activity": {"id": "ac_1", "version": 1, "contact_id": "c-1", "billable": True}}
DELETED = {"id": "evt-a2", "type": "activity.deleted", "occurred_at": "2026-11-20T10:00:02Z", "activity_id": "ac_1"}


def test_activity_hooks_are_stored_with_contact_hooks(app: Flask, client: FlaskClient, redis_client: object) -> None:
    conn = add_connection(app)
    answer = post_crm(client, conn.id, conn.crm_hook_secret, crm_body(CONTACT, CREATED, DELETED))
    assert answer.status_code == 202 and answer.json == {"status": "accepted", "stored": 3, "received": 3}
    with app.app_context():
        rows = db.session.execute(select(InboundEvent.entity, InboundEvent.entity_id, InboundEvent.operation,
                                         InboundEvent.status).order_by(InboundEvent.id)).all()
        db.session.rollback()
    assert [tuple(row) for row in rows] == [
        ("Contact", "c-1", "updated", EventStatus.PENDING), ("Activity", "ac_1", "created", EventStatus.PENDING),
        ("Activity", "ac_1", "deleted", EventStatus.PENDING)]
    again = post_crm(client, conn.id, conn.crm_hook_secret, crm_body(CREATED))
    assert again.json["stored"] == 0  # a redelivery is decided by the unique key


@pytest.mark.parametrize(("event", "field"), [
    ({**CREATED, "activity": None}, "events[0].activity"),
    ({**CREATED, "activity": {"id": 7}}, "events[0].activity.id"),
    ({k: v for k, v in DELETED.items() if k != "activity_id"}, "events[0].activity_id"),
    ({**CREATED, "type": "activity.merged"}, "events[0].type"),
])
def test_a_malformed_activity_event_is_a_400_naming_the_field(app: Flask, client: FlaskClient, event: dict,
                                                              field: str) -> None:
    conn = add_connection(app)
    answer = post_crm(client, conn.id, conn.crm_hook_secret, crm_body(event))
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.json["error"]["message"].startswith(field + ":")
