"""The CDC poll keeps going past a record the CRM refuses, survives a window too dense for CDC, and a connection
that never synced gets a backfill rather than a one-hour poll."""

from __future__ import annotations

import pytest
from rq import Queue
from sqlalchemy import select

from crm_qb.db import db
from crm_qb.keys import JobIds
from crm_qb.models import AuditEntry, Connection
from crm_qb.qbo.client import CdcWindowTooDenseError, QboClient
from tests.support import sync as support
from tests.support.sync import Harness
from workers.sync_jobs import poll_qbo_connection, schedule_cdc_polls

qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness


def _audits(harness: Harness, action: str) -> list[AuditEntry]:
    with harness.app.app_context():
        rows = list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))
        db.session.expunge_all()
        return rows


def test_a_customer_the_crm_refuses_is_recorded_and_the_poll_goes_on(harness: Harness) -> None:
    refused = harness.qbo.create_customer(DisplayName="N" * 300)  # QBO allows 500; the reference CRM 255
    fine = harness.qbo.create_customer(DisplayName="Mary Jackson")
    with harness.app.app_context():
        assert poll_qbo_connection(harness.connection_id) >= 2
        cursor = db.session.get(Connection, harness.connection_id).cdc_cursor  # type: ignore[union-attr]
    assert cursor is not None  # the poll finished and moved on
    assert harness.link_of_customer(fine["Id"]).crm_contact_id
    [failure] = _audits(harness, "sync.failed")
    assert (failure.entity, failure.entity_id, failure.outcome) == ("Customer", refused["Id"], "failed")
    assert "display_name" in (failure.message or "")


def test_a_window_too_dense_for_cdc_is_caught_up_with_queries(harness: Harness,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    customer = harness.qbo.create_customer(DisplayName="Dorothy Vaughan")

    def too_dense(*_args: object, **_kwargs: object) -> object:
        raise CdcWindowTooDenseError("more than 1,000 changes within one second")

    monkeypatch.setattr(QboClient, "cdc_all", too_dense)
    with harness.app.app_context():
        assert poll_qbo_connection(harness.connection_id) >= 1
    assert harness.link_of_customer(customer["Id"]).crm_contact_id


def test_a_connection_that_never_synced_gets_a_backfill_not_a_poll(harness: Harness) -> None:
    with harness.app.app_context():
        assert db.session.get(Connection, harness.connection_id).cdc_cursor is None  # type: ignore[union-attr]
        assert schedule_cdc_polls() == 1
        prefix = harness.app.extensions["crm_qb"].settings.queue_prefix
        redis = harness.app.extensions["crm_qb"].redis
    assert JobIds.backfill(harness.connection_id) in Queue(f"{prefix}.backfill", connection=redis).job_ids
