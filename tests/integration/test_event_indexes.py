"""One tenant's backlog of pending events does not slow another's drain: a drain's pending events and a realm's
routing are found through indexes of their own (connection, realm), on both databases, not by reading every
tenant's pending events (migration 0007_event_idx)."""

from __future__ import annotations

from flask import Flask

from crm_qb.db import db
from crm_qb.models import EventSource, InboundEvent
from crm_qb.sync.pipeline import events, routing
from tests.support.connections import add_connection
from tests.support.plans import query_plans


def _event(source: EventSource, key: str, connection_id: int | None, realm_id: str | None) -> InboundEvent:
    return InboundEvent(source=source, dedupe_key=key, connection_id=connection_id, realm_id=realm_id,
                        entity="Customer", entity_id=key, operation="Update", payload={})


def test_a_drain_reads_its_own_pending_events_by_index(app: Flask, backend: str) -> None:
    busy = add_connection(app, realm_id="111").id
    quiet = add_connection(app, realm_id="222").id
    with app.app_context():
        db.session.add_all(_event(EventSource.CRM, f"busy-{n}", busy, None) for n in range(3000))  # a backlog
        db.session.add_all(_event(EventSource.QBO, f"busy-qbo-{n}", busy, "111") for n in range(1000))
        db.session.add_all(_event(EventSource.CRM, f"quiet-{n}", quiet, None) for n in range(3))
        db.session.add(_event(EventSource.QBO, "quiet-new", None, "222"))
        db.session.commit()
        with query_plans(db.engine, "inbound_events") as plans:
            crm = events.pending((InboundEvent.source == EventSource.CRM) & (InboundEvent.connection_id == quiet),
                                 0, 200)
            routed = routing.route_realm("222", [quiet])
            orphans = routing.settle_orphans("222", [quiet])
            qbo = events.pending((InboundEvent.source == EventSource.QBO) & (InboundEvent.realm_id == "222")
                                 & (InboundEvent.connection_id == quiet), 0, 200)
        assert [e.entity_id for e in crm] == ["quiet-0", "quiet-1", "quiet-2"]
        assert routed == 1 and orphans == 0
        assert [e.entity_id for e in qbo] == ["quiet-new"]
        pending_crm, unrouted, orphaned, pending_qbo = plans[0], plans[1], plans[-2], plans[-1]
        assert "ix_inbound_events_connection_status" in pending_crm, pending_crm
        own = ("ix_inbound_events_realm_status", "ix_inbound_events_connection_status")  # this tenant's rows only
        assert any(index in unrouted for index in own), unrouted
        assert "ix_inbound_events_realm_status" in orphaned, orphaned  # a realm's deliveries to connections gone
        assert any(index in pending_qbo for index in own), pending_qbo
