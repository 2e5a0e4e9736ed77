"""One throttled company does not stall the other tenants (issue 10 item 2), with a single worker.

QBO throttles company A (the sandbox answers 429 to every request of A for 15 s, as fault injection). A's drain
meets the throttle and, instead of sleeping in the worker for the 60 s Intuit asks for, holds A off and waits in
RQ's delayed set; tenant B's CRM edit, made meanwhile, reaches B's company long before A's throttle ends. A's
change arrives afterwards: nothing is lost. Before, B's edit waited about 60 s behind the sleeping worker.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from redis import Redis
from rq.registry import ScheduledJobRegistry

from crm_qb.app import create_app
from crm_qb.config import Settings
from crm_qb.connections import create_connection
from crm_qb.db import db
from crm_qb.keys import RedisKeys
from crm_qb.runtime import runtime
from tests.support import free_port, stop, wait_for
from tests.support.e2e import World, start_sandbox, wire
from tests.support.sync import connect_qbo
from workers.queues import INBOUND, queue

pytestmark = pytest.mark.e2e

THROTTLE_SECONDS = 15.0


@dataclass
class TenantB:
    """The second tenant: its own company (realm) in the same QBO sandbox and its own CRM."""

    realm: str
    crm: str
    crm_token: str
    connection_id: int

    def contact_with(self, **wanted: Any) -> dict[str, Any] | None:
        """The one contact of B's CRM whose fields include ``wanted``, else None."""
        answer = requests.get(f"{self.crm}/contacts?limit=1000", timeout=10,
                              headers={"Authorization": f"Bearer {self.crm_token}"})
        found = [c for c in answer.json()["contacts"] if all(c.get(k) == v for k, v in wanted.items())]
        return found[0] if len(found) == 1 else None


@pytest.fixture
def tenants(settings: Settings, tmp_path: Path, redis_client: Redis,
            spawn: Callable[..., subprocess.Popen[bytes]]) -> Iterator[tuple[World, TenantB]]:
    """Tenant A (``World``) and tenant B on two companies of one QBO sandbox; web, ONE worker and the scheduler."""
    qbo_proc, qbo_info = start_sandbox(["crm_qb.cli", "sandbox", "qbo", "--port", str(free_port())],
                                       tmp_path / "qbo.log")
    crm_proc, crm_info = start_sandbox(["crm_qb.sandbox.crm.server", "--port", str(free_port())], tmp_path / "crm.log")
    crm2_proc, crm2_info = start_sandbox(["crm_qb.sandbox.crm.server", "--port", str(free_port())],
                                         tmp_path / "crm2.log")
    try:
        world = wire(settings, tmp_path, spawn, qbo_info, crm_info, free_port(), workers=1)
        spawn("scheduler", extra_env=world.env)  # it moves delayed jobs back onto their queues when due
        realm_b = requests.post(f"{world.qbo}/_sandbox/realms", json={"customers": 0}, timeout=10).json()["realm_id"]
        app = create_app(world.settings)
        with app.app_context():
            made = create_connection(runtime(app).secrets, crm_url=crm2_info["api_base"], crm_token=crm2_info["token"])
            b_id, secret = made.connection.id, made.crm_hook_secret
            db.session.remove()
        connect_qbo(app, b_id, realm_b)
        requests.post(f"{crm2_info['api_base']}/_sandbox/hooks", json={"url": f"{world.web}/webhooks/crm/{b_id}",
                                                                      "secret": secret}, timeout=10).raise_for_status()
        requests.post(f"{world.qbo}/_sandbox/webhooks", json={"url": f"{world.web}/webhooks/qbo", "format":
                      "cloudevents", "delay_ms": 0, "realm": realm_b}, timeout=10).raise_for_status()
        yield world, TenantB(realm_b, str(crm2_info["api_base"]), str(crm2_info["token"]), b_id)
    finally:
        for process in (qbo_proc, crm_proc, crm2_proc):
            stop(process)


def test_a_throttled_company_does_not_hold_the_only_worker(tenants: tuple[World, TenantB],
                                                          redis_client: Redis) -> None:
    world, b = tenants
    b_customer = _create(world.qbo, b.realm, DisplayName="Tenant B", PrimaryEmailAddr={"Address": "b@example.com"})
    b_contact = wait_for(lambda: b.contact_with(email="b@example.com"), timeout=60, what="B's contact")
    a_customer = world.create_customer(DisplayName="Tenant A", PrimaryEmailAddr={"Address": "a@example.com"})
    wait_for(lambda: world.contact_with(email="a@example.com"), timeout=60, what="A's contact")

    requests.post(f"{world.qbo}/_sandbox/throttle", json={"realm": world.realm, "seconds": THROTTLE_SECONDS},
                  timeout=10).raise_for_status()
    throttled_at = time.monotonic()
    world.edit_customer(a_customer["Id"], Notes="edited in A while throttled")
    wait_for(lambda: _throttled_requests(world.qbo, world.realm) > 0, timeout=THROTTLE_SECONDS,
             what="A's drain to meet the throttle")

    edited_at = time.monotonic()
    assert b_contact is not None
    requests.patch(f"{b.crm}/_sandbox/contacts/{b_contact['id']}", json={"phone": "+1 555 0199"},
                   timeout=10).raise_for_status()
    wait_for(lambda: _phone(world.qbo, b.realm, b_customer["Id"]) == "+1 555 0199",
             timeout=THROTTLE_SECONDS * 4, what="B's edit to reach B's company")
    landed = time.monotonic()
    print(f"tenant B's edit reached QBO {landed - edited_at:.2f} s after it was made; "
          f"{landed - throttled_at:.2f} s into A's {THROTTLE_SECONDS:.0f} s throttle")
    assert landed - throttled_at < THROTTLE_SECONDS, "B's edit waited for A's throttle to end"

    inbound = queue(redis_client, INBOUND, RedisKeys(world.settings.queue_prefix))
    delayed = ScheduledJobRegistry(queue=inbound).get_job_ids()  # type: ignore[no-untyped-call]
    assert any(job_id.startswith(f"drain-qbo-{world.realm}-") for job_id in delayed), delayed

    # Nothing is lost: A's change arrives once the throttle (and Intuit's 60 s wait) is over.
    wait_for(lambda: world.contact_with(notes="edited in A while throttled"), timeout=150,
             what="A's edit to reach A's CRM after the throttle")


def _create(qbo: str, realm: str, **fields: Any) -> dict[str, Any]:
    answer = requests.post(f"{qbo}/_sandbox/realms/{realm}/entities/Customer", json=fields, timeout=10)
    answer.raise_for_status()
    return answer.json()["Customer"]  # type: ignore[no-any-return]


def _phone(qbo: str, realm: str, customer_id: str) -> str | None:
    answer = requests.get(f"{qbo}/_sandbox/realms/{realm}/entities/Customer/{customer_id}", timeout=10)
    phone = (answer.json()["Customer"].get("PrimaryPhone") or {}).get("FreeFormNumber")
    return str(phone) if phone is not None else None


def _throttled_requests(qbo: str, realm: str) -> int:
    return int(requests.get(f"{qbo}/_sandbox/realms/{realm}/requests", timeout=10).json()["throttled"])
