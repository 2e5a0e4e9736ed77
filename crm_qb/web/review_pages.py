"""Admin review pages of a connection: conflicts (confirm or flip), records waiting for review, the audit log.

Same access rule as the connection page: the signed admin session of that connection; actions are POST forms
with its CSRF token. Flipping a conflict writes to QBO and the CRM, so it is handed to a worker.
"""

from __future__ import annotations

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from sqlalchemy import func, select
from werkzeug.wrappers import Response as BaseResponse

from crm_qb.db import db
from crm_qb.models import AuditEntry, Conflict, ConflictStatus, ContactLink, LinkState
from crm_qb.runtime import runtime
from crm_qb.sync.customers.conflict_review import ConflictReviewError, confirm, plan_flip
from crm_qb.web.connection_page import PageError, connection_or_404, register_page_errors, require_admin, secured

bp = Blueprint("review_pages", __name__)

PER_PAGE = 50
MAX_PAGE = 1_000_000  # beyond any log; keeps the OFFSET a 64-bit number
NOTICES = {
    "confirmed": "The automatic decision is kept.",
    "flipping": "The other value is being written to QuickBooks and the CRM; reload in a few seconds.",
}


@bp.get("/admin/connections/<int:connection_id>/conflicts")
def conflicts(connection_id: int) -> BaseResponse:
    """Conflicts newest first, and the records waiting for a person to choose."""
    session = require_admin(connection_id)
    connection = connection_or_404(connection_id)
    page = _page()
    rows = db.session.scalars(select(Conflict).where(Conflict.connection_id == connection_id)
                              .order_by(Conflict.id.desc()).offset((page - 1) * PER_PAGE).limit(PER_PAGE)).all()
    total = db.session.scalar(select(func.count()).select_from(Conflict).where(Conflict.connection_id == connection_id))
    reviews = db.session.scalars(select(ContactLink).where(ContactLink.connection_id == connection_id,
                                                           ContactLink.state == LinkState.REVIEW)
                                 .order_by(ContactLink.id)).all()
    html = render_template("review.html", connection=connection, conflicts=rows, reviews=reviews, page=page,
                           pages=max(1, -(-int(total or 0) // PER_PAGE)), total=int(total or 0),
                           csrf_token=session.csrf_token, DECIDED=ConflictStatus.DECIDED,
                           notice=NOTICES.get(request.args.get("done", "")))
    return secured(make_response(html, 200))


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
    """The audit log, newest first."""
    require_admin(connection_id)
    connection = connection_or_404(connection_id)
    page = _page()
    rows = db.session.scalars(select(AuditEntry).where(AuditEntry.connection_id == connection_id)
                              .order_by(AuditEntry.id.desc()).offset((page - 1) * PER_PAGE).limit(PER_PAGE)).all()
    total = db.session.scalar(select(func.count()).select_from(AuditEntry)
                              .where(AuditEntry.connection_id == connection_id))
    html = render_template("audit.html", connection=connection, entries=rows, page=page,
                           pages=max(1, -(-int(total or 0) // PER_PAGE)), total=int(total or 0))
    return secured(make_response(html, 200))


def _page() -> int:
    raw = request.args.get("page", "1")
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 7 or not 1 <= int(raw) <= MAX_PAGE:
        raise PageError(400, "Bad page number", f"page must be a whole number from 1 to {MAX_PAGE}, got {raw!r}.")
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
