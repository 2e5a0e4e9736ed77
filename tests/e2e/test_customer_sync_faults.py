"""Customer sync under faults, end to end: crm-qb web, workers and scheduler, the QBO sandbox and a CRM of each
kind (the reference CRM, the local HubSpot) as real processes.

* Duplicate and out-of-order QBO webhooks (signed here, in both formats, and posted to crm-qb's web process):
  the CRM ends with QBO's latest values, one sync per change, one contact.
* A worker killed with -9 while its sync call is in flight: another worker, woken by the sweep (or by the
  scheduler's watchdog, whichever finds the lost drain first), finishes the work, the change arrives exactly
  once, nothing is duplicated, the event ends processed.
* A 5010 race across processes: the bookkeeper edits the customer while crm-qb's write is on its way; crm-qb
  re-reads, merges again, and both changes survive.
"""

from __future__ import annotations

import json
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from redis import Redis
from sqlalchemy import func, select

from crm_qb.app import create_app
from crm_qb.config import Settings
from crm_qb.db import db
from crm_qb.models import AuditEntry, EventStatus, InboundEvent
from crm_qb.signatures import sign_qbo
from tests.support import wait_for
from tests.support.e2e import World, running_world
from workers import jobs

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # whole crm-qb runs of minutes: `scripts/test`, not CI

Spawn = Callable[..., subprocess.Popen[bytes]]
NOWHERE = "http://127.0.0.1:9/nowhere"


@dataclass
class System:
    """The running world, its workers (and their environment), and an app on its database to read what is stored."""

    world: World
    workers: list[subprocess.Popen[bytes]]
    worker_env: dict[str, str]
    app: Flask
    spawn: Spawn

    def sign_and_post(self, body: Any) -> dict[str, Any]:
        """Post ``body`` to crm-qb's QBO webhook, signed as Intuit signs it; return the answer."""
        raw = json.dumps(body).encode()
        signature = sign_qbo(raw, self.world.settings.qbo_webhook_verifier_token)
        answer = requests.post(f"{self.world.web}/webhooks/qbo", data=raw, timeout=10, headers={
            "intuit-signature": signature, "Content-Type": "application/json"})
        answer.raise_for_status()
        return answer.json()  # type: ignore[no-any-return]

    def events(self, entity_id: str) -> list[EventStatus]:
        """The statuses of the QBO events stored for ``entity_id``, oldest first."""
        with self.app.app_context():
            statuses = list(db.session.scalars(select(InboundEvent.status).where(
                InboundEvent.entity_id == entity_id).order_by(InboundEvent.id)))
            db.session.remove()
        return statuses

    def settled(self) -> bool:
        """Whether no inbound event (of either side) is pending."""
        with self.app.app_context():
            pending = db.session.scalar(select(func.count()).select_from(InboundEvent).where(
                InboundEvent.status == EventStatus.PENDING))
            db.session.remove()
        return pending == 0

    def audits(self, action: str, entity_id: str) -> list[dict[str, Any]]:
        """The diffs of the audit entries with ``action`` for ``entity_id``, oldest first."""
        with self.app.app_context():
            diffs = [dict(d) for d in db.session.scalars(select(AuditEntry.diff).where(
                AuditEntry.action == action, AuditEntry.entity_id == entity_id).order_by(AuditEntry.id))]
            db.session.remove()
        return diffs

    def qbo_calls(self, endpoint: str) -> int:
        """How many /v3 requests the realm has answered at ``endpoint`` (e.g. ``POST /customer``)."""
        counts = requests.get(f"{self.world.qbo}/_sandbox/realms/{self.world.realm}/requests", timeout=10).json()
        return int(counts["by_endpoint"].get(endpoint, 0))

    def qbo_customers(self) -> int:
        """How many customers the realm holds (ids are numbered from 1)."""
        base = f"{self.world.qbo}/_sandbox/realms/{self.world.realm}/entities/Customer"
        count = 0
        while requests.get(f"{base}/{count + 1}", timeout=10).status_code == 200:
            count += 1
        return count

    def qbo_latency(self, ms: int) -> None:
        """Delay every /v3 request of the realm by ``ms``."""
        requests.post(f"{self.world.qbo}/_sandbox/faults", json={"realm": self.world.realm, "latency_ms": ms},
                      timeout=10).raise_for_status()


@pytest.fixture
def system(crm_kind: str, settings: Settings, tmp_path: Path, redis_client: Redis,
           spawn: Spawn) -> Iterator[System]:
    """Both sandboxes, crm-qb web, two workers and the scheduler, one connection wired to both sides (as ``world``
    does)."""
    workers: list[subprocess.Popen[bytes]] = []
    env: dict[str, str] = {}

    def tracked(*args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        process = spawn(*args, extra_env=extra_env)
        if args[0] == "worker":
            workers.append(process)
            env.update(extra_env or {})
        return process

    with running_world(settings, tmp_path, tracked, crm_kind) as world:
        app = create_app(world.settings)
        yield System(world, workers, env, app, tracked)
        with app.app_context():
            db.engine.dispose()


def _linked_pair(system: System, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A QBO customer created by the bookkeeper and the CRM contact crm-qb made for it, once all is settled."""
    email = f"{name.lower().replace(' ', '.')}@example.com"
    customer = system.world.create_customer(DisplayName=name, PrimaryEmailAddr={"Address": email})
    contact = wait_for(lambda: system.world.contact_with(email=email), what="the contact to appear")
    wait_for(system.settled, what="the first link to settle")
    return system.world.customer(customer["Id"]), system.world.contact_with(email=email) or contact


@dataclass(frozen=True)
class Change:
    """One QBO customer update and when it happened."""

    customer_id: str
    at: str


def _changed(system: System, customer_id: str, **fields: Any) -> Change:
    """Edit a customer as the bookkeeper; the change as Intuit would notify it."""
    system.world.edit_customer(customer_id, **fields)
    moment = datetime.now(UTC)  # Intuit's 2025 webhooks: UTC with milliseconds (the sandbox's format too)
    return Change(customer_id, f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z")


def _cloudevent(realm: str, change: Change) -> list[dict[str, Any]]:
    """The CloudEvents body Intuit sends for ``change`` (a fresh event id each time it is built)."""
    return [{"specversion": "1.0", "id": str(uuid.uuid4()), "source": "intuit.test", "type": "qbo.customer.updated.v1",
             "datacontenttype": "application/json", "time": change.at, "intuitentityid": change.customer_id,
             "intuitaccountid": realm, "data": {}}]


def _legacy(realm: str, change: Change) -> dict[str, Any]:
    """The legacy body Intuit sends for ``change``."""
    entity = {"name": "Customer", "id": change.customer_id, "operation": "Update", "lastUpdated": change.at}
    return {"eventNotifications": [{"realmId": realm, "dataChangeEvent": {"entities": [entity]}}]}


def test_duplicate_and_out_of_order_qbo_webhooks_converge_on_the_latest(system: System) -> None:
    world = system.world
    customer, contact = _linked_pair(system, "Ada Dupont")
    world.point_qbo_webhooks(NOWHERE)  # from here on, only the webhooks crafted below reach crm-qb
    patches = world.crm_side.contact_writes()

    first = _changed(system, customer["Id"], Notes="first")
    older = _cloudevent(world.realm, first)
    assert system.sign_and_post(older)["stored"] == 1
    assert system.sign_and_post(older)["stored"] == 0  # Intuit redelivers: the same event is stored once
    wait_for(lambda: world.contact_with(id=contact["id"], notes="first"), what="the first change to arrive")

    second = _changed(system, customer["Id"], Notes="second")
    newer = _legacy(world.realm, second)
    assert system.sign_and_post(newer)["stored"] == 1
    wait_for(lambda: world.contact_with(id=contact["id"], notes="second"), what="the second change to arrive")
    wait_for(system.settled, what="the second change to settle")
    synced = world.contact_with(id=contact["id"])
    token = world.customer(customer["Id"])["SyncToken"]

    # Late and repeated: the old CloudEvent again, the same old change in the legacy format, the new one again.
    assert system.sign_and_post(older)["stored"] == 0
    assert system.sign_and_post(_legacy(world.realm, first))["stored"] == 1
    assert system.sign_and_post(newer)["stored"] == 0
    wait_for(system.settled, what="the late webhook to be processed")

    assert system.events(customer["Id"])[-3:] == [EventStatus.PROCESSED] * 3
    assert world.contact_with(id=contact["id"]) == synced  # still "second", not one write more
    assert [d["to_crm"] for d in system.audits("customer.synced", customer["Id"])] == [
        {"notes": "first"}, {"notes": "second"}]
    assert world.crm_side.contact_writes() - patches == 2
    assert len(world.contacts()) == 1
    assert world.customer(customer["Id"])["SyncToken"] == token  # nothing was written back to QBO


def test_a_worker_killed_mid_sync_is_recovered_exactly_once(system: System) -> None:
    world = system.world
    customer, contact = _linked_pair(system, "Grace Killjoy")
    patches = world.crm_side.contact_writes()
    # Slow enough to kill the worker while its write is in flight, quicker than live work's 2 s wait for one CRM
    # answer (pipeline/slowlane.py): at 2 s the read before HubSpot's write timed out and the write was never sent.
    world.crm_side.latency(1500)

    world.edit_customer(customer["Id"], Notes="survives kill -9")
    edited = world.customer(customer["Id"])
    wait_for(lambda: world.crm_side.contact_writes() > patches, what="the write to the CRM")
    for worker in system.workers:  # the one holding the job, and the idle one: nothing is left to finish it
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    world.crm_side.latency(0)  # the write in flight keeps its delay and lands after its worker died
    assert system.events(customer["Id"])[-1] == EventStatus.PENDING

    system.spawn("worker", extra_env=system.worker_env)
    sweeper = create_app(replace(system.world.settings, sweep_after_seconds=1))
    with sweeper.app_context():
        # Swept until settled, as the scheduler sweeps every minute: one early sweep may find the killed CRM drain's
        # event stranded a moment before the QBO one (each is stranded one second after it arrived).
        wait_for(lambda: jobs.sweep_inbound_events() >= 0 and system.settled(), timeout=40, interval=0.5,
                 what="the sweep to find the stranded events and a worker to process them")
        db.engine.dispose()

    assert system.events(customer["Id"])[-1] == EventStatus.PROCESSED
    now = world.contact_with(id=contact["id"])
    assert now is not None and now["notes"] == "survives kill -9"
    if world.crm_kind == "rest":  # HubSpot has no version number: its "version" is the updatedAt stamp
        # Written once: the re-run's write (if it got that far) carried the old version and was refused with a 412.
        assert now["version"] == contact["version"] + 1
    assert world.crm_side.contact_writes() - patches in (1, 2)
    assert world.customer(customer["Id"])["SyncToken"] == edited["SyncToken"]  # nothing echoed back to QBO
    assert len(world.contacts()) == 1
    assert system.qbo_customers() == 1


def test_a_bookkeeper_edit_between_read_and_write_is_merged_not_lost(system: System) -> None:
    world = system.world
    # A drain that finds the connection's lock held by the slow write comes back from RQ's delayed set (workers.jobs
    # defer): the world's scheduler promotes it, as in production.
    customer, contact = _linked_pair(system, "Linus Race")
    posts = system.qbo_calls("POST /customer")
    system.qbo_latency(1500)

    world.crm_user("PATCH", f"/contacts/{contact['id']}", {"phone": "+1 555 0123"})
    wait_for(lambda: system.qbo_calls("POST /customer") > posts, what="crm-qb's write to QBO to be in flight")
    world.edit_customer(customer["Id"], Notes="bookkeeper was here")  # lands first: the write's token is stale
    system.qbo_latency(0)

    def both_survive() -> bool:
        now = world.customer(customer["Id"])
        mine = world.contact_with(id=contact["id"]) or {}
        return ((now.get("PrimaryPhone") or {}).get("FreeFormNumber") == mine.get("phone") == "+1 555 0123"
                and now.get("Notes") == mine.get("notes") == "bookkeeper was here")

    wait_for(both_survive, timeout=30, what="both edits on both sides")
    wait_for(system.settled, what="the echoes to settle")
    assert both_survive()
    # The stale write (5010), then the re-merged one; the bookkeeper's edit and ours are the only new tokens.
    assert system.qbo_calls("POST /customer") - posts == 2
    assert int(world.customer(customer["Id"])["SyncToken"]) == int(customer["SyncToken"]) + 2
    synced = system.audits("contact.synced", contact["id"])
    assert synced[-1]["to_qbo"] == {"phone": "+1 555 0123"} and synced[-1]["to_crm"] == {
        "notes": "bookkeeper was here"}
    assert len(world.contacts()) == 1
