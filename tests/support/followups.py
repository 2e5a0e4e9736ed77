"""The follow-up tests' world: one connection wired to the reference CRM, a controlled clock, QuickBooks faked.

Import the fixtures into a test module with ``settings, crm, world = followups.settings_fixture, ...``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from crm_qb.config import Settings
from crm_qb.crm.rest import RestConnector
from crm_qb.db import db
from crm_qb.models import ContactLink, FolderItem, FollowUp
from crm_qb.runtime import runtime
from crm_qb.sandbox.crm.server import RunningServer, start_server
from crm_qb.sandbox.crm.state import SandboxConfig
from crm_qb.sync.followups.service import configure_followups, scan_connection
from tests.conftest import make_settings
from tests.support.connections import add_connection

CRM_TOKEN = "t"  # the token add_connection stores
APP_BASE = "https://app.qbo.example"
QBO_OVERRIDES = {"qbo_app_base": APP_BASE, "qbo_api_base": "http://127.0.0.1:9/qbo",
                 "qbo_discovery_url": "http://127.0.0.1:9/discovery"}
DUE = date(2025, 1, 31)
TAG = "QuickBooks: overdue"


def at(day: date, hour: int = 12) -> datetime:
    """A UTC instant on ``day``."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def overdue_by(days: int) -> datetime:
    """Noon UTC ``days`` after DUE."""
    return at(DUE + timedelta(days=days))


@pytest.fixture(name="settings")
def settings_fixture(tmp_path: Path, database_url: str) -> Settings:
    """The test settings plus QBO addresses, so deep links can be built."""
    return make_settings(tmp_path, database_url, **QBO_OVERRIDES)


@pytest.fixture(name="crm")
def crm_fixture() -> Iterator[RunningServer]:
    """The reference CRM serving on a free port of 127.0.0.1."""
    running = start_server("127.0.0.1", 0, SandboxConfig(token=CRM_TOKEN))
    yield running
    running.stop()


class World:
    """One connection wired to the reference CRM, with helpers to act as QuickBooks and as a CRM user."""

    def __init__(self, app: Flask, crm: RunningServer) -> None:
        self.app, self.crm = app, crm
        self.connection_id = add_connection(app, realm_id="9130", crm_url=crm.url).id
        self.http = requests.Session()
        self.http.trust_env = False

    def contact(self, qbo_customer_id: str, **fields: Any) -> str:
        """Create a CRM contact linked to the QBO customer; return its id."""
        body = {"display_name": f"Customer {qbo_customer_id}", "owner_id": "u2", **fields}
        contact_id = self.http.post(f"{self.crm.url}/_sandbox/contacts", json=body, timeout=5).json()["id"]
        with self.app.app_context():
            db.session.add(ContactLink(connection_id=self.connection_id, crm_contact_id=contact_id,
                                       qbo_customer_id=qbo_customer_id))
            db.session.commit()
        return str(contact_id)

    def invoice(self, qbo_id: str, customer: str, balance: str = "1234.50", due: date = DUE,
                total: str = "1234.50", currency: str = "USD", status: str = "Open") -> None:
        """Mirror an invoice, as the transaction sync would."""
        with self.app.app_context():
            db.session.add(FolderItem(
                connection_id=self.connection_id, qbo_customer_id=customer, txn_type="Invoice", qbo_id=qbo_id,
                doc_number=f"INV-{qbo_id}", due_date=due, status=status, currency=currency, total=Decimal(total),
                balance=Decimal(balance), home_total=Decimal(total), home_balance=Decimal(balance),
                details={"CustomerRef": {"value": customer, "name": f"Customer {customer}"}}))
            db.session.commit()

    def change_invoice(self, qbo_id: str, **values: Any) -> None:
        """Change the mirrored invoice (paid, voided, moved, ...)."""
        with self.app.app_context():
            item = db.session.scalars(select(FolderItem).where(FolderItem.qbo_id == qbo_id)).one()
            for name, value in values.items():
                setattr(item, name, value)
            db.session.commit()

    def delete_invoice(self, qbo_id: str) -> None:
        """Remove the mirrored invoice, as the sync does when it is deleted in QBO."""
        with self.app.app_context():
            db.session.delete(db.session.scalars(select(FolderItem).where(FolderItem.qbo_id == qbo_id)).one())
            db.session.commit()

    def scan(self, now: datetime, **kwargs: Any) -> dict[str, Any]:
        """Run the connection scan at ``now``."""
        with self.app.app_context():
            return scan_connection(runtime(self.app).sync_services(), self.connection_id, now=now,
                                   **kwargs).to_json()

    def configure(self, **changes: Any) -> None:
        """Change the connection's follow-up settings."""
        with self.app.app_context():
            configure_followups(self.connection_id, changes)

    def tasks(self, contact_id: str) -> list[dict[str, Any]]:
        """The contact's tasks as the CRM has them."""
        response = self.http.get(f"{self.crm.url}/contacts/{contact_id}/tasks", timeout=5,
                                 headers={"Authorization": f"Bearer {CRM_TOKEN}"})
        return list(response.json()["tasks"])

    def crm_contact(self, contact_id: str) -> dict[str, Any]:
        """The contact as the CRM has it."""
        return dict(self.http.get(f"{self.crm.url}/contacts/{contact_id}", timeout=5,
                                  headers={"Authorization": f"Bearer {CRM_TOKEN}"}).json())

    def as_user(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call the CRM API as a CRM user would (with the token)."""
        return self.http.request(method, f"{self.crm.url}{path}", timeout=5,
                                 headers={"Authorization": f"Bearer {CRM_TOKEN}"}, **kwargs)

    def faults(self, **plan: Any) -> None:
        """Set the CRM's fault plan."""
        assert self.http.post(f"{self.crm.url}/_sandbox/faults", json=plan, timeout=5).status_code == 200

    def rows(self) -> list[tuple[str, int, str, str | None]]:
        """(invoice, rule, status, reason) of every FollowUp row, ordered."""
        with self.app.app_context():
            rows = db.session.scalars(select(FollowUp).order_by(FollowUp.qbo_invoice_id, FollowUp.rule_days))
            result = [(r.qbo_invoice_id, r.rule_days, r.status.value, r.status_reason) for r in rows]
            db.session.rollback()
            return result

    def connector(self) -> RestConnector:
        """A real connector that does not sleep between retries (keeps outage tests fast)."""
        return RestConnector(self.crm.url, CRM_TOKEN, sleep=lambda _seconds: None)


@pytest.fixture(name="world")
def world_fixture(app: Flask, crm: RunningServer) -> Iterator[World]:
    """A connection to the running reference CRM."""
    created = World(app, crm)
    yield created
    created.http.close()
