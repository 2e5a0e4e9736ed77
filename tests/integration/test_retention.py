"""Personal data is not kept forever: settled events' payloads are emptied after CRM_QB_EVENT_RETENTION_DAYS
(issue 11 item 9); ids, outcomes and the audit log stay, pending and failed events keep what a replay needs.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from crm_qb.config import Settings
from crm_qb.db import db, utcnow
from crm_qb.models import AuditEntry, EventSource, EventStatus, InboundEvent
from crm_qb.retention import prune_event_payloads
from tests.conftest import make_settings
from workers.schedule import PERIODIC, tick
from workers.worker import build_worker

CONTACT = {"contact": {"id": "c1", "email": "ada@example.com", "notes": "private"}}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, database_url, event_retention_days="7")


def _event(app: Flask, key: str, status: EventStatus, days_ago: float) -> int:
    with app.app_context():
        row = InboundEvent(source=EventSource.CRM, dedupe_key=key, entity="Contact", entity_id="c1",
                           operation="updated", payload=CONTACT, status=status, status_reason=f"{status.value} why",
                           received_at=utcnow() - timedelta(days=days_ago))
        db.session.add(row)
        db.session.flush()
        db.session.add(AuditEntry(inbound_event_id=row.id, action="customer.synced", diff={"notes": ["a", "b"]}))
        db.session.commit()
        return row.id


def _payloads(app: Flask) -> dict[int, tuple[dict[str, object], bool, EventStatus, str | None]]:
    with app.app_context():
        return {e.id: (e.payload, e.payload_pruned_at is not None, e.status, e.status_reason)
                for e in db.session.scalars(select(InboundEvent))}


def test_settled_payloads_older_than_the_retention_are_emptied(app: Flask) -> None:
    due = [_event(app, "p31", EventStatus.PROCESSED, 31), _event(app, "i40", EventStatus.IGNORED, 40),
           _event(app, "r40", EventStatus.REJECTED, 40)]
    kept = [_event(app, "p29", EventStatus.PROCESSED, 29), _event(app, "pend", EventStatus.PENDING, 40),
            _event(app, "fail", EventStatus.FAILED, 40)]
    with app.app_context():
        assert prune_event_payloads(30) == 3
        assert prune_event_payloads(30) == 0  # already emptied: not touched again
        assert db.session.scalar(select(db.func.count()).select_from(AuditEntry)) == 6
    rows = _payloads(app)
    for event_id in due:
        payload, pruned, status, reason = rows[event_id]
        assert payload == {} and pruned and reason == f"{status.value} why"  # the outcome stays
    for event_id in kept:
        assert rows[event_id][0] == CONTACT and not rows[event_id][1]


def test_zero_keeps_payloads_forever_and_batches_cover_everything(app: Flask) -> None:
    for n in range(5):
        _event(app, f"old{n}", EventStatus.PROCESSED, 100)
    with app.app_context():
        assert prune_event_payloads(0) == 0
        assert prune_event_payloads(30, batch=2) == 5
    assert all(payload == {} for payload, *_ in _payloads(app).values())


def test_the_scheduler_runs_it_with_the_configured_retention(app: Flask) -> None:
    old, recent = _event(app, "old", EventStatus.PROCESSED, 8), _event(app, "new", EventStatus.PROCESSED, 6)
    periodic = tuple(p for p in PERIODIC if p.name == "prune-inbound-payloads")
    assert periodic and periodic[0].every == 3600
    assert tick(app, utcnow().timestamp(), periodic)
    build_worker(app).work(burst=True)
    rows = _payloads(app)
    assert rows[old][0] == {} and rows[recent][0] == CONTACT  # CRM_QB_EVENT_RETENTION_DAYS=7
