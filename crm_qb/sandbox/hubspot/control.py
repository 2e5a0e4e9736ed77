"""The sandbox-only control API under ``/_sandbox/`` (no auth: it stands in for a HubSpot user and for tests).

Changes made here act as a user in HubSpot's UI would (``changeSource`` "CRM") and send the same webhooks as
API changes. Errors are ``{"error": {"code", "message"}}`` like the other sandboxes' control APIs; the
HubSpot-shaped API errors of the object calls pass through unchanged. docs/hubspot/sandbox.md lists it all.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from flask import Blueprint, Response, jsonify, request

from crm_qb.sandbox.hubspot.cardproxy import FetchUser, proxied_fetch
from crm_qb.sandbox.hubspot.definitions import epoch_ms
from crm_qb.sandbox.hubspot.faults import FaultPlan
from crm_qb.sandbox.hubspot.render import simple_object
from crm_qb.sandbox.hubspot.state import DEMO_OWNERS, current_sandbox
from crm_qb.sandbox.hubspot.store import CRM_USER
from crm_qb.sandbox.hubspot.webhooks import check_subscriptions

bp = Blueprint("hubspot_control", __name__, url_prefix="/_sandbox")
MAX_SEED = 200_000
FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman")


class ControlError(Exception):
    """A bad control request: 400 with ``{"error": {"code": "invalid", "message"}}``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field, self.problem = field, problem


def control_error(error: ControlError) -> tuple[Response, int]:
    """Answer a ControlError."""
    return jsonify({"error": {"code": "invalid", "message": f"{error.field} {error.problem}"}}), 400


def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if body is None and not request.get_data():
        return {}
    if not isinstance(body, dict):
        raise ControlError("body", "must be a JSON object")
    return body


def _number(body: dict[str, Any], field: str, default: Any, kind: type = int, low: float = 0,
            high: float | None = None) -> Any:
    value = body.get(field, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or (kind is int and not isinstance(value, int)):
        raise ControlError(field, f"must be a{'n integer' if kind is int else ' number'}")
    if value < low or (high is not None and value > high):
        raise ControlError(field, f"must be between {low} and {high}" if high is not None else f"must be >= {low}")
    return value


def _url(value: Any, field: str, placeholder: str | None = None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ControlError(field, "must be an http(s) URL or null")
    if placeholder and placeholder not in value:
        raise ControlError(field, f"must contain {placeholder}")
    return value


@bp.get("/info")
def info() -> Response:
    """Return api_base, token, client id and secret, portal id and the other sandbox URLs."""
    return jsonify(current_sandbox().info(request.host_url.rstrip("/")))


@bp.post("/webhooks")
def set_webhooks() -> Response:
    """Register the app's target: {"url", "subscriptions"?, "delay_ms"?, "retry_scale"?}; {"url": null} stops."""
    body = _body()
    url = _url(body.get("url"), "url")
    subscriptions = None
    if body.get("subscriptions") is not None:
        try:
            subscriptions = check_subscriptions(body["subscriptions"])
        except ValueError as exc:
            raise ControlError("subscriptions", str(exc)) from None
    sandbox = current_sandbox()
    scale = _number(body, "retry_scale", None, float, 0.000001, 1)
    if scale is not None:
        sandbox.webhooks.set_retry_scale(float(scale))
    sandbox.set_webhooks(url, subscriptions, _number(body, "delay_ms", 0))
    return jsonify(sandbox.webhooks.settings())


@bp.get("/webhooks")
def webhook_log() -> Response:
    """Return the webhook settings, counters and delivery log."""
    sandbox = current_sandbox()
    return jsonify({**sandbox.webhooks.settings(), **sandbox.webhooks.snapshot()})


@bp.post("/panel")
def set_panel() -> Response:
    """Set the panel URL the record page embeds: {"url_template": "...{id}..."} ({portal} optional)."""
    template = _url(_body().get("url_template"), "url_template", "{id}")
    current_sandbox().set_panel_template(template)
    return jsonify({"url_template": template})


@bp.post("/card")
def set_card() -> Response:
    """Set the app card's backend URL the record page calls: {"url": "...{id}..."}."""
    url = _url(_body().get("url"), "url", "{id}")
    current_sandbox().set_card_url(url)
    return jsonify({"url": url})


@bp.post("/card/fetch")
def card_fetch() -> Response:
    """Call a backend as ``hubspot.fetch`` does: {"url", "method"?, "body"?, "user_id"?, "user_email"?}."""
    body = _body()
    url = _url(body.get("url"), "url")
    if url is None:
        raise ControlError("url", "is required")
    method = str(body.get("method", "GET")).upper()
    if method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        raise ControlError("method", "must be GET, POST, PUT, PATCH or DELETE")
    return jsonify(fetch_as_card(url, method, body.get("body"), body.get("user_id"), body.get("user_email")))


def fetch_as_card(url: str, method: str = "GET", payload: Any = None, user_id: Any = None,
                  user_email: Any = None) -> dict[str, Any]:
    """Perform a signed ``hubspot.fetch`` for the current sandbox's app and demo user."""
    sandbox = current_sandbox()
    user = FetchUser(int(user_id) if user_id is not None else DEMO_OWNERS[0][3],
                     str(user_email) if user_email is not None else DEMO_OWNERS[0][0])
    return proxied_fetch(sandbox.client_secret, url, epoch_ms(sandbox.clock.now()), method=method, body=payload,
                         portal_id=sandbox.portal_id, app_id=sandbox.config.app_id, user=user)


@bp.post("/faults")
def set_faults() -> Response:
    """Inject faults: {"count", "error_rate", "status", "retry_after", "latency_ms", "seed"}."""
    body = _body()
    plan = FaultPlan(count=_number(body, "count", 0), error_rate=float(_number(body, "error_rate", 0.0, float, 0, 1)),
                     status=_number(body, "status", 503), retry_after=_number(body, "retry_after", None),
                     latency_ms=_number(body, "latency_ms", 0, int, 0, 60_000), seed=_number(body, "seed", None))
    try:
        current_sandbox().faults.set_plan(plan)
    except ValueError as exc:
        raise ControlError("status", str(exc)) from None
    return jsonify(current_sandbox().faults.plan())


@bp.get("/faults")
def get_faults() -> Response:
    """Return the fault plan."""
    return jsonify(current_sandbox().faults.plan())


@bp.delete("/faults")
def clear_faults() -> Response:
    """Remove the fault plan."""
    current_sandbox().faults.set_plan(FaultPlan())
    return jsonify(current_sandbox().faults.plan())


@bp.post("/limits")
def set_limits() -> Response:
    """Change the portal's limits: {"burst", "window_seconds", "daily", "search_per_second"}."""
    body = _body()
    limiter = current_sandbox().limiter
    old = limiter.limits
    limits = replace(old, burst=_number(body, "burst", old.burst, int, 1),
                     window_seconds=float(_number(body, "window_seconds", old.window_seconds, float, 0.001)),
                     daily=_number(body, "daily", old.daily, int, 1),
                     search_per_second=_number(body, "search_per_second", old.search_per_second, int, 1))
    limiter.configure(limits)
    return jsonify(limiter.usage())


@bp.get("/limits")
def get_limits() -> Response:
    """Return the limits and the counts in the current windows."""
    return jsonify(current_sandbox().limiter.usage())


@bp.get("/clock")
def get_clock() -> Response:
    """Return the sandbox's time and its offset from real time."""
    clock = current_sandbox().clock
    return jsonify({"now": clock.now().isoformat(), "offset_seconds": clock.offset_seconds})


@bp.post("/clock")
def set_clock() -> Response:
    """Move the sandbox's time: {"offset_seconds"} sets the offset, {"advance_seconds"} adds to it."""
    body = _body()
    clock = current_sandbox().clock
    if "offset_seconds" in body:
        clock.set_offset(float(_number(body, "offset_seconds", 0, float, -10 ** 9)))
    if "advance_seconds" in body:
        clock.advance(float(_number(body, "advance_seconds", 0, float, -10 ** 9)))
    return get_clock()


@bp.get("/requests")
def request_counts() -> Response:
    """Return API calls by endpoint, in total, and how many the rate limits refused."""
    sandbox = current_sandbox()
    return jsonify({**sandbox.faults.counts(), "throttled": sandbox.limiter.usage()["throttled"]})


@bp.delete("/requests")
def reset_counts() -> tuple[str, int]:
    """Reset the counts and the rate-limit windows."""
    sandbox = current_sandbox()
    sandbox.faults.reset()
    sandbox.limiter.reset()
    return "", 204


@bp.post("/reset")
def reset() -> tuple[str, int]:
    """Delete all objects, associations, custom properties and owners (demo owners come back); keep settings."""
    sandbox = current_sandbox()
    sandbox.store.wipe()
    for email, first, last, user_id in DEMO_OWNERS:
        sandbox.store.add_owner(email, first, last, user_id)
    sandbox.faults.reset()
    sandbox.limiter.reset()
    sandbox.webhooks.clear()
    return "", 204


# -- acting as a HubSpot user -------------------------------------------------------------------------


@bp.get("/objects/<object_type>")
def ui_list(object_type: str) -> Response:
    """Return {"results": [...]}: every live object of a type with all its properties, as a user sees them in
    HubSpot (no token, never counted or limited: a test watching the portal spends none of its API budget)."""
    store, found, after = current_sandbox().store, [], None
    while True:
        page, after = store.page(object_type, after, 1000)
        found += [simple_object(store, record, None, extra=tuple(record["properties"])) for record in page]
        if after is None:
            return jsonify({"results": found})


@bp.get("/objects/<object_type>/<object_id>")
def ui_get(object_type: str, object_id: str) -> Response:
    """Return one live object with all its properties, as a user sees it (404 as the API's when absent)."""
    store = current_sandbox().store
    record = store.get(object_type, object_id)
    return jsonify(simple_object(store, record, None, extra=tuple(record["properties"])))


@bp.get("/objects/<object_type>/<object_id>/associations/<to_type>")
def ui_associations(object_type: str, object_id: str, to_type: str) -> Response:
    """Return {"results": [{"toObjectId", "types"}]}: the live objects of ``to_type`` associated with one object."""
    links = current_sandbox().store.associations(object_type, object_id, to_type)
    return jsonify({"results": [{"toObjectId": int(to_id), "types": [
        {"associationTypeId": type_id, "category": category} for type_id, category in sorted(types.items())]}
        for to_id, types in links]})


@bp.get("/owners")
def ui_owners() -> Response:
    """Return {"results": [...]}: the portal's active owners, as the owners API lists them."""
    return jsonify({"results": current_sandbox().store.owners()})


@bp.post("/objects/<object_type>")
def ui_create(object_type: str) -> tuple[Response, int]:
    """Create an object as a user: {"properties", "associations"?}."""
    body = _body()
    store = current_sandbox().store
    record = store.create(object_type, body.get("properties") or {}, body.get("associations"), CRM_USER)
    return jsonify(simple_object(store, record, None, extra=tuple(record["properties"]))), 201


@bp.patch("/objects/<object_type>/<object_id>")
def ui_update(object_type: str, object_id: str) -> Response:
    """Edit an object as a user: {"properties"}."""
    store = current_sandbox().store
    record = store.update(object_type, object_id, _body().get("properties") or {}, CRM_USER)
    return jsonify(simple_object(store, record, None, extra=tuple(record["properties"])))


@bp.delete("/objects/<object_type>/<object_id>")
def ui_delete(object_type: str, object_id: str) -> tuple[str, int]:
    """Delete (archive) an object as a user."""
    current_sandbox().store.archive(object_type, object_id, CRM_USER)
    return "", 204


@bp.post("/objects/<object_type>/merge")
def ui_merge(object_type: str) -> Response:
    """Merge two objects as a user: {"primaryObjectId", "objectIdToMerge"}."""
    body = _body()
    store = current_sandbox().store
    record = store.merge(object_type, str(body.get("primaryObjectId", "")), str(body.get("objectIdToMerge", "")),
                         CRM_USER)
    return jsonify(simple_object(store, record, None, extra=tuple(record["properties"])))


@bp.post("/associations")
def ui_associate() -> Response:
    """Associate two objects as a user: {"from_type", "from_id", "to_type", "to_id"} (default type)."""
    body = _body()
    types = current_sandbox().store.associate(str(body.get("from_type")), str(body.get("from_id")),
                                              str(body.get("to_type")), str(body.get("to_id")), None, CRM_USER)
    return jsonify({"types": [t for t, _ in types]})


@bp.delete("/associations")
def ui_dissociate() -> tuple[str, int]:
    """Remove an association as a user: {"from_type", "from_id", "to_type", "to_id"}."""
    body = _body()
    current_sandbox().store.dissociate(str(body.get("from_type")), str(body.get("from_id")),
                                       str(body.get("to_type")), str(body.get("to_id")), CRM_USER)
    return "", 204


@bp.post("/owners")
def add_owner() -> tuple[Response, int]:
    """Add an owner: {"email", "firstName", "lastName", "userId"?}."""
    body = _body()
    if not isinstance(body.get("email"), str) or "@" not in body["email"]:
        raise ControlError("email", "must be an email address")
    owner = current_sandbox().store.add_owner(body["email"], str(body.get("firstName", "")),
                                              str(body.get("lastName", "")), _number(body, "userId", None))
    return jsonify(owner), 201


@bp.post("/seed")
def seed() -> tuple[Response, int]:
    """Create {"contacts": N, "seed": S} demo contacts without sending webhooks; returns their ids."""
    body = _body()
    count, rng = _number(body, "contacts", 10, int, 0, MAX_SEED), random.Random(_number(body, "seed", 0))
    store = current_sandbox().store
    ids = [store.create("contacts", _demo_contact(rng, index), source=CRM_USER, notify=False)["id"]
           for index in range(count)]
    return jsonify({"ids": ids}), 201


def _demo_contact(rng: random.Random, index: int) -> dict[str, str]:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    return {"firstname": first, "lastname": last, "email": f"{first}.{last}.{index}@example.com".lower(),
            "company": f"{last} & Co {index % 7}", "phone": f"+1 555 01{index % 100:02d}",
            "address": f"{index + 1} Main St", "city": "Springfield", "state": "IL", "zip": "62701",
            "country": "US"}


@bp.post("/oauth/expire")
def expire_tokens() -> Response:
    """Expire every OAuth access token now."""
    return jsonify({"expired": current_sandbox().oauth.expire_access_tokens()})


@bp.post("/oauth/revoke")
def revoke_grant() -> Response:
    """Revoke a refresh token as an uninstall would: {"refresh_token"}."""
    token = _body().get("refresh_token")
    if not isinstance(token, str) or not current_sandbox().oauth.revoke(token):
        raise ControlError("refresh_token", "is not a live refresh token")
    return jsonify({"revoked": token})


@bp.get("/oauth/grants")
def oauth_grants() -> Response:
    """Return the grants issued so far."""
    return jsonify({"grants": current_sandbox().oauth.grants()})
