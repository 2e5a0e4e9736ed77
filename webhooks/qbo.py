"""``POST /webhooks/qbo``: Intuit webhooks in both formats (docs/qbo/facts.md §8)."""

from __future__ import annotations

import logging
from decimal import Decimal

from flask import Blueprint, Response, jsonify, request

from crm_qb.models import EventSource
from crm_qb.runtime import runtime
from crm_qb.signatures import verify_qbo
from crm_qb.web.errors import json_error
from webhooks import inbox
from webhooks.notices import PayloadError, decode, parse_qbo

bp = Blueprint("qbo_webhooks", __name__)
log = logging.getLogger(__name__)


@bp.post("/webhooks/qbo")
def receive() -> tuple[Response, int]:
    """Verify the signature over the raw body, store each change, commit, enqueue, answer 200."""
    body = request.get_data(cache=False)
    if not body.strip():
        return jsonify({"status": "ok", "stored": 0}), 200  # Intuit's empty verification ping
    if not verify_qbo(body, request.headers.get("intuit-signature"),
                      runtime().settings.qbo_webhook_verifier_token):
        return json_error(401, "invalid_signature", "missing or invalid intuit-signature header")
    try:
        notices = parse_qbo(decode(body, parse_float=Decimal))
    except PayloadError as exc:
        return json_error(400, "invalid_body", str(exc))
    new = inbox.store_and_wake(EventSource.QBO, notices)  # committed (group commit), then the drains woken
    return _ok(len(new), len(notices)), 200


def _ok(stored: int, received: int) -> Response:
    """The answer, written directly: Flask's ``jsonify`` costs a tenth of a webhook's CPU for these few bytes."""
    return Response(f'{{"status":"ok","stored":{stored},"received":{received}}}\n', mimetype="application/json")
