"""The section 6 activity API of the reference CRM: calls, meetings, emails, tasks and time entries.

Same rules as contacts: bearer token and rate limit (the shared ``guard``), ``ETag: "<version>"`` on every
activity, ``If-Match`` required on PATCH (428 without, 412 when stale) and honoured on DELETE, cursor paging by
``(updated_at, id)``, and an ``activity.*`` hook for every change.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from crm_qb.sandbox.crm.activity_fields import activity_changes
from crm_qb.sandbox.crm.api import guard, if_match, json_body, rate_headers, versioned_response
from crm_qb.sandbox.crm.paging import decode_cursor, page_limit
from crm_qb.sandbox.crm.state import current_sandbox
from crm_qb.sandbox.crm.validation import parse_aware

bp = Blueprint("crm_activities", __name__)
bp.before_request(guard)
bp.after_request(rate_headers)


@bp.get("/activities")
def list_activities() -> Response:
    """Return a page of activities by (updated_at, id): {"activities": [...], "next_cursor": str|null}."""
    args = request.args
    cursor, since = args.get("cursor") or None, args.get("updated_since") or None
    activities, next_cursor = current_sandbox().store.activities.list_activities(
        updated_since=parse_aware("updated_since", since) if since else None,
        after=decode_cursor(cursor) if cursor else None,
        contact_id=args.get("contact_id") or None, limit=page_limit(args.get("limit")))
    return jsonify({"activities": activities, "next_cursor": next_cursor})


@bp.get("/activities/<activity_id>")
def get_activity(activity_id: str) -> Response:
    """Return one activity."""
    return versioned_response(current_sandbox().store.activities.get_activity(activity_id))


@bp.post("/activities")
def create_activity() -> Response:
    """Log an activity; 201 with the activity."""
    activity = current_sandbox().store.activities.create_activity(activity_changes(json_body(), creating=True))
    response = versioned_response(activity, 201)
    response.headers["Location"] = f"/activities/{activity['id']}"
    return response


@bp.patch("/activities/<activity_id>")
def update_activity(activity_id: str) -> Response:
    """Change some fields of an activity at the version given in If-Match."""
    version = if_match(required=True, kind="activity")
    changes = activity_changes(json_body(), creating=False)
    return versioned_response(current_sandbox().store.activities.update_activity(activity_id, changes, version))


@bp.delete("/activities/<activity_id>")
def delete_activity(activity_id: str) -> tuple[str, int]:
    """Delete an activity; 204."""
    current_sandbox().store.activities.delete_activity(activity_id, if_match(required=False, kind="activity"))
    return "", 204
