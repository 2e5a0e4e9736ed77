"""Wire a demo connection for ``crm-qb up``: the reference CRM ↔ the local QBO sandbox's demo realm.

The sandbox's authorize endpoint consents at once, so the OAuth dance is done programmatically with crm-qb's own
OAuth client and the tokens are stored through the DbTokenStore, exactly as the callback would store them. The
reference CRM is told where to send change hooks, and how to get the QuickBooks panel of the contact a page shows:
from crm-qb's panel-URL API, server-side, with the connection's API key (the normal way: the browser only sees a
short-lived URL of that one contact).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from flask import Flask

from crm_qb.connections import create_connection
from crm_qb.db import db
from crm_qb.models import Connection
from crm_qb.qbo.company import refresh_company
from crm_qb.runtime import runtime


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
    """Create a connection for the CRM, connect it to ``realm_id`` and register the CRM's hooks; return it."""
    with app.app_context():
        made = create_connection(runtime(app).secrets, crm_url=crm_url, crm_token=crm_token, name="demo")
        connection_id = made.connection.id
    connect_sandbox_realm(app, connection_id, realm_id)
    control = f"{crm_url.rstrip('/')}/_sandbox"
    hooks = {"url": f"{web_url.rstrip('/')}/webhooks/crm/{connection_id}", "secret": made.crm_hook_secret}
    requests.post(f"{control}/hooks", json=hooks, timeout=10).raise_for_status()
    panel = {"panel_url_api": f"{web_url.rstrip('/')}/api/v1/connections/{connection_id}/contacts/{{id}}/panel-url",
             "api_key": made.api_key}
    requests.post(f"{control}/panel", json=panel, timeout=10).raise_for_status()
    return {"id": connection_id, "api_key": made.api_key, "realm_id": realm_id}
