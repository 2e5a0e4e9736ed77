"""The sandbox-only control API under /_sandbox/ (documented endpoint by endpoint in CONTROL.md).

It acts as a bookkeeper in the QBO UI (no SyncToken needed; every change emits the same webhooks the API
does), creates seeded realms, injects faults, moves the clock and reports request counts.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from flask import Blueprint, Response, request

from . import faults
from .billing import invoice_for_time
from .entities import spec_for
from .http import error_json, json_response
from .money import to_decimal
from .sandbox import Sandbox
from .seeding import seed_realm


class ControlError(Exception):
    """A bad control request: answered 400 (or ``status``) as {"error": {"code", "message"}}."""

    def __init__(self, message: str, status: int = 400, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


def make_control_blueprint(sandbox: Sandbox, base_url: Callable[[], str]) -> Blueprint:
    """The /_sandbox blueprint bound to ``sandbox``."""
    bp = Blueprint("qbo_control", __name__, url_prefix="/_sandbox")

    @bp.errorhandler(ControlError)
    def control_error(error: ControlError) -> Response:
        return error_json(error.code, error.message, error.status)

    @bp.errorhandler(faults.QboFault)
    def qbo_fault(fault: faults.QboFault) -> Response:
        return error_json(fault.code, f"{fault.message}: {fault.detail}", 400)

    @bp.get("/info")
    def info() -> Response:
        return json_response(sandbox.info(base_url()))

    _webhook_routes(bp, sandbox)
    _realm_routes(bp, sandbox)
    _bookkeeper_routes(bp, sandbox)
    _fault_routes(bp, sandbox)
    return bp


def _body() -> dict:
    body = request.get_json(silent=True)
    if body is None and not request.get_data():
        return {}
    if not isinstance(body, dict):
        raise ControlError("the request body must be a JSON object")
    return body


def _int(body: dict, name: str, default: int | None = None, minimum: int = 0) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ControlError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _realm(sandbox: Sandbox, realm_id: str):
    realm = sandbox.store.realm(realm_id)
    if realm is None:
        raise ControlError(f"unknown realm {realm_id!r}", 404, "not_found")
    return realm


def _entity(name: str) -> str:
    spec = spec_for(name)
    if spec is None or spec.kind == "single":
        raise ControlError(f"unknown entity {name!r}", 404, "not_found")
    return spec.name


def _webhook_routes(bp: Blueprint, sandbox: Sandbox) -> None:
    @bp.post("/webhooks")
    def register_webhook() -> Response:
        body = _body()
        url, fmt = body.get("url"), body.get("format", "cloudevents")
        delay_ms = _int(body, "delay_ms", sandbox.config.aggregation_delay_ms)
        realm_id = body.get("realm")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ControlError(f"url must be an http(s) URL, got {url!r}")
        if realm_id is not None:
            _realm(sandbox, str(realm_id))
        try:
            sandbox.dispatcher.register(url, fmt, delay_ms, None if realm_id is None else str(realm_id))
        except ValueError as exc:
            raise ControlError(str(exc)) from exc
        return json_response({"url": url, "format": fmt, "delay_ms": delay_ms, "realm": realm_id}, 201)

    @bp.get("/webhooks")
    def webhook_status() -> Response:
        return json_response({"pending": sandbox.dispatcher.pending(),
                              "delivered": sandbox.dispatcher.delivered()})


def _realm_routes(bp: Blueprint, sandbox: Sandbox) -> None:
    @bp.post("/realms")
    def create_realm() -> Response:
        body = _body()
        home = str(body.get("home_currency", sandbox.config.home_currency))
        multicurrency = body.get("multicurrency", False)
        if not isinstance(multicurrency, bool):
            raise ControlError("multicurrency must be true or false")
        try:
            realm_id = seed_realm(sandbox, _int(body, "customers", 0), _int(body, "transactions", 0),
                                  multicurrency, _int(body, "seed", 0), home)
        except ValueError as exc:
            raise ControlError(str(exc)) from exc
        return json_response({"realm_id": realm_id}, 201)

    @bp.get("/realms")
    def list_realms() -> Response:
        realms = [vars(sandbox.store.realm(realm_id).settings) for realm_id in sandbox.store.realm_ids()]
        return json_response({"realms": realms})

    @bp.get("/realms/<realm_id>/requests")
    def request_counts(realm_id: str) -> Response:
        realm = _realm(sandbox, realm_id)
        with realm.lock:
            counts = dict(realm.request_counts)
        total, throttled, metered = counts.pop("total", 0), counts.pop("throttled", 0), counts.pop("metered", 0)
        return json_response({"realm_id": realm_id, "total": total, "throttled": throttled, "metered": metered,
                              "by_endpoint": dict(sorted(counts.items()))})

    @bp.delete("/realms/<realm_id>/requests")
    def reset_counts(realm_id: str) -> Response:
        realm = _realm(sandbox, realm_id)
        with realm.lock:
            realm.request_counts.clear()
        return Response(status=204)


def _bookkeeper_routes(bp: Blueprint, sandbox: Sandbox) -> None:
    engine = sandbox.engine

    @bp.get("/realms/<realm_id>/entities/<name>/<obj_id>")
    def read(realm_id: str, name: str, obj_id: str) -> Response:
        _realm(sandbox, realm_id)
        entity = _entity(name)
        return json_response({entity: engine.read(realm_id, entity, obj_id)})

    @bp.post("/realms/<realm_id>/entities/<name>")
    def create(realm_id: str, name: str) -> Response:
        _realm(sandbox, realm_id)
        entity = _entity(name)
        return json_response({entity: engine.create(realm_id, entity, _body())}, 201)

    @bp.patch("/realms/<realm_id>/entities/<name>/<obj_id>")
    def edit(realm_id: str, name: str, obj_id: str) -> Response:
        _realm(sandbox, realm_id)
        entity = _entity(name)
        body = {**_body(), "Id": obj_id, "sparse": True}
        return json_response({entity: engine.update(realm_id, entity, body, check_token=False)})

    @bp.post("/realms/<realm_id>/entities/<name>/<obj_id>/void")
    def void(realm_id: str, name: str, obj_id: str) -> Response:
        _realm(sandbox, realm_id)
        entity = _entity(name)
        return json_response({entity: engine.void(realm_id, entity, {"Id": obj_id}, check_token=False)})

    @bp.post("/realms/<realm_id>/entities/<name>/<obj_id>/send")
    def send(realm_id: str, name: str, obj_id: str) -> Response:
        _realm(sandbox, realm_id)
        entity = _entity(name)
        return json_response({entity: engine.send(realm_id, entity, obj_id, _body().get("to"))})

    @bp.delete("/realms/<realm_id>/entities/<name>/<obj_id>")
    def delete(realm_id: str, name: str, obj_id: str) -> Response:
        _realm(sandbox, realm_id)
        entity = _entity(name)
        if entity == "Customer":
            return json_response({entity: engine.deactivate_customer(realm_id, obj_id)})
        return json_response({entity: engine.delete(realm_id, entity, {"Id": obj_id}, check_token=False)})

    @bp.post("/realms/<realm_id>/payments")
    def record_payment(realm_id: str) -> Response:
        _realm(sandbox, realm_id)
        payment = _payment_body(sandbox, realm_id, _body())
        return json_response({"Payment": engine.create(realm_id, "Payment", payment)}, 201)

    @bp.post("/realms/<realm_id>/time/bill")
    def bill_time(realm_id: str) -> Response:
        _realm(sandbox, realm_id)
        invoice = _time_invoice(sandbox, realm_id, _body())
        return json_response({"Invoice": engine.create(realm_id, "Invoice", invoice)}, 201)

    @bp.post("/realms/<realm_id>/customers/merge")
    def merge(realm_id: str) -> Response:
        _realm(sandbox, realm_id)
        body = _body()
        source, target = body.get("from"), body.get("into")
        if not isinstance(source, str) or not isinstance(target, str):
            raise ControlError("from and into must be customer ids (strings)")
        return json_response({"Customer": engine.merge_customers(realm_id, source, target)})


def _payment_body(sandbox: Sandbox, realm_id: str, body: dict) -> dict:
    """A Payment for ``customer_id`` of ``amount``, applied to the given invoices or to open ones oldest first."""
    customer_id = body.get("customer_id")
    if not isinstance(customer_id, str):
        raise ControlError("customer_id must be a customer id (string)")
    try:
        amount = to_decimal(body.get("amount"))
    except ValueError as exc:
        raise ControlError(str(exc)) from exc
    wanted = body.get("invoices")
    if wanted is None:
        wanted = _open_invoices(sandbox, realm_id, customer_id, amount + _credit_total(body.get("credits")))
    lines = _applied_lines(wanted, "invoices", "Invoice") + _applied_lines(body.get("credits") or [], "credits",
                                                                            "CreditMemo")
    payment = {"CustomerRef": {"value": customer_id}, "TotalAmt": amount, "Line": lines}
    for key in ("TxnDate", "PaymentRefNum", "PrivateNote", "ExchangeRate"):
        if key in body:
            payment[key] = body[key]
    return payment


def _applied_lines(entries: object, name: str, txn_type: str) -> list[dict]:
    """Payment lines applying ``amount`` to each ``{"id", "amount"}`` entry of type ``txn_type``."""
    if not isinstance(entries, list):
        raise ControlError(f'{name} must be a list of {{"id": "...", "amount": n}}')
    lines = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise ControlError(f'{name} must be a list of {{"id": "...", "amount": n}}')
        try:
            amount = to_decimal(entry.get("amount", 0))
        except ValueError as exc:
            raise ControlError(f"{name}: {exc}") from exc
        lines.append({"Amount": amount, "LinkedTxn": [{"TxnId": entry["id"], "TxnType": txn_type}]})
    return lines


def _credit_total(credits: object) -> Decimal:
    """The credit a payment body applies (0 when it names none); malformed entries fail in ``_applied_lines``."""
    if not isinstance(credits, list):
        return Decimal(0)
    try:
        return sum((to_decimal(entry.get("amount", 0)) for entry in credits if isinstance(entry, dict)),
                   Decimal(0))
    except ValueError as exc:
        raise ControlError(f"credits: {exc}") from exc


def _time_invoice(sandbox: Sandbox, realm_id: str, body: dict) -> dict:
    """The invoice body billing the time activities named in ``body`` (billing.py), as the QBO UI makes it."""
    ids = body.get("time_activity_ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(one, str) for one in ids):
        raise ControlError("time_activity_ids must be a non-empty list of TimeActivity ids (strings)")
    activities = [sandbox.engine.read(realm_id, "TimeActivity", one) for one in ids]
    if any("ItemRef" not in activity for activity in activities):
        raise ControlError("every time activity to bill needs an ItemRef (the invoice line's service item)")
    customers = {(activity.get("CustomerRef") or {}).get("value") for activity in activities}
    customer_id = body.get("customer_id") or (customers.pop() if len(customers) == 1 else None)
    if not isinstance(customer_id, str):
        raise ControlError("customer_id is needed when the time activities have different or no customers")
    invoice = invoice_for_time(activities, customer_id)
    for key in ("TxnDate", "DocNumber", "DueDate", "PrivateNote"):
        if key in body:
            invoice[key] = body[key]
    return invoice


def _open_invoices(sandbox: Sandbox, realm_id: str, customer_id: str, amount: Decimal) -> list[dict]:
    rows = [row for row in sandbox.engine.rows(realm_id, "Invoice")
            if row["CustomerRef"]["value"] == customer_id and row.get("Balance", 0) > 0]
    rows.sort(key=lambda row: (row.get("TxnDate", ""), int(row["Id"]) if row["Id"].isdigit() else 0))
    applied, left = [], amount
    for row in rows:
        if left <= 0:
            break
        part = min(left, row["Balance"])
        applied.append({"id": row["Id"], "amount": part})
        left -= part
    return applied


def _limits(sandbox: Sandbox) -> dict:
    per_minute, concurrent = sandbox.limiter.limits
    return {"per_minute": per_minute, "concurrent": concurrent, "window_seconds": sandbox.limiter.window,
            "batch_per_minute": sandbox.limiter.batch_per_minute}


def _fault_routes(bp: Blueprint, sandbox: Sandbox) -> None:
    @bp.post("/faults")
    def set_faults() -> Response:
        body = _body()
        realm_id = body.pop("realm", None)
        seed = body.pop("seed", None)
        unknown = set(body) - {"error_rate", "error_status", "latency_ms", "fault_in_200_rate"}
        if unknown:
            raise ControlError(f"unknown fault settings: {sorted(unknown)}")
        try:
            rule = sandbox.faults.configure(realm_id, seed, **body)
        except (TypeError, ValueError) as exc:
            raise ControlError(str(exc)) from exc
        return json_response({"realm": realm_id, **vars(rule)})

    @bp.get("/faults")
    def get_faults() -> Response:
        return json_response(sandbox.faults.rules())

    @bp.delete("/faults")
    def clear_faults() -> Response:
        sandbox.faults.clear()
        return Response(status=204)

    @bp.post("/throttle")
    def throttle() -> Response:
        body = _body()
        realm_id = str(body.get("realm") or sandbox.demo_realm_id)
        _realm(sandbox, realm_id)
        seconds = body.get("seconds", 60)
        try:
            sandbox.limiter.throttle_now(realm_id, seconds)
        except ValueError as exc:
            raise ControlError(str(exc)) from exc
        return json_response({"realm": realm_id, "seconds": seconds})

    @bp.post("/limits")
    def limits() -> Response:
        body = _body()
        try:
            sandbox.limiter.configure(body.get("per_minute"), body.get("concurrent"), body.get("window_seconds"),
                                      body.get("batch_per_minute"))
        except ValueError as exc:
            raise ControlError(str(exc)) from exc
        answer = _limits(sandbox)
        if "batch_per_minute" not in body:
            del answer["batch_per_minute"]  # the answer before batch metering existed, for older callers
        return json_response(answer)

    @bp.get("/limits")
    def get_limits() -> Response:
        return json_response(_limits(sandbox))

    @bp.get("/clock")
    def get_clock() -> Response:
        return json_response({"now": sandbox.clock.now().isoformat(), "offset_seconds": sandbox.clock.offset_seconds})

    @bp.post("/clock")
    def set_clock() -> Response:
        body = _body()
        for name in ("offset_seconds", "advance_seconds"):
            value = body.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ControlError(f"{name} must be a number of seconds")
        if body.get("offset_seconds") is not None:
            sandbox.clock.set_offset(body["offset_seconds"])
        if body.get("advance_seconds") is not None:
            sandbox.clock.advance(body["advance_seconds"])
        return json_response({"now": sandbox.clock.now().isoformat(), "offset_seconds": sandbox.clock.offset_seconds})
