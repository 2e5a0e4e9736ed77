"""The section 6 REST API of the reference CRM: contacts, tasks, users (shapes documented in API.md).

Every call needs ``Authorization: Bearer <token>`` and passes the rate limit (``guard``, shared with the
activities blueprint). ``PATCH /contacts/{id}`` needs ``If-Match: <version>`` (428 without it, 412 when stale)
so a client can never overwrite a change it has not seen; ``DELETE`` and the merge honour ``If-Match`` when
given. Contact responses carry ``ETag: "<version>"``.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from crm_qb.sandbox.crm.batch import MAX_BATCH_ITEMS, run_contact_batch, run_task_batch
from crm_qb.sandbox.crm.faults import FaultPlan
from crm_qb.sandbox.crm.paging import decode_cursor, page_limit
from crm_qb.sandbox.crm.ratelimit import Admission
from crm_qb.sandbox.crm.state import current_sandbox
from crm_qb.sandbox.crm.validation import (
    ApiError,
    contact_changes,
    invalid,
    parse_aware,
    parse_version,
    require_object,
    task_changes,
)

bp = Blueprint("crm_api", __name__)


def guard() -> Any:
    """Count the call, apply injected latency and faults, check the bearer token, then the rate limit."""
    sandbox = current_sandbox()
    rule = request.url_rule.rule if request.url_rule else request.path
    fault, latency_ms = sandbox.faults.record(f"{request.method} {rule}")
    if latency_ms:
        time.sleep(latency_ms / 1000)
    if fault is not None:
        return fault_response(fault)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), sandbox.token.encode()):
        raise ApiError(401, "unauthorized", "a valid 'Authorization: Bearer <token>' header is required")
    g.admission = sandbox.limiter.admit(token.strip())
    if g.admission is not None and not g.admission.admitted:
        return rate_limited_response(g.admission)
    return None


def rate_limited_response(admission: Admission) -> Response:
    """Return the 429 for a request over the limit, with Retry-After in whole seconds."""
    response = jsonify({"error": {"code": "rate_limited", "message": (
        f"more than {admission.limit} requests in {admission.window_seconds:g} seconds; "
        f"retry after {admission.retry_after} s")}})
    response.status_code = 429
    response.headers["Retry-After"] = str(admission.retry_after)
    return response


def rate_headers(response: Response) -> Response:
    """Tell the client its limit and what remains of it (HubSpot sends the same three figures)."""
    admission: Admission | None = g.get("admission")
    if admission is not None:
        response.headers["X-RateLimit-Max"] = str(admission.limit)
        response.headers["X-RateLimit-Remaining"] = str(admission.remaining)
        response.headers["X-RateLimit-Interval-Milliseconds"] = str(round(admission.window_seconds * 1000))
    return response


bp.before_request(guard)
bp.after_request(rate_headers)


def fault_response(fault: FaultPlan) -> Response:
    """Return the injected error response."""
    code = "rate_limited" if fault.status == 429 else "unavailable"
    response = jsonify({"error": {"code": code, "message": f"injected fault ({fault.status})"}})
    response.status_code = fault.status
    if fault.retry_after is not None:
        response.headers["Retry-After"] = str(fault.retry_after)
    return response


def versioned_response(record: dict[str, Any], status: int = 200) -> Response:
    """Return a contact or activity as JSON with its version as the ETag."""
    response = jsonify(record)
    response.status_code = status
    response.headers["ETag"] = f'"{record["version"]}"'
    return response



def if_match(required: bool, kind: str = "contact") -> int | None:
    """Return the version from ``If-Match``; 428 when required and missing."""
    header = request.headers.get("If-Match")
    if header is None:
        if required:
            raise ApiError(428, "precondition_required", f"If-Match: <version> is required to change a {kind}")
        return None
    return parse_version(header)


def json_body() -> Any:
    """Return the parsed JSON body, or None when it is missing or not JSON."""
    return request.get_json(silent=True)


@bp.get("/contacts/<contact_id>")
def get_contact(contact_id: str) -> Response:
    """Return one contact."""
    return versioned_response(current_sandbox().store.get_contact(contact_id))


@bp.get("/contacts")
def list_contacts() -> Response:
    """Return a page of contacts ordered by (updated_at, id): {"contacts": [...], "next_cursor": str|null}."""
    args = request.args
    cursor = args.get("cursor") or None
    since = args.get("updated_since") or None
    contacts, next_cursor = current_sandbox().store.list_contacts(
        updated_since=parse_aware("updated_since", since) if since else None,
        after=decode_cursor(cursor) if cursor else None,
        email=args.get("email") or None, limit=page_limit(args.get("limit")))
    return jsonify({"contacts": contacts, "next_cursor": next_cursor})


@bp.post("/contacts")
def create_contact() -> Response:
    """Create a contact; 201 with the contact."""
    contact = current_sandbox().store.create_contact(contact_changes(json_body(), creating=True))
    response = versioned_response(contact, 201)
    response.headers["Location"] = f"/contacts/{contact['id']}"
    return response


@bp.post("/contacts/batch")
def batch_contacts() -> Response:
    """Create and update up to 100 contacts: {"create": [...], "update": [...]} → {"results": [...]}."""
    return jsonify({"results": run_contact_batch(current_sandbox().store, json_body())})


@bp.patch("/contacts/<contact_id>")
def update_contact(contact_id: str) -> Response:
    """Change some fields of a contact at the version given in If-Match."""
    version = if_match(required=True)
    changes = contact_changes(json_body(), creating=False)
    return versioned_response(current_sandbox().store.update_contact(contact_id, changes, version))


@bp.delete("/contacts/<contact_id>")
def delete_contact(contact_id: str) -> tuple[str, int]:
    """Delete a contact and its tasks; 204."""
    current_sandbox().store.delete_contact(contact_id, if_match(required=False))
    return "", 204


@bp.post("/contacts/<contact_id>/merge")
def merge_contact(contact_id: str) -> Response:
    """Merge this contact into ``{"into": other_id}``; returns the survivor."""
    into = require_object(json_body()).get("into")
    if not isinstance(into, str) or not into:
        raise invalid("into", "must be the id of the surviving contact")
    return versioned_response(current_sandbox().store.merge_contacts(contact_id, into, if_match(required=False)))


@bp.put("/contacts/<contact_id>/quickbooks")
def put_quickbooks(contact_id: str) -> Response:
    """Store the QuickBooks billing summary as given (no version bump, no hook)."""
    summary = require_object(json_body())
    return versioned_response(current_sandbox().store.put_quickbooks(contact_id, summary))


@bp.get("/contacts/<contact_id>/tasks")
def list_tasks(contact_id: str) -> Response:
    """Return {"tasks": [...]} of a contact, oldest first; ``?status=open|done`` filters."""
    status = request.args.get("status") or None
    if status not in (None, "open", "done"):
        raise invalid("status", "must be open or done")
    return jsonify({"tasks": current_sandbox().store.list_tasks(contact_id, status)})


@bp.post("/contacts/<contact_id>/tasks")
def create_task(contact_id: str) -> tuple[Response, int]:
    """Create a task on a contact; 201 with the task."""
    task = current_sandbox().store.create_task(contact_id, task_changes(json_body(), creating=True))
    return jsonify(task), 201


@bp.post("/tasks/batch/read")
def read_tasks() -> Response:
    """Return {"tasks": [...]} of up to 100 ids (``{"ids": [...]}``), in the order asked; unknown ids left out."""
    body = require_object(json_body())
    for key in body:
        if key != "ids":
            raise invalid(key, "unknown field (a batch read has ids)")
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) and i for i in ids):
        raise invalid("ids", "is required: a list of task ids")
    if len(ids) > MAX_BATCH_ITEMS:
        raise invalid("ids", f"holds at most {MAX_BATCH_ITEMS} task ids, got {len(ids)}")
    return jsonify({"tasks": current_sandbox().store.get_tasks(ids)})


@bp.post("/tasks/batch")
def batch_tasks() -> Response:
    """Create up to 100 tasks on any contacts: {"create": [{"contact_id", ...}]} → {"results": [...]}."""
    return jsonify({"results": run_task_batch(current_sandbox().store, json_body())})


@bp.get("/tasks/<task_id>")
def get_task(task_id: str) -> Response:
    """Return one task."""
    return jsonify(current_sandbox().store.get_task(task_id))


@bp.patch("/tasks/<task_id>")
def update_task(task_id: str) -> Response:
    """Change some fields of a task."""
    return jsonify(current_sandbox().store.update_task(task_id, task_changes(json_body(), creating=False)))


@bp.delete("/tasks/<task_id>")
def delete_task(task_id: str) -> tuple[str, int]:
    """Delete a task; 204."""
    current_sandbox().store.delete_task(task_id)
    return "", 204


@bp.get("/users")
def list_users() -> Response:
    """Return {"users": [...]}: every user of the CRM, active or not, oldest first."""
    return jsonify({"users": current_sandbox().store.users.list_users()})


@bp.get("/users/<user_id>")
def get_user(user_id: str) -> Response:
    """Return one user."""
    return jsonify(current_sandbox().store.users.get_user(user_id))
