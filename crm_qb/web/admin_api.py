"""The admin console's operations as JSON, for scripts (``Authorization: Bearer <connection API key>``).

Everything a person can do on the console pages can be done here, through the same domain functions:

- ``GET  /api/v1/connections/<id>/review`` — records waiting for review, with their candidates;
  ``POST …/review/<link_id>`` ``{"action", "candidate"?}`` — 202, applied by a worker (``job_id``);
- ``GET  …/failures``; ``POST …/failures/retry`` and ``…/failures/dismiss`` ``{"kind": "event"|"record"|
  "sync_record"|"all", "id"?}`` — how many were retried or dismissed;
- ``GET  …/settings``; ``PATCH …/settings`` ``{"sync": {…}, "followups": {…}}`` (partial; validated, audited as
  "api key") — the settings after the change; 400 names the field;
- ``GET  …/time``; ``PATCH …/time`` ``{"enabled"?, "default_item"? (an item id, or null to remove it),
  "activity_url"?, "users"? {crm_user_id: "Employee:ID"|"Vendor:ID"}}`` — billable time: checked in QuickBooks,
  stored and audited as "api key" (the Settings page's "Billable time"), then the time it held is sent; the time
  status after the change; 400 names the field (``time.default_item``, ``time.users.<crm user id>``, …);
- ``POST …/sync-now`` — 202; ``POST …/contacts/<crm_contact_id>/sync-now`` — 202 (one contact and its customer);
- ``GET  …/audit?record=&kind=&outcome=&since=&until=&include_unchanged=&page=`` — readable entries;
- ``GET  …/conflicts``; ``POST …/conflicts/<conflict_id>/keep`` (200) and ``…/flip`` (202, by a worker).

Errors are the contract's ``{"error": {"code", "message"}}`` (plus ``field`` for a bad setting or filter).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from crm_qb.db import db
from crm_qb.models import Connection
from crm_qb.panel_settings import panel_settings_of
from crm_qb.qbo.tokens import NotConnectedError
from crm_qb.runtime import runtime
from crm_qb.sync import failures as failure_store
from crm_qb.sync.customers.conflict_review import ConflictReviewError, confirm, plan_flip
from crm_qb.sync.customers.review import ReviewError, check_action
from crm_qb.sync.followups.settings import parse_settings
from crm_qb.sync.settings import sync_settings_of
from crm_qb.sync.settings_changes import InvalidSetting, store_settings, turned_on, validated
from crm_qb.sync.time.admin import TimeConfigError, configure, status
from crm_qb.web.admin_pages import MAX_REVIEW_PER_PAGE, REVIEW_PER_PAGE, waiting_records
from crm_qb.web.api import ApiRefusal, authorized, whole_number_arg
from crm_qb.web.readmodels.audit import PER_PAGE, InvalidAuditQuery, audit_page, parse_audit_query
from crm_qb.web.review_pages import conflict_rows
from crm_qb.web.routing import MAX_ROW_ID, is_contact_id

bp = Blueprint("admin_api", __name__, url_prefix="/api/v1/connections/<int:connection_id>")
API_WHO = "api key"


@bp.errorhandler(ApiRefusal)
def _refused(exc: ApiRefusal) -> tuple[Response, int]:
    body = {"error": {"code": exc.code, "message": exc.message, **getattr(exc, "extra", {})}}
    response = jsonify(body)
    if exc.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="crm-qb"'
    return response, exc.status


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True) if request.content_length else {}
    if not isinstance(body, dict):
        raise ApiRefusal(400, "invalid_body", "send a JSON object")
    return body


@bp.get("/review")
def review(connection_id: int) -> Response:
    """Records waiting for review, each with its candidates side by side and its actions."""
    connection = authorized(connection_id)
    page = whole_number_arg("page", 1, 1_000_000)
    per_page = whole_number_arg("per_page", REVIEW_PER_PAGE, MAX_REVIEW_PER_PAGE)
    return jsonify(waiting_records(connection, page, per_page).as_json())


@bp.post("/review/<int:link_id>")
def review_action(connection_id: int, link_id: int) -> tuple[Response, int]:
    """Take an action on one waiting record (checked now, applied by a worker): 202 with the job id."""
    authorized(connection_id)
    body = _body()
    action, candidate = str(body.get("action", "")), body.get("candidate")
    try:
        check_action(connection_id, link_id, action, None if candidate is None else str(candidate))
    except ReviewError as exc:
        raise ApiRefusal(409, "review_refused", str(exc)) from None
    queued = runtime().jobs.resolve_review(connection_id, link_id, action,
                                          None if candidate is None else str(candidate), API_WHO)
    return jsonify({"job_id": queued.job_id, "queued": queued.queued}), 202


@bp.get("/failures")
def failures(connection_id: int) -> Response:
    """Failed and retrying events, failed records and failed first-sync / history-import records, newest first."""
    connection = authorized(connection_id)
    return jsonify({"failures": [f.as_json() for f in failure_store.list_failures(connection)]})


@bp.post("/failures/<any(retry, dismiss):verb>")
def failure_action(connection_id: int, verb: str) -> Response:
    """Retry or dismiss one failure or all: ``{"kind", "id"?}``; answers how many."""
    connection = authorized(connection_id)
    body = _body()
    kind, failure_id = body.get("kind", "all"), body.get("id")
    if kind not in (*failure_store.KINDS, "all"):
        raise ApiRefusal(400, "invalid_kind", f"kind must be event, record, sync_record or all, got {kind!r}")
    if failure_id is not None and (isinstance(failure_id, bool) or not isinstance(failure_id, int)
                                   or not 1 <= failure_id <= MAX_ROW_ID):
        raise ApiRefusal(400, "invalid_id", f"id must be a whole number from 1 to {MAX_ROW_ID}, got {failure_id!r}")
    try:
        if verb == "retry":
            count = failure_store.retry(connection, kind, failure_id, runtime().jobs, API_WHO)
        else:
            count = failure_store.dismiss(connection, kind, failure_id, API_WHO)
    except failure_store.FailureNotFound as exc:
        raise ApiRefusal(404, "failure_not_found", str(exc)) from None
    return jsonify({"count": count, ("retried" if verb == "retry" else "dismissed"): count})


@bp.get("/settings")
def settings(connection_id: int) -> Response:
    """The connection's sync, follow-up and panel settings."""
    return jsonify(settings_json(authorized(connection_id)))


@bp.patch("/settings")
def change_settings(connection_id: int) -> Response:
    """Change settings (partial objects); validated, stored and audited; the settings after the change."""
    connection = authorized(connection_id)
    body = _body()
    sync: Any = {} if body.get("sync") is None else body["sync"]
    followups: Any = {} if body.get("followups") is None else body["followups"]
    if not isinstance(sync, dict) or not isinstance(followups, dict):
        raise ApiRefusal(400, "invalid_body", "sync and followups must be objects")
    try:
        new = validated(connection.settings or {}, sync, followups)
    except InvalidSetting as exc:
        refusal = ApiRefusal(400, "invalid_setting", str(exc))
        refusal.extra = {"field": exc.field}  # type: ignore[attr-defined]
        raise refusal from None
    changes = store_settings(connection, new, API_WHO)
    if turned_on(changes):
        runtime().jobs.catch_up(connection_id)  # both sides, from where their polls stopped
    return jsonify({**settings_json(connection), "changed": sorted(changes)})


def settings_json(connection: Connection) -> dict[str, Any]:
    """The settings object of ``GET …/settings``."""
    stored = connection.settings or {}
    return {"sync": sync_settings_of(stored).as_json(), "followups": parse_settings(stored).to_json(),
            "panel": panel_settings_of(stored).as_json()}


@bp.get("/time")
def time_settings(connection_id: int) -> Response:
    """Billable time: its settings, entries by state, CRM users and their QuickBooks people, held time, totals."""
    authorized(connection_id)
    return jsonify(status(connection_id))


@bp.patch("/time")
def change_time(connection_id: int) -> Response:
    """Change billable-time settings and user mappings (partial); checked in QuickBooks, stored, audited."""
    authorized(connection_id)
    try:
        changes = time_changes(_body())
        result = configure(runtime().sync_services(), connection_id, **changes, who=API_WHO)
    except TimeConfigError as exc:
        refusal = ApiRefusal(400, "invalid_setting", exc.reason)
        refusal.extra = {"field": exc.field or "time"}  # type: ignore[attr-defined]
        raise refusal from None
    except NotConnectedError:
        raise ApiRefusal(409, "not_connected", "connect QuickBooks to check and store time settings") from None
    return jsonify(result)


def time_changes(body: dict[str, Any]) -> dict[str, Any]:
    """The ``configure`` arguments of a ``PATCH …/time`` body; TimeConfigError names a field of the wrong type."""
    unknown = sorted(set(body) - {"enabled", "default_item", "activity_url", "users"})
    if unknown:
        raise TimeConfigError(f"time.{unknown[0]}: unknown setting", f"time.{unknown[0]}", "unknown setting")
    changes: dict[str, Any] = {}
    if "enabled" in body:
        if not isinstance(body["enabled"], bool):
            raise TimeConfigError("time.enabled: must be true or false", "time.enabled", "must be true or false")
        changes["enabled"] = body["enabled"]
    if "default_item" in body:
        item = body["default_item"]
        if item is not None and not isinstance(item, str):
            raise TimeConfigError("time.default_item: must be an item id (a string) or null", "time.default_item",
                                  "must be an item id (a string) or null")
        changes.update({"default_item": item} if item else {"clear_default_item": True})
    if "activity_url" in body:
        if not isinstance(body["activity_url"], str):
            raise TimeConfigError("time.activity_url: must be a string", "time.activity_url", "must be a string")
        changes["activity_url"] = body["activity_url"]
    users = body.get("users") or {}
    if not isinstance(users, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in users.items()):
        raise TimeConfigError("time.users: must map CRM user ids to \"Employee:ID\" or \"Vendor:ID\"", "time.users",
                              'must map CRM user ids to "Employee:ID" or "Vendor:ID"')
    changes["map_users"] = {user[:255]: ref for user, ref in users.items()}
    return changes


@bp.post("/sync-now")
def sync_now(connection_id: int) -> tuple[Response, int]:
    """Ask a worker to sync the connection now: 202 with the job id."""
    authorized(connection_id)
    queued = runtime().jobs.sync_now(connection_id)
    return jsonify({"job_id": queued.job_id, "queued": queued.queued}), 202


@bp.post("/contacts/<crm_contact_id>/sync-now")
def sync_contact_now(connection_id: int, crm_contact_id: str) -> tuple[Response, int]:
    """Ask a worker to re-read one CRM contact and its linked QBO customer and reconcile them: 202 with the job id."""
    authorized(connection_id)
    if not is_contact_id(crm_contact_id):
        raise ApiRefusal(404, "contact_not_found", f"no contact {crm_contact_id[:40]!r} in connection {connection_id}")
    queued = runtime().jobs.sync_contact_now(connection_id, crm_contact_id, API_WHO)
    return jsonify({"job_id": queued.job_id, "queued": queued.queued}), 202


@bp.get("/audit")
def audit(connection_id: int) -> Response:
    """Readable audit entries, filtered, newest first, ``PER_PAGE`` a page."""
    authorized(connection_id)
    try:
        query = parse_audit_query(request.args)
    except InvalidAuditQuery as exc:
        refusal = ApiRefusal(400, f"invalid_{exc.field}", str(exc))
        raise refusal from None
    rows, total = audit_page(connection_id, query)
    return jsonify({"entries": [row.as_json() for row in rows], "page": query.page, "per_page": PER_PAGE,
                    "total": total, "pages": max(1, -(-total // PER_PAGE))})


@bp.get("/conflicts")
def conflicts(connection_id: int) -> Response:
    """Conflicts newest first, with the contact's name and the rule in plain words (the Conflicts page)."""
    connection = authorized(connection_id)
    return jsonify({"conflicts": conflict_rows(connection)})


@bp.post("/conflicts/<int:conflict_id>/<any(keep, flip):verb>")
def conflict_action(connection_id: int, conflict_id: int, verb: str) -> tuple[Response, int]:
    """Keep a conflict's decision (200), or flip it to the other value (202: a worker writes both sides)."""
    authorized(connection_id)
    try:
        if verb == "keep":
            confirm(connection_id, conflict_id)
            return jsonify({"conflict_id": conflict_id, "status": "confirmed"}), 200
        plan_flip(connection_id, conflict_id)
    except ConflictReviewError as exc:
        db.session.rollback()
        raise ApiRefusal(409, "conflict_refused", str(exc)) from None
    queued = runtime().jobs.flip_conflict(connection_id, conflict_id)
    return jsonify({"conflict_id": conflict_id, "job_id": queued.job_id, "queued": queued.queued}), 202
