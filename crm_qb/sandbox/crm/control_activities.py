"""The control API for users and activities: act as a CRM admin adding people, or as a user logging time.

Activity changes made here are what a CRM user does in the CRM's own UI: no token, no If-Match, the same
validation as the section 6 API, and the same ``activity.*`` hooks. The user logging is the body's
``owner_id``. User changes send no hooks (clients read ``GET /users``).
"""

from __future__ import annotations

import random

from flask import Blueprint, Response, jsonify

from crm_qb.sandbox.crm.activity_fields import activity_changes
from crm_qb.sandbox.crm.api import json_body, versioned_response
from crm_qb.sandbox.crm.seeding import MAX_ACTIVITIES_PER_CONTACT, seed_activities
from crm_qb.sandbox.crm.state import current_sandbox
from crm_qb.sandbox.crm.users import user_changes
from crm_qb.sandbox.crm.validation import invalid, non_negative_int, require_object

bp = Blueprint("crm_control_activities", __name__, url_prefix="/_sandbox")


@bp.get("/users")
def list_users() -> Response:
    """Return {"users": [...]} like GET /users, without a token."""
    return jsonify({"users": current_sandbox().store.users.list_users()})


@bp.post("/users")
def create_user() -> tuple[Response, int]:
    """Add a user: {"name", "email", "active"?, "id"?}; 201 with the user."""
    return jsonify(current_sandbox().store.users.create_user(user_changes(json_body(), creating=True))), 201


@bp.patch("/users/<user_id>")
def edit_user(user_id: str) -> Response:
    """Edit a user's name, email or active flag (users are deactivated, never deleted)."""
    changes = user_changes(json_body(), creating=False)
    return jsonify(current_sandbox().store.users.update_user(user_id, changes))


@bp.post("/activities")
def log_activity() -> Response:
    """Log an activity as the user named by ``owner_id``; 201 with the activity."""
    activity = current_sandbox().store.activities.create_activity(activity_changes(json_body(), creating=True))
    return versioned_response(activity, 201)


@bp.patch("/activities/<activity_id>")
def edit_activity(activity_id: str) -> Response:
    """Edit an activity as a CRM user (no If-Match)."""
    changes = activity_changes(json_body(), creating=False)
    return versioned_response(current_sandbox().store.activities.update_activity(activity_id, changes))


@bp.delete("/activities/<activity_id>")
def delete_activity(activity_id: str) -> tuple[str, int]:
    """Delete an activity as a CRM user."""
    current_sandbox().store.activities.delete_activity(activity_id)
    return "", 204


@bp.post("/seed/activities")
def seed_more_activities() -> tuple[Response, int]:
    """Log {"per_contact": M, "seed": S, "contact_ids"?: [...]} demo activities (default: on every contact)."""
    body = require_object(json_body())
    per_contact, rng = non_negative_int(body, "per_contact", 2), random.Random(non_negative_int(body, "seed", 0))
    if per_contact > MAX_ACTIVITIES_PER_CONTACT:
        raise invalid("per_contact", f"at most {MAX_ACTIVITIES_PER_CONTACT}")
    sandbox = current_sandbox()
    contact_ids = body.get("contact_ids")
    if contact_ids is None:
        contact_ids = sandbox.store.contact_ids()
    elif not isinstance(contact_ids, list) or not all(isinstance(item, str) for item in contact_ids):
        raise invalid("contact_ids", "must be a list of contact ids")
    for contact_id in contact_ids:
        sandbox.store.get_contact(contact_id)
    return jsonify({"activity_ids": seed_activities(sandbox, contact_ids, per_contact, rng)}), 201
