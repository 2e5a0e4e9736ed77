"""The scheduled follow-up scan with real processes: scheduler, worker, the reference CRM, concurrent CLI scans."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from subprocess import Popen
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from crm_qb.connections import create_connection
from crm_qb.db import db
from crm_qb.models import ContactLink, FolderItem, FollowUp
from crm_qb.runtime import runtime
from tests.support import free_port, wait_for

pytestmark = pytest.mark.e2e

QBO_ENV = {"CRM_QB_QBO_APP_BASE": "https://app.qbo.example", "CRM_QB_QBO_API_BASE": "http://127.0.0.1:9/qbo",
           "CRM_QB_QBO_DISCOVERY_URL": "http://127.0.0.1:9/discovery"}


def _info(base: str) -> dict[str, Any] | None:
    try:
        return dict(requests.get(f"{base}/_sandbox/info", timeout=1).json())
    except requests.ConnectionError:
        return None


def _tasks(base: str, token: str, contact_id: str) -> list[dict[str, Any]]:
    response = requests.get(f"{base}/contacts/{contact_id}/tasks", headers={"Authorization": f"Bearer {token}"},
                            timeout=5)
    return list(response.json()["tasks"])


def _setup(app: Flask, base: str, token: str, days_overdue: int) -> tuple[int, str]:
    """A connection to the CRM at ``base``, a linked contact and an invoice ``days_overdue`` days overdue."""
    contact = requests.post(f"{base}/_sandbox/contacts", json={"display_name": "Amy", "owner_id": "u1"},
                            timeout=5).json()["id"]
    with app.app_context():
        connection = create_connection(runtime(app).secrets, crm_url=base, crm_token=token).connection
        db.session.add(ContactLink(connection_id=connection.id, crm_contact_id=contact, qbo_customer_id="58"))
        db.session.add(FolderItem(
            connection_id=connection.id, qbo_customer_id="58", txn_type="Invoice", qbo_id="130", doc_number="1037",
            due_date=datetime.now(UTC).date() - timedelta(days=days_overdue), status="Open", currency="USD",
            total=Decimal("362.07"), balance=Decimal("362.07"), home_total=Decimal("362.07"),
            home_balance=Decimal("362.07")))
        db.session.commit()
        return int(connection.id), str(contact)


def _set_invoice(app: Flask, **values: Any) -> None:
    with app.app_context():
        item = db.session.scalars(select(FolderItem)).one()
        for name, value in values.items():
            setattr(item, name, value)
        db.session.commit()


def test_scheduler_and_worker_create_the_tasks_and_cli_scans_finish_them(
    app: Flask, spawn: Callable[..., Popen[bytes]]
) -> None:
    port = free_port()
    spawn("sandbox", "crm", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    info = wait_for(lambda: _info(base), what="the reference CRM to answer")
    connection_id, contact = _setup(app, base, info["token"], days_overdue=3)

    spawn("scheduler", extra_env=QBO_ENV)
    spawn("worker", extra_env=QBO_ENV)
    [task] = wait_for(lambda: _tasks(base, info["token"], contact), what="the scheduled scan to create the task")
    assert "1037" in task["title"] and task["owner_id"] == "u1" and task["status"] == "open"

    # Two scans in two processes at once, when the 14-day rule has become due: one task for it, not two.
    _set_invoice(app, due_date=datetime.now(UTC).date() - timedelta(days=20))
    scans = [spawn("followups", "scan", str(connection_id), extra_env=QBO_ENV) for _ in range(2)]
    assert [scan.wait(60) for scan in scans] == [0, 0]
    assert spawn("followups", "scan", str(connection_id), extra_env=QBO_ENV).wait(60) == 0
    assert sorted(t["description"].rsplit(":", 1)[1] for t in _tasks(base, info["token"], contact)) == ["14]", "1]"]

    _set_invoice(app, balance=Decimal(0), home_balance=Decimal(0), status="Paid")
    assert spawn("followups", "scan", str(connection_id), extra_env=QBO_ENV).wait(60) == 0
    tasks = _tasks(base, info["token"], contact)
    assert [t["status"] for t in tasks] == ["done", "done"]
    assert all("the invoice was paid in full" in t["description"] for t in tasks)
    with app.app_context():
        assert {row.status.value for row in db.session.scalars(select(FollowUp))} == {"completed"}
