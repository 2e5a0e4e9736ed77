"""The sandbox-only control API under ``/_sandbox/`` (no auth: it stands in for a CRM user and for tests).

Contact changes made here act as a CRM user in the UI would: no token, no If-Match, and the same change hooks.
It is never faulted or rate limited. Users and activities are in ``control_activities``.
"""

from __future__ import annotations

import math
import random
from typing import Any

from flask import Blueprint, Response, jsonify, request

from crm_qb.sandbox.crm.api import json_body, versioned_response
from crm_qb.sandbox.crm.demo import demo_contact
from crm_qb.sandbox.crm.faults import FAULT_STATUSES, FaultPlan
from crm_qb.sandbox.crm.paging import decode_cursor
from crm_qb.sandbox.crm.ratelimit import check_requests, check_window
from crm_qb.sandbox.crm.seeding import MAX_ACTIVITIES_PER_CONTACT, seed_activities
from crm_qb.sandbox.crm.state import current_sandbox
from crm_qb.sandbox.crm.validation import contact_changes, invalid, non_negative_int, require_object

bp = Blueprint("crm_control", __name__, url_prefix="/_sandbox")
MAX_SEED = 100_000


@bp.get("/info")
def info() -> Response:
    """Return api_base, token, hook_url and the other sandbox URLs."""
    return jsonify(current_sandbox().info(request.host_url.rstrip("/")))


@bp.post("/hooks")
def set_hooks() -> Response:
    """Set where change hooks go: {"url", "secret"}; {"url": null} turns them off."""
    body = require_object(json_body())
    url, secret = body.get("url"), body.get("secret")
    if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
        raise invalid("url", "must be an http(s) URL or null")
    if url is not None and (not isinstance(secret, str) or not secret):
        raise invalid("secret", "is required with a url")
    current_sandbox().set_hooks(url, secret if url else None)
    return jsonify({"url": url})


@bp.get("/hooks")
def hook_log() -> Response:
    """Return {"url", "pending", "delivered", "dropped", "deliveries": [...]} (oldest attempt first)."""
    return jsonify(current_sandbox().hooks.snapshot())


@bp.post("/panel")
def set_panel() -> Response:
    """Configure the contact page's QuickBooks panel, one of two ways (null removes it):

    ``{"panel_url_api": "<crm-qb>/api/v1/connections/<n>/contacts/{id}/panel-url", "api_key": "cqb_..."}``: the
    page asks crm-qb, server-side with the API key, for a short-lived URL of the contact shown (the normal way;
    the key never reaches the browser); or ``{"url_template": "...{id}..."}``: a fixed URL per contact.
    """
    body = require_object(json_body())
    if "panel_url_api" in body:
        return _set_panel_api(body)
    template = body.get("url_template")
    if template is not None and (not isinstance(template, str) or "{id}" not in template
                                 or not template.startswith(("http://", "https://"))):
        raise invalid("url_template", "must be an http(s) URL containing {id}, or null")
    current_sandbox().set_panel_api(None, None)
    current_sandbox().set_panel_template(template)
    return jsonify({"url_template": template})


def _set_panel_api(body: dict[str, Any]) -> Response:
    endpoint, key = body.get("panel_url_api"), body.get("api_key")
    if endpoint is not None and (not isinstance(endpoint, str) or "{id}" not in endpoint
                                 or not endpoint.startswith(("http://", "https://"))):
        raise invalid("panel_url_api", "must be an http(s) URL containing {id}, or null")
    if endpoint is not None and (not isinstance(key, str) or not key):
        raise invalid("api_key", "is required with panel_url_api")
    current_sandbox().set_panel_template(None)
    current_sandbox().set_panel_api(endpoint, key)
    return jsonify({"panel_url_api": endpoint})


@bp.post("/faults")
def set_faults() -> Response:
    """Fail the next N API calls: {"count", "status": 429|5xx, "retry_after", "latency_ms"}."""
    body = require_object(json_body())
    plan = FaultPlan(count=non_negative_int(body, "count", 0), status=non_negative_int(body, "status", 503),
                     retry_after=non_negative_int(body, "retry_after", None),
                     latency_ms=non_negative_int(body, "latency_ms", 0))
    if plan.status not in FAULT_STATUSES:
        raise invalid("status", f"must be one of {FAULT_STATUSES}")
    current_sandbox().faults.set_plan(plan)
    return jsonify(current_sandbox().faults.plan())


def _seconds(body: dict[str, Any], field: str) -> float | None:
    """Return a finite number of seconds (or None when absent)."""
    value = body.get(field)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                              or not math.isfinite(value)):
        raise invalid(field, "must be a number of seconds")
    return value


@bp.get("/clock")
def get_clock() -> Response:
    """Return {"now", "offset_seconds"}: the CRM's current time and how far it is moved from real time."""
    return jsonify(current_sandbox().clock.snapshot())


@bp.post("/clock")
def move_clock() -> Response:
    """Move the CRM's clock: {"offset_seconds"?: set, "advance_seconds"?: then add}; returns the clock."""
    body = require_object(json_body())
    offset, advance = _seconds(body, "offset_seconds"), _seconds(body, "advance_seconds")
    clock = current_sandbox().clock
    try:
        clock.move(offset_seconds=offset, advance_seconds=advance)
    except ValueError as exc:
        raise invalid("advance_seconds" if advance is not None else "offset_seconds", str(exc)) from None
    return jsonify(clock.snapshot())


@bp.get("/limits")
def get_limits() -> Response:
    """Return the API rate limit: {"requests": n|null (off), "window_seconds"}."""
    return jsonify(current_sandbox().limiter.settings())


@bp.post("/limits")
def set_limits() -> Response:
    """Set the API rate limit: {"requests": n|null, "window_seconds"?}; omitted keys keep their value."""
    body = require_object(json_body())
    for key in body:
        if key not in ("requests", "window_seconds"):
            raise invalid(key, "unknown field")
    limiter = current_sandbox().limiter
    current = limiter.settings()
    checked: dict[str, Any] = {}
    for field, check in (("requests", check_requests), ("window_seconds", check_window)):
        try:
            checked[field] = check(body.get(field, current[field]))
        except ValueError as exc:
            raise invalid(field, str(exc)) from None
    limiter.configure(checked["requests"], checked["window_seconds"])
    return jsonify(limiter.settings())


@bp.get("/requests")
def request_counts() -> Response:
    """Return {"endpoints": {"METHOD /rule": n}, "total": n} for the section 6 API."""
    return jsonify(current_sandbox().faults.counts())


@bp.post("/reset")
def reset() -> tuple[str, int]:
    """Delete contacts, tasks and activities, restore the configured users, clear counts, faults, the rate
    window, pending hooks and the delivery log; the token, settings, limits and clock stay."""
    current_sandbox().reset()
    return "", 204


@bp.get("/contacts")
def view_contacts() -> Response:
    """Return {"contacts": [...]}: every contact, as a CRM user sees the list (no token, never rate limited).

    Tests and scripts watching the CRM read here, so they never spend the API budget crm-qb's own calls share.
    """
    store, found, after = current_sandbox().store, [], None
    while True:
        page, cursor = store.list_contacts(after=after, email=request.args.get("email") or None, limit=1000)
        found += page
        if cursor is None:
            return jsonify({"contacts": found})
        after = decode_cursor(cursor)


@bp.get("/contacts/<contact_id>")
def view_contact(contact_id: str) -> Response:
    """Return one contact as a CRM user sees it; 404 when unknown."""
    return versioned_response(current_sandbox().store.get_contact(contact_id))


@bp.get("/contacts/<contact_id>/tasks")
def view_tasks(contact_id: str) -> Response:
    """Return {"tasks": [...]} of a contact, oldest first, as a CRM user sees them; 404 when unknown."""
    return jsonify({"tasks": current_sandbox().store.list_tasks(contact_id)})


@bp.post("/contacts")
def create_contact() -> Response:
    """Create a contact as a CRM user."""
    return versioned_response(current_sandbox().store.create_contact(contact_changes(json_body(), creating=True)),
                            201)


@bp.patch("/contacts/<contact_id>")
def edit_contact(contact_id: str) -> Response:
    """Edit a contact as a CRM user (no If-Match)."""
    changes = contact_changes(json_body(), creating=False)
    return versioned_response(current_sandbox().store.update_contact(contact_id, changes))


@bp.delete("/contacts/<contact_id>")
def delete_contact(contact_id: str) -> tuple[str, int]:
    """Delete a contact as a CRM user."""
    current_sandbox().store.delete_contact(contact_id)
    return "", 204


@bp.post("/contacts/<contact_id>/merge")
def merge_contact(contact_id: str) -> Response:
    """Merge a contact into {"into": other_id} as a CRM user."""
    into = require_object(json_body()).get("into")
    if not isinstance(into, str) or not into:
        raise invalid("into", "must be the id of the surviving contact")
    return versioned_response(current_sandbox().store.merge_contacts(contact_id, into))


@bp.post("/seed")
def seed() -> tuple[Response, int]:
    """Create {"contacts": N, "seed": S, "activities": M} demo contacts, each with M demo activities."""
    body = require_object(json_body())
    count, rng = non_negative_int(body, "contacts", 10), random.Random(non_negative_int(body, "seed", 0))
    per_contact = non_negative_int(body, "activities", 0)
    if count > MAX_SEED:
        raise invalid("contacts", f"at most {MAX_SEED} per call")
    if per_contact > MAX_ACTIVITIES_PER_CONTACT:
        raise invalid("activities", f"at most {MAX_ACTIVITIES_PER_CONTACT} per contact")
    sandbox = current_sandbox()
    ids = [sandbox.store.create_contact(demo_contact(rng, index))["id"] for index in range(count)]
    activity_ids = seed_activities(sandbox, ids, per_contact, rng) if per_contact else []
    return jsonify({"ids": ids, "activity_ids": activity_ids}), 201
