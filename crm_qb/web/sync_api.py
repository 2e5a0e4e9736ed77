"""The first sync and history imports in the JSON API (DESIGN §11), with the connection's API key:

- ``GET  /api/v1/connections/<id>/sync/status`` → ``{"state", "phase", "done", "total", "failed", …}``
  (``state`` "waiting" and zeros for a connection whose first sync is not opened yet);
- ``GET  …/sync/preview`` → ``{"link", "create_in_crm", "create_in_qbo", "review", "transactions", "followups",
  …}``; with ``list=<action>`` (``link``, ``create_in_crm``, ``create_in_qbo``, ``review``, ``transaction``,
  ``followup``) and ``page``/``per_page`` also the records behind that count;
- ``POST …/sync/preview`` asks a worker for the preview (again), 202; ``POST …/sync/start`` starts the run (a
  no-op once started), 202; ``POST …/sync/retry`` retries the failed records of a finished run, 202;
- ``GET  …/sync/report`` → one page of the run's records (``outcome=<action>|failed``), ``…/sync/report.csv``
  the whole report as CSV.
The same paths under ``…/sync/history/`` address the latest history import; ``POST …/sync/history/preview``
takes ``{"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}`` and opens a new one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any, TypeVar

from flask import Blueprint, Response, jsonify, request, stream_with_context

from crm_qb.db import db
from crm_qb.errors import PermanentError
from crm_qb.models import SyncRun
from crm_qb.runtime import runtime
from crm_qb.sync.firstsync import report, service, store
from crm_qb.sync.firstsync.outcomes import COUNT_KEYS, COUNTED
from crm_qb.sync.pipeline.backfill import check_backfillable
from crm_qb.web.api import ApiRefusal, authorized, whole_number_arg
from crm_qb.web.errors import json_error

bp = Blueprint("sync_api", __name__, url_prefix="/api/v1/connections/<int:connection_id>/sync")

MAX_PER_PAGE = 200
LISTS = (*COUNTED, "failed")


@bp.errorhandler(ApiRefusal)
def _refused(exc: ApiRefusal) -> tuple[Response, int]:
    response, status = json_error(exc.status, exc.code, exc.message)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="crm-qb"'
    return response, status


@bp.errorhandler(PermanentError)
def _cannot(exc: PermanentError) -> tuple[Response, int]:
    db.session.rollback()
    return json_error(409, "sync_refused", str(exc))


def _kind() -> str:
    return store.HISTORY if request.path.split("/sync/", 1)[-1].startswith("history") else store.FIRST


def _latest(connection_id: int) -> SyncRun | None:
    authorized(connection_id)
    return store.latest(connection_id, _kind())


def _required(connection_id: int) -> SyncRun:
    run = _latest(connection_id)
    if run is None:
        what = "history import" if _kind() == store.HISTORY else "first sync"
        raise ApiRefusal(404, "no_sync_run", f"connection {connection_id} has no {what} yet")
    return run


F = TypeVar("F", bound=Callable[..., Any])


def _both(rule: str, **options: Any) -> Callable[[F], F]:
    """Route a view at ``…/sync/<rule>`` and ``…/sync/history/<rule>``."""
    def register(view: F) -> F:
        bp.add_url_rule(f"/{rule}", view_func=view, **options)
        bp.add_url_rule(f"/history/{rule}", endpoint=f"history_{view.__name__}", view_func=view, **options)
        return view
    return register


@_both("status", methods=["GET"])
def status(connection_id: int) -> Response:
    """The run's status; a waiting one (zeros) when none is open."""
    run = _latest(connection_id)
    if run is None:
        return jsonify({"state": store.WAITING, "phase": None, "done": 0, "total": 0, "failed": 0, "run_id": None,
                        "kind": _kind(), "counts": dict.fromkeys(COUNT_KEYS, 0)})
    return jsonify(service.status_json(run))


@_both("preview", methods=["GET"])
def preview(connection_id: int) -> Response:
    """The preview's counts, and the records behind one of them with ``list``."""
    run = _latest(connection_id)
    if run is None:
        return jsonify({**dict.fromkeys(COUNT_KEYS, 0), "run_id": None, "kind": _kind(), "state": store.WAITING,
                        "ready": False})
    body = service.preview_json(run)
    wanted = request.args.get("list")
    if wanted:
        body["records"] = _records(run.id, store.PREVIEW, wanted)
    return jsonify(body)


@bp.post("/preview")
def request_first_preview(connection_id: int) -> tuple[Response, int]:
    """Open the first sync if needed and ask a worker for its preview (again)."""
    authorized(connection_id)
    check_backfillable(connection_id)
    run = service.open_first_sync(None, connection_id)
    if not service.request_preview(runtime().jobs, run.id):
        raise ApiRefusal(409, "sync_started", f"the first sync ({run.state}) has started; its preview is final")
    return jsonify(service.preview_json(store.fresh(run.id))), 202


@bp.post("/history/preview")
def request_history_preview(connection_id: int) -> tuple[Response, int]:
    """Open a history import of ``{"from", "to"}`` and ask a worker for its preview."""
    authorized(connection_id)
    body = request.get_json(silent=True)
    start, end = (_date(body, name) for name in ("from", "to"))
    check_backfillable(connection_id)
    run = service.open_history(connection_id, start, end)
    service.request_preview(runtime().jobs, run.id)
    return jsonify(service.preview_json(store.fresh(run.id))), 202


@_both("start", methods=["POST"])
def start(connection_id: int) -> tuple[Response, int]:
    """Start the run (a no-op once started)."""
    run = _required(connection_id)
    if run.state == store.PREVIEWING:
        raise ApiRefusal(409, "preview_pending", "the preview is still being computed; start it once it is ready")
    service.start(runtime().jobs, run.id)
    return jsonify(service.status_json(store.fresh(run.id))), 202


@_both("retry", methods=["POST"])
def retry(connection_id: int) -> tuple[Response, int]:
    """Ask a worker to run the failed records of a finished run again."""
    run = _required(connection_id)
    if run.state != store.DONE:
        raise ApiRefusal(409, "sync_not_done", f"the run is {run.state}; retry its failed records once it is done")
    runtime().jobs.sync_retry(run.id)
    return jsonify(service.status_json(run)), 202


@_both("report", methods=["GET"])
def report_page(connection_id: int) -> Response:
    """One page of the run's records, optionally of one outcome."""
    run = _required(connection_id)
    return jsonify({**service.status_json(run), "records": _records(run.id, store.RUN, request.args.get("outcome"))})


@_both("report.csv", methods=["GET"])
def report_csv(connection_id: int) -> Response:
    """The whole report as CSV."""
    run = _required(connection_id)
    name = f"crm-qb-{run.kind}-sync-{connection_id}-run-{run.id}.csv"
    return Response(stream_with_context(report.csv_lines(run.id)), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


def _records(run_id: int, stage: str, wanted: str | None) -> dict[str, Any]:
    if wanted and wanted not in LISTS:
        raise ApiRefusal(400, "invalid_list", f"list/outcome must be one of {', '.join(LISTS)}, got {wanted!r}")
    page, per_page = whole_number_arg("page", 1, 1_000_000), whole_number_arg("per_page", 50, MAX_PER_PAGE)
    rows, total = store.records(run_id, stage, (wanted,) if wanted else (), page, per_page)
    return {"items": [report.record_json(row) for row in rows], "page": page, "per_page": per_page,
            "total": total, "pages": max(1, -(-total // per_page))}


def _date(body: Any, name: str) -> date:
    raw = body.get(name) if isinstance(body, dict) else None
    try:
        return date.fromisoformat(str(raw)) if isinstance(raw, str) and len(raw) == 10 else _bad_date(name, raw)
    except ValueError:
        return _bad_date(name, raw)


def _bad_date(name: str, raw: Any) -> date:
    raise ApiRefusal(400, f"invalid_{name}", f"{name} must be a date YYYY-MM-DD, got {raw!r}")
