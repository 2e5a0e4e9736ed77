"""The JSON API: ``GET /api/v1/connections/<id>/contacts/<crm_contact_id>/quickbooks`` (docs/architecture.md §6).

``Authorization: Bearer <connection API key>``. A missing or unknown key is 401; a key of another connection,
or a contact this connection has never linked, is 404 (never 403: nobody learns what exists elsewhere). Money
is exact decimal strings; the folder is paged (``page``, ``per_page`` ≤ 200) and filtered by ``type`` and
``status`` (comma-separated or repeated), newest first.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import select

from crm_qb.crypto import api_key_matches, hash_api_key
from crm_qb.db import db
from crm_qb.models import Connection
from crm_qb.runtime import runtime
from crm_qb.web.errors import json_error
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
from crm_qb.web.readmodels.summary import summary_json
from crm_qb.web.routing import is_contact_id

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.get("/connections/<int:connection_id>/contacts/<path:crm_contact_id>/quickbooks")
def contact_quickbooks(connection_id: int, crm_contact_id: str) -> Response | tuple[Response, int]:
    """The contact's link state, customer deep link, billing summary and one page of its folder."""
    connection = _authenticated_connection()
    if connection is None:
        response, status = json_error(401, "unauthorized", "send Authorization: Bearer <the connection's API key>")
        response.headers["WWW-Authenticate"] = 'Bearer realm="crm-qb"'
        return response, status
    mine = connection.id == connection_id and is_contact_id(crm_contact_id)
    link = find_link(connection.id, crm_contact_id) if mine else None
    if link is None:
        return json_error(404, "contact_not_found",
                          f"no contact {crm_contact_id!r} in connection {connection_id}")
    try:
        query = _query()
    except InvalidFolderQuery as exc:
        return json_error(400, f"invalid_{exc.field}", str(exc))
    return jsonify(_body(connection, crm_contact_id, link, query))


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
        "folder": {
            "items": [item_json(item, base, home) for item in page.items],
            "page": query.page, "per_page": query.per_page, "total": page.total, "pages": page.pages,
            "filters": {"type": list(query.types), "status": list(query.statuses)},
        },
    }
