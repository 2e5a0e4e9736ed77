"""Wire the HubSpot demo for ``crm-qb up --crm hubspot``: the local HubSpot ↔ the local QBO sandbox's demo realm.

As HubSpot's own setup would be done by hand once: a HubSpot connection with the portal's private-app token
(the "QuickBooks" properties created in the portal), connected to the demo realm; the portal's app told to send
its webhooks to ``/webhooks/hubspot``; its contact record page told where the app card's backend is
(``/hubspot/card/contacts/{id}``, called signed as HubSpot's proxy calls it) and which panel to frame (the
connection's embed URL, which the record page keeps server-side, as a CRM would). A later ``up`` reuses the
connection named "demo" of that portal and realm and renews its QuickBooks grant (crm_qb/demo.py).
"""

from __future__ import annotations

from typing import Any

import requests
from flask import Flask
from sqlalchemy import select

from crm_qb.connections import create_hubspot_connection
from crm_qb.crm.hubspot.connector import set_up_portal
from crm_qb.db import db
from crm_qb.demo import DEMO_NAME, connect_sandbox_realm
from crm_qb.models import Connection
from crm_qb.runtime import runtime
from crm_qb.web.panel_tokens import embed_url_template, make_embed_token

CARD_LIMIT = 5


def wire_hubspot_demo(app: Flask, *, api_base: str, token: str, realm_id: str, web_url: str) -> dict[str, Any]:
    """Create (or reuse) the HubSpot demo connection, connect it to ``realm_id``, point the portal at crm-qb."""
    portal = set_up_portal(api_base, token)
    with app.app_context():
        existing = _find(portal, realm_id)
        if existing is None:
            made = create_hubspot_connection(runtime(app).secrets, api_base=api_base, token=token, name=DEMO_NAME,
                                             portal_id=portal, web_origin_url=api_base)
            connection_id = made.connection.id
        else:
            connection_id = existing
            _refresh(app, connection_id, api_base, token)
    connect_sandbox_realm(app, connection_id, realm_id)
    web, control = web_url.rstrip("/"), f"{api_base.rstrip('/')}/_sandbox"
    _post(f"{control}/webhooks", {"url": f"{web}/webhooks/hubspot"})
    _post(f"{control}/card", {"url": f"{web}/hubspot/card/contacts/{{id}}?limit={CARD_LIMIT}"})
    _post(f"{control}/panel", {"url_template": _embed_template(app, connection_id, web)})
    return {"id": connection_id, "realm_id": realm_id, "portal_id": portal, "resumed": existing is not None}


def _find(portal: str, realm_id: str) -> int | None:
    return db.session.scalar(select(Connection.id).where(
        Connection.name == DEMO_NAME, Connection.crm_kind == "hubspot", Connection.crm_account_id == portal,
        Connection.qbo_realm_id == realm_id).order_by(Connection.id).limit(1))


def _refresh(app: Flask, connection_id: int, api_base: str, token: str) -> None:
    connection = db.session.get(Connection, connection_id)
    assert connection is not None
    connection.crm_base_url = api_base.rstrip("/")
    connection.crm_token_encrypted = runtime(app).secrets.encrypt(token)
    db.session.commit()


def _embed_template(app: Flask, connection_id: int, web: str) -> str:
    with app.app_context():
        connection = db.session.get(Connection, connection_id)
        assert connection is not None
        token = make_embed_token(runtime(app).settings.secret_key, connection)
        return embed_url_template(web, connection_id, token)


def _post(url: str, body: dict[str, Any]) -> None:
    requests.post(url, json=body, timeout=10).raise_for_status()
