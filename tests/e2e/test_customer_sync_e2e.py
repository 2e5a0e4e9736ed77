"""Customer sync end to end: crm-qb web and two workers, the QBO sandbox and the reference CRM, all real processes.

Webhooks travel over HTTP as in production: the QBO sandbox posts signed CloudEvents to crm-qb's web process,
the CRM posts signed change hooks; the workers call both back over HTTP.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from redis import Redis

from crm_qb.app import create_app
from crm_qb.config import Settings
from crm_qb.connections import create_connection
from crm_qb.db import db
from crm_qb.runtime import runtime
from tests.conftest import _migrate, _truncate, make_settings
from tests.e2e.conftest import ROOT
from tests.integration.test_customer_sync_support import connect_qbo
from tests.support import free_port, wait_for

pytestmark = pytest.mark.e2e


def _start_sandbox(argv: list[str], log: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
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


@pytest.fixture
def world(settings: Settings, tmp_path: Path, redis_client: Redis,
          spawn: Callable[..., subprocess.Popen[bytes]]) -> Iterator[World]:
    """Sandboxes, crm-qb web and two workers, one connection wired to both sides."""
    sandboxes = []
    qbo_port, crm_port, web_port = free_port(), free_port(), free_port()
    qbo_proc, qbo_info = _start_sandbox(["crm_qb.cli", "sandbox", "qbo", "--port", str(qbo_port)], tmp_path / "qbo.log")
    sandboxes.append(qbo_proc)
    crm_proc, crm_info = _start_sandbox(["crm_qb.sandbox.crm.server", "--port", str(crm_port)], tmp_path / "crm.log")
    sandboxes.append(crm_proc)
    try:
        yield _wire(settings, tmp_path, spawn, qbo_info, crm_info, web_port)
    finally:
        for process in sandboxes:
            process.terminate()
            process.wait(10)


def _wire(settings: Settings, tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]],
          qbo_info: dict[str, Any], crm_info: dict[str, Any], web_port: int) -> World:
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
    for _ in range(2):
        spawn("worker", extra_env=env)
    web = f"http://127.0.0.1:{web_port}"
    wait_for(lambda: _healthy(web), timeout=30, what="crm-qb web to answer /healthz")
    requests.post(f"{crm_info['api_base']}/_sandbox/hooks",
                  json={"url": f"{web}/webhooks/crm/{connection_id}", "secret": secret}, timeout=10).raise_for_status()
    world = World(web, qbo, realm, str(crm_info["api_base"]), str(crm_info["token"]), connection_id, full)
    world.point_qbo_webhooks(f"{web}/webhooks/qbo")
    return world


def _healthy(web: str) -> bool:
    try:
        return requests.get(f"{web}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_changes_travel_both_ways_between_real_processes(world: World) -> None:
    started = time.monotonic()
    customer = world.create_customer(DisplayName="Hedy Lamarr", PrimaryEmailAddr={"Address": "hedy@example.com"})
    contact = wait_for(lambda: world.contact_with(email="hedy@example.com"), what="the contact to appear")
    qbo_to_crm = time.monotonic() - started

    started = time.monotonic()
    world.crm_user("PATCH", f"/contacts/{contact['id']}", {"phone": "+1 555 0100"})
    wait_for(lambda: (world.customer(customer["Id"]).get("PrimaryPhone") or {}).get("FreeFormNumber") == "+1 555 0100",
             what="the phone to reach QBO")
    crm_to_qbo = time.monotonic() - started

    world.edit_customer(customer["Id"], Notes="edited in QBO")
    wait_for(lambda: world.contact_with(notes="edited in QBO"), what="the notes to reach the CRM")

    contact = world.crm_user("POST", "/contacts", {"first_name": "Katherine", "last_name": "Johnson",
                                                   "email": "kj@example.com"})
    wait_for(lambda: _customer_by_email(world, "kj@example.com"), what="the customer to appear in QBO")
    print(f"latency qbo->crm {qbo_to_crm:.2f}s crm->qbo {crm_to_qbo:.2f}s")


def _customer_by_email(world: World, email: str) -> bool:
    for customer_id in range(1, 50):
        answer = requests.get(f"{world.qbo}/_sandbox/realms/{world.realm}/entities/Customer/{customer_id}",
                              timeout=10)
        if answer.status_code != 200:
            return False
        if (answer.json()["Customer"].get("PrimaryEmailAddr") or {}).get("Address") == email:
            return True
    return False


def test_concurrent_edits_on_both_sides_converge_with_two_workers(world: World) -> None:
    customer = world.create_customer(DisplayName="Busy Customer", PrimaryEmailAddr={"Address": "busy@example.com"})
    contact = wait_for(lambda: world.contact_with(email="busy@example.com"), what="the contact to appear")
    for n in range(6):
        world.edit_customer(customer["Id"], Notes=f"qbo note {n}")
        world.crm_user("PATCH", f"/contacts/{contact['id']}", {"website": f"https://crm.example/{n}"})

    def converged() -> bool:
        now = world.customer(customer["Id"])
        mine = world.contact_with(email="busy@example.com") or {}
        return (now.get("Notes") == mine.get("notes") == "qbo note 5"
                and (now.get("WebAddr") or {}).get("URI") == mine.get("website") == "https://crm.example/5")

    wait_for(converged, timeout=40, what="both sides to converge")
    assert len(world.contacts()) == 1


def test_a_lost_webhook_is_caught_by_the_cdc_poll(world: World, redis_client: Redis) -> None:
    from crm_qb.keys import RedisKeys
    from workers.queues import enqueue
    from workers.sync_jobs import poll_qbo_connection

    customer = world.create_customer(DisplayName="Lost Hook", PrimaryEmailAddr={"Address": "lost@example.com"})
    wait_for(lambda: world.contact_with(email="lost@example.com"), what="the contact to appear")
    world.point_qbo_webhooks("http://127.0.0.1:9/nowhere")  # webhooks now go nowhere
    world.edit_customer(customer["Id"], Notes="only the poll can see this")
    time.sleep(0.5)
    assert world.contact_with(notes="only the poll can see this") is None
    enqueue(redis_client, RedisKeys(world.settings.queue_prefix), poll_qbo_connection, world.connection_id,
            job_id="cdc-poll-test")
    wait_for(lambda: world.contact_with(notes="only the poll can see this"), what="the poll to sync the change")
