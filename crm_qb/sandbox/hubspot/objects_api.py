"""CRM v3 objects API: ``/crm/v3/objects/<type>`` for contacts, companies, tasks, calls, meetings and notes.

Status codes are the ones HubSpot's client keys its models on (docs/hubspot/facts.md §0): create 201, batch
create 201 or 207, batch read/update/upsert 200 or 207, archive and batch archive 204, the rest 200. A batch
whose inputs all carry distinct ``objectWriteTraceId`` values reports failures per input (207); without them
one bad input fails the whole batch with the single error, as HubSpot's error-handling guide describes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, request

from crm_qb.sandbox.hubspot import errors
from crm_qb.sandbox.hubspot.http import (
    batch_envelope,
    bool_arg,
    int_arg,
    json_object,
    json_response,
    names_arg,
    no_content,
    object_kind,
)
from crm_qb.sandbox.hubspot.render import simple_object
from crm_qb.sandbox.hubspot.schema import object_type
from crm_qb.sandbox.hubspot.search import SearchError, parse_request
from crm_qb.sandbox.hubspot.state import current_sandbox
from crm_qb.sandbox.hubspot.store import API_SOURCE, HubSpotStore

bp = Blueprint("hubspot_objects", __name__, url_prefix="/crm/v3/objects")
MAX_BATCH = 100
MAX_PAGE = 100


def _store() -> HubSpotStore:
    return current_sandbox().store


def _render(record: dict[str, Any], extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Render an object with the properties, history and associations asked for in the query string."""
    return simple_object(_store(), record, names_arg("properties") or None, names_arg("propertiesWithHistory"),
                         names_arg("associations"), extra)


@bp.get("/<object_type>")
def list_objects(object_type: str) -> Response:
    """List a page of objects (``limit`` ≤ 100, ``after`` cursor, ``archived``)."""
    kind = object_kind(object_type)
    found, next_after = _store().page(kind.name, request.args.get("after"), int_arg("limit", 10, MAX_PAGE),
                                      bool_arg("archived"))
    body: dict[str, Any] = {"results": [_render(r) for r in found]}
    if next_after:
        body["paging"] = {"next": {"after": next_after, "link": f"?after={next_after}"}}
    return json_response(body)


@bp.post("/<object_type>")
def create_object(object_type: str) -> Response:
    """Create one object (201), with optional ``associations``."""
    kind = object_kind(object_type)
    body = json_object()
    record = _store().create(kind.name, body.get("properties") or {}, body.get("associations"), API_SOURCE)
    return json_response(simple_object(_store(), record, None, extra=tuple(record["properties"])), 201)


@bp.get("/<object_type>/<object_id>")
def get_object(object_type: str, object_id: str) -> Response:
    """Read one object by id or ``idProperty`` (merged ids answer with the merged object)."""
    kind = object_kind(object_type)
    record = _store().get(kind.name, object_id, request.args.get("idProperty"), bool_arg("archived"))
    return json_response(_render(record))


@bp.patch("/<object_type>/<object_id>")
def update_object(object_type: str, object_id: str) -> Response:
    """Update some properties ("" clears one)."""
    kind = object_kind(object_type)
    record = _store().update(kind.name, object_id, json_object().get("properties") or {}, API_SOURCE,
                             request.args.get("idProperty"))
    return json_response(simple_object(_store(), record, None, extra=tuple(record["properties"])))


@bp.delete("/<object_type>/<object_id>")
def archive_object(object_type: str, object_id: str) -> Response:
    """Archive an object (204 even when it was not there)."""
    _store().archive(object_kind(object_type).name, object_id, API_SOURCE)
    return no_content()


@bp.post("/<object_type>/search")
def search_objects(object_type: str) -> Response:
    """Search with filter groups, sorts, query and paging."""
    kind = object_kind(object_type)
    try:
        search = parse_request(json_object())
    except SearchError as exc:
        raise errors.validation_error(str(exc)) from None
    found, total = _store().search(kind.name, search)
    body: dict[str, Any] = {"total": total, "results": [simple_object(_store(), r, search.properties)
                                                        for r in found]}
    following = search.offset + search.limit
    if following < min(total, 10_000):
        body["paging"] = {"next": {"after": str(following), "link": f"?after={following}"}}
    return json_response(body)


@bp.post("/<object_type>/merge")
def merge_objects(object_type: str) -> Response:
    """Merge ``objectIdToMerge`` into ``primaryObjectId``; the answer is the new merged object."""
    kind = object_kind(object_type)
    body = json_object()
    primary, other = body.get("primaryObjectId"), body.get("objectIdToMerge")
    if not primary or not other:
        raise errors.validation_error("primaryObjectId and objectIdToMerge are required")
    record = _store().merge(kind.name, str(primary), str(other), API_SOURCE)
    return json_response(simple_object(_store(), record))


@bp.post("/contacts/gdpr-delete")
def gdpr_delete() -> Response:
    """Delete a contact for privacy reasons (here: archive it) by ``objectId`` and optional ``idProperty``."""
    body = json_object()
    record = _store().get("contacts", str(body.get("objectId", "")), body.get("idProperty"))
    _store().archive("contacts", record["id"], API_SOURCE)
    return no_content()


# -- batch --------------------------------------------------------------------------------------------


def _inputs(body: dict[str, Any]) -> list[Any]:
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        raise errors.validation_error("inputs must be an array")
    if len(inputs) > MAX_BATCH:
        raise errors.batch_too_large(MAX_BATCH)
    return inputs


def _multi_status(inputs: list[Any]) -> bool:
    """True when every input has its own objectWriteTraceId (HubSpot's switch for 207 partial failures)."""
    traces = [i.get("objectWriteTraceId") if isinstance(i, dict) else None for i in inputs]
    return bool(traces) and all(traces) and len(set(traces)) == len(traces)


def _run_batch(inputs: list[Any], action: Callable[[Any], dict[str, Any]], success_status: int,
               missing_is_partial: bool, input_order: bool = True) -> Response:
    """Apply ``action`` to each input; answer the batch envelope (207 with errors when some failed).

    ``input_order=False`` answers the results in reverse input order: HubSpot does not answer a batch create in
    the order of its inputs (docs/hubspot/facts.md §3), so a client that pairs results with inputs by place
    fails here as it would there."""
    started = current_sandbox().clock.now()
    multi = _multi_status(inputs)
    if not multi:
        _precheck(inputs, action, missing_is_partial)
    results, failures = [], []
    for item in inputs:
        try:
            results.append(action(item))
        except errors.HubSpotError as exc:
            if not (multi or (missing_is_partial and exc.status == 404)):
                raise
            failures.append(_failure(item, exc))
    if not input_order:
        results.reverse()
    body = batch_envelope(results, started, current_sandbox().clock.now(), _grouped(failures))
    return json_response(body, 207 if failures else success_status)


def _precheck(inputs: list[Any], action: Callable[[Any], dict[str, Any]], missing_is_partial: bool) -> None:
    """Validate every input before changing anything, so one bad input fails the batch and writes nothing."""
    checker = getattr(action, "check", None)
    if checker is None:
        return
    seen: dict[str, int] = {}
    for item in inputs:
        try:
            checker(item, seen)
        except errors.HubSpotError as exc:
            if not (missing_is_partial and exc.status == 404):
                raise


def _failure(item: Any, exc: errors.HubSpotError) -> dict[str, Any]:
    context = dict(exc.body.get("context") or {})
    trace = item.get("objectWriteTraceId") if isinstance(item, dict) else None
    if trace:
        context["objectWriteTraceId"] = [str(trace)]
    extra = {"id": str(trace)} if trace else {}
    return errors.standard_error(exc.body.get("category", "VALIDATION_ERROR"), exc.body.get("message", ""),
                                 context, **extra)


def _grouped(failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Collapse not-found failures into one error listing the ids, as HubSpot reports them."""
    missing = [f for f in failures if f["category"] == "OBJECT_NOT_FOUND" and "objectWriteTraceId"
               not in f["context"]]
    others = [f for f in failures if f not in missing]
    if missing:
        ids = [i for f in missing for i in f["context"].get("id", [])]
        label = (object_type(request.view_args["object_type"]) or object_kind("contacts")).label  # type: ignore[index]
        others.insert(0, errors.standard_error(
            "OBJECT_NOT_FOUND", f"Could not get some {label} objects, they may be deleted or not exist. "
            "Check that ids are valid.", {"ids": ids}))
    return others


def _trace(record_body: dict[str, Any], item: Any) -> dict[str, Any]:
    trace = item.get("objectWriteTraceId") if isinstance(item, dict) else None
    return {**record_body, "objectWriteTraceId": trace} if trace else record_body


@bp.post("/<object_type>/batch/read")
def batch_read(object_type: str) -> Response:
    """Read up to 100 objects by id or ``idProperty``; unknown ids are reported as a 207 error."""
    kind = object_kind(object_type)
    body = json_object()
    properties, history = body.get("properties") or None, body.get("propertiesWithHistory") or ()
    id_property, archived = body.get("idProperty"), bool_arg("archived")

    def read(item: Any) -> dict[str, Any]:
        object_id = str(item.get("id", "")) if isinstance(item, dict) else ""
        record = _store().get(kind.name, object_id, id_property, archived)
        return simple_object(_store(), record, properties, history)

    return _run_batch(_inputs(body), read, 200, missing_is_partial=True)


@bp.post("/<object_type>/batch/create")
def batch_create(object_type: str) -> Response:
    """Create up to 100 objects (201; 207 with per-input errors when trace ids are given)."""
    kind = object_kind(object_type)
    store = _store()

    def create(item: Any) -> dict[str, Any]:
        fields = item if isinstance(item, dict) else {}
        record = store.create(kind.name, fields.get("properties") or {}, fields.get("associations"), API_SOURCE)
        return _trace(simple_object(store, record, None, extra=tuple(record["properties"])), item)

    def check(item: Any, seen: dict[str, int]) -> None:
        fields = item if isinstance(item, dict) else {}
        cleaned = store.check_properties(kind.name, fields.get("properties") or {}, creating=True)
        for name in kind.unique:
            value = (cleaned.get(name) or "").casefold()
            if value and value in seen:
                raise errors.duplicate_contact(str(seen[value])) if kind.name == "contacts" else errors.conflict(
                    f"Duplicate {name} {value} in the batch")
            existing = value and store.search_unique(kind.name, name, value)
            if existing:
                raise errors.duplicate_contact(existing)
            if value:
                seen[value] = len(seen)

    create.check = check  # type: ignore[attr-defined]
    return _run_batch(_inputs(json_object()), create, 201, missing_is_partial=False, input_order=False)


@bp.post("/<object_type>/batch/update")
def batch_update(object_type: str) -> Response:
    """Update up to 100 objects by id (or ``idProperty``); unknown ids are reported as a 207 error."""
    kind = object_kind(object_type)
    store = _store()

    def update(item: Any) -> dict[str, Any]:
        fields = item if isinstance(item, dict) else {}
        record = store.update(kind.name, str(fields.get("id", "")), fields.get("properties") or {}, API_SOURCE,
                              fields.get("idProperty"))
        return _trace(simple_object(store, record, None, extra=tuple(fields.get("properties") or {})), item)

    def check(item: Any, seen: dict[str, int]) -> None:
        fields = item if isinstance(item, dict) else {}
        store.check_properties(kind.name, fields.get("properties") or {}, creating=False)

    update.check = check  # type: ignore[attr-defined]
    return _run_batch(_inputs(json_object()), update, 200, missing_is_partial=True)


@bp.post("/<object_type>/batch/upsert")
def batch_upsert(object_type: str) -> Response:
    """Create or update up to 100 objects by a unique ``idProperty`` (``new`` says which happened)."""
    kind = object_kind(object_type)
    store = _store()

    def upsert(item: Any) -> dict[str, Any]:
        fields = item if isinstance(item, dict) else {}
        id_property, value = fields.get("idProperty") or "hs_object_id", str(fields.get("id", ""))
        properties = dict(fields.get("properties") or {})
        try:
            record = store.update(kind.name, value, properties, API_SOURCE, id_property)
            new = False
        except errors.HubSpotError as exc:
            if exc.status != 404 or id_property == "hs_object_id":
                raise
            record = store.create(kind.name, {**properties, id_property: value}, None, API_SOURCE)
            new = True
        rendered = simple_object(store, record, None, extra=tuple(properties))
        return _trace({**rendered, "new": new}, item)

    return _run_batch(_inputs(json_object()), upsert, 200, missing_is_partial=False)


@bp.post("/<object_type>/batch/archive")
def batch_archive(object_type: str) -> Response:
    """Archive up to 100 objects (204; unknown ids are ignored)."""
    kind = object_kind(object_type)
    for item in _inputs(json_object()):
        _store().archive(kind.name, str(item.get("id", "")) if isinstance(item, dict) else "", API_SOURCE)
    return no_content()

