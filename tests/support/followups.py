"""The follow-up tests' world: one connection wired to the reference CRM, a controlled clock, QBO invoices mirrored.

Invoices are QBO Invoice objects put through the real folder mirror (``apply_transaction``), so the follow-ups read
exactly what the transaction sync stores.

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
from crm_qb.models import ContactLink, FollowUp
from crm_qb.runtime import runtime
from crm_qb.sandbox.crm.server import RunningServer, start_server
from crm_qb.sandbox.crm.state import SandboxConfig
from crm_qb.sync.followups.service import configure_followups, scan_connection
from crm_qb.sync.transactions.mirror import apply_transaction
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


def customer_name(qbo_customer_id: str) -> str:
    """The QBO customer's name on its invoices (deliberately not the CRM contact's name)."""
    return f"QBO customer {qbo_customer_id}"


class World:
    """One connection wired to the reference CRM, with helpers to act as QuickBooks and as a CRM user."""

    def __init__(self, app: Flask, crm: RunningServer) -> None:
        self.app, self.crm = app, crm
        self.connection_id = add_connection(app, realm_id="9130", crm_url=crm.url).id
        self.http = requests.Session()
        self.http.trust_env = False
        self._invoices: dict[str, dict[str, Any]] = {}
        self._clock = datetime(2025, 1, 1, tzinfo=UTC)

    def contact(self, qbo_customer_id: str, **fields: Any) -> str:
        """Create a CRM contact linked to the QBO customer; return its id."""
        body = {"display_name": f"Contact {qbo_customer_id}", "owner_id": "u2", **fields}
        contact_id = self.http.post(f"{self.crm.url}/_sandbox/contacts", json=body, timeout=5).json()["id"]
        with self.app.app_context():
            db.session.add(ContactLink(connection_id=self.connection_id, crm_contact_id=contact_id,
                                       qbo_customer_id=qbo_customer_id))
            db.session.commit()
        return str(contact_id)

    def invoice(self, qbo_id: str, customer: str, balance: str = "1234.50", due: date = DUE,
                total: str = "1234.50", currency: str = "USD") -> None:
        """Mirror a QBO invoice through the folder mirror, as the transaction sync does."""
        self._invoices[qbo_id] = {
            "Id": qbo_id, "SyncToken": "0", "DocNumber": f"INV-{qbo_id}",
            "TxnDate": (due - timedelta(days=30)).isoformat(), "DueDate": due.isoformat(),
            "CustomerRef": {"value": customer, "name": customer_name(customer)},
            "CurrencyRef": {"value": currency}, "TotalAmt": Decimal(total), "Balance": Decimal(balance),
        }
        self._mirror(qbo_id)

    def change_invoice(self, qbo_id: str, **fields: Any) -> None:
        """Change the QBO invoice (QBO's field names: ``Balance``, ``CustomerRef``, ...) and mirror the new version."""
        txn = self._invoices[qbo_id]
        txn.update(fields)
        txn["SyncToken"] = str(int(txn["SyncToken"]) + 1)
        self._mirror(qbo_id)

    def pay_invoice(self, qbo_id: str) -> None:
        """The invoice paid in full in QBO."""
        self.change_invoice(qbo_id, Balance=Decimal("0"))

    def void_invoice(self, qbo_id: str) -> None:
        """The invoice voided in QBO (amounts zeroed, the "Voided" note)."""
        self.change_invoice(qbo_id, TotalAmt=Decimal(0), Balance=Decimal(0), PrivateNote="Voided")

    def move_invoice(self, qbo_id: str, customer: str) -> None:
        """The invoice given to another customer in QBO."""
        self.change_invoice(qbo_id, CustomerRef={"value": customer, "name": customer_name(customer)})

    def delete_invoice(self, qbo_id: str) -> None:
        """The invoice deleted in QBO (CDC's deleted form)."""
        self._invoices[qbo_id] = {"Id": qbo_id, "status": "Deleted"}
        self._mirror(qbo_id)

    def _mirror(self, qbo_id: str) -> None:
        txn = self._invoices[qbo_id]
        self._clock += timedelta(seconds=1)
        txn["MetaData"] = {"CreateTime": "2025-01-01T00:00:00+00:00", "LastUpdatedTime": self._clock.isoformat()}
        with self.app.app_context():
            apply_transaction(self.connection_id, "Invoice", qbo_id, dict(txn))
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
        """The contact's tasks as a CRM user sees them (the control API: not counted, never rate limited)."""
        response = self.http.get(f"{self.crm.url}/_sandbox/contacts/{contact_id}/tasks", timeout=5)
        return list(response.json()["tasks"])

    def crm_contact(self, contact_id: str) -> dict[str, Any]:
        """The contact as the CRM has it (the control API: not counted, never rate limited)."""
        return dict(self.http.get(f"{self.crm.url}/_sandbox/contacts/{contact_id}", timeout=5).json())

    def as_user(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Call the CRM API as a CRM user would (with the token)."""
        return self.http.request(method, f"{self.crm.url}{path}", timeout=5,
                                 headers={"Authorization": f"Bearer {CRM_TOKEN}"}, **kwargs)

    def crm_requests(self) -> dict[str, int]:
        """How many requests the CRM has answered so far, per endpoint (``GET /_sandbox/requests``)."""
        return dict(self.http.get(f"{self.crm.url}/_sandbox/requests", timeout=5).json()["endpoints"])

    def crm_requests_since(self, before: dict[str, int]) -> dict[str, int]:
        """The requests the CRM answered since ``crm_requests`` returned ``before``, per endpoint."""
        return {endpoint: count - before.get(endpoint, 0) for endpoint, count in self.crm_requests().items()
                if count != before.get(endpoint, 0)}

    def unlimited(self) -> None:
        """Turn the CRM's API rate limit off (a test making more than its 100 calls in 10 s)."""
        assert self.http.post(f"{self.crm.url}/_sandbox/limits", json={"requests": None},
                              timeout=5).status_code == 200

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
