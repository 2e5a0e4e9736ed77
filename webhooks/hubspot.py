"""``POST /webhooks/hubspot``: HubSpot's webhooks for the app, every portal at one address (DESIGN §10).

Verify HubSpot's v3 signature over the raw body (docs/hubspot/facts.md §8.3) against the URL HubSpot called
(``crm_qb.web.hubspot_signed``), then route each event by its ``portalId`` to the HubSpot connections of that
portal, store their notices, commit and wake their drains, exactly as ``webhooks/crm.py`` does for one
connection. A bad or old signature is 401 (HubSpot does not retry it), a signed body of another shape 400, an
unknown portal 200 (nothing to store).
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request

from crm_qb.crm.hubspot.signature import HEADER_TIMESTAMP, HEADER_V3
from crm_qb.db import db
from crm_qb.web.errors import json_error
from crm_qb.web.hubspot_signed import trusted_connections
from webhooks import inbox
from webhooks.hubspot_notices import notices_for, parse_hubspot, portals_named
from webhooks.notices import PayloadError, decode

bp = Blueprint("hubspot_webhooks", __name__)
log = logging.getLogger(__name__)


@bp.post("/webhooks/hubspot")
def receive() -> tuple[Response, int]:
    """Verify, route by portal, store each contact change, commit, wake the drains, answer 200."""
    body = request.get_data(cache=False)
    try:
        decoded = decode(body)
    except PayloadError:
        decoded = None
    trusted = trusted_connections(body, portals_named(decoded))
    if trusted is None:
        return json_error(401, "invalid_signature", f"missing, invalid or expired {HEADER_V3} (or "
                          f"{HEADER_TIMESTAMP} older than 5 minutes)")
    try:
        events = parse_hubspot(decoded if decoded is not None else decode(body))
    except PayloadError as exc:
        return json_error(400, "invalid_body", str(exc))
    stored, woken = 0, []
    for connection in trusted:
        new = inbox.record_crm(notices_for([e for e in events if e.portal_id == connection.crm_account_id],
                                           connection.id), connection.id)
        stored += len(new)
        woken.append((connection.id, new))
    db.session.commit()
    for connection_id, new in woken:
        inbox.dispatch_crm(new, connection_id)
    return jsonify({"status": "accepted", "stored": stored, "received": len(events)}), 200
