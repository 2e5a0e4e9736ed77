"""The accounting API under /v3/company/<realm>/: entities, query, CDC, batch, exchange rates.

Every request passes the gateway first (bearer token → 401/403 in the gateway's shape), then the per-realm
limiter (429 with the XML body), then injected faults; each is counted per realm and endpoint.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Blueprint, Response, request

from . import faults
from .batch import item_count, run_batch
from .clock import company_zone, response_time
from .entities import BY_PATH
from .http import data_response, json_body, json_response
from .limits import throttle_xml
from .rates import get_rate, set_rate
from .reading import change_data_capture, run_query
from .sandbox import Sandbox

MAX_REQUEST_ID = 50


def make_api_blueprint(sandbox: Sandbox) -> Blueprint:
    """The /v3 blueprint bound to ``sandbox``."""
    bp = Blueprint("qbo_api", __name__, url_prefix="/v3/company/<realm_id>")

    @bp.get("/<path:rest>")
    def get(realm_id: str, rest: str) -> Response:
        return _guarded(sandbox, realm_id, lambda: _get(sandbox, realm_id, rest))

    @bp.post("/<path:rest>")
    def post(realm_id: str, rest: str) -> Response:
        return _guarded(sandbox, realm_id, lambda: _post(sandbox, realm_id, rest))

    return bp


def _guarded(sandbox: Sandbox, realm_id: str, handler: Callable[[], Response]) -> Response:
    gate = _gateway(sandbox, realm_id)
    if gate is not None:
        return gate
    realm = sandbox.store.realm(realm_id)
    label = _label()
    if not sandbox.limiter.try_acquire(realm_id):
        with realm.lock:
            realm.request_counts.update(("throttled", "total", label))
        return _throttled(sandbox)
    try:
        with realm.lock:
            realm.request_counts.update(("total", "metered", label))
        return _with_injected_faults(sandbox, realm_id, handler)
    finally:
        sandbox.limiter.release(realm_id)


def _throttled(sandbox: Sandbox) -> Response:
    """QBO's 429: the XML fault 3001 even when JSON was asked for (FACTS 2.5)."""
    return Response(throttle_xml(sandbox.clock.now()), status=429, mimetype="application/xml")


def _batch(sandbox: Sandbox, realm_id: str) -> Response:
    """Meter every item of the batch against the realm's window (limits.py) before running any."""
    body = json_body()
    items = item_count(body)
    realm = sandbox.store.realm(realm_id)
    if not sandbox.limiter.try_batch(realm_id, items):
        with realm.lock:
            realm.request_counts.update(("throttled",))
        return _throttled(sandbox)
    with realm.lock:
        realm.request_counts["metered"] += items - 1
    answers = run_batch(sandbox.engine, realm_id, body)
    return json_response({"BatchItemResponse": answers, "time": _now_text(sandbox, realm_id)})


def _gateway(sandbox: Sandbox, realm_id: str) -> Response | None:
    """Intuit's gateway checks the bearer token before the data service sees the request."""
    epoch_ms = int(sandbox.clock.now().timestamp() * 1000)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    allowed = sandbox.oauth.realm_for(token.strip()) if scheme.lower() == "bearer" and token else None
    if allowed is None:
        detail = "Malformed bearer token: too short or too long" if not token else "Token expired or revoked"
        response = json_response(faults.gateway_401(epoch_ms, detail), 401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="Intuit", error="invalid_token"'
        return response
    if allowed != realm_id or sandbox.store.realm(realm_id) is None:
        return json_response(faults.gateway_403(epoch_ms), 403)
    return None


def _with_injected_faults(sandbox: Sandbox, realm_id: str, handler: Callable[[], Response]) -> Response:
    decision = sandbox.faults.decide(realm_id)
    if decision.latency_seconds:
        time.sleep(decision.latency_seconds)
    if decision.error_status is not None:
        return _fault_response(sandbox, realm_id, faults.system_fault(), decision.error_status)
    if decision.fault_in_200:
        return _fault_response(sandbox, realm_id, faults.system_fault(), 200)
    try:
        return handler()
    except faults.QboFault as fault:
        return _fault_response(sandbox, realm_id, fault, fault.status)


def _fault_response(sandbox: Sandbox, realm_id: str, fault: faults.QboFault, status: int) -> Response:
    return json_response({"Fault": fault.body(), "time": _now_text(sandbox, realm_id)}, status)


def _now_text(sandbox: Sandbox, realm_id: str) -> str:
    realm = sandbox.store.realm(realm_id)
    return response_time(sandbox.clock.now(), company_zone(realm.settings.zone_name))


def _label() -> str:
    """The endpoint a request counts against, e.g. ``GET /customer/{id}`` or ``POST /invoice?operation=void``."""
    parts = request.view_args.get("rest", "").split("/")
    template = "/".join("{id}" if index == 1 else part for index, part in enumerate(parts))
    operation = request.args.get("operation")
    return f"{request.method} /{template}" + (f"?operation={operation}" if operation else "")


def _entity_response(sandbox: Sandbox, realm_id: str, entity: str, obj: dict) -> Response:
    return json_response({entity: obj, "time": _now_text(sandbox, realm_id)})


def _get(sandbox: Sandbox, realm_id: str, rest: str) -> Response:
    parts = rest.split("/")
    if parts == ["query"]:
        return _query(sandbox, realm_id, request.args.get("query", ""))
    if parts == ["cdc"]:
        body = change_data_capture(sandbox.engine, realm_id, request.args.get("entities"),
                                   request.args.get("changedSince"))
        return json_response({"CDCResponse": [body], "time": _now_text(sandbox, realm_id)})
    if parts == ["exchangerate"]:
        rate = get_rate(sandbox.engine, realm_id, request.args.get("sourcecurrencycode"),
                        request.args.get("asofdate"))
        return _entity_response(sandbox, realm_id, "ExchangeRate", rate)
    if parts == ["preferences"]:
        return _entity_response(sandbox, realm_id, "Preferences",
                                sandbox.engine.read(realm_id, "Preferences", "1"))
    spec = BY_PATH.get(parts[0])
    if spec is None or len(parts) != 2 or spec.name in ("ExchangeRate", "Preferences"):
        raise faults.unsupported_operation(f"Unsupported operation or resource: GET /{rest}")
    obj_id = "1" if spec.name == "CompanyInfo" else parts[1]
    return _entity_response(sandbox, realm_id, spec.name, sandbox.engine.read(realm_id, spec.name, obj_id))


def _query(sandbox: Sandbox, realm_id: str, text: str) -> Response:
    response = run_query(sandbox.engine, realm_id, text)
    return data_response({"QueryResponse": response, "time": _now_text(sandbox, realm_id)})


def _post(sandbox: Sandbox, realm_id: str, rest: str) -> Response:
    request_id = request.args.get("requestid")
    if request_id is None:
        return _post_once(sandbox, realm_id, rest)
    if len(request_id) > MAX_REQUEST_ID:
        raise faults.invalid_request_id()
    realm = sandbox.store.realm(realm_id)
    # Held across the write so a concurrent repeat waits for, then returns, the first answer.
    with realm.lock:
        seen = realm.request_ids.get(request_id)
        if seen is not None:
            return Response(seen[1], status=seen[0], mimetype="application/json")
        try:
            response = _post_once(sandbox, realm_id, rest)
        except faults.QboFault as fault:
            response = _fault_response(sandbox, realm_id, fault, fault.status)
        if response.status_code != 429:  # a throttled batch never reached the service: a retry must run it
            realm.request_ids[request_id] = (response.status_code, response.get_data(as_text=True))
        return response


def _post_once(sandbox: Sandbox, realm_id: str, rest: str) -> Response:
    parts = rest.split("/")
    if parts == ["query"]:
        return _query(sandbox, realm_id, request.get_data(as_text=True))
    if parts == ["batch"]:
        return _batch(sandbox, realm_id)
    if parts == ["exchangerate"]:
        return _entity_response(sandbox, realm_id, "ExchangeRate", set_rate(sandbox.engine, realm_id, _dict()))
    spec = BY_PATH.get(parts[0])
    if spec is None:
        raise faults.unsupported_operation(f"Unsupported operation or resource: POST /{rest}")
    if len(parts) == 3 and parts[2] == "send":
        obj = sandbox.engine.send(realm_id, spec.name, parts[1], request.args.get("sendTo"))
        return _entity_response(sandbox, realm_id, spec.name, obj)
    if len(parts) != 1:
        raise faults.unsupported_operation(f"Unsupported operation or resource: POST /{rest}")
    return _entity_response(sandbox, realm_id, spec.name, _write(sandbox, realm_id, spec.name, _dict()))


def _write(sandbox: Sandbox, realm_id: str, entity: str, body: dict) -> dict:
    operation = request.args.get("operation", "")
    engine = sandbox.engine
    if operation == "delete":
        return engine.delete(realm_id, entity, body)
    if operation == "void" or (operation == "update" and request.args.get("include") == "void"):
        return engine.void(realm_id, entity, body)
    if operation not in ("", "update", "create"):
        raise faults.unsupported_operation(f"Operation {operation} is not supported.")
    if body.get("Id") not in (None, "") and operation != "create":
        obj = engine.update(realm_id, entity, body)
        if entity == "Preferences" and sandbox.persister:
            sandbox.persister.save_realm(sandbox.store.realm(realm_id).settings)
        return obj
    return engine.create(realm_id, entity, body)


def _dict() -> dict:
    body = json_body()
    if not isinstance(body, dict):
        raise faults.QboFault("2010", "Request has invalid or unsupported property",
                              "The request body must be a JSON object")
    return body
