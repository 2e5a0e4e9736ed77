"""``POST /webhooks/crm/<connection_id>``: signed, fresh, validated, stored once, 202."""

from __future__ import annotations

import time

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue

from tests.support.connections import add_connection, count_events, crm_body, post_crm

UPDATED = {"id": "evt-1", "type": "contact.updated", "occurred_at": "2026-11-20T10:00:00Z",
           "contact": {"id": "c-1", "first_name": "Zoë", "email": "zoe@example.com"}}


def test_valid_hook_is_stored_and_enqueued(app: Flask, client: FlaskClient, redis_client: Redis) -> None:
    conn = add_connection(app)
    merged = {"id": "evt-2", "type": "contact.merged", "occurred_at": "2026-11-20T10:00:01Z",
              "contact_id": "c-2", "merged_into": "c-1"}
    response = post_crm(client, conn.id, conn.crm_hook_secret, crm_body(UPDATED, merged))
    assert response.status_code == 202
    assert response.json == {"status": "accepted", "stored": 2, "received": 2}
    assert Queue("crm_qb_test.inbound", connection=redis_client).count == 1  # one drain for the connection


def test_redelivered_hook_is_a_no_op(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app)
    body = crm_body(UPDATED)
    post_crm(client, conn.id, conn.crm_hook_secret, body)
    again = post_crm(client, conn.id, conn.crm_hook_secret, body)
    assert again.status_code == 202 and again.json["stored"] == 0
    assert count_events(app) == 1


def test_replay_older_than_five_minutes_is_401(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app)
    response = post_crm(client, conn.id, conn.crm_hook_secret, crm_body(UPDATED), at=time.time() - 301)
    assert response.status_code == 401 and count_events(app) == 0


def test_wrong_secret_is_401(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app)
    assert post_crm(client, conn.id, "not-the-secret", crm_body(UPDATED)).status_code == 401
    assert count_events(app) == 0


def test_unknown_connection_is_404(app: Flask, client: FlaskClient) -> None:
    response = post_crm(client, 999, "secret", crm_body(UPDATED))
    assert response.status_code == 404
    assert response.json["error"]["code"] == "unknown_connection"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"not json", "body"),
        (b"[]", "body"),
        (b'{"events": []}', "events"),
        (b'{"events": [{"type": "contact.updated", "occurred_at": "2026-11-20T10:00:00Z", "contact": {"id": "1"}}]}',
         "events[0].id"),
        (b'{"events": [{"id": "1", "type": "contact.renamed", "occurred_at": "2026-11-20T10:00:00Z"}]}',
         "events[0].type"),
        (b'{"events": [{"id": "1", "type": "contact.updated", "occurred_at": "soon", "contact": {"id": "1"}}]}',
         "events[0].occurred_at"),
        (b'{"events": [{"id": "1", "type": "contact.updated", "occurred_at": "2026-11-20T10:00:00Z"}]}',
         "events[0].contact"),
        (b'{"events": [{"id": "1", "type": "contact.deleted", "occurred_at": "2026-11-20T10:00:00Z"}]}',
         "events[0].contact_id"),
        (b'{"events": [{"id": "1", "type": "contact.merged", "occurred_at": "2026-11-20T10:00:00Z", '
         b'"contact_id": "2"}]}', "events[0].merged_into"),
    ],
)
def test_invalid_body_is_400_naming_the_field(app: Flask, client: FlaskClient, body: bytes, field: str) -> None:
    conn = add_connection(app)
    response = post_crm(client, conn.id, conn.crm_hook_secret, body)
    assert response.status_code == 400
    assert response.json["error"]["message"].startswith(f"{field}:")
    assert count_events(app) == 0


def test_body_over_one_megabyte_is_413(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app)
    response = post_crm(client, conn.id, conn.crm_hook_secret, b" " * (1024 * 1024 + 1))
    assert response.status_code == 413 and count_events(app) == 0
