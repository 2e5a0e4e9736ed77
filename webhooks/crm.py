"""``POST /webhooks/crm/<connection_id>``: CRM change hooks (docs/architecture.md §5)."""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify, request

from crm_qb.db import db
from crm_qb.models import Connection, EventSource
from crm_qb.runtime import runtime
from crm_qb.signatures import verify_crm
from crm_qb.web.errors import json_error
from webhooks import inbox
from webhooks.notices import PayloadError, decode, parse_crm

bp = Blueprint("crm_webhooks", __name__)


@bp.post("/webhooks/crm/<int:connection_id>")
def receive(connection_id: int) -> tuple[Response, int]:
    """Verify the signature and its age, validate, store each event, commit, enqueue, answer 202."""
    body = request.get_data(cache=False)
    connection = db.session.get(Connection, connection_id)
    if connection is None:
        return json_error(404, "unknown_connection", f"no connection {connection_id}")
    secret = runtime().secrets.decrypt(connection.crm_hook_secret_encrypted)
    if not verify_crm(body, request.headers.get("X-CRM-Signature"), secret, time.time()):
        return json_error(401, "invalid_signature",
                          "missing, invalid or expired X-CRM-Signature header (older than 5 minutes)")
    try:
        notices = parse_crm(decode(body), connection_id)
    except PayloadError as exc:
        return json_error(400, "invalid_body", str(exc))
    new = inbox.store_and_wake(EventSource.CRM, notices, connection_id)  # committed, then the drain woken
    return jsonify({"status": "accepted", "stored": len(new), "received": len(notices)}), 202
