"""Values no backend should choke on: NUL characters and identifiers longer than their columns (issue 11 item 2).

Ingress never answers 500 for content: a NUL is dropped from stored text and JSON on SQLite and PostgreSQL alike,
and an event whose identifiers cannot be stored is kept as *rejected* with its reason while the rest of its
batch is stored. Values the sync writes (bases, audit diffs, folder items, conflicts, reasons) are storable too.
"""

from __future__ import annotations

import json

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.exc import StatementError

from crm_qb.db import db
from crm_qb.models import (
    AuditEntry,
    Conflict,
    ContactLink,
    EventStatus,
    FolderItem,
    InboundEvent,
)
from crm_qb.models.types import ValueNotStorable, storable_key
from tests.support.connections import add_connection, crm_body, post_crm, post_qbo

NUL = "\x00"


def _crm_event(event_id: str, contact_id: str, **contact: str) -> dict[str, object]:
    return {"id": event_id, "type": "contact.updated", "occurred_at": "2026-11-20T10:00:00Z",
            "contact": {"id": contact_id, **contact}}


def _events(app: Flask) -> list[InboundEvent]:
    with app.app_context():
        rows = list(db.session.scalars(select(InboundEvent).order_by(InboundEvent.id)))
        for row in rows:
            db.session.expunge(row)
        return rows


def test_a_nul_in_a_contacts_notes_is_dropped_and_the_batch_is_stored(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app)
    body = crm_body(_crm_event("e1", "c1", notes=f"line one{NUL}line two", first_name=f"A{NUL}da"),
                    _crm_event("e2", "c2", notes="plain"))
    response = post_crm(client, conn.id, conn.crm_hook_secret, body)
    assert response.status_code == 202, response.json
    assert response.json["stored"] == 2
    first, second = _events(app)
    assert first.payload["contact"]["notes"] == "line oneline two"
    assert first.payload["contact"]["first_name"] == "Ada"
    assert first.status == second.status == EventStatus.PENDING


def test_a_nul_in_a_json_key_is_dropped_too(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app)
    response = post_crm(client, conn.id, conn.crm_hook_secret,
                        crm_body(_crm_event("e1", "c1", **{f"x{NUL}y": "v"})))
    assert response.status_code == 202
    assert "xy" in _events(app)[0].payload["contact"]


def _legacy(*entities: dict[str, str], realm: str = "9130") -> bytes:
    return json.dumps({"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": list(entities)}}]
                       }).encode()


def _entity(entity_id: str, name: str = "Customer", operation: str = "Update") -> dict[str, str]:
    return {"name": name, "id": entity_id, "operation": operation, "lastUpdated": "2026-11-20T10:00:00.000Z"}


def test_an_id_longer_than_its_column_rejects_only_its_event(app: Flask, client: FlaskClient) -> None:
    long_id = "9" * 300
    response = post_qbo(client, _legacy(_entity(long_id), _entity("7")))
    assert response.status_code == 200, response.json
    assert response.json["received"] == 2 and response.json["stored"] == 1
    rejected, stored = _events(app)
    assert rejected.status == EventStatus.REJECTED
    assert "entity_id is 300 characters long" in str(rejected.status_reason)
    assert stored.status == EventStatus.PENDING and stored.entity_id == "7"
    # A redelivery is still a no-op: the key of the rejected event is stable.
    again = post_qbo(client, _legacy(_entity(long_id), _entity("7")))
    assert again.status_code == 200 and len(_events(app)) == 2


def test_a_nul_in_an_id_rejects_its_event(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app)
    response = post_crm(client, conn.id, conn.crm_hook_secret,
                        crm_body(_crm_event("e1", f"c{NUL}1"), _crm_event("e2", "c2")))
    assert response.status_code == 202
    rejected, stored = _events(app)
    assert rejected.status == EventStatus.REJECTED and "entity_id contains a NUL" in str(rejected.status_reason)
    assert stored.status == EventStatus.PENDING


@pytest.mark.parametrize(
    ("body", "column"),
    [
        (_legacy(_entity("1"), realm="8" * 80), "realm_id"),
        (json.dumps([{"id": "ce-1", "type": f"qbo.{'x' * 80}.updated.v1", "intuitaccountid": "9130",
                      "intuitentityid": "1", "time": "2026-11-20T10:00:00Z"}]).encode(), "entity"),
        (json.dumps([{"id": "ce-2", "type": f"qbo.customer.{'y' * 40}.v1", "intuitaccountid": "9130",
                      "intuitentityid": "1", "time": "2026-11-20T10:00:00Z"}]).encode(), "operation"),
    ],
)
def test_names_over_their_column_lengths_are_rejected_not_500(app: Flask, client: FlaskClient, body: bytes,
                                                              column: str) -> None:
    response = post_qbo(client, body)
    assert response.status_code == 200, response.json
    (event,) = _events(app)
    assert event.status == EventStatus.REJECTED
    assert str(event.status_reason).startswith("rejected: ") and column in str(event.status_reason)


def test_a_long_cloudevent_id_is_kept_unique_without_rejecting(app: Flask, client: FlaskClient) -> None:
    def event(event_id: str) -> dict[str, str]:
        return {"id": event_id, "type": "qbo.customer.updated.v1", "intuitaccountid": "9130",
                "intuitentityid": "1", "time": "2026-11-20T10:00:00Z"}

    long_a, long_b = "a" * 500 + "1", "a" * 500 + "2"  # equal for the first 500 characters
    response = post_qbo(client, json.dumps([event(long_a), event(long_b)]).encode())
    assert response.json["stored"] == 2
    keys = {e.dedupe_key for e in _events(app)}
    assert keys == {storable_key(f"ce:{long_a}", 400), storable_key(f"ce:{long_b}", 400)}
    assert all(len(k) <= 400 for k in keys)


def test_values_the_sync_writes_are_storable(app: Flask) -> None:
    conn = add_connection(app)
    with app.app_context():
        link = ContactLink(connection_id=conn.id, crm_contact_id="c1", qbo_customer_id="1",
                           base={"notes": f"a{NUL}b"}, qbo_owned={"terms": f"Net{NUL}30"},
                           review_reason=f"why{NUL}")
        db.session.add(link)
        db.session.flush()
        db.session.add_all([
            AuditEntry(connection_id=conn.id, action="customer.synced", diff={"notes": [f"x{NUL}", "y"]},
                       message=f"m{NUL}", intuit_tid=f"t{NUL}id"),
            FolderItem(connection_id=conn.id, qbo_customer_id="1", txn_type="Invoice", qbo_id="5",
                       doc_number=f"10{NUL}01", status="Open", currency="USD", total=1, home_total=1,
                       details={"memo": f"n{NUL}"}),
            Conflict(connection_id=conn.id, contact_link_id=link.id, field="notes", qbo_value=f"q{NUL}",
                     crm_value=None, winner="qbo", rule="recent_wins"),
        ])
        db.session.commit()
        db.session.expire_all()
        assert db.session.scalar(select(ContactLink.base)) == {"notes": "ab"}
        assert db.session.scalar(select(AuditEntry.diff)) == {"notes": ["x", "y"]}
        assert db.session.scalar(select(FolderItem.doc_number)) == "1001"
        conflict = db.session.scalar(select(Conflict))
        assert conflict is not None and conflict.qbo_value == "q" and conflict.crm_value is None


def test_an_id_too_long_for_its_column_is_refused_alike_on_every_backend(app: Flask) -> None:
    conn = add_connection(app)
    with app.app_context():
        db.session.add(ContactLink(connection_id=conn.id, crm_contact_id="c" * 129, qbo_customer_id="1"))
        with pytest.raises(StatementError) as raised:
            db.session.commit()
        assert isinstance(raised.value.orig, ValueNotStorable)
        db.session.rollback()
