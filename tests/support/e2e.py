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
from flask import Flask
from sqlalchemy import func, select

from crm_qb.app import create_app
from crm_qb.config import Settings
from crm_qb.connections import create_connection, create_hubspot_connection
from crm_qb.crm.hubspot import mapping
from crm_qb.crm.hubspot.connector import set_up_portal
from crm_qb.crm.protocol import CONTACT_TEXT_FIELDS
from crm_qb.db import db
from crm_qb.models import ContactLink, EventStatus, InboundEvent
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
    crm_kind: str = "rest"

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
        """Act as a CRM user (section 6 paths and field names; HubSpot: translated to its objects)."""
        if self.crm_kind == "hubspot":
            return hubspot_user(self.crm, method, path, body)
        answer = requests.request(method, f"{self.crm}/_sandbox{path}", json=body, timeout=10)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    def delete_contact(self, contact_id: str) -> None:
        """Delete a contact as a CRM user (HubSpot: archive it)."""
        path = (f"/_sandbox/objects/contacts/{contact_id}" if self.crm_kind == "hubspot"
                else f"/_sandbox/contacts/{contact_id}")
        requests.delete(f"{self.crm}{path}", timeout=10).raise_for_status()

    def link_of(self, contact_id: str) -> ContactLink | None:
        """crm-qb's link of a CRM contact, or None."""
        with create_app(self.settings).app_context():
            found = db.session.scalar(select(ContactLink).where(ContactLink.connection_id == self.connection_id,
                                                                ContactLink.crm_contact_id == contact_id))
            db.session.expunge_all()
            db.session.remove()
        return found

    def contacts(self) -> list[dict[str, Any]]:
        """Every CRM contact (section 6 shape)."""
        if self.crm_kind == "hubspot":
            return hubspot_contacts(self.crm, self.crm_token)
        answer = requests.get(f"{self.crm}/contacts?limit=1000", timeout=10,
                              headers={"Authorization": f"Bearer {self.crm_token}"})
        return answer.json()["contacts"]  # type: ignore[no-any-return]

    def contact_with(self, **wanted: Any) -> dict[str, Any] | None:
        """The one contact whose fields include ``wanted``, else None."""
        found = [c for c in self.contacts() if all(c.get(k) == v for k, v in wanted.items())]
        return found[0] if len(found) == 1 else None

    def settled(self) -> bool:
        """Whether the CRM has no change hook left to deliver and crm-qb no inbound event pending."""
        if self.crm_kind == "hubspot":
            state = requests.get(f"{self.crm}/_sandbox/webhooks", timeout=10).json()
            crm_idle = state["waiting"] == 0 and state["retrying"] == 0
        else:
            crm_idle = requests.get(f"{self.crm}/_sandbox/hooks", timeout=10).json()["pending"] == 0
        with create_app(self.settings).app_context():
            pending = db.session.scalar(select(func.count()).select_from(InboundEvent).where(
                InboundEvent.status == EventStatus.PENDING))
            db.session.remove()
        return crm_idle and not pending

    def point_qbo_webhooks(self, url: str) -> None:
        """Send the realm's webhooks to ``url``."""
        requests.post(f"{self.qbo}/_sandbox/webhooks", json={"url": url, "format": "cloudevents", "delay_ms": 0,
                                                             "realm": self.realm}, timeout=10).raise_for_status()


def wire(settings: Settings, tmp_path: Path, spawn: Callable[..., subprocess.Popen[bytes]],
         qbo_info: dict[str, Any], crm_info: dict[str, Any], web_port: int, *, workers: int = 2,
         crm_kind: str = "rest") -> World:
    """Point crm-qb at both sandboxes, connect a connection, start web and ``workers`` workers; the world made.

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
    realm = requests.post(f"{qbo}/_sandbox/realms", json={"customers": 0}, timeout=10).json()["realm_id"]
    connection_id, secret = _connection(app, crm_kind, crm_info)
    connect_qbo(app, connection_id, realm)
    env = {f"CRM_QB_{key.upper()}": str(value) for key, value in overrides.items()}
    spawn("web", "--port", str(web_port), "--workers", "2", extra_env=env)
    for _ in range(workers):
        spawn("worker", extra_env=env)
    wait_for(lambda: healthy(web), timeout=90, what="crm-qb web to answer /healthz")
    if crm_kind == "hubspot":
        requests.post(f"{crm_info['api_base']}/_sandbox/webhooks", json={"url": f"{web}/webhooks/hubspot"},
                      timeout=10).raise_for_status()
    else:
        requests.post(f"{crm_info['api_base']}/_sandbox/hooks", json={
            "url": f"{web}/webhooks/crm/{connection_id}", "secret": secret}, timeout=10).raise_for_status()
    world = World(web, qbo, realm, str(crm_info["api_base"]), str(crm_info["token"]), connection_id, full, env,
                  crm_kind)
    world.point_qbo_webhooks(f"{web}/webhooks/qbo")
    return world


def _connection(app: Flask, crm_kind: str, crm_info: dict[str, Any]) -> tuple[int, str]:
    """A connection to the CRM sandbox, as ``crm-qb connection add`` makes it; its id and hook secret."""
    with app.app_context():
        if crm_kind == "hubspot":
            api = str(crm_info["api_base"])
            portal = set_up_portal(api, str(crm_info["token"]))
            made = create_hubspot_connection(runtime(app).secrets, api_base=api, token=str(crm_info["token"]),
                                             portal_id=portal, web_origin_url=api)
        else:
            made = create_connection(runtime(app).secrets, crm_url=crm_info["api_base"],
                                     crm_token=crm_info["token"])
        found = made.connection.id, made.crm_hook_secret
        db.session.remove()
    return found


def start_crm_sandbox(crm_kind: str, port: int, log: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """The reference CRM or the local HubSpot, as a real process on ``port``."""
    argv = (["crm_qb.cli", "sandbox", "hubspot", "--port", str(port)] if crm_kind == "hubspot"
            else ["crm_qb.sandbox.crm.server", "--port", str(port)])
    return start_sandbox(argv, log)


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


def hubspot_contacts(base: str, token: str) -> list[dict[str, Any]]:
    """Every HubSpot contact in section 6 shape, read through HubSpot's API."""
    found, after = [], None
    while True:
        params: dict[str, Any] = {"limit": 100, "properties": ",".join(mapping.CONTACT_PROPERTIES)}
        if after:
            params["after"] = after
        page = requests.get(f"{base}/crm/v3/objects/contacts", params=params, timeout=10,
                            headers={"Authorization": f"Bearer {token}"}).json()
        found += [contact_json(obj) for obj in page["results"]]
        after = ((page.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return found


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
