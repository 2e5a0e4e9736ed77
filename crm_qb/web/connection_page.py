"""The admin page of one connection: ``GET /admin/connections/<id>``.

Reached only with a signed link from ``crm-qb admin-url`` (which starts the admin session, see ``signing.py``)
or with that session. Shows where the connection stands with QuickBooks and offers Connect/Reconnect and
Disconnect. Expected failures of admin pages and the OAuth views render one error page with a status code,
never a stack trace.
"""

from __future__ import annotations

import logging
from typing import TypeVar

from flask import Blueprint, Response, make_response, redirect, render_template, request, url_for
from sqlalchemy import func, select
from werkzeug.wrappers import Response as BaseResponse

from crm_qb.connections import revoke_admin_sessions
from crm_qb.db import db
from crm_qb.models import Connection, ContactLink, LinkState, QboReference, QboStatus
from crm_qb.qbo.company import PAYMENT_METHOD, TERM
from crm_qb.runtime import runtime
from crm_qb.sync.failures import count_failures
from crm_qb.web import signing

log = logging.getLogger(__name__)

bp = Blueprint("connection_page", __name__)
R = TypeVar("R", bound=BaseResponse)

NOTICES = {
    "connected": "QuickBooks is connected.",
    "pending": "QuickBooks is connected; the company details could not be read yet and will be read shortly.",
    "disconnected": "QuickBooks is disconnected. Mirrored data is kept; reconnect the same company to resume.",
    "hubspot_connected": "HubSpot is connected.",
}
STATUS_LABELS = {
    QboStatus.NOT_CONNECTED: "Not connected",
    QboStatus.CONNECTED: "Connected",
    QboStatus.NEEDS_RECONNECT: "Needs reconnect",
    QboStatus.DISCONNECTED: "Disconnected",
}
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
}


class PageError(Exception):
    """An expected failure shown to the user as an HTML page with ``status``, a title and a message."""

    def __init__(self, status: int, title: str, message: str, connection_id: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.connection_id = connection_id


def register_page_errors(blueprint: Blueprint) -> None:
    """Render PageError and AdminAuthError raised in ``blueprint``'s views as error pages."""
    blueprint.register_error_handler(PageError, error_page)
    blueprint.register_error_handler(signing.AdminAuthError, _auth_error_page)


def error_page(error: PageError) -> Response:
    """The HTML page for ``error`` with its status code."""
    response = make_response(render_template("oauth_error.html", error=error), error.status)
    return secured(response)


def secured(response: R) -> R:
    """``response`` with the headers every admin page carries (no caching, no framing, no referrer)."""
    response.headers.update(SECURITY_HEADERS)
    return response


def require_admin(connection_id: int) -> signing.AdminSession:
    """The request's admin session for ``connection_id``; AdminAuthError (a 403 page) when there is none."""
    return signing.read_session(runtime().settings.secret_key, request.cookies.get(signing.SESSION_COOKIE),
                                connection_id, epoch=admin_epoch(connection_id))


def admin_epoch(connection_id: int) -> int:
    """The connection's current admin epoch (0 for a connection that does not exist: its page is a 404 anyway)."""
    return int(db.session.scalar(select(Connection.admin_epoch).where(Connection.id == connection_id)) or 0)


def connection_or_404(connection_id: int) -> Connection:
    """The connection, or a 404 page."""
    connection = db.session.get(Connection, connection_id)
    if connection is None:
        raise PageError(404, "No such connection", f"There is no connection {connection_id}.")
    return connection


def page_url(connection_id: int, notice: str | None = None) -> str:
    """Where the connection's admin page lives (with an optional notice to show)."""
    return url_for("connection_page.show", connection_id=connection_id, done=notice)


@bp.get("/admin/connections/<int:connection_id>")
def show(connection_id: int) -> BaseResponse:
    """The connection's page; a valid ``token`` starts the admin session and redirects to the clean URL."""
    token = request.args.get("token")
    if token is not None:
        return _start_session(connection_id, token)
    session = require_admin(connection_id)
    connection = connection_or_404(connection_id)
    html = render_template("connection.html", connection=connection, csrf_token=session.csrf_token,
                           notice=NOTICES.get(request.args.get("done", "")), QboStatus=QboStatus,
                           status_label=STATUS_LABELS[connection.qbo_status],
                           references=_references(connection_id), attention=_attention(connection))
    return secured(make_response(html, 200))


def _start_session(connection_id: int, token: str) -> BaseResponse:
    secret = runtime().settings.secret_key
    epoch = admin_epoch(connection_id)
    signing.read_link(secret, token, connection_id, epoch=epoch)
    connection_or_404(connection_id)
    session = signing.new_session(connection_id, epoch=epoch)
    response = redirect(page_url(connection_id), 303)
    response.set_cookie(signing.SESSION_COOKIE, signing.dump_session(secret, session),
                        max_age=signing.SESSION_SECONDS, httponly=True, samesite="Lax", path="/",
                        secure=runtime().settings.public_url.startswith("https://"))
    log.info("admin session started connection=%s", connection_id)
    return secured(response)


@bp.post("/admin/connections/<int:connection_id>/sessions/revoke")
def sign_out_everywhere(connection_id: int) -> BaseResponse:
    """End every admin session and void every admin link of the connection (this browser's included)."""
    session = require_admin(connection_id)
    if not session.csrf_ok(request.form.get("csrf_token")):
        raise PageError(403, "Form expired", "This form is no longer valid. Reload the page and try again.",
                        connection_id)
    revoke_admin_sessions(connection_id)
    log.info("admin sessions revoked connection=%s", connection_id)
    response = make_response(render_template("signed_out.html", connection_id=connection_id), 200)
    response.delete_cookie(signing.SESSION_COOKIE, path="/")
    return secured(response)


def _attention(connection: Connection) -> dict[str, int]:
    """What waits for a person on this connection: records in review and failures (links on the overview)."""
    waiting = db.session.scalar(select(func.count()).select_from(ContactLink).where(
        ContactLink.connection_id == connection.id, ContactLink.state == LinkState.REVIEW))
    return {"waiting": int(waiting or 0), "failures": count_failures(connection)}


def _references(connection_id: int) -> dict[str, list[QboReference]]:
    rows = db.session.scalars(select(QboReference).where(QboReference.connection_id == connection_id)
                              .order_by(QboReference.kind, QboReference.name))
    grouped: dict[str, list[QboReference]] = {TERM: [], PAYMENT_METHOD: []}
    for row in rows:
        grouped.setdefault(row.kind, []).append(row)
    return grouped


def _auth_error_page(error: signing.AdminAuthError) -> Response:
    return error_page(PageError(403, "Access denied", str(error)))


register_page_errors(bp)
