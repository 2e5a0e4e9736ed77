"""The operator's pages of a connection (DESIGN §11): health, records waiting for review, failures, settings
(billable time included).

Same access rule as the connection page: the signed admin session of that connection (``signing.py``); every
action is a POST form with the session's CSRF token, answered with a redirect back to its page and a notice
(post/redirect/get, so a reload never repeats it). What writes to QBO or the CRM (resolving a review, "Sync
now") is handed to a worker through the queue port; the page says so. The same operations are served as JSON
by ``admin_api.py`` and run by the CLI, from the same domain functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from crm_qb.crm.errors import CrmError
from crm_qb.errors import TransientError
from crm_qb.models import Connection
from crm_qb.qbo.faults import QboFault
from crm_qb.qbo.tokens import NotConnectedError
from crm_qb.runtime import runtime
from crm_qb.sync import failures as failure_store
from crm_qb.sync.context import build_context
from crm_qb.sync.customers.review import (
    LABELS,
    ReviewError,
    Waiting,
    check_action,
    count_waiting,
    describe,
    waiting_rows,
)
from crm_qb.sync.followups.settings import parse_settings
from crm_qb.sync.rules.canonical import FIELDS
from crm_qb.sync.rules.mapping import DIRECTIONS
from crm_qb.sync.rules.merge import POLICIES
from crm_qb.sync.settings import CONNECTION_DIRECTIONS, MODES, ON_CRM_DELETE, sync_settings_of
from crm_qb.sync.settings_changes import InvalidSetting, store_settings, turned_on, validated
from crm_qb.sync.time.admin import TimeConfigError, configure
from crm_qb.web import signing
from crm_qb.web.admin_nav import install_nav
from crm_qb.web.connection_page import PageError, connection_or_404, register_page_errors, require_admin, secured
from crm_qb.web.health import connection_report
from crm_qb.web.readmodels.audit import FIELD_LABELS
from crm_qb.web.readmodels.health import chart_bars, health_details, waited_seconds
from crm_qb.web.readmodels.time_settings import time_changes, time_form
from crm_qb.web.routing import MAX_ROW_ID, is_contact_id

bp = Blueprint("admin_pages", __name__)
install_nav(bp)

NOTICES = {
    "resolving": "Your choice is being applied to QuickBooks and the CRM; reload in a few seconds.",
    "retried": "The failures were put back to work; reload in a few seconds to see the result.",
    "dismissed": "The failures were dismissed.",
    "saved": "Settings saved.",
    "unchanged": "Nothing changed.",
    "syncing": "A sync of this connection was started; reload in a few seconds.",
    "syncing-contact": "That contact and its QuickBooks customer are being synced; see the audit log in a few seconds.",
    "no-contact": "Enter a CRM contact id to sync.",
    "time-saved": "Billable time saved; time it held for these settings is being sent to QuickBooks.",
}
MODE_LABELS = {"realtime": "Real-time", "scheduled": "Scheduled (every N minutes)", "manual": "Manual (Sync now)"}
DIRECTION_LABELS = {"both": "Both ways", "qbo_to_crm": "QuickBooks → CRM", "crm_to_qbo": "CRM → QuickBooks",
                    "off": "Off"}
POLICY_LABELS = {"recent_wins": "The most recent change wins (QuickBooks within the window)",
                 "qbo_wins": "QuickBooks always wins", "crm_wins": "The CRM always wins"}
DELETE_LABELS = {"unlink": "Unlink only", "unlink_and_deactivate": "Unlink and make the customer inactive"}


def who(session: signing.AdminSession) -> str:
    """How an admin session is named in the audit log (sessions are not personal: the link's holder)."""
    return f"admin session {session.nonce[:8]}"


def _form_session(connection_id: int) -> signing.AdminSession:
    session = require_admin(connection_id)
    if not session.csrf_ok(request.form.get("csrf_token")):
        raise PageError(403, "Form expired", "This form is no longer valid. Reload the page and try again.",
                        connection_id)
    return session


def _page(template: str, connection: Connection, session: signing.AdminSession, **values: Any) -> BaseResponse:
    html = render_template(template, connection=connection, csrf_token=session.csrf_token,
                           notice=NOTICES.get(request.args.get("done", "")), **values)
    return secured(make_response(html, 200))


def _back(endpoint: str, connection_id: int, done: str) -> BaseResponse:
    return secured(redirect(url_for(endpoint, connection_id=connection_id, done=done), 303))


# -- health -------------------------------------------------------------------------------------------------

@bp.get("/admin/connections/<int:connection_id>/health")
def health(connection_id: int) -> BaseResponse:
    """Status, last webhook and poll per side, the oldest pending event, 48 hours of events and failures."""
    session = require_admin(connection_id)
    connection = connection_or_404(connection_id)
    details = health_details(connection, waited_seconds(runtime(), connection))
    return _page("admin_health.html", connection, session, report=connection_report(connection),
                 details=details, chart=chart_bars(details.hours), MODE_LABELS=MODE_LABELS)


# -- review -------------------------------------------------------------------------------------------------

REVIEW_PER_PAGE = 50  # waiting records a Review page (or an API or CLI page) reads from both sides
MAX_REVIEW_PER_PAGE = 200


@dataclass(frozen=True)
class WaitingPage:
    """One page of the records waiting for review, with both sides read, and where it is among all of them."""

    waiting: list[Waiting]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    def as_json(self) -> dict[str, Any]:
        """The API's and the CLI's object: the records and the paging."""
        return {"waiting": [w.as_json() for w in self.waiting], "page": self.page, "per_page": self.per_page,
                "total": self.total, "pages": self.pages}


@bp.get("/admin/connections/<int:connection_id>/review")
def review(connection_id: int) -> BaseResponse:
    """Every record waiting for a person, with why it waits and its candidates side by side."""
    session = require_admin(connection_id)
    connection = connection_or_404(connection_id)
    page = max(1, request.args.get("page", 1, type=int) or 1)
    found = waiting_records(connection, page, REVIEW_PER_PAGE)
    return _page("admin_review.html", connection, session, waiting=found.waiting, LABELS=LABELS, page=page,
                 pages=found.pages, total=found.total)


def waiting_records(connection: Connection, page: int = 1, per_page: int = REVIEW_PER_PAGE) -> WaitingPage:
    """One page of the waiting records, oldest first, with both sides read now, and how many wait in all.

    Paged because each record's sides are read from QuickBooks and the CRM: a first sync of 100,000 customers can
    leave 24,000 waiting, which no page (or rate limit) could read at once.
    """
    total = count_waiting(connection.id)
    rows = waiting_rows(connection.id, offset=(page - 1) * per_page, limit=per_page) if total else []
    if not rows:
        return WaitingPage([], page, per_page, total)
    try:
        ctx = build_context(runtime().sync_services(), connection.id)
    except NotConnectedError:
        raise PageError(409, "QuickBooks is not connected", "Connect QuickBooks to review these records.",
                        connection.id) from None
    try:
        return WaitingPage([describe(ctx, row) for row in rows], page, per_page, total)
    except (QboFault, CrmError, TransientError) as exc:
        raise PageError(502, "Could not read the records", f"QuickBooks or the CRM did not answer: {exc}",
                        connection.id) from None
    finally:
        ctx.close()


@bp.post("/admin/connections/<int:connection_id>/review/<int:link_id>")
def review_action(connection_id: int, link_id: int) -> BaseResponse:
    """Take the chosen action on one waiting record (checked now, applied by a worker)."""
    session = _form_session(connection_id)
    action, candidate = request.form.get("action", ""), request.form.get("candidate") or None
    try:
        check_action(connection_id, link_id, action, candidate)
    except ReviewError as exc:
        raise PageError(409, "Cannot do that", str(exc), connection_id) from None
    runtime().jobs.resolve_review(connection_id, link_id, action, candidate, who(session))
    return _back(".review", connection_id, "resolving")


# -- failures -----------------------------------------------------------------------------------------------

@bp.get("/admin/connections/<int:connection_id>/failures")
def failures(connection_id: int) -> BaseResponse:
    """Failed events and records with the reason in words, the raw error, attempts; retry or dismiss."""
    session = require_admin(connection_id)
    connection = connection_or_404(connection_id)
    return _page("admin_failures.html", connection, session, failures=failure_store.list_failures(connection))


@bp.post("/admin/connections/<int:connection_id>/failures/<any(retry, dismiss):verb>")
def failure_action(connection_id: int, verb: str) -> BaseResponse:
    """Retry or dismiss one failure (``kind`` and ``id``) or all of them (``kind=all``)."""
    session = _form_session(connection_id)
    connection = connection_or_404(connection_id)
    kind, raw_id = request.form.get("kind", "all"), request.form.get("id")
    if kind not in (*failure_store.KINDS, "all"):
        raise PageError(400, "Bad request", f"kind must be event, record, sync_record or all, got {kind!r}",
                        connection_id)
    failure_id = _failure_id(raw_id, connection_id)
    try:
        if verb == "retry":
            failure_store.retry(connection, kind, failure_id, runtime().jobs, who(session))
        else:
            failure_store.dismiss(connection, kind, failure_id, who(session))
    except failure_store.FailureNotFound as exc:
        raise PageError(404, "No such failure", str(exc), connection_id) from None
    return _back(".failures", connection_id, "retried" if verb == "retry" else "dismissed")


def _failure_id(raw: str | None, connection_id: int) -> int | None:
    """The form's failure id (None: all of the kind); a bad one is a 400, never read as "all"."""
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) < 11 and 1 <= int(raw) <= MAX_ROW_ID):
        raise PageError(400, "Bad request", f"id must be a failure's number, got {raw[:40]!r}", connection_id)
    return int(raw)


# -- settings -----------------------------------------------------------------------------------------------

@bp.get("/admin/connections/<int:connection_id>/settings")
def settings(connection_id: int) -> BaseResponse:
    """The connection's sync and follow-up settings as a form."""
    session = require_admin(connection_id)
    connection = connection_or_404(connection_id)
    return _settings_page(connection, session, form_values(connection.settings or {}), {})


@bp.post("/admin/connections/<int:connection_id>/settings")
def save_settings(connection_id: int) -> BaseResponse:
    """Validate and store the settings form; a bad value is shown beside its field and nothing is stored."""
    session = _form_session(connection_id)
    connection = connection_or_404(connection_id)
    values = {key: request.form.get(key, "") for key in request.form}
    try:
        sync, followups = changes_from_form(request.form)
        new = validated(connection.settings or {}, sync, followups)
    except InvalidSetting as exc:
        return _settings_page(connection, session, values, dict([_beside_field(exc)]), status=400)
    changed = store_settings(connection, new, who(session))
    if turned_on(changed):
        runtime().jobs.catch_up(connection_id)  # both sides, from where their polls stopped
    return _back(".settings", connection_id, "saved" if changed else "unchanged")


@bp.post("/admin/connections/<int:connection_id>/settings/time")
def save_time(connection_id: int) -> BaseResponse:
    """Check the billable-time form in QuickBooks and store it (audited); a bad value is shown beside its field
    and nothing is stored."""
    session = _form_session(connection_id)
    connection = connection_or_404(connection_id)
    stored, _ = time_form(connection_id)
    try:
        configure(runtime().sync_services(), connection_id, **time_changes(request.form, stored), who=who(session))
    except TimeConfigError as exc:
        values = {**form_values(connection.settings or {}), **{key: request.form.get(key, "") for key in request.form}}
        return _settings_page(connection, session, values, {exc.field or "time": exc.reason}, status=400)
    except NotConnectedError:
        raise PageError(409, "QuickBooks is not connected", "Connect QuickBooks to check and store time settings.",
                        connection_id) from None
    return _back(".settings", connection_id, "time-saved")


@bp.post("/admin/connections/<int:connection_id>/sync-now")
def sync_now(connection_id: int) -> BaseResponse:
    """Ask a worker to sync the connection now (a CDC poll and every change waiting)."""
    _form_session(connection_id)
    connection_or_404(connection_id)
    runtime().jobs.sync_now(connection_id)
    return _back(".settings", connection_id, "syncing")


@bp.post("/admin/connections/<int:connection_id>/contacts/sync-now")
def sync_contact_now(connection_id: int) -> BaseResponse:
    """Ask a worker to sync one CRM contact (the form's ``crm_contact_id``) with its QBO customer now."""
    session = _form_session(connection_id)
    connection_or_404(connection_id)
    contact_id = request.form.get("crm_contact_id", "").strip()
    if not contact_id:
        return _back(".settings", connection_id, "no-contact")
    if not is_contact_id(contact_id):
        raise PageError(400, "No such contact", f"{contact_id[:40]!r} cannot be a CRM contact id (too long, or "
                        "with a NUL character).", connection_id)
    runtime().jobs.sync_contact_now(connection_id, contact_id, who(session))
    if request.form.get("back") == "audit":  # the button beside a contact's audit entry: back to its entries
        return secured(redirect(url_for("review_pages.audit", connection_id=connection_id, record=contact_id), 303))
    return _back(".settings", connection_id, "syncing-contact")


def _settings_page(connection: Connection, session: signing.AdminSession, values: dict[str, Any],
                   errors: dict[str, str], status: int = 200) -> BaseResponse:
    time_values, time_users = time_form(connection.id)
    html = render_template("admin_settings.html", connection=connection, csrf_token=session.csrf_token,
                           notice=NOTICES.get(request.args.get("done", "")) if not errors else None,
                           values={**time_values, **values}, errors=errors, time_users=time_users,
                           FIELDS=FIELDS, FIELD_LABELS=FIELD_LABELS,
                           MODES=MODES, MODE_LABELS=MODE_LABELS, CONNECTION_DIRECTIONS=CONNECTION_DIRECTIONS,
                           DIRECTIONS=DIRECTIONS, DIRECTION_LABELS=DIRECTION_LABELS, POLICIES=POLICIES,
                           POLICY_LABELS=POLICY_LABELS, ON_CRM_DELETE=ON_CRM_DELETE, DELETE_LABELS=DELETE_LABELS)
    return secured(make_response(html, status))


def form_values(stored: dict[str, Any]) -> dict[str, Any]:
    """The form's field values for stored settings (names as the form posts them)."""
    sync = sync_settings_of(stored)
    follow = parse_settings(stored)
    values: dict[str, Any] = {
        "sync.enabled": "on" if sync.enabled else "", "sync.mode": sync.mode,
        "sync.poll_minutes": str(sync.cdc_poll_seconds // 60), "sync.direction": sync.direction,
        "sync.conflict_policy": sync.conflict_policy,
        "sync.conflict_window_seconds": str(sync.conflict_window_seconds), "sync.on_crm_delete": sync.on_crm_delete,
        "followups.enabled": "on" if follow.enabled else "",
        "followups.rule_days": ", ".join(str(d) for d in follow.rule_days),
        "followups.title_template": follow.title_template,
    }
    values.update({f"sync.fields.{name}": own for name, own in sync.field_directions_own().items()})
    return values


def changes_from_form(form: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The sync and follow-up changes a settings form posts (checkboxes absent mean off)."""
    sync: dict[str, Any] = {"enabled": form.get("sync.enabled") == "on"}
    for key in ("mode", "direction", "conflict_policy", "on_crm_delete"):
        if form.get(f"sync.{key}") is not None:
            sync[key] = form.get(f"sync.{key}")
    sync["conflict_window_seconds"] = _whole(form, "sync.conflict_window_seconds")
    minutes = _whole(form, "sync.poll_minutes")
    sync["cdc_poll_seconds"] = minutes * 60 if isinstance(minutes, int) else minutes
    sync["fields"] = {name: form.get(f"sync.fields.{name}") for name in FIELDS
                      if form.get(f"sync.fields.{name}") is not None}
    days = [part.strip() for part in str(form.get("followups.rule_days", "")).split(",") if part.strip()]
    if not all(part.isascii() and part.isdigit() and len(part) < 6 for part in days):
        raise InvalidSetting("followups.rule_days", "followups.rule_days: write whole numbers of days, e.g. 1, 14, 30")
    followups = {"enabled": form.get("followups.enabled") == "on", "rule_days": [int(d) for d in days],
                 "title_template": form.get("followups.title_template", "")}
    return sync, followups


def _beside_field(exc: InvalidSetting) -> tuple[str, str]:
    """The form field an error belongs to, and its message (the poll interval is entered in minutes)."""
    if exc.field == "sync.cdc_poll_seconds":
        return "sync.poll_minutes", "sync.poll_minutes: poll every 1 to 1440 minutes"
    return exc.field, str(exc)


def _whole(form: Any, key: str) -> Any:
    raw = str(form.get(key, "")).strip()
    if not (raw.isascii() and raw.isdigit() and len(raw) < 10):
        raise InvalidSetting(key, f"{key}: enter a whole number, got {raw[:40]!r}")
    return int(raw)


register_page_errors(bp)
