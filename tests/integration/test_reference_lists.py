"""Terms and payment methods created or changed in QBO reach the stored reference lists at once, by webhook or by
the CDC poll, so the panel names them without a reconnect (issue 10 item 8).

Real QBO sandbox and reference CRM, signed webhooks, a real worker.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from sqlalchemy import select

from crm_qb.db import db
from crm_qb.models import QboReference
from crm_qb.qbo.company import PAYMENT_METHOD, TERM
from tests.support import sync as support
from tests.support.sync import Harness

# What this file tests does not depend on the database: its SQLite variants run in CI, its PostgreSQL ones with the
# slow tests (tests/conftest.py), to keep CI under 15 minutes.
pytestmark = pytest.mark.postgresql_slow


qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness


def _create(h: Harness, entity: str, **fields: Any) -> dict[str, Any]:
    return h.qbo.post(f"/_sandbox/realms/{h.qbo.realm_id}/entities/{entity}", fields)[entity]  # type: ignore[no-any-return]


def _edit(h: Harness, entity: str, entity_id: str, **fields: Any) -> None:
    requests.patch(f"{h.qbo.url}/_sandbox/realms/{h.qbo.realm_id}/entities/{entity}/{entity_id}", json=fields,
                   timeout=10).raise_for_status()


def _stored(h: Harness, kind: str, qbo_id: str) -> tuple[str, bool] | None:
    with h.app.app_context():
        row = db.session.scalar(select(QboReference).where(QboReference.connection_id == h.connection_id,
                                                           QboReference.kind == kind, QboReference.qbo_id == qbo_id))
        found = (row.name, row.active) if row is not None else None
        db.session.rollback()
    return found


def test_a_new_term_reaches_the_panel_by_webhook_and_a_rename_follows(harness: Harness) -> None:
    h, key = harness, harness.api_key()
    customer = h.qbo.create_customer(DisplayName="Terms Customer")
    h.qbo_hook(customer["Id"], "created")
    h.work()
    contact_id = str(h.link_of_customer(customer["Id"]).crm_contact_id)

    term = _create(h, "Term", Name="Net 75", DueDays=75)
    _edit(h, "Customer", customer["Id"], SalesTermRef={"value": term["Id"]})
    assert "name" not in h.qbo.customer(customer["Id"])["SalesTermRef"]  # QBO names the term by id only
    h.qbo_hook(term["Id"], "created", entity="term")
    h.qbo_hook(customer["Id"])
    h.work()
    assert _stored(h, TERM, term["Id"]) == ("Net 75", True)
    assert h.quickbooks(contact_id, key)["summary"]["terms"] == "Net 75"
    assert "Net 75" in h.panel_html(contact_id)

    _edit(h, "Term", term["Id"], Name="Net 75 days")
    h.qbo_hook(term["Id"], "updated", entity="term")
    h.work()
    assert h.quickbooks(contact_id, key)["summary"]["terms"] == "Net 75 days"
    assert h.failed_events() == []


def test_a_payment_method_no_webhook_announced_is_caught_by_the_cdc_poll(harness: Harness) -> None:
    from workers.sync_jobs import poll_qbo_connection

    h, key = harness, harness.api_key()
    customer = h.qbo.create_customer(DisplayName="Wire Customer")
    h.qbo_hook(customer["Id"], "created")
    h.work()
    contact_id = str(h.link_of_customer(customer["Id"]).crm_contact_id)

    method = _create(h, "PaymentMethod", Name="Wire transfer", Type="NON_CREDIT_CARD")
    _edit(h, "Customer", customer["Id"], PaymentMethodRef={"value": method["Id"]})
    with h.app.app_context():
        poll_qbo_connection(h.connection_id)
    assert _stored(h, PAYMENT_METHOD, method["Id"]) == ("Wire transfer", True)
    assert h.quickbooks(contact_id, key)["summary"]["preferred_payment_method"] == "Wire transfer"
