"""The scheduled follow-up scan with real processes: scheduler, worker, a CRM of each kind, concurrent CLI scans.

An overdue invoice becomes a task on the contact (HubSpot: a task associated with the contact), owned by the
contact's owner; paid, the task is completed. Runs against the reference CRM and the local HubSpot.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from subprocess import Popen
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from crm_qb.db import db
from crm_qb.models import ContactLink, FolderItem, FollowUp
from tests.support import free_port, stop, wait_for
from tests.support.e2e import Crm, crm_connection, start_crm_sandbox

pytestmark = pytest.mark.e2e

QBO_ENV = {"CRM_QB_QBO_APP_BASE": "https://app.qbo.example", "CRM_QB_QBO_API_BASE": "http://127.0.0.1:9/qbo",
           "CRM_QB_QBO_DISCOVERY_URL": "http://127.0.0.1:9/discovery"}


def _setup(app: Flask, crm: Crm, info: dict[str, Any], days_overdue: int) -> tuple[int, str, str]:
    """A connection to ``crm``, a linked contact and an invoice ``days_overdue`` days overdue; (connection, contact,
    the contact's owner)."""
    owner = crm.first_user()
    contact = str(crm.user("POST", "/contacts", {"display_name": "Amy", "first_name": "Amy", "owner_id": owner})["id"])
    connection_id, _ = crm_connection(app, crm.kind, info)
    with app.app_context():
        db.session.add(ContactLink(connection_id=connection_id, crm_contact_id=contact, qbo_customer_id="58"))
        db.session.add(FolderItem(
            connection_id=connection_id, qbo_customer_id="58", txn_type="Invoice", qbo_id="130", doc_number="1037",
            due_date=datetime.now(UTC).date() - timedelta(days=days_overdue), status="Open", currency="USD",
            total=Decimal("362.07"), balance=Decimal("362.07"), home_total=Decimal("362.07"),
            home_balance=Decimal("362.07")))
        db.session.commit()
    return connection_id, contact, owner


def _set_invoice(app: Flask, **values: Any) -> None:
    with app.app_context():
        item = db.session.scalars(select(FolderItem)).one()
        for name, value in values.items():
            setattr(item, name, value)
        db.session.commit()


def test_scheduler_and_worker_create_the_tasks_and_cli_scans_finish_them(
    app: Flask, crm_kind: str, tmp_path: Path, spawn: Callable[..., Popen[bytes]]
) -> None:
    process, info = start_crm_sandbox(crm_kind, free_port(), tmp_path / "crm.log")
    try:
        _scheduled_and_concurrent_scans(app, Crm(crm_kind, str(info["api_base"]), str(info["token"])), info, spawn)
    finally:
        stop(process)


def _scheduled_and_concurrent_scans(app: Flask, crm: Crm, info: dict[str, Any],
                                    spawn: Callable[..., Popen[bytes]]) -> None:
    connection_id, contact, owner = _setup(app, crm, info, days_overdue=3)
    env = QBO_ENV
    spawn("scheduler", extra_env=env)
    spawn("worker", extra_env=env)
    [task] = wait_for(lambda: crm.tasks(contact), timeout=60,  # processes start slowly on a loaded machine
                      what="the scheduled scan to create the task")
    assert "1037" in task["title"] and task["owner_id"] == owner and task["status"] == "open"

    # Two scans in two processes at once, when the 14-day rule has become due: one task for it, not two.
    _set_invoice(app, due_date=datetime.now(UTC).date() - timedelta(days=20))
    scans = [spawn("followups", "scan", str(connection_id), extra_env=env) for _ in range(2)]
    assert [scan.wait(60) for scan in scans] == [0, 0]
    assert spawn("followups", "scan", str(connection_id), extra_env=env).wait(60) == 0
    assert sorted(t["description"].rsplit(":", 1)[1] for t in crm.tasks(contact)) == ["14]", "1]"]

    _set_invoice(app, balance=Decimal(0), home_balance=Decimal(0), status="Paid")
    assert spawn("followups", "scan", str(connection_id), extra_env=env).wait(60) == 0
    tasks = crm.tasks(contact)
    assert [t["status"] for t in tasks] == ["done", "done"]
    assert all("the invoice was paid in full" in t["description"] for t in tasks)
    with app.app_context():
        assert {row.status.value for row in db.session.scalars(select(FollowUp))} == {"completed"}
