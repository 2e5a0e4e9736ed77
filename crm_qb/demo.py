"""Wire a demo connection for ``crm-qb up``: the reference CRM ↔ the local QBO sandbox's demo realm.

The sandbox's authorize endpoint consents at once, so the OAuth dance is done programmatically with crm-qb's own
OAuth client and the tokens are stored through the DbTokenStore, exactly as the callback would store them. The
reference CRM is told where to send change hooks, and how to get the QuickBooks panel of the contact a page shows:
from crm-qb's panel-URL API, server-side, with the connection's API key (the normal way: the browser only sees a
short-lived URL of that one contact).

A second ``up`` resumes its demo rather than adding one: the connection named "demo" on the demo realm is reused
(``find_demo``), its CRM address and token refreshed, its QuickBooks grant renewed (the sandbox keeps its data but
not its OAuth grants across restarts) and the CRM told again where to send hooks, with the secret it already has.
Its API key is stored only hashed, so a resumed demo gets a new one (``rotate_api_key``) for the CRM's panel calls.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from flask import Flask
from sqlalchemy import select

from crm_qb.connections import create_connection, rotate_api_key
from crm_qb.db import db
from crm_qb.models import Connection
from crm_qb.qbo.company import refresh_company
from crm_qb.runtime import runtime
from crm_qb.sync.firstsync.service import open_first_sync, request_preview, start
from crm_qb.sync.firstsync.settings import with_auto_start
from crm_qb.sync.firstsync.store import PREVIEWED, WAITING, set_values

DEMO_NAME = "demo"


def connect_sandbox_realm(app: Flask, connection_id: int, realm_id: str) -> None:
    """Connect a connection to a realm of the local QBO sandbox (which consents at once), as the callback would."""
    with app.app_context():
        services = runtime(app).qbo()
        consent = requests.get(services.oauth.authorization_url("demo") + f"&realm={realm_id}",
                               allow_redirects=False, timeout=10)
        consent.raise_for_status()
        code = parse_qs(urlsplit(consent.headers["Location"]).query)["code"][0]
        services.store.save(str(connection_id), services.oauth.exchange_code(code, realm_id))
        db.session.expire_all()  # the token store wrote through its own session
        connection = db.session.get(Connection, connection_id)
        assert connection is not None
        with services.client_for(connection) as client:  # as the OAuth callback does: name, currency, lists
            refresh_company(db.session, connection, client)
        db.session.commit()


def wire_demo(app: Flask, *, crm_url: str, crm_token: str, realm_id: str, web_url: str) -> dict[str, Any]:
    """Create (or, on a later run, reuse) the demo connection, connect it to ``realm_id`` and register the CRM's
    hooks and panel; return it (``resumed``: it existed; its API key is then not shown again)."""
    with app.app_context():
        existing = find_demo(realm_id)
        if existing is None:
            made = create_connection(runtime(app).secrets, crm_url=crm_url, crm_token=crm_token, name=DEMO_NAME)
            connection_id, api_key, hook_secret = made.connection.id, made.api_key, made.crm_hook_secret
            # Opened before the company is connected, as a user's consent opens it: from then on the scheduler
            # neither polls nor backfills the connection until its first sync is done, so nothing walks it before
            # its preview (``start_demo_sync``'s auto-start, or ``crm-qb sync preview``/``start`` after
            # ``connection demo --no-backfill``). Connected first, a scheduler tick could backfill it meanwhile.
            open_first_sync(None, connection_id)
        else:
            connection_id, api_key = existing, None
            hook_secret = _refresh_crm(app, existing, crm_url, crm_token)
    connect_sandbox_realm(app, connection_id, realm_id)
    control = f"{crm_url.rstrip('/')}/_sandbox"
    hooks = {"url": f"{web_url.rstrip('/')}/webhooks/crm/{connection_id}", "secret": hook_secret}
    requests.post(f"{control}/hooks", json=hooks, timeout=10).raise_for_status()
    if api_key is None:
        with app.app_context():
            api_key = rotate_api_key(connection_id)  # the old key is stored hashed; only the demo's CRM uses it
    panel = {"panel_url_api": f"{web_url.rstrip('/')}/api/v1/connections/{connection_id}/contacts/{{id}}/panel-url",
             "api_key": api_key}
    requests.post(f"{control}/panel", json=panel, timeout=10).raise_for_status()
    return {"id": connection_id, "api_key": api_key, "realm_id": realm_id, "resumed": existing is not None}


def start_demo_sync(app: Flask, connection_id: int) -> None:
    """Let the demo show data at once: its first sync starts by itself once previewed (``first_sync.auto_start``);
    a demo that synced before (an earlier ``up``) gets a backfill that catches up with what changed meanwhile."""
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        assert connection is not None
        connection.settings = with_auto_start(connection.settings, True)
        synced_before = connection.cdc_cursor is not None
        db.session.commit()
        jobs = runtime(app).jobs
        if synced_before:
            jobs.backfill(connection_id)
            return
        run = open_first_sync(jobs, connection_id)
        if not run.auto_start and run.state in (WAITING, PREVIEWED):  # opened before the setting was on
            set_values(run.id, auto_start=True)
            if run.state == PREVIEWED:
                start(jobs, run.id)
            else:
                request_preview(jobs, run.id)


def find_demo(realm_id: str) -> int | None:
    """The id of the demo connection an earlier ``up`` made for ``realm_id`` (the oldest one), else None."""
    return db.session.scalar(select(Connection.id).where(
        Connection.name == DEMO_NAME, Connection.qbo_realm_id == realm_id).order_by(Connection.id).limit(1))


def _refresh_crm(app: Flask, connection_id: int, crm_url: str, crm_token: str) -> str:
    """Point the demo connection at the CRM as it runs now (address and token); return its hook secret."""
    box = runtime(app).secrets
    connection = db.session.get(Connection, connection_id)
    assert connection is not None
    connection.crm_base_url = crm_url.rstrip("/")
    connection.crm_token_encrypted = box.encrypt(crm_token.strip())
    secret = box.decrypt(connection.crm_hook_secret_encrypted)
    db.session.commit()
    return secret
