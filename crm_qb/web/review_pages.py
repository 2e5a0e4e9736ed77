"""Admin review pages of a connection: conflicts (confirm or flip) and the audit log (records waiting for review
have their own page, ``admin_pages.review``).

Same access rule as the connection page: the signed admin session of that connection; actions are POST forms
with its CSRF token. Flipping a conflict writes to QBO and the CRM, so it is handed to a worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from sqlalchemy import func, select
from werkzeug.wrappers import Response as BaseResponse

from crm_qb.db import db
from crm_qb.models import Conflict, ConflictStatus, Connection, ContactLink, LinkState
from crm_qb.runtime import runtime
from crm_qb.sync.customers.conflict_review import ConflictReviewError, confirm, plan_flip
from crm_qb.sync.settings import sync_settings_of
from crm_qb.web.connection_page import PageError, connection_or_404, register_page_errors, require_admin, secured
from crm_qb.web.readmodels.audit import (
    DIRECTIONS,
    FIELD_LABELS,
    InvalidAuditQuery,
    audit_page,
    parse_audit_query,
    rule_words,
)
from crm_qb.web.readmodels.audit import PER_PAGE as AUDIT_PER_PAGE

bp = Blueprint("review_pages", __name__)

PER_PAGE = 50
MAX_PAGE = 1_000_000  # beyond any log; keeps the OFFSET a 64-bit number
NOTICES = {
    "confirmed": "The automatic decision is kept.",
    "flipping": "The other value is being written to QuickBooks and the CRM; reload in a few seconds.",
}


@bp.get("/admin/connections/<int:connection_id>/conflicts")
def conflicts(connection_id: int) -> BaseResponse:
    """Conflicts newest first, each with its contact's name and its rule in plain words."""
    session = require_admin(connection_id)
    connection = connection_or_404(connection_id)
    page = _page(connection_id)
    rows = db.session.scalars(select(Conflict).where(Conflict.connection_id == connection_id)
                              .order_by(Conflict.id.desc()).offset((page - 1) * PER_PAGE).limit(PER_PAGE)).all()
    total = db.session.scalar(select(func.count()).select_from(Conflict).where(Conflict.connection_id == connection_id))
    waiting = db.session.scalar(select(func.count()).select_from(ContactLink).where(
        ContactLink.connection_id == connection_id, ContactLink.state == LinkState.REVIEW))
    window = sync_settings_of(connection.settings).conflict_window_seconds
    html = render_template("review.html", connection=connection, conflicts=rows, names=_link_names(rows),
                           rules={c.id: rule_words(c.rule, window) for c in rows}, waiting=int(waiting or 0),
                           page=page, pages=max(1, -(-int(total or 0) // PER_PAGE)), total=int(total or 0),
                           csrf_token=session.csrf_token, DECIDED=ConflictStatus.DECIDED, FIELD_LABELS=FIELD_LABELS,
                           notice=NOTICES.get(request.args.get("done", "")))
    return secured(make_response(html, 200))


def conflict_rows(connection: Connection, limit: int = 200) -> list[dict[str, Any]]:
    """The newest conflicts as JSON (``GET /api/v1/connections/<id>/conflicts``, ``crm-qb conflicts list``)."""
    rows = db.session.scalars(select(Conflict).where(Conflict.connection_id == connection.id)
                              .order_by(Conflict.id.desc()).limit(limit)).all()
    names = _link_names(rows)
    window = sync_settings_of(connection.settings).conflict_window_seconds
    found = [{"id": c.id, "contact": names.get(c.contact_link_id or 0), "field": c.field,
              "qbo_value": c.qbo_value, "crm_value": c.crm_value, "winner": c.winner, "rule": c.rule,
              "rule_words": rule_words(c.rule, window), "status": c.status.value,
              "qbo_changed_at": c.qbo_changed_at.isoformat() if c.qbo_changed_at else None,
              "crm_changed_at": c.crm_changed_at.isoformat() if c.crm_changed_at else None} for c in rows]
    db.session.rollback()
    return found


def _link_names(rows: Sequence[Conflict]) -> dict[int, str]:
    """The contact's name for each conflict's link (its agreed display name, else its names, else its ids)."""
    ids = {c.contact_link_id for c in rows if c.contact_link_id}
    names: dict[int, str] = {}
    for link in db.session.scalars(select(ContactLink).where(ContactLink.id.in_(list(ids)))):
        base = link.base or {}
        person = " ".join(str(base[k]) for k in ("given_name", "family_name") if base.get(k))
        names[link.id] = str(base.get("display_name") or person or
                             f"CRM contact {link.crm_contact_id} / QuickBooks customer {link.qbo_customer_id}")
    return names


@bp.post("/admin/connections/<int:connection_id>/conflicts/<int:conflict_id>/confirm")
def confirm_conflict(connection_id: int, conflict_id: int) -> BaseResponse:
    """Keep the automatic decision of a conflict."""
    _check_csrf(connection_id)
    _reviewing(lambda: confirm(connection_id, conflict_id), connection_id)
    return secured(redirect(url_for(".conflicts", connection_id=connection_id, done="confirmed"), 303))


@bp.post("/admin/connections/<int:connection_id>/conflicts/<int:conflict_id>/flip")
def flip_conflict_view(connection_id: int, conflict_id: int) -> BaseResponse:
    """Hand the flip of a conflict to a worker after checking it can be flipped."""
    _check_csrf(connection_id)
    _reviewing(lambda: plan_flip(connection_id, conflict_id), connection_id)
    runtime().jobs.flip_conflict(connection_id, conflict_id)
    return secured(redirect(url_for(".conflicts", connection_id=connection_id, done="flipping"), 303))


@bp.get("/admin/connections/<int:connection_id>/audit")
def audit(connection_id: int) -> BaseResponse:
    """The audit log, newest first, filtered by record, kind, outcome and date; "unchanged" hidden by default."""
    session = require_admin(connection_id)
    connection = connection_or_404(connection_id)
    try:
        query = parse_audit_query(request.args)
    except InvalidAuditQuery as exc:
        raise PageError(400, "Bad filter", str(exc), connection_id) from None
    rows, total = audit_page(connection_id, query)
    html = render_template("audit.html", connection=connection, entries=rows, query=query, page=query.page,
                           pages=max(1, -(-total // AUDIT_PER_PAGE)), total=total, DIRECTIONS=DIRECTIONS,
                           csrf_token=session.csrf_token)
    return secured(make_response(html, 200))


def _page(connection_id: int) -> int:
    raw = request.args.get("page", "1")
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 7 or not 1 <= int(raw) <= MAX_PAGE:
        raise PageError(400, "Bad page number", f"page must be a whole number from 1 to {MAX_PAGE}, got {raw[:40]!r}.",
                        connection_id)
    return int(raw)


def _check_csrf(connection_id: int) -> None:
    if not require_admin(connection_id).csrf_ok(request.form.get("csrf_token")):
        raise PageError(403, "Form expired", "This form is no longer valid. Reload the page and try again.",
                        connection_id)


def _reviewing(action: object, connection_id: int) -> None:
    try:
        action()  # type: ignore[operator]
    except ConflictReviewError as exc:
        db.session.rollback()
        raise PageError(409, "Cannot do that", str(exc), connection_id) from None


register_page_errors(bp)
