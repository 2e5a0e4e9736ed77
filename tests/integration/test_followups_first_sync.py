"""A first sync of a company with years of invoices: one follow-up task per overdue invoice, never one per rule.

The realm is seeded by the QBO sandbox (customers and invoices months old), the first sync is the real backfill,
the scan the real one; QBO and the reference CRM answer over HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from sqlalchemy import select

from crm_qb.db import db
from crm_qb.models import ContactLink, FolderItem, LinkState
from crm_qb.runtime import runtime
from crm_qb.sandbox.crm.server import RunningServer
from crm_qb.sync.context import build_context
from crm_qb.sync.followups.service import scan_connection
from crm_qb.sync.pipeline.backfill import run_backfill
from crm_qb.sync.rules.followups import DEFAULT_RULE_DAYS, due_rules, rule_label
from crm_qb.sync.rules.status import OVERDUE
from tests.support import sync as support
from tests.support.sync import Harness, QboSandbox, running_harness

qbo_sandbox, crm_server = support.qbo_sandbox, support.crm_server


@pytest.fixture
def seeded(tmp_path: Path, database_url: str, redis_client: Redis, qbo_sandbox: QboSandbox,
           crm_server: RunningServer) -> Iterator[Harness]:
    """A connection to a seeded realm of 15 customers and 80 transactions, most of them long past due."""
    body = {"customers": 15, "transactions": 80, "multicurrency": False, "seed": 11}
    qbo_sandbox.realm_id = qbo_sandbox.post("/_sandbox/realms", body)["realm_id"]
    with running_harness(tmp_path, database_url, qbo_sandbox, crm_server) as made:
        yield made


def _overdue_invoices(h: Harness) -> dict[str, tuple[str, int]]:
    """Overdue invoices with the contact that should hear of them: qbo id -> (CRM contact, days overdue).

    That is the contact of the invoice's customer, else of its nearest ancestor with one (a sub-customer sharing
    its parent's email has no contact of its own), worked out here from QBO's own ParentRef.
    """
    parents = {c["Id"]: (c.get("ParentRef") or {}).get("value") for c in _customers(h)}
    with h.app.app_context():
        contacts = {link.qbo_customer_id: link.crm_contact_id for link in db.session.scalars(
            select(ContactLink).where(ContactLink.state == LinkState.LINKED))}
        items = db.session.scalars(select(FolderItem).where(FolderItem.txn_type == "Invoice",
                                                            FolderItem.status == OVERDUE)).all()
        found = {}
        for item in items:
            customer: str | None = item.qbo_customer_id
            while customer is not None and not contacts.get(customer):
                customer = parents.get(customer)
            if customer is not None:
                found[item.qbo_id] = (str(contacts[customer]), int(item.details["days_overdue"]))
        db.session.rollback()
    return found


def _customers(h: Harness) -> list[dict[str, Any]]:
    with h.app.app_context():
        ctx = build_context(runtime(h.app).sync_services(), h.connection_id)
        try:
            return list(ctx.qbo.query_all("Customer", "Active IN (true, false)"))
        finally:
            ctx.close()


def test_a_first_sync_of_a_seeded_company_makes_one_task_per_overdue_invoice(seeded: Harness) -> None:
    h = seeded
    with h.app.app_context():
        services = runtime(h.app).sync_services()
        run_backfill(services, h.connection_id)
        overdue = _overdue_invoices(h)
        assert len(overdue) >= 10, "the seed should leave many invoices overdue"
        result = scan_connection(services, h.connection_id)
    assert result.created == len(overdue)

    tasks = [task for contact in {contact for contact, _ in overdue.values()}
             for task in h.crm_api("GET", f"/contacts/{contact}/tasks")["tasks"]]
    assert len(tasks) == len(overdue)
    for task in tasks:
        invoice_id, rule = task["description"].rsplit("[crm-qb follow-up ", 1)[1].rstrip("]").split(":")[1:]
        contact, days = overdue[invoice_id]
        assert task["contact_id"] == contact
        assert int(rule) == due_rules_reached(days) and task["title"].endswith(f"({rule_label(int(rule))})")

    with h.app.app_context():
        assert scan_connection(runtime(h.app).sync_services(), h.connection_id).created == 0


def due_rules_reached(days_overdue: int) -> int:
    """The most advanced default rule an invoice ``days_overdue`` days overdue has reached."""
    due = date(2025, 1, 1)
    return due_rules(due, Decimal(1), due + timedelta(days=days_overdue), DEFAULT_RULE_DAYS)[-1]
