"""The JSON API for a CRM's back end (docs/architecture.md §6), each call with ``Authorization: Bearer <API key>``:

- ``GET /api/v1/connections/<id>/contacts/<crm_contact_id>/quickbooks``: the contact's link, billing summary and
  folder. Money is exact decimal strings; the folder is paged (``page``, ``per_page`` ≤ 200) and filtered by
  ``type`` and ``status`` (comma-separated or repeated), newest first.
- ``POST /api/v1/connections/<id>/contacts/<crm_contact_id>/panel-url``: a short-lived panel URL for the contact
  the CRM's user is viewing (``{"url", "expires_at"}``; optional body ``{"ttl_seconds": 1..3600}``, default 900).
  This is how a CRM embeds the panel without handing any user a credential that opens other contacts.
- ``GET /api/v1/connections/<id>/health``: the connection's own health (web/health.py).

A missing or unknown key is 401; a key of another connection, or a contact this connection has never linked
(for ``quickbooks``), is 404 (never 403: nobody learns what exists elsewhere). Every answer is ``no-store``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from crm_qb.crypto import api_key_matches, hash_api_key
from crm_qb.db import db
from crm_qb.models import Connection
from crm_qb.runtime import runtime
from crm_qb.web.errors import json_error
from crm_qb.web.health import connection_report
from crm_qb.web.panel_tokens import MAX_PANEL_URL_TTL_SECONDS, PANEL_URL_TTL_SECONDS, make_panel_token, panel_url
from crm_qb.web.readmodels.folder import (
    FolderPage,
    FolderQuery,
    InvalidFolderQuery,
    app_base,
    customer_url,
    find_link,
    folder_page,
    item_json,
    link_status,
    parse_folder_query,
)
from crm_qb.web.readmodels.health import health_details, waited_seconds
from crm_qb.web.readmodels.summary import summary_json
from crm_qb.web.readmodels.time import time_json
from crm_qb.web.routing import is_contact_id

bp = Blueprint("api", __name__, url_prefix="/api/v1")


class ApiRefusal(Exception):
    """A request the API refuses; rendered as the contract's JSON error (``status``, ``code``, ``message``)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def whole_number_arg(name: str, default: int, most: int) -> int:
    """The query argument ``name`` as a whole number from 1 to ``most`` (``default`` when absent); ApiRefusal
    400 ``invalid_<name>`` otherwise."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 7 or not 1 <= int(raw) <= most:
        raise ApiRefusal(400, f"invalid_{name}", f"{name} must be a whole number from 1 to {most}, got {raw!r}")
    return int(raw)


@bp.errorhandler(ApiRefusal)
def _refused(exc: ApiRefusal) -> tuple[Response, int]:
    response, status = json_error(exc.status, exc.code, exc.message)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="crm-qb"'
    return response, status


def authorized(connection_id: int, what: str = "connection", name: str | None = None) -> Connection:
    """The connection whose API key the request carries, if it is ``connection_id``; ApiRefusal 401/404 if not.

    For another connection's id the 404 names ``what`` was asked for (``name``), as for a thing that does not
    exist, so a key never learns what exists elsewhere.
    """
    connection = _authenticated_connection()
    if connection is None:
        raise ApiRefusal(401, "unauthorized", "send Authorization: Bearer <the connection's API key>")
    if connection.id != connection_id:
        shown = f" {name!r}" if name is not None else ""
        raise ApiRefusal(404, f"{what}_not_found", f"no {what}{shown} in connection {connection_id}")
    return connection


@bp.get("/connections/<int:connection_id>/contacts/<path:crm_contact_id>/quickbooks")
def contact_quickbooks(connection_id: int, crm_contact_id: str) -> Response | tuple[Response, int]:
    """The contact's link state, customer deep link, billing summary and one page of its folder."""
    connection = authorized(connection_id, "contact", crm_contact_id)
    link = find_link(connection.id, crm_contact_id) if is_contact_id(crm_contact_id) else None
    if link is None:
        return json_error(404, "contact_not_found",
                          f"no contact {crm_contact_id!r} in connection {connection_id}")
    try:
        query = _query()
    except InvalidFolderQuery as exc:
        return json_error(400, f"invalid_{exc.field}", str(exc))
    return jsonify(_body(connection, crm_contact_id, link, query))


@bp.post("/connections/<int:connection_id>/contacts/<path:crm_contact_id>/panel-url")
def contact_panel_url(connection_id: int, crm_contact_id: str) -> Response | tuple[Response, int]:
    """A panel URL for this one contact, valid for ``ttl_seconds`` (default 900, at most 3600)."""
    connection = authorized(connection_id, "contact", crm_contact_id)
    if not is_contact_id(crm_contact_id):
        return json_error(404, "contact_not_found", f"{crm_contact_id[:40]!r}… cannot be a contact id")
    ttl = _ttl(request.get_json(silent=True) if request.content_length else None)
    now = time.time()
    settings = runtime().settings
    token = make_panel_token(settings.secret_key, connection, crm_contact_id, ttl, now)
    expires = datetime.fromtimestamp(int(now + ttl), UTC)
    return jsonify({"url": panel_url(settings.public_url, connection.id, crm_contact_id, token),
                    "expires_at": expires.isoformat().replace("+00:00", "Z")})


@bp.get("/connections/<int:connection_id>/health")
def connection_health(connection_id: int) -> Response:
    """The connection's own health: its QuickBooks status and reason, and its pending and failed events."""
    connection = authorized(connection_id)
    details = health_details(connection, waited_seconds(runtime(), connection))
    return jsonify({**connection_report(connection), **details.as_json()})


def _ttl(body: Any) -> int:
    raw = body.get("ttl_seconds", PANEL_URL_TTL_SECONDS) if isinstance(body, dict) else PANEL_URL_TTL_SECONDS
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_PANEL_URL_TTL_SECONDS:
        raise ApiRefusal(400, "invalid_ttl_seconds",
                         f"ttl_seconds must be a whole number from 1 to {MAX_PANEL_URL_TTL_SECONDS}, got {raw!r}")
    return raw


def _authenticated_connection() -> Connection | None:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key:
        return None
    found = db.session.scalar(select(Connection).where(Connection.api_key_hash == hash_api_key(key)))
    return found if found is not None and api_key_matches(key, found.api_key_hash) else None


def _query() -> FolderQuery:
    args = request.args
    return parse_folder_query(args.getlist("type"), args.getlist("status"), args.get("page"), args.get("per_page"))


def _body(connection: Connection, crm_contact_id: str, link: Any, query: FolderQuery) -> dict[str, Any]:
    state = link_status(link)
    base = app_base(runtime(), connection)
    home = connection.home_currency or ""
    linked = state.state == "linked" and state.qbo_customer_id
    page = folder_page(connection.id, str(state.qbo_customer_id), query) if linked else FolderPage([], 0, query)
    return {
        "connection_id": connection.id,
        "crm_contact_id": crm_contact_id,
        "link": {"state": state.state, "reason": state.reason, "qbo_customer_id": state.qbo_customer_id,
                 "customer_url": customer_url(base, state.qbo_customer_id) if linked else None},
        "summary": summary_json(connection, link, base) if linked else None,
        "time": time_json(connection, crm_contact_id, base),
        "folder": {
            "items": [item_json(item, base, home) for item in page.items],
            "page": query.page, "per_page": query.per_page, "total": page.total, "pages": page.pages,
            "filters": {"type": list(query.types), "status": list(query.statuses)},
        },
    }
