"""End-to-end helpers: the sandboxes and crm-qb's web and workers as real processes, one connection wired up."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from crm_qb.app import create_app
from crm_qb.config import Settings
from crm_qb.connections import create_connection
from crm_qb.db import db
from crm_qb.runtime import runtime
from tests.conftest import _migrate, _truncate, make_settings
from tests.support import ROOT, wait_for
from tests.support.sync import connect_qbo


def start_sandbox(argv: list[str], log: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start a sandbox (``python -m <argv>``) and return it with the JSON line it prints when ready."""
    process = subprocess.Popen([sys.executable, "-m", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=log.open("wb"))
    assert process.stdout is not None
    line = process.stdout.readline()
    return process, json.loads(line)


@dataclass
class World:
    """The running system and ways to act on each side."""

    web: str
    qbo: str
    realm: str
    crm: str
    crm_token: str
    connection_id: int
    settings: Settings
    env: dict[str, str] = field(default_factory=dict)  # the CRM_QB_* overrides every crm-qb process got

    def create_customer(self, **fields: Any) -> dict[str, Any]:
        """Create a QBO customer as a bookkeeper."""
        answer = requests.post(f"{self.qbo}/_sandbox/realms/{self.realm}/entities/Customer", json=fields, timeout=10)
        answer.raise_for_status()
        return answer.json()["Customer"]  # type: ignore[no-any-return]

    def edit_customer(self, customer_id: str, **fields: Any) -> None:
        """Edit a QBO customer as a bookkeeper."""
        requests.patch(f"{self.qbo}/_sandbox/realms/{self.realm}/entities/Customer/{customer_id}", json=fields,
                       timeout=10).raise_for_status()

    def customer(self, customer_id: str) -> dict[str, Any]:
        """A QBO customer as stored now."""
        answer = requests.get(f"{self.qbo}/_sandbox/realms/{self.realm}/entities/Customer/{customer_id}", timeout=10)
        return answer.json()["Customer"]  # type: ignore[no-any-return]

    def crm_user(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Act as a CRM user."""
        answer = requests.request(method, f"{self.crm}/_sandbox{path}", json=body, timeout=10)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def contacts(self) -> list[dict[str, Any]]:
        """Every CRM contact."""
        answer = requests.get(f"{self.crm}/contacts?limit=1000", timeout=10,
                              headers={"Authorization": f"Bearer {self.crm_token}"})
        return answer.json()["contacts"]  # type: ignore[no-any-return]

    def contact_with(self, **wanted: Any) -> dict[str, Any] | None:
        """The one contact whose fields include ``wanted``, else None."""
        found = [c for c in self.contacts() if all(c.get(k) == v for k, v in wanted.items())]
        return found[0] if len(found) == 1 else None

    def point_qbo_webhooks(self, url: str) -> None:
        """Send the realm's webhooks to ``url``."""
        requests.post(f"{self.qbo}/_sandbox/webhooks", json={"url": url, "format": "cloudevents", "delay_ms": 0,
                                                             "realm": self.realm}, timeout=10).raise_for_status()


def wire(settings: Settings, tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]],
         qbo_info: dict[str, Any], crm_info: dict[str, Any], web_port: int, workers: int = 2) -> World:
    """Point crm-qb at both sandboxes, connect a connection, start web and ``workers`` workers; the world made."""
    qbo = str(qbo_info["api_base"])
    overrides = {"qbo_environment": "local", "qbo_client_id": qbo_info["client_id"],
                 "qbo_client_secret": qbo_info["client_secret"], "qbo_discovery_url": qbo_info["discovery_url"],
                 "qbo_api_base": qbo, "qbo_app_base": qbo, "qbo_webhook_verifier_token": qbo_info["verifier_token"],
                 "qbo_redirect_uri": f"http://127.0.0.1:{web_port}/qbo/callback"}
    full = make_settings(tmp_path, settings.database_url, **overrides)
    app = create_app(full)
    _migrate(app)
    if not full.is_sqlite:
        _truncate(app)
    realm = requests.post(f"{qbo}/_sandbox/realms", json={"customers": 0}, timeout=10).json()["realm_id"]
    with app.app_context():
        made = create_connection(runtime(app).secrets, crm_url=crm_info["api_base"], crm_token=crm_info["token"])
        connection_id, secret = made.connection.id, made.crm_hook_secret
        db.session.remove()
    connect_qbo(app, connection_id, realm)
    env = {f"CRM_QB_{key.upper()}": str(value) for key, value in overrides.items()}
    spawn("web", "--port", str(web_port), "--workers", "2", extra_env=env)
    for _ in range(workers):
        spawn("worker", extra_env=env)
    web = f"http://127.0.0.1:{web_port}"
    wait_for(lambda: healthy(web), timeout=30, what="crm-qb web to answer /healthz")
    requests.post(f"{crm_info['api_base']}/_sandbox/hooks",
                  json={"url": f"{web}/webhooks/crm/{connection_id}", "secret": secret}, timeout=10).raise_for_status()
    world = World(web, qbo, realm, str(crm_info["api_base"]), str(crm_info["token"]), connection_id, full, env)
    world.point_qbo_webhooks(f"{web}/webhooks/qbo")
    return world


def healthy(web: str) -> bool:
    """Whether crm-qb's web process answers /healthz with 200."""
    try:
        return requests.get(f"{web}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False
