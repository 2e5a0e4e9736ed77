"""The sandbox-only control API under ``/_sandbox/`` (no auth: it stands in for a CRM user and for tests).

Contact changes made here act as a CRM user in the UI would: no token, no If-Match, and the same change hooks.
"""

from __future__ import annotations

import random
from typing import Any

from flask import Blueprint, Response, jsonify, request

from crm_qb.sandbox.crm.api import contact_response, json_body
from crm_qb.sandbox.crm.faults import FAULT_STATUSES, FaultPlan
from crm_qb.sandbox.crm.state import current_sandbox
from crm_qb.sandbox.crm.validation import contact_changes, invalid, require_object

bp = Blueprint("crm_control", __name__, url_prefix="/_sandbox")
MAX_SEED = 100_000
FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman")


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
    """Set the contact panel URL template: {"url_template": "...{id}..."} (null removes the panel)."""
    template = require_object(json_body()).get("url_template")
    if template is not None and (not isinstance(template, str) or "{id}" not in template
                                 or not template.startswith(("http://", "https://"))):
        raise invalid("url_template", "must be an http(s) URL containing {id}, or null")
    current_sandbox().set_panel_template(template)
    return jsonify({"url_template": template})


@bp.post("/faults")
def set_faults() -> Response:
    """Fail the next N API calls: {"count", "status": 429|5xx, "retry_after", "latency_ms"}."""
    body = require_object(json_body())
    plan = FaultPlan(count=_int(body, "count", 0), status=_int(body, "status", 503),
                     retry_after=_int(body, "retry_after", None), latency_ms=_int(body, "latency_ms", 0))
    if plan.status not in FAULT_STATUSES:
        raise invalid("status", f"must be one of {FAULT_STATUSES}")
    current_sandbox().faults.set_plan(plan)
    return jsonify(current_sandbox().faults.plan())


def _int(body: dict[str, Any], field: str, default: int | None) -> Any:
    """Return a non-negative integer field (or the default when absent)."""
    value = body.get(field, default)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise invalid(field, "must be a non-negative integer")
    return value


@bp.get("/requests")
def request_counts() -> Response:
    """Return {"endpoints": {"METHOD /rule": n}, "total": n} for the section 6 API."""
    return jsonify(current_sandbox().faults.counts())


@bp.post("/reset")
def reset() -> tuple[str, int]:
    """Delete all contacts and tasks, counts, faults, pending hooks and the delivery log; settings stay."""
    sandbox = current_sandbox()
    sandbox.store.wipe()
    sandbox.faults.reset()
    sandbox.hooks.clear()
    return "", 204


@bp.post("/contacts")
def create_contact() -> Response:
    """Create a contact as a CRM user."""
    return contact_response(current_sandbox().store.create_contact(contact_changes(json_body(), creating=True)),
                            201)


@bp.patch("/contacts/<contact_id>")
def edit_contact(contact_id: str) -> Response:
    """Edit a contact as a CRM user (no If-Match)."""
    changes = contact_changes(json_body(), creating=False)
    return contact_response(current_sandbox().store.update_contact(contact_id, changes))


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
    return contact_response(current_sandbox().store.merge_contacts(contact_id, into))


@bp.post("/seed")
def seed() -> tuple[Response, int]:
    """Create {"contacts": N, "seed": S} deterministic demo contacts; returns {"ids": [...]}."""
    body = require_object(json_body())
    count, rng = _int(body, "contacts", 10), random.Random(_int(body, "seed", 0))
    if count > MAX_SEED:
        raise invalid("contacts", f"at most {MAX_SEED} per call")
    store = current_sandbox().store
    ids = [store.create_contact(_demo_contact(rng, index))["id"] for index in range(count)]
    return jsonify({"ids": ids}), 201


def _demo_contact(rng: random.Random, index: int) -> dict[str, Any]:
    """Return the fields of one made-up contact."""
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return {"first_name": first, "last_name": last, "display_name": f"{first} {last} {index}",
            "company": f"{last} & Co {index % 7}", "email": f"{first}.{last}.{index}@example.com".lower(),
            "phone": f"+1 555 01{index % 100:02d}", "tags": ["demo"],
            "billing_address": {"line1": f"{index + 1} Main St", "city": "Springfield", "region": "IL",
                                "postal_code": "62701", "country": "US"}}
