"""``POST /webhooks/qbo``: both Intuit formats, verified, stored once, enqueued after commit."""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq import Queue
from sqlalchemy import select

from crm_qb.db import db
from crm_qb.models import AuditEntry, EventStatus, InboundEvent
from tests.support import fixture_bytes
from tests.support.connections import add_connection, count_events, post_qbo
from workers.worker import build_worker

INBOUND_QUEUE = "crm_qb_test.inbound"


def test_legacy_payload_stores_each_entity_and_enqueues_synced_ones(app: Flask, client: FlaskClient,
                                                                      redis_client: Redis) -> None:
    add_connection(app, realm_id="1185883450")
    response = post_qbo(client, fixture_bytes("qbo/webhook_legacy.json"))
    assert response.status_code == 200
    assert response.json == {"status": "ok", "stored": 1, "received": 2}
    assert count_events(app, status=EventStatus.PENDING, entity="Customer") == 1
    assert count_events(app, status=EventStatus.IGNORED, entity="Vendor") == 1
    assert Queue(INBOUND_QUEUE, connection=redis_client).count == 1


@pytest.mark.parametrize("name", ["webhook_cloudevents_customer_created", "webhook_cloudevents_customer_merged",
                                  "webhook_cloudevents_salesreceipt_updated"])
def test_cloudevents_payloads_are_stored_with_their_event_id(app: Flask, client: FlaskClient, name: str) -> None:
    body = fixture_bytes(f"qbo/{name}.json")
    event = json.loads(body)[0]
    add_connection(app, realm_id=event["intuitaccountid"])
    assert post_qbo(client, body).status_code == 200
    with app.app_context():
        stored = db.session.scalars(select(InboundEvent)).one()
        assert stored.dedupe_key == f"ce:{event['id']}"
        assert stored.entity_id == event["intuitentityid"]
        assert stored.status == EventStatus.PENDING


def test_merge_event_keeps_the_merged_away_id(app: Flask, client: FlaskClient) -> None:
    body = fixture_bytes("qbo/webhook_cloudevents_customer_merged.json")
    add_connection(app, realm_id=json.loads(body)[0]["intuitaccountid"])
    post_qbo(client, body)
    with app.app_context():
        stored = db.session.scalars(select(InboundEvent)).one()
        assert (stored.operation, stored.entity_id, stored.payload["deleted_id"]) == ("Merge", "123", "27")


def test_cloudevents_content_type_is_accepted(app: Flask, client: FlaskClient) -> None:
    body = fixture_bytes("qbo/webhook_cloudevents_customer_created.json")
    add_connection(app, realm_id="310687")
    response = post_qbo(client, body, **{"Content-Type": "application/cloudevents+json"})
    assert response.status_code == 200 and count_events(app) == 1


def test_redelivery_is_a_no_op(app: Flask, client: FlaskClient, redis_client: Redis) -> None:
    add_connection(app, realm_id="1185883450")
    body = fixture_bytes("qbo/webhook_legacy.json")
    post_qbo(client, body)
    again = post_qbo(client, body)
    assert again.status_code == 200 and again.json["stored"] == 0
    assert count_events(app) == 2
    assert Queue(INBOUND_QUEUE, connection=redis_client).count == 1


def test_unsynced_entity_types_are_recorded_and_ignored(app: Flask, client: FlaskClient,
                                                         redis_client: Redis) -> None:
    response = post_qbo(client, fixture_bytes("qbo/webhook_cloudevents.json"))  # an Account
    assert response.status_code == 200
    with app.app_context():
        stored = db.session.scalars(select(InboundEvent)).one()
        assert stored.status == EventStatus.IGNORED and stored.status_reason == "entity Account is not synced"
    assert Queue(INBOUND_QUEUE, connection=redis_client).count == 0


def test_unknown_realm_is_recorded_and_ignored_by_the_worker(app: Flask, client: FlaskClient) -> None:
    assert post_qbo(client, fixture_bytes("qbo/webhook_cloudevents_customer_created.json")).status_code == 200
    build_worker(app).work(burst=True)
    with app.app_context():
        stored = db.session.scalars(select(InboundEvent)).one()
        assert stored.status == EventStatus.IGNORED and stored.status_reason == "unknown realm"


def test_empty_verification_ping_is_answered_200(app: Flask, client: FlaskClient) -> None:
    response = client.post("/webhooks/qbo", data=b"", content_type="application/json")
    assert response.status_code == 200 and count_events(app) == 0


@pytest.mark.parametrize("headers", [{}, {"intuit-signature": "bm9wZQ=="}])
def test_missing_or_bad_signature_is_401_and_stores_nothing(app: Flask, client: FlaskClient,
                                                             headers: dict[str, str]) -> None:
    response = client.post("/webhooks/qbo", data=fixture_bytes("qbo/webhook_legacy.json"),
                           content_type="application/json", headers=headers)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_signature"
    assert count_events(app) == 0


def test_signature_with_the_wrong_token_is_401(app: Flask, client: FlaskClient) -> None:
    assert post_qbo(client, fixture_bytes("qbo/webhook_legacy.json"), token="other").status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "body: not JSON"),
        (b"\xff\xfe", "body: not JSON"),
        (b'{"something": 1}', "body: expected a CloudEvents array"),
        (b'{"eventNotifications": [{"dataChangeEvent": {"entities": []}}]}', "eventNotifications[0].realmId"),
        (b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": [{"name": "Customer", '
         b'"id": "1", "operation": "Explode", "lastUpdated": "2025-01-01T00:00:00Z"}]}}]}',
         "eventNotifications[0].dataChangeEvent.entities[0].operation"),
        (b'[{"id": "x", "type": "nonsense", "intuitaccountid": "1"}]', "[0].type"),
        (b'[{"id": "x", "type": "qbo.customer.created.v1"}]', "[0].intuitaccountid"),
        (b'[{"id": "x", "type": "qbo.customer.created.v1", "intuitaccountid": "1", "time": "yesterday"}]',
         "[0].time"),
    ],
)
def test_malformed_bodies_are_400_naming_the_field_and_store_nothing(app: Flask, client: FlaskClient,
                                                                     body: bytes, field: str) -> None:
    response = post_qbo(client, body)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "invalid_body"
    assert response.json["error"]["message"].startswith(field)
    assert count_events(app) == 0


def test_body_over_one_megabyte_is_413(app: Flask, client: FlaskClient) -> None:
    body = b"[" + b" " * (1024 * 1024) + b"]"
    response = post_qbo(client, body)
    assert response.status_code == 413
    assert response.json["error"]["code"] == "request_entity_too_large"
    assert count_events(app) == 0


def _without_sync(app: Flask, *connection_ids: int) -> None:
    """These connections have no QBO tokens: the pipeline is under test here, not the customer sync."""
    from crm_qb.models import Connection

    with app.app_context():
        for connection_id in connection_ids:
            row = db.session.get(Connection, connection_id)
            assert row is not None
            row.settings = {"sync": {"enabled": False}}
        db.session.commit()


def test_a_burst_of_webhooks_wakes_one_drain_job(app: Flask, client: FlaskClient, redis_client: Redis) -> None:
    _without_sync(app, add_connection(app, realm_id="310687").id)
    for i in range(25):
        event = [{"specversion": "1.0", "id": f"evt-{i}", "source": "intuit.x", "type": "qbo.customer.updated.v1",
                  "time": "2026-11-21T10:00:00Z", "intuitentityid": str(i), "intuitaccountid": "310687"}]
        assert post_qbo(client, json.dumps(event).encode()).json["stored"] == 1
    assert Queue(INBOUND_QUEUE, connection=redis_client).count == 1
    build_worker(app).work(burst=True)
    assert count_events(app, status=EventStatus.PROCESSED) == 25


def test_event_of_a_realm_linked_to_two_connections_goes_to_both(app: Flask, client: FlaskClient) -> None:
    first, second = add_connection(app, realm_id="310687"), add_connection(app, realm_id="310687")
    _without_sync(app, first.id, second.id)
    post_qbo(client, fixture_bytes("qbo/webhook_cloudevents_customer_created.json"))
    build_worker(app).work(burst=True)
    with app.app_context():
        audited = set(db.session.scalars(select(AuditEntry.connection_id)))
    assert audited == {first.id, second.id}


def test_a_notification_partly_seen_before_stores_only_the_new_changes(app: Flask, client: FlaskClient) -> None:
    add_connection(app, realm_id="1185883450")

    def legacy(*ids: str) -> bytes:
        entities = [{"name": "Customer", "id": i, "operation": "Update", "lastUpdated": "2026-11-21T10:00:00Z"}
                    for i in ids]
        return json.dumps({"eventNotifications": [{"realmId": "1185883450",
                                                   "dataChangeEvent": {"entities": entities}}]}).encode()

    assert post_qbo(client, legacy("1", "2")).json["stored"] == 2
    assert post_qbo(client, legacy("2", "3", "1", "4")).json == {"status": "ok", "stored": 2, "received": 4}
    with app.app_context():
        assert sorted(db.session.scalars(select(InboundEvent.entity_id))) == ["1", "2", "3", "4"]


def test_a_webhook_opens_no_cookie_session(app: Flask, client: FlaskClient) -> None:
    from crm_qb.web.sessions import SessionsExceptWebhooks

    assert isinstance(app.session_interface, SessionsExceptWebhooks)
    add_connection(app)
    response = post_qbo(client, fixture_bytes("qbo/webhook_cloudevents_customer_created.json"))
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
