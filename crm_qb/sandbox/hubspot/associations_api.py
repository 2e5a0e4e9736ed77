"""Associations v4 (docs/hubspot/facts.md §4): labelled and default associations, single and batch.

Object ids in v4 bodies are strings in HubSpot's spec; they are answered as strings here too.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from crm_qb.sandbox.hubspot import errors
from crm_qb.sandbox.hubspot.http import (
    batch_envelope,
    int_arg,
    json_body,
    json_object,
    json_response,
    no_content,
    object_kind,
)
from crm_qb.sandbox.hubspot.schema import PRIMARY_LABEL, ObjectType, default_type_id, primary_type_id
from crm_qb.sandbox.hubspot.state import current_sandbox
from crm_qb.sandbox.hubspot.store import API_SOURCE, decode_after, encode_after

bp = Blueprint("hubspot_associations", __name__, url_prefix="/crm/v4")
MAX_BATCH = 100


def _labels(from_type: str, to_type: str, types: dict[int, str]) -> list[dict[str, Any]]:
    """Return v4 ``associationTypes`` items ({category, typeId, label}) for stored type ids."""
    primary = primary_type_id(from_type, to_type)
    return [{"category": category, "typeId": type_id, "label": PRIMARY_LABEL if type_id == primary else None}
            for type_id, category in sorted(types.items())]


@bp.put("/objects/<object_type>/<object_id>/associations/<to_type>/<to_id>")
def associate(object_type: str, object_id: str, to_type: str, to_id: str) -> Response:
    """Associate two objects with the labels in the body (an array of association specs); 201."""
    a, b = object_kind(object_type), object_kind(to_type)
    store = current_sandbox().store
    specs = store.check_specs(json_body())
    now = store.associate(a.name, object_id, b.name, to_id, specs, API_SOURCE)
    labels = [label["label"] for label in _labels(a.name, b.name, dict(now)) if label["label"]]
    return json_response({"fromObjectTypeId": a.type_id, "fromObjectId": object_id, "toObjectTypeId": b.type_id,
                          "toObjectId": to_id, "labels": labels}, 201)


@bp.put("/objects/<object_type>/<object_id>/associations/default/<to_type>/<to_id>")
def associate_default(object_type: str, object_id: str, to_type: str, to_id: str) -> Response:
    """Associate two objects with the default (unlabeled) type; 200 with a batch envelope."""
    a, b = object_kind(object_type), object_kind(to_type)
    sandbox = current_sandbox()
    started = sandbox.clock.now()
    sandbox.store.associate(a.name, object_id, b.name, to_id, None, API_SOURCE)
    return json_response(batch_envelope(_default_results(a, object_id, b, to_id), started, sandbox.clock.now()))


def _default_results(a: ObjectType, a_id: str, b: ObjectType, b_id: str) -> list[dict[str, Any]]:
    results = []
    for (x, x_id, y, y_id) in ((a, a_id, b, b_id), (b, b_id, a, a_id)):
        results.append({"from": {"id": x_id}, "to": {"id": y_id}, "associationSpec": {
            "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": default_type_id(x.name, y.name)}})
    return results


@bp.get("/objects/<object_type>/<object_id>/associations/<to_type>")
def list_associations(object_type: str, object_id: str, to_type: str) -> Response:
    """List an object's associations of one type (``limit`` default 500, ``after``)."""
    a, b = object_kind(object_type), object_kind(to_type)
    store = current_sandbox().store
    store.get(a.name, object_id)  # 404 for an unknown object
    start, limit = decode_after(request.args.get("after")), int_arg("limit", 500, 500)
    rows = [(to_id, types) for to_id, types in store.associations(a.name, object_id, b.name) if int(to_id) >= start]
    body: dict[str, Any] = {"results": [{"toObjectId": to_id, "associationTypes": _labels(a.name, b.name, types)}
                                        for to_id, types in rows[:limit]]}
    if len(rows) > limit:
        after = encode_after(rows[limit][0])
        body["paging"] = {"next": {"after": after, "link": f"?after={after}"}}
    return json_response(body)


@bp.delete("/objects/<object_type>/<object_id>/associations/<to_type>/<to_id>")
def remove_association(object_type: str, object_id: str, to_type: str, to_id: str) -> Response:
    """Remove every association between two objects; 204."""
    a, b = object_kind(object_type), object_kind(to_type)
    current_sandbox().store.dissociate(a.name, object_id, b.name, to_id, API_SOURCE)
    return no_content()


def _batch_inputs() -> list[dict[str, Any]]:
    inputs = json_object().get("inputs")
    if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
        raise errors.validation_error("inputs must be an array of objects")
    if len(inputs) > MAX_BATCH:
        raise errors.batch_too_large(MAX_BATCH)
    return inputs


def _id(value: Any) -> str:
    return str(value.get("id", "")) if isinstance(value, dict) else str(value or "")


@bp.post("/associations/<from_type>/<to_type>/batch/create")
def batch_create(from_type: str, to_type: str) -> Response:
    """Create labelled associations: inputs [{from: {id}, to: {id}, types: [spec]}]; 201 (207 with errors)."""
    a, b = object_kind(from_type), object_kind(to_type)
    sandbox = current_sandbox()
    started, results, failures = sandbox.clock.now(), [], []
    for item in _batch_inputs():
        try:
            specs = sandbox.store.check_specs(item.get("types"))
            now = sandbox.store.associate(a.name, _id(item.get("from")), b.name, _id(item.get("to")), specs,
                                          API_SOURCE)
        except errors.HubSpotError as exc:
            failures.append(errors.standard_error(exc.body["category"], exc.body["message"],
                                                  exc.body.get("context")))
            continue
        labels = [x["label"] for x in _labels(a.name, b.name, dict(now)) if x["label"]]
        results.append({"fromObjectTypeId": a.type_id, "fromObjectId": _id(item.get("from")),
                        "toObjectTypeId": b.type_id, "toObjectId": _id(item.get("to")), "labels": labels})
    body = batch_envelope(results, started, sandbox.clock.now(), failures)
    return json_response(body, 207 if failures else 201)


@bp.post("/associations/<from_type>/<to_type>/batch/associate/default")
def batch_default(from_type: str, to_type: str) -> Response:
    """Create default associations: inputs [{from: {id}, to: {id}}]; 200."""
    a, b = object_kind(from_type), object_kind(to_type)
    sandbox = current_sandbox()
    started, results = sandbox.clock.now(), []
    for item in _batch_inputs():
        from_id, to_id = _id(item.get("from")), _id(item.get("to"))
        sandbox.store.associate(a.name, from_id, b.name, to_id, None, API_SOURCE)
        results += _default_results(a, from_id, b, to_id)
    return json_response(batch_envelope(results, started, sandbox.clock.now()))


@bp.post("/associations/<from_type>/<to_type>/batch/read")
def batch_read(from_type: str, to_type: str) -> Response:
    """Read associations of many objects: inputs [{id}]; 200 (207 when some ids are unknown)."""
    a, b = object_kind(from_type), object_kind(to_type)
    sandbox = current_sandbox()
    started, results, missing = sandbox.clock.now(), [], []
    for item in _batch_inputs():
        object_id = _id(item)
        try:
            sandbox.store.get(a.name, object_id)
        except errors.HubSpotError:
            missing.append(object_id)
            continue
        linked = sandbox.store.associations(a.name, object_id, b.name)
        results.append({"from": {"id": object_id}, "to": [
            {"toObjectId": to_id, "associationTypes": _labels(a.name, b.name, types)} for to_id, types in linked]})
    failures = [errors.standard_error("OBJECT_NOT_FOUND", f"No {a.singular} with these ids", {"ids": missing})
                ] if missing else []
    body = batch_envelope(results, started, sandbox.clock.now(), failures)
    return json_response(body, 207 if failures else 200)


@bp.post("/associations/<from_type>/<to_type>/batch/archive")
def batch_archive(from_type: str, to_type: str) -> Response:
    """Remove associations: inputs [{from: {id}, to: [{id}]}]; 204."""
    a, b = object_kind(from_type), object_kind(to_type)
    store = current_sandbox().store
    for item in _batch_inputs():
        targets = item.get("to") if isinstance(item.get("to"), list) else [item.get("to")]
        for target in targets:
            store.dissociate(a.name, _id(item.get("from")), b.name, _id(target), API_SOURCE)
    return no_content()


@bp.post("/associations/<from_type>/<to_type>/batch/labels/archive")
def batch_archive_labels(from_type: str, to_type: str) -> Response:
    """Remove some labels only: inputs [{from: {id}, to: {id}, types: [spec]}]; 204."""
    a, b = object_kind(from_type), object_kind(to_type)
    store = current_sandbox().store
    for item in _batch_inputs():
        type_ids = [type_id for type_id, _ in store.check_specs(item.get("types"))]
        store.dissociate(a.name, _id(item.get("from")), b.name, _id(item.get("to")), API_SOURCE, type_ids)
    return no_content()
