"""The admin pages of the first sync and of history imports (DESIGN §11), server-rendered:

- ``/admin/connections/<id>/sync`` sends the browser to the page of the run's state: ``…/sync/preview`` (the
  counts and, paged, the records behind each: pairs to link, contacts and customers to create, records needing
  review with their candidates, transactions, follow-ups; "Start"), ``…/sync/progress`` (a bar per phase with
  counts and the time left) or ``…/sync/report`` (every record's outcome, failures with their reason and the
  QBO or CRM error, "Retry failed", the CSV download ``…/sync/report.csv``).
- ``/admin/connections/<id>/history`` takes a date range and leads through the same three pages under
  ``…/history/…``.
The progress and "being computed" pages update by polling ``…/status.json`` with a small script
(``static/sync_progress.js``); without JavaScript they refresh themselves every few seconds. Same access rule as
the connection page: the connection's admin session, every form with its CSRF token.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

from flask import (
    Blueprint,
    Response,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from werkzeug.wrappers import Response as BaseResponse

from crm_qb.db import db
from crm_qb.errors import PermanentError
from crm_qb.models import Connection, SyncRun
from crm_qb.runtime import runtime
from crm_qb.sync.firstsync import report, service, store
from crm_qb.sync.firstsync.outcomes import LABELS
from crm_qb.sync.firstsync.runner import FOLLOWUPS, READING
from crm_qb.sync.pipeline.backfill import CONTACTS, CUSTOMERS, TIME, TRANSACTIONS, check_backfillable
from crm_qb.web.connection_page import PageError, connection_or_404, register_page_errors, require_admin, secured

bp = Blueprint("sync_pages", __name__, url_prefix="/admin/connections/<int:connection_id>")

PER_PAGE = 50
REFRESH_SECONDS = 5
# The preview's lists, in the order the page shows them: (action, title).
LISTS = (("link", "Will link"), ("create_in_crm", "Create in the CRM"), ("create_in_qbo", "Create in QuickBooks"),
         ("review", "Needs review"), ("transaction", "Transactions to mirror"), ("followup", "Follow-ups"),
         ("time", "Billable time to send"))
COUNT_OF = {"link": "link", "create_in_crm": "create_in_crm", "create_in_qbo": "create_in_qbo", "review": "review",
            "transaction": "transactions", "followup": "followups", "time": "time"}
# The phases with a bar (reading the CRM's contacts into the match index is named in the status line only).
PHASES = {store.FIRST: (CUSTOMERS, TRANSACTIONS, CONTACTS, TIME, FOLLOWUPS),
          store.HISTORY: (TRANSACTIONS, FOLLOWUPS)}
PHASE_LABELS = {READING: "Reading CRM contacts", CUSTOMERS: "QuickBooks customers", TRANSACTIONS: "Transactions",
                CONTACTS: "CRM contacts", TIME: "Billable time", FOLLOWUPS: "Follow-up tasks"}
STATE_LABELS = {store.WAITING: "Waiting for its preview", store.PREVIEWING: "Computing the preview",
                store.PREVIEWED: "Preview ready", store.RUNNING: "Running", store.DONE: "Done",
                store.FAILED: "Stopped by an error"}
NOTICES = {"started": "The run has started.", "previewing": "The preview is being computed.",
           "retrying": "The failed records are being tried again; reload in a few seconds."}
SCRIPT_CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; connect-src 'self'; "
              "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")


F = TypeVar("F", bound=Callable[..., Any])


def _both(rule: str, **options: Any) -> Callable[[F], F]:
    """Route a view under ``/sync`` (the first sync) and ``/history`` (the latest history import)."""
    def register(view: F) -> F:
        bp.add_url_rule(f"/sync{rule}", view_func=view, defaults={"kind": store.FIRST}, **options)
        bp.add_url_rule(f"/history{rule}", endpoint=f"history_{view.__name__}", view_func=view,
                        defaults={"kind": store.HISTORY}, **options)
        return view
    return register


def _url(view: str, kind: str, connection_id: int, **args: Any) -> str:
    name = f".{view}" if kind == store.FIRST else f".history_{view}"
    return url_for(name, connection_id=connection_id, **args)


def _page(html: str, script: bool = False) -> Response:
    response = secured(make_response(html, 200))
    if script:
        response.headers["Content-Security-Policy"] = SCRIPT_CSP
    return response


def _render(template: str, connection: Connection, run: SyncRun | None, kind: str, **values: Any) -> str:
    views = {"preview": "preview", "progress": "progress", "report": "report_page", "status_json": "status_json",
             "start": "start", "retry": "retry", "report_csv": "report_csv"}
    urls = {name: _url(view, kind, connection.id) for name, view in views.items()}
    return render_template(template, connection=connection, run=run, kind=kind, urls=urls, labels=LABELS,
                           state_label=STATE_LABELS.get(run.state if run else store.WAITING),
                           notice=NOTICES.get(request.args.get("done", "")), refresh=REFRESH_SECONDS,
                           title="Import history" if kind == store.HISTORY else "First sync", **values)


def _run(connection_id: int, kind: str) -> SyncRun | None:
    return store.latest(connection_id, kind)


@_both("", methods=["GET"])
def overview(connection_id: int, kind: str) -> BaseResponse:
    """Send the browser to the page of the run's state (the history page when no import was opened)."""
    require_admin(connection_id)
    connection_or_404(connection_id)
    run = _run(connection_id, kind)
    if kind == store.HISTORY and run is None:
        return _history_form(connection_id)
    state = run.state if run is not None else store.WAITING
    target = "progress" if state == store.RUNNING else "report_page" if state in (store.DONE, store.FAILED) \
        else "preview"
    return secured(redirect(_url(target, kind, connection_id), 303))


@bp.get("/history/new")
def history_form(connection_id: int) -> BaseResponse:
    """The form that opens a history import."""
    require_admin(connection_id)
    return _history_form(connection_id)


def _history_form(connection_id: int, error: str | None = None, status: int = 200) -> Response:
    session = require_admin(connection_id)
    connection = connection_or_404(connection_id)
    html = _render("sync_history.html", connection, _run(connection_id, store.HISTORY), store.HISTORY,
                   csrf_token=session.csrf_token, error=error, values=request.form)
    response = _page(html)
    response.status_code = status
    return response


@bp.post("/history")
def open_history(connection_id: int) -> BaseResponse:
    """Open a history import of the form's date range and ask a worker for its preview."""
    _check_csrf(connection_id)
    try:
        start, end = date.fromisoformat(request.form.get("from", "")), date.fromisoformat(request.form.get("to", ""))
    except ValueError:
        return _history_form(connection_id, "Enter both dates as YYYY-MM-DD (for example 2024-01-31).", 400)
    try:
        check_backfillable(connection_id)
        run = service.open_history(connection_id, start, end)
    except PermanentError as exc:
        db.session.rollback()
        return _history_form(connection_id, str(exc), 409)
    service.request_preview(runtime().jobs, run.id)
    return secured(redirect(_url("preview", store.HISTORY, connection_id, done="previewing"), 303))


@_both("/preview", methods=["GET"])
def preview(connection_id: int, kind: str) -> Response:
    """The preview: counts, and one paged list behind them."""
    session = require_admin(connection_id)
    connection = connection_or_404(connection_id)
    run = _run(connection_id, kind)
    wanted = request.args.get("list", "link")
    if wanted not in COUNT_OF:
        raise PageError(400, "No such list", f"list must be one of {', '.join(COUNT_OF)}, got {wanted[:40]!r}.",
                        connection_id)
    page = _page_number(connection_id)
    rows, total = store.records(run.id, store.PREVIEW, (wanted,), page, PER_PAGE) if run else ([], 0)
    ready = run is not None and run.state not in (store.WAITING, store.PREVIEWING)
    html = _render("sync_preview.html", connection, run, kind, csrf_token=session.csrf_token, lists=LISTS,
                   count_of=COUNT_OF, wanted=wanted, rows=rows, total=total, page=page,
                   pages=max(1, -(-total // PER_PAGE)), ready=ready,
                   counts=service.preview_json(run) if run else None)
    return _page(html, script=run is not None and not ready)


@_both("/progress", methods=["GET"])
def progress(connection_id: int, kind: str) -> Response:
    """The run's progress by phase; updated by script, or by refreshing itself without one."""
    require_admin(connection_id)
    connection = connection_or_404(connection_id)
    run = _run(connection_id, kind)
    status = service.status_json(run) if run else None
    html = _render("sync_progress.html", connection, run, kind, status=status, phases=PHASES[kind],
                   phase_labels=PHASE_LABELS, live=run is not None and run.state == store.RUNNING)
    return _page(html, script=True)


@_both("/report", methods=["GET"])
def report_page(connection_id: int, kind: str) -> Response:
    """Every record's outcome, paged and filtered by outcome."""
    session = require_admin(connection_id)
    connection = connection_or_404(connection_id)
    run = _run(connection_id, kind)
    outcome = request.args.get("outcome", "")
    if outcome and outcome not in (*COUNT_OF, "failed", "unchanged", "update", "skip"):
        raise PageError(400, "No such outcome", f"outcome {outcome[:40]!r} is not one the report knows.",
                        connection_id)
    page = _page_number(connection_id)
    rows, total = store.records(run.id, store.RUN, (outcome,) if outcome else (), page, PER_PAGE) if run else ([], 0)
    html = _render("sync_report.html", connection, run, kind, csrf_token=session.csrf_token, rows=rows, total=total,
                   page=page, pages=max(1, -(-total // PER_PAGE)), outcome=outcome, lists=LISTS, count_of=COUNT_OF,
                   status=service.status_json(run) if run else None,
                   planned=service.preview_json(run) if run else None)
    return _page(html)


@_both("/report.csv", methods=["GET"])
def report_csv(connection_id: int, kind: str) -> Response:
    """The whole report as CSV."""
    require_admin(connection_id)
    run = _run(connection_id, kind)
    if run is None:
        raise PageError(404, "No report yet", "This run has not started, so it has no report.", connection_id)
    name = f"crm-qb-{kind}-sync-{connection_id}-run-{run.id}.csv"
    response = Response(stream_with_context(report.csv_lines(run.id)), mimetype="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})
    return secured(response)


@_both("/status.json", methods=["GET"])
def status_json(connection_id: int, kind: str) -> Response:
    """The run's status for the page's script (the admin session's view of the API's object)."""
    require_admin(connection_id)
    run = _run(connection_id, kind)
    if run is None:
        return jsonify({"state": store.WAITING, "phase": None, "done": 0, "total": 0, "failed": 0})
    return jsonify(service.status_json(run))


@_both("/preview", methods=["POST"])
def recompute(connection_id: int, kind: str) -> BaseResponse:
    """Ask a worker for the preview again (before the run starts)."""
    _check_csrf(connection_id)
    try:
        check_backfillable(connection_id)
    except PermanentError as exc:
        raise PageError(409, "Cannot preview now", str(exc), connection_id) from None
    run = service.open_first_sync(None, connection_id) if kind == store.FIRST else _run(connection_id, kind)
    if run is None or not service.request_preview(runtime().jobs, run.id):
        raise PageError(409, "Already started", "This run has started; its preview is the one it started from.",
                        connection_id)
    return secured(redirect(_url("preview", kind, connection_id, done="previewing"), 303))


@_both("/start", methods=["POST"])
def start(connection_id: int, kind: str) -> BaseResponse:
    """Start the run (a second click changes nothing)."""
    _check_csrf(connection_id)
    run = _run(connection_id, kind)
    if run is None or run.state in (store.WAITING, store.PREVIEWING):
        raise PageError(409, "No preview yet", "Wait for the preview, look at it, then start.", connection_id)
    service.start(runtime().jobs, run.id)
    return secured(redirect(_url("progress", kind, connection_id, done="started"), 303))


@_both("/retry", methods=["POST"])
def retry(connection_id: int, kind: str) -> BaseResponse:
    """Ask a worker to run the failed records again."""
    _check_csrf(connection_id)
    run = _run(connection_id, kind)
    if run is None or run.state != store.DONE:
        raise PageError(409, "Not finished", "Failed records can be retried once the run is done.", connection_id)
    runtime().jobs.sync_retry(run.id)
    return secured(redirect(_url("report_page", kind, connection_id, outcome="failed", done="retrying"), 303))


def _page_number(connection_id: int) -> int:
    raw = request.args.get("page", "1")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 7 or int(raw) < 1:
        raise PageError(400, "Bad page number", f"page must be a whole number from 1, got {raw[:40]!r}.",
                        connection_id)
    return int(raw)


def _check_csrf(connection_id: int) -> None:
    if not require_admin(connection_id).csrf_ok(request.form.get("csrf_token")):
        raise PageError(403, "Form expired", "This form is no longer valid. Reload the page and try again.",
                        connection_id)


register_page_errors(bp)
