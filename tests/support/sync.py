"""The customer sync tests' world: the real QBO sandbox and reference CRM on threads, a connected app.

Changes are announced the way they arrive in production: signed webhooks posted to crm-qb's own endpoints,
then a real RQ worker in burst mode drains them. Nothing is stubbed: QBO and the CRM answer over HTTP.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import select
from werkzeug.serving import make_server

from crm_qb.app import create_app
from crm_qb.config import Settings
from crm_qb.crypto import hash_api_key, new_api_key
from crm_qb.db import db
from crm_qb.demo import connect_sandbox_realm
from crm_qb.models import AuditEntry, Conflict, Connection, ContactLink, InboundEvent
from crm_qb.sandbox.crm.server import RunningServer, start_server
from crm_qb.sandbox.crm.state import SandboxConfig as CrmConfig
from crm_qb.sandbox.qbo.app import create_app as create_qbo_app
from crm_qb.sandbox.qbo.app import sandbox_of
from crm_qb.sandbox.qbo.sandbox import SandboxConfig as QboConfig
from crm_qb.web.panel_tokens import make_panel_token
from tests.conftest import VERIFIER_TOKEN, _migrate, _truncate, make_settings
from tests.support.connections import add_connection, crm_body, post_crm, post_qbo
from workers.worker import build_worker

CRM_TOKEN = "t"  # the token tests.support.connections.add_connection gives every connection


class QboSandbox:
    """The QBO sandbox served on a thread; ``control`` and ``api`` act as a bookkeeper and as an API client."""

    def __init__(self) -> None:
        self.app = create_qbo_app(QboConfig(seed_demo=False))
        self.sandbox = sandbox_of(self.app)
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.sandbox.base_url = self.url
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()
        self.realm_id = self.post("/_sandbox/realms", {"customers": 0, "transactions": 0})["realm_id"]

    def post(self, path: str, body: dict[str, Any]) -> Any:
        """POST JSON to the sandbox; return the decoded answer."""
        response = requests.post(self.url + path, json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def create_customer(self, **fields: Any) -> dict[str, Any]:
        """Create a customer as a bookkeeper would."""
        return self.post(f"/_sandbox/realms/{self.realm_id}/entities/Customer", fields)["Customer"]  # type: ignore[no-any-return]

    def edit_customer(self, customer_id: str, **fields: Any) -> dict[str, Any]:
        """Edit a customer as a bookkeeper would (no SyncToken needed)."""
        response = requests.patch(f"{self.url}/_sandbox/realms/{self.realm_id}/entities/Customer/{customer_id}",
                                  json=fields, timeout=10)
        response.raise_for_status()
        return response.json()["Customer"]  # type: ignore[no-any-return]

    def customer(self, customer_id: str) -> dict[str, Any]:
        """The customer as stored now."""
        response = requests.get(f"{self.url}/_sandbox/realms/{self.realm_id}/entities/Customer/{customer_id}",
                                timeout=10)
        response.raise_for_status()
        return response.json()["Customer"]  # type: ignore[no-any-return]

    def requests_by_endpoint(self) -> dict[str, int]:
        """API request counts of the realm."""
        answer = requests.get(f"{self.url}/_sandbox/realms/{self.realm_id}/requests", timeout=10).json()
        return answer["by_endpoint"]  # type: ignore[no-any-return]

    def reset_counts(self) -> None:
        """Zero the realm's request counts."""
        requests.delete(f"{self.url}/_sandbox/realms/{self.realm_id}/requests", timeout=10).raise_for_status()

    def stop(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
        self.sandbox.stop()


@dataclass
class Harness:
    """A migrated crm-qb app connected to a QBO sandbox realm and a reference CRM."""

    app: Flask
    client: FlaskClient
    qbo: QboSandbox
    crm: RunningServer
    connection_id: int
    hook_secret: str

    # -- acting on each side --------------------------------------------------------------------------------

    def crm_api(self, method: str, path: str, body: dict[str, Any] | None = None, **headers: str) -> Any:
        """Call the CRM's section 6 API as a client; return the decoded answer."""
        response = requests.request(method, self.crm.url + path, json=body, timeout=10,
                                    headers={"Authorization": f"Bearer {CRM_TOKEN}", **headers})
        response.raise_for_status()
        return response.json() if response.content else None

    def crm_user(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Act as a CRM user through the control API (no If-Match)."""
        response = requests.request(method, f"{self.crm.url}/_sandbox{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json() if response.content else None

    def contact(self, contact_id: str) -> dict[str, Any]:
        """The CRM contact as stored now."""
        return self.crm_api("GET", f"/contacts/{contact_id}")  # type: ignore[no-any-return]

    def contacts(self) -> list[dict[str, Any]]:
        """Every CRM contact."""
        return self.crm_api("GET", "/contacts?limit=1000")["contacts"]  # type: ignore[no-any-return]

    # -- announcing changes ---------------------------------------------------------------------------------

    def qbo_hook(self, customer_id: str, operation: str = "updated", entity: str = "customer",
                 deleted_id: str | None = None, time: str | None = None) -> None:
        """Post a signed CloudEvents webhook for one entity change (at ``time``, default now), as Intuit would."""
        self.qbo_hooks([self.qbo_event(customer_id, operation, entity, deleted_id, time)])

    def qbo_event(self, customer_id: str, operation: str = "updated", entity: str = "customer",
                  deleted_id: str | None = None, time: str | None = None) -> dict[str, Any]:
        """One CloudEvents item for an entity change."""
        return {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "intuit.test",
                "type": f"qbo.{entity}.{operation}.v1", "datacontenttype": "application/json",
                "time": time or datetime.now(UTC).isoformat(), "intuitentityid": customer_id,
                "intuitaccountid": self.qbo.realm_id, "data": {"deletedid": deleted_id} if deleted_id else {}}

    def qbo_hooks(self, events: list[dict[str, Any]]) -> None:
        """Post one signed CloudEvents webhook carrying ``events``."""
        assert post_qbo(self.client, json.dumps(events).encode(), VERIFIER_TOKEN).status_code == 200

    def crm_hook(self, kind: str, contact: dict[str, Any] | None = None, **extra: Any) -> None:
        """Post a signed CRM change hook, as the CRM would."""
        event = {"id": str(uuid.uuid4()), "type": f"contact.{kind}", "occurred_at": datetime.now(UTC).isoformat(),
                 **({"contact": contact} if contact else {}), **extra}
        answer = post_crm(self.client, self.connection_id, self.hook_secret, crm_body(event))
        assert answer.status_code == 202, answer.get_data(as_text=True)

    def work(self) -> None:
        """Drain every queued job with a real RQ worker in burst mode."""
        build_worker(self.app).work(burst=True)

    # -- reading crm-qb's state -----------------------------------------------------------------------------

    def links(self) -> list[ContactLink]:
        """Every contact link of the connection."""
        with self.app.app_context():
            rows = list(db.session.scalars(select(ContactLink).order_by(ContactLink.id)))
            db.session.expunge_all()
            return rows

    def link_of_customer(self, customer_id: str) -> ContactLink:
        """The link of a QBO customer (fails when there is none)."""
        found = [link for link in self.links() if link.qbo_customer_id == customer_id]
        assert found, f"no link for customer {customer_id}: {[(lk.qbo_customer_id, lk.state) for lk in self.links()]}"
        return found[0]

    def audit(self, action: str | None = None) -> list[AuditEntry]:
        """Audit entries, optionally of one action."""
        with self.app.app_context():
            query = select(AuditEntry).order_by(AuditEntry.id)
            if action:
                query = query.where(AuditEntry.action == action)
            rows = list(db.session.scalars(query))
            db.session.expunge_all()
            return rows

    def panel_html(self, contact_id: str) -> str:
        """The contact panel's HTML, opened with a panel token made for the contact."""
        with self.app.app_context():
            connection = db.session.get(Connection, self.connection_id)
            assert connection is not None
            token = make_panel_token(self.app.config["SECRET_KEY"], connection, contact_id)
            db.session.rollback()
        answer = self.client.get(f"/panel/{self.connection_id}/contacts/{contact_id}", query_string={"token": token})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return answer.get_data(as_text=True)

    def api_key(self) -> str:
        """Give the connection a fresh API key (the one it was made with is not kept) and return it."""
        key = new_api_key()
        with self.app.app_context():
            row = db.session.get(Connection, self.connection_id)
            assert row is not None
            row.api_key_hash = hash_api_key(key)
            db.session.commit()
        return key

    def quickbooks(self, contact_id: str, key: str, connection_id: int | None = None) -> dict[str, Any]:
        """The JSON API's answer for a contact (link, summary, folder)."""
        answer = self.client.get(f"/api/v1/connections/{connection_id or self.connection_id}/contacts/{contact_id}"
                                 "/quickbooks", headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        return answer.get_json()  # type: ignore[no-any-return]

    def failed_events(self) -> list[tuple[int, str, int]]:
        """Inbound events that failed at least once: (id, status, attempts)."""
        with self.app.app_context():
            rows = db.session.execute(select(InboundEvent.id, InboundEvent.status, InboundEvent.attempts)
                                      .where(InboundEvent.attempts > 0).order_by(InboundEvent.id)).all()
            db.session.rollback()
            return [(row.id, row.status.value, row.attempts) for row in rows]

    def conflicts(self) -> list[Conflict]:
        """Stored conflicts."""
        with self.app.app_context():
            rows = list(db.session.scalars(select(Conflict).order_by(Conflict.id)))
            db.session.expunge_all()
            return rows

    def set_sync(self, **values: Any) -> None:
        """Set the connection's sync settings."""
        with self.app.app_context():
            row = db.session.get(Connection, self.connection_id)
            assert row is not None
            row.settings = {**(row.settings or {}), "sync": {**(row.settings or {}).get("sync", {}), **values}}
            db.session.commit()


def qbo_settings(tmp_path: Path, database_url: str, qbo: QboSandbox) -> Settings:
    """Test settings pointing crm-qb's QBO endpoints at the sandbox."""
    config = qbo.sandbox.config
    return make_settings(
        tmp_path, database_url, qbo_environment="local", qbo_client_id=config.client_id,
        qbo_client_secret=config.client_secret, qbo_redirect_uri="http://127.0.0.1:5000/qbo/callback",
        qbo_discovery_url=f"{qbo.url}/.well-known/openid_sandbox_configuration", qbo_api_base=qbo.url,
        qbo_app_base=qbo.url,
    )


def connect_qbo(app: Flask, connection_id: int, realm_id: str) -> None:
    """Run the OAuth consent against the sandbox (it consents at once), store the tokens, read the company."""
    connect_sandbox_realm(app, connection_id, realm_id)


@pytest.fixture
def qbo_sandbox() -> Iterator[QboSandbox]:
    """A QBO sandbox with one empty realm."""
    sandbox = QboSandbox()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def crm_server() -> Iterator[RunningServer]:
    """The reference CRM (hooks are posted by the tests themselves)."""
    server = start_server(config=CrmConfig(token=CRM_TOKEN))
    yield server
    server.stop()


@contextmanager
def running_harness(tmp_path: Path, database_url: str, qbo: QboSandbox, crm: RunningServer) -> Iterator[Harness]:
    """A migrated crm-qb app with one connection connected to ``qbo``'s realm and to ``crm``; disposed after."""
    settings = qbo_settings(tmp_path, database_url, qbo)
    app = create_app(settings)
    _migrate(app)
    if not settings.is_sqlite:
        _truncate(app)
    made = add_connection(app, crm_url=crm.url)
    connect_qbo(app, made.id, qbo.realm_id)
    yield Harness(app, app.test_client(), qbo, crm, made.id, made.crm_hook_secret)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def harness(tmp_path: Path, database_url: str, redis_client: Redis, qbo_sandbox: QboSandbox,
            crm_server: RunningServer) -> Iterator[Harness]:
    """A crm-qb app with one connection linked to the sandbox realm and the reference CRM."""
    with running_harness(tmp_path, database_url, qbo_sandbox, crm_server) as made:
        yield made
