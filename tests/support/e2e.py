"""End-to-end helpers: the sandboxes and crm-qb's web, workers and scheduler as real processes, one connection
wired up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from flask import Flask
from sqlalchemy import func, select

from crm_qb.app import create_app
from crm_qb.config import Settings
from crm_qb.connections import create_connection, create_hubspot_connection
from crm_qb.crm.hubspot import mapping
from crm_qb.crm.hubspot.connector import set_up_portal
from crm_qb.crm.protocol import CONTACT_TEXT_FIELDS
from crm_qb.db import db, utcnow
from crm_qb.models import Connection, ContactLink, EventStatus, InboundEvent
from crm_qb.runtime import runtime
from tests.conftest import _migrate, _truncate, make_settings, settings_env
from tests.support import ROOT, free_port, stop, stop_all, wait_for
from tests.support.sync import connect_qbo


def start_sandbox(argv: list[str], log: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start a sandbox (``python -m <argv>``) and return it with the JSON line it prints when ready."""
    process = subprocess.Popen([sys.executable, "-m", *argv], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=log.open("wb"))
    assert process.stdout is not None
    line = process.stdout.readline()
    return process, json.loads(line)


@dataclass(frozen=True)
class Crm:
    """One CRM sandbox of either kind, as its users and its API show it (section 6 shapes for both kinds)."""

    kind: str  # "rest" (the reference CRM) or "hubspot" (the local HubSpot)
    base: str
    token: str

    def user(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Act as a CRM user (section 6 paths and field names; HubSpot: translated to its objects)."""
        if self.kind == "hubspot":
            return hubspot_user(self.base, method, path, body)
        answer = requests.request(method, f"{self.base}/_sandbox{path}", json=body, timeout=10)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def delete_contact(self, contact_id: str) -> None:
        """Delete a contact as a CRM user (HubSpot: archive it)."""
        path = (f"/_sandbox/objects/contacts/{contact_id}" if self.kind == "hubspot"
                else f"/_sandbox/contacts/{contact_id}")
        requests.delete(f"{self.base}{path}", timeout=10).raise_for_status()

    def merge_contacts(self, merged_id: str, into: str) -> str:
        """Merge contact ``merged_id`` into ``into`` as a CRM user; the surviving contact's id.

        The reference CRM keeps ``into``; HubSpot makes a new record of both (its primary is ``into``).
        """
        if self.kind == "hubspot":
            answer = requests.post(f"{self.base}/_sandbox/objects/contacts/merge", timeout=10, json={
                "primaryObjectId": into, "objectIdToMerge": merged_id})
        else:
            answer = requests.post(f"{self.base}/_sandbox/contacts/{merged_id}/merge", json={"into": into},
                                   timeout=10)
        answer.raise_for_status()
        return str(answer.json()["id"])

    def contacts(self) -> list[dict[str, Any]]:
        """Every CRM contact (section 6 shape)."""
        if self.kind == "hubspot":
            return hubspot_contacts(self.base)
        return self._view("/contacts")["contacts"]  # type: ignore[no-any-return]

    def contact_with(self, **wanted: Any) -> dict[str, Any] | None:
        """The one contact whose fields include ``wanted``, else None."""
        found = [c for c in self.contacts() if all(c.get(k) == v for k, v in wanted.items())]
        return found[0] if len(found) == 1 else None

    def first_user(self) -> str:
        """The id of the CRM's first user (HubSpot: its first owner), who can own contacts and tasks."""
        if self.kind == "hubspot":
            return str(_hubspot_view(self.base, "/owners")["results"][0]["id"])
        return str(self._view("/users")["users"][0]["id"])

    def tasks(self, contact_id: str) -> list[dict[str, Any]]:
        """The contact's tasks (section 6 shape: title, description, status open|done, owner_id), oldest first."""
        if self.kind == "hubspot":
            return hubspot_tasks(self.base, contact_id)
        return self._view(f"/contacts/{contact_id}/tasks")["tasks"]  # type: ignore[no-any-return]

    def overdue_balance(self, contact_id: str) -> Decimal | None:
        """The overdue balance (home currency) of the billing summary crm-qb wrote on the contact, if any."""
        if self.kind == "hubspot":
            props = _hubspot_view(self.base, f"/objects/contacts/{contact_id}")["properties"]
            value = props.get("qb_overdue_balance")
        else:
            summary = self._view(f"/contacts/{contact_id}").get("quickbooks") or {}
            value = (summary.get("overdue_balance") or {}).get("home")
        return Decimal(str(value)) if value not in (None, "") else None

    def contact_writes(self) -> int:
        """How many single-contact writes crm-qb's API calls made (reference CRM: PATCH; HubSpot: object PATCH)."""
        counts = requests.get(f"{self.base}/_sandbox/requests", timeout=10).json()
        if self.kind == "hubspot":
            return int(counts["by_endpoint"].get("PATCH /crm/v3/objects/<object_type>/<object_id>", 0))
        return int(counts["endpoints"].get("PATCH /contacts/<contact_id>", 0))

    def latency(self, ms: int) -> None:
        """Delay every API call by ``ms`` (both sandboxes' fault plan)."""
        requests.post(f"{self.base}/_sandbox/faults", json={"latency_ms": ms}, timeout=10).raise_for_status()

    def idle(self) -> bool:
        """Whether the CRM has no change hook (HubSpot: webhook) left to deliver."""
        if self.kind == "hubspot":
            state = requests.get(f"{self.base}/_sandbox/webhooks", timeout=10).json()
            return bool(state["waiting"] == 0 and state["retrying"] == 0)
        return bool(requests.get(f"{self.base}/_sandbox/hooks", timeout=10).json()["pending"] == 0)

    def _view(self, path: str) -> Any:
        """Read the reference CRM as a user does (its control API): a test polling the CRM must not spend the
        API budget (100 calls per 10 s) crm-qb's own calls share, or crm-qb meets 429s the test caused."""
        answer = requests.get(f"{self.base}/_sandbox{path}", timeout=10)
        answer.raise_for_status()
        return answer.json()


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
    crm_kind: str = "rest"

    @property
    def crm_side(self) -> Crm:
        """The connection's CRM."""
        return Crm(self.crm_kind, self.crm, self.crm_token)

    def create_customer(self, **fields: Any) -> dict[str, Any]:
        """Create a QBO customer as a bookkeeper."""
        return create_customer(self.qbo, self.realm, **fields)

    def edit_customer(self, customer_id: str, **fields: Any) -> None:
        """Edit a QBO customer as a bookkeeper."""
        requests.patch(f"{self.qbo}/_sandbox/realms/{self.realm}/entities/Customer/{customer_id}", json=fields,
                       timeout=10).raise_for_status()

    def customer(self, customer_id: str) -> dict[str, Any]:
        """A QBO customer as stored now."""
        answer = requests.get(f"{self.qbo}/_sandbox/realms/{self.realm}/entities/Customer/{customer_id}", timeout=10)
        return answer.json()["Customer"]  # type: ignore[no-any-return]

    def qbo_entity(self, entity: str, **fields: Any) -> dict[str, Any]:
        """Create a QBO ``entity`` (Item, Invoice, ...) as a bookkeeper."""
        answer = requests.post(f"{self.qbo}/_sandbox/realms/{self.realm}/entities/{entity}", json=fields, timeout=10)
        answer.raise_for_status()
        return answer.json()[entity]  # type: ignore[no-any-return]

    def pay(self, customer_id: str, amount: Decimal) -> None:
        """Record a customer's payment in QBO (the sandbox applies it to open invoices, oldest first)."""
        requests.post(f"{self.qbo}/_sandbox/realms/{self.realm}/payments", timeout=10,
                      json={"customer_id": customer_id, "amount": str(amount)}).raise_for_status()

    def crm_user(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Act as a CRM user (section 6 paths and field names; HubSpot: translated to its objects)."""
        return self.crm_side.user(method, path, body)

    def delete_contact(self, contact_id: str) -> None:
        """Delete a contact as a CRM user (HubSpot: archive it)."""
        self.crm_side.delete_contact(contact_id)

    def merge_contacts(self, merged_id: str, into: str) -> str:
        """Merge a contact into another as a CRM user; the surviving contact's id (HubSpot: a new record)."""
        return self.crm_side.merge_contacts(merged_id, into)

    def link_of(self, contact_id: str) -> ContactLink | None:
        """crm-qb's link of a CRM contact, or None."""
        with create_app(self.settings).app_context():
            found = db.session.scalar(select(ContactLink).where(ContactLink.connection_id == self.connection_id,
                                                                ContactLink.crm_contact_id == contact_id))
            db.session.expunge_all()
            db.session.remove()
        return found

    def configure(self, section: str, **values: Any) -> None:
        """Change one section of the connection's settings (``sync``, ``panel``, ...); workers read them per job."""
        with create_app(self.settings).app_context():
            row = db.session.get(Connection, self.connection_id)
            assert row is not None
            current = row.settings or {}
            row.settings = {**current, section: {**current.get(section, {}), **values}}
            db.session.commit()
            db.session.remove()

    def contacts(self) -> list[dict[str, Any]]:
        """Every CRM contact (section 6 shape)."""
        return self.crm_side.contacts()

    def contact_with(self, **wanted: Any) -> dict[str, Any] | None:
        """The one contact whose fields include ``wanted``, else None."""
        return self.crm_side.contact_with(**wanted)

    def tasks(self, contact_id: str) -> list[dict[str, Any]]:
        """The contact's tasks in the CRM (section 6 shape)."""
        return self.crm_side.tasks(contact_id)

    def settled(self) -> bool:
        """Whether the CRM has no change hook left to deliver and crm-qb no inbound event pending."""
        crm_idle = self.crm_side.idle()
        with create_app(self.settings).app_context():
            pending = db.session.scalar(select(func.count()).select_from(InboundEvent).where(
                InboundEvent.status == EventStatus.PENDING))
            db.session.remove()
        return crm_idle and not pending

    def point_qbo_webhooks(self, url: str, realm: str | None = None) -> None:
        """Send the realm's (default: the world's) webhooks to ``url``."""
        requests.post(f"{self.qbo}/_sandbox/webhooks", json={"url": url, "format": "cloudevents", "delay_ms": 0,
                                                             "realm": realm or self.realm},
                      timeout=10).raise_for_status()


def create_customer(qbo: str, realm: str, **fields: Any) -> dict[str, Any]:
    """Create a customer in ``realm`` of the QBO sandbox at ``qbo`` as a bookkeeper."""
    answer = requests.post(f"{qbo}/_sandbox/realms/{realm}/entities/Customer", json=fields, timeout=10)
    answer.raise_for_status()
    return answer.json()["Customer"]  # type: ignore[no-any-return]


def wire(settings: Settings, tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]],
         qbo_info: dict[str, Any], crm_info: dict[str, Any], web_port: int, *, workers: int = 2,
         crm_kind: str = "rest") -> World:
    """Point crm-qb at both sandboxes, connect a connection, start web, ``workers`` workers and the scheduler; the
    world made.

    ``crm_kind`` "hubspot": ``crm_info`` is the local HubSpot's info; crm-qb is its app (the client secret that
    signs its webhooks) and the connection uses the portal's private-app token.
    """
    qbo = str(qbo_info["api_base"])
    web = f"http://127.0.0.1:{web_port}"
    overrides = {"qbo_environment": "local", "qbo_client_id": qbo_info["client_id"],
                 "qbo_client_secret": qbo_info["client_secret"], "qbo_discovery_url": qbo_info["discovery_url"],
                 "qbo_api_base": qbo, "qbo_app_base": qbo, "qbo_webhook_verifier_token": qbo_info["verifier_token"],
                 "qbo_redirect_uri": f"{web}/qbo/callback", "public_url": web}
    if crm_kind == "hubspot":
        overrides.update(hubspot_api_base=crm_info["api_base"], hubspot_app_base=crm_info["api_base"],
                         hubspot_client_id=crm_info["client_id"], hubspot_client_secret=crm_info["client_secret"])
    full = make_settings(tmp_path, settings.database_url, **overrides)
    app = create_app(full)
    _migrate(app)
    if not full.is_sqlite:
        _truncate(app)
    realm = new_realm(qbo)
    env = {f"CRM_QB_{key.upper()}": str(value) for key, value in overrides.items()}
    # One web process (of 8 threads) is enough for a test's traffic; each process costs a second of CPU to start
    # and CI's two cores are the suite's limit. Several web processes are tested by test_pipeline.
    spawn("web", "--port", str(web_port), "--workers", "1", extra_env=env)
    for _ in range(workers):
        # One process per worker: a bulk child (the default, workers/bulk_process.py) is a second app start per
        # worker, and CI's two cores are the suite's limit. The default is tested by test_bulk_process,
        # test_first_sync_resume, test_up and the fault smoke.
        spawn("worker", "--no-bulk-process", extra_env=env)
    # As on every production deployment (README, "Running on several hosts"): without it a drain put off into RQ's
    # delayed set (behind a held lock, a throttled company, a slow side, an outage's turn) never comes back, and the
    # watchdog never wakes a drain lost with a killed worker. Its polls are not due during a test (connect_crm).
    spawn("scheduler", extra_env=env)
    wait_for(lambda: healthy(web), timeout=90, what="crm-qb web to answer /healthz")
    connection_id = connect_crm(app, web, realm, crm_kind, crm_info)
    world = World(web, qbo, realm, str(crm_info["api_base"]), str(crm_info["token"]), connection_id, full, env,
                  crm_kind)
    world.point_qbo_webhooks(f"{web}/webhooks/qbo")
    return world


def new_realm(qbo: str) -> str:
    """A new, empty company in the QBO sandbox at ``qbo``."""
    return str(requests.post(f"{qbo}/_sandbox/realms", json={"customers": 0}, timeout=10).json()["realm_id"])


def connect_crm(app: Flask, web: str, realm: str, crm_kind: str, crm_info: dict[str, Any]) -> int:
    """Connect a CRM sandbox of ``crm_kind`` to ``realm`` as ``crm-qb connection add`` and the QBO consent do, its
    first sync done (``first_synced``), and send its change hooks to crm-qb's web at ``web``; the connection's id."""
    connection_id, secret = crm_connection(app, crm_kind, crm_info)
    first_synced(app, connection_id)  # before it is connected: the scheduler never sees it connected but unsynced
    connect_qbo(app, connection_id, realm)
    if crm_kind == "hubspot":
        requests.post(f"{crm_info['api_base']}/_sandbox/webhooks", json={"url": f"{web}/webhooks/hubspot"},
                      timeout=10).raise_for_status()
    else:
        requests.post(f"{crm_info['api_base']}/_sandbox/hooks", json={
            "url": f"{web}/webhooks/crm/{connection_id}", "secret": secret}, timeout=10).raise_for_status()
    return connection_id


def first_synced(app: Flask, connection_id: int) -> None:
    """Leave the connection as the first sync of its two empty sides leaves it, its CRM poll just run.

    In production live sync waits for a connection's first sync (the QBO consent opens one); a world's sides start
    empty, so it skips that run. Without its cursors the scheduler takes the connection for one never synced and
    starts a backfill at its next tick, at any moment of a test: a first sync walking both sides beside the test's
    live changes, able to carry them itself and, with one worker, to hold that worker (60 s behind a throttled
    company). With them both polls are next due ``sync.cdc_poll_seconds`` (5 minutes) from now, after the longest
    of these tests; a test about a poll queues it itself.
    """
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        assert connection is not None
        now = utcnow()
        connection.cdc_cursor = connection.crm_cursor = connection.crm_polled_at = connection.last_sync_at = now
        db.session.commit()
        db.session.remove()


def crm_connection(app: Flask, crm_kind: str, crm_info: dict[str, Any]) -> tuple[int, str]:
    """A connection to the CRM sandbox, as ``crm-qb connection add`` makes it; its id and hook secret.

    A HubSpot connection names its portal's client secret, so a second portal (another local HubSpot, whose
    secret is not the app's) is trusted for its own webhooks.
    """
    with app.app_context():
        if crm_kind == "hubspot":
            api = str(crm_info["api_base"])
            portal = set_up_portal(api, str(crm_info["token"]))
            made = create_hubspot_connection(runtime(app).secrets, api_base=api, token=str(crm_info["token"]),
                                             portal_id=portal, client_secret=str(crm_info["client_secret"]),
                                             web_origin_url=api)
        else:
            made = create_connection(runtime(app).secrets, crm_url=crm_info["api_base"],
                                     crm_token=crm_info["token"])
        found = made.connection.id, made.crm_hook_secret
        db.session.remove()
    return found


def start_crm_sandbox(crm_kind: str, port: int, log: Path, portal_id: int | None = None
                      ) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """The reference CRM or the local HubSpot (portal ``portal_id``: a second portal needs its own) on ``port``."""
    argv = (["crm_qb.cli", "sandbox", "hubspot", "--port", str(port)] if crm_kind == "hubspot"
            else ["crm_qb.sandbox.crm.server", "--port", str(port)])
    if crm_kind == "hubspot" and portal_id is not None:
        argv += ["--portal-id", str(portal_id)]
    return start_sandbox(argv, log)


class Spawner:
    """Starts ``crm-qb <args>`` as real processes with a test's settings (the e2e ``spawn`` fixture) and stops them
    all at once afterwards."""

    def __init__(self, settings: Settings, tmp_path: Path) -> None:
        self.settings, self.tmp_path = settings, tmp_path
        self.started: list[subprocess.Popen[bytes]] = []

    def __call__(self, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.tmp_path / f"{args[0]}-{len(self.started)}.log", "wb")  # noqa: SIM115 (closed with it)
        env = {**os.environ, **settings_env(self.settings), **(extra_env or {})}
        process = subprocess.Popen([sys.executable, "-m", "crm_qb.cli", *args], env=env, cwd=ROOT,
                                   stdout=log, stderr=subprocess.STDOUT)
        self.started.append(process)
        return process

    def stop(self) -> None:
        """Stop every process started (SIGTERM together, then reap; killed after 30 s)."""
        stop_all(self.started)


@contextmanager
def running_world(settings: Settings, tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]], crm_kind: str,
                  *, workers: int = 2) -> Iterator[World]:
    """The QBO sandbox and a CRM of ``crm_kind`` as real processes, wired to crm-qb web, ``workers`` workers and the
    scheduler; everything is stopped afterwards: crm-qb's processes first (a worker outliving the sandboxes retries
    against them until its job gives up, which made teardowns take 15 to 28 s under CI's load), then the sandboxes."""
    qbo_proc, qbo_info = start_sandbox(["crm_qb.cli", "sandbox", "qbo", "--port", str(free_port())],
                                       tmp_path / "qbo.log")
    sandboxes = [qbo_proc]
    try:
        crm_proc, crm_info = start_crm_sandbox(crm_kind, free_port(), tmp_path / "crm.log")
        sandboxes.append(crm_proc)
        yield wire(settings, tmp_path, spawn, qbo_info, crm_info, free_port(), workers=workers, crm_kind=crm_kind)
    finally:
        if isinstance(spawn, Spawner):
            spawn.stop()
        stop_all(sandboxes)


@contextmanager
def second_crm(world: World, tmp_path: Path, crm_kind: str, realm: str,
               spawn: Callable[..., subprocess.Popen[bytes]] | None = None) -> Iterator[tuple[Crm, int]]:
    """Another CRM of ``crm_kind`` (HubSpot: another portal) connected to ``realm`` of the world's QBO sandbox;
    the CRM and its connection's id. Stopped afterwards."""
    process, info = start_crm_sandbox(crm_kind, free_port(), tmp_path / "crm2.log", portal_id=62516)
    try:
        connection_id = connect_crm(create_app(world.settings), world.web, realm, crm_kind, info)
        yield Crm(crm_kind, str(info["api_base"]), str(info["token"])), connection_id
    finally:
        if isinstance(spawn, Spawner):  # crm-qb's processes before the CRM they call (see running_world)
            spawn.stop()
        stop(process)


# -- HubSpot as a CRM user sees it ------------------------------------------------------------------------------

def hubspot_user(base: str, method: str, path: str, body: dict[str, Any] | None) -> Any:
    """A section 6 call (``/contacts[/id]`` with section 6 fields) done as a HubSpot user in HubSpot's UI."""
    parts = path.strip("/").split("/")
    if parts[0] != "contacts" or len(parts) > 2:
        raise ValueError(f"no HubSpot equivalent for {method} {path}")
    url = f"{base}/_sandbox/objects/contacts" + (f"/{parts[1]}" if len(parts) == 2 else "")
    payload = {"properties": mapping.contact_properties(body or {})} if body is not None else None
    answer = requests.request(method, url, json=payload, timeout=10)
    answer.raise_for_status()
    return contact_json(answer.json()) if answer.content else None


def hubspot_contacts(base: str) -> list[dict[str, Any]]:
    """Every HubSpot contact in section 6 shape, as a HubSpot user sees them (the sandbox's control API)."""
    return [contact_json(obj) for obj in _hubspot_view(base, "/objects/contacts")["results"]]


def hubspot_tasks(base: str, contact_id: str) -> list[dict[str, Any]]:
    """The tasks associated with a HubSpot contact in section 6 shape (the connector's mapping), oldest first."""
    links = _hubspot_view(base, f"/objects/contacts/{contact_id}/associations/tasks")["results"]
    objects = [_hubspot_view(base, f"/objects/tasks/{link['toObjectId']}") for link in links]
    tasks = [mapping.task_from_object(obj, contact_id) for obj in sorted(objects, key=lambda o: int(o["id"]))]
    return [{"id": t.id, "contact_id": t.contact_id, "title": t.title, "description": t.description,
             "status": t.status, "owner_id": t.owner_id} for t in tasks]


def _hubspot_view(base: str, path: str) -> Any:
    """Read the local HubSpot as a user does (its control API): a test polling the portal must not spend the API
    budget (100 calls per 10 s, shared by every caller of the portal) crm-qb's own calls use."""
    answer = requests.get(f"{base}/_sandbox{path}", timeout=10)
    answer.raise_for_status()
    return answer.json()


def contact_json(obj: dict[str, Any]) -> dict[str, Any]:
    """A HubSpot contact object in section 6 shape (the connector's mapping)."""
    contact = mapping.contact_from_object(obj)
    data = {name: getattr(contact, name) for name in CONTACT_TEXT_FIELDS}
    return {"id": contact.id, "version": contact.version, **data,
            "billing_address": contact.billing_address.to_json(),
            "shipping_address": contact.shipping_address.to_json()}


def healthy(web: str) -> bool:
    """Whether crm-qb's web process answers /healthz with 200."""
    try:
        return requests.get(f"{web}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False
