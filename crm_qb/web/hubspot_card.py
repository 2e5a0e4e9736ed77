"""``GET /hubspot/card/contacts/<contact_id>``: what the QuickBooks app card on a HubSpot contact shows.

The contract is docs/hubspot/card.md. HubSpot's proxy (``hubspot.fetch``) calls it for the card, adds
``portalId`` (and ``userId``, ``userEmail``, ``appId``) to the query and signs the request with the app's client
secret, exactly as webhooks are signed; that signature is the only credential (the card holds none). It proves
HubSpot asked on behalf of a user of that portal, not which record is open, so everything is scoped to the
signed ``portalId``: a contact id resolves only inside that portal's connection. The answer is the API's link,
summary and newest folder items (the same read models, so card and API cannot drift) and a fresh, short-lived
panel URL for the "Open QuickBooks panel" button.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from crm_qb.models import Connection
from crm_qb.runtime import runtime
from crm_qb.web.errors import json_error
from crm_qb.web.hubspot_signed import trusted_connections
from crm_qb.web.panel_tokens import PANEL_URL_TTL_SECONDS, make_panel_token, panel_url
from crm_qb.web.readmodels.folder import (
    FolderPage,
    app_base,
    customer_url,
    find_link,
    folder_page,
    item_json,
    link_status,
    parse_folder_query,
)
from crm_qb.web.readmodels.summary import summary_json
from crm_qb.web.routing import is_contact_id

bp = Blueprint("hubspot_card", __name__)
log = logging.getLogger(__name__)

MAX_LIMIT, DEFAULT_LIMIT = 20, 5


@bp.get("/hubspot/card/contacts/<path:contact_id>")
def card(contact_id: str) -> Response | tuple[Response, int]:
    """The card's data for one contact of the signed portal."""
    portal = request.args.get("portalId", "")
    if not portal.isascii() or not portal.isdigit() or len(portal) > 19:
        return json_error(401, "invalid_signature", "the request names no portalId; only HubSpot's proxy calls this")
    try:
        connections = trusted_connections(b"", {portal})
    except SQLAlchemyError:
        log.exception("card: the database is unavailable")
        return json_error(503, "unavailable", "crm-qb cannot read its database right now; try again shortly")
    if connections is None:
        return json_error(401, "invalid_signature", "missing, invalid or expired X-HubSpot-Signature-v3")
    if not connections:
        return json_error(404, "not_connected", f"HubSpot portal {portal} is not connected to QuickBooks in crm-qb")
    limit = _limit(request.args.get("limit"))
    if isinstance(limit, str):
        return json_error(400, "invalid", limit)
    if not is_contact_id(contact_id):
        return json_error(400, "invalid", "contactId is not a HubSpot record id")
    connection = _connection_of(connections, contact_id)
    log.info("card shown connection=%s user=%s", connection.id, request.args.get("userId", "")[:20])
    return jsonify({"portal_id": int(portal), **card_json(connection, contact_id, limit)})


def card_json(connection: Connection, contact_id: str, limit: int) -> dict[str, Any]:
    """Link, summary, the newest ``limit`` transactions, their total and a fresh panel URL (card.md)."""
    rt = runtime()
    link = find_link(connection.id, contact_id)
    state = link_status(link)
    base = app_base(rt, connection)
    linked = link is not None and state.state == "linked" and state.qbo_customer_id
    query = parse_folder_query([], [], "1", str(limit))
    page = folder_page(connection.id, str(state.qbo_customer_id), query) if linked else FolderPage([], 0, query)
    token = make_panel_token(rt.settings.secret_key, connection, contact_id, PANEL_URL_TTL_SECONDS, time.time())
    return {
        "connection_id": connection.id, "crm_contact_id": contact_id,
        "link": {"state": state.state, "reason": state.reason, "qbo_customer_id": state.qbo_customer_id,
                 "customer_url": customer_url(base, state.qbo_customer_id) if linked else None},
        "summary": summary_json(connection, link, base) if linked and link is not None else None,
        "transactions": [item_json(item, base, connection.home_currency or "") for item in page.items],
        "transactions_total": page.total,
        "panel_url": panel_url(rt.settings.public_url, connection.id, contact_id, token),
    }


def _connection_of(connections: list[Connection], contact_id: str) -> Connection:
    """The portal's connection that knows the contact (several connections may share a portal), else the first."""
    return next((c for c in connections if find_link(c.id, contact_id) is not None), connections[0])


def _limit(raw: str | None) -> int | str:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw[:4]) <= MAX_LIMIT:
        return f"limit must be a whole number from 1 to {MAX_LIMIT}, got {raw[:20]!r}"
    return int(raw)
