"""Properties and property groups (docs/hubspot/facts.md §5), and owners (§7).

Creates answer 201, archives 204, the rest 200. The owners list path is served with and without the trailing
slash HubSpot's Python client sends.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from crm_qb.sandbox.hubspot import errors
from crm_qb.sandbox.hubspot.http import (
    batch_envelope,
    bool_arg,
    int_arg,
    json_object,
    json_response,
    no_content,
)
from crm_qb.sandbox.hubspot.state import current_sandbox
from crm_qb.sandbox.hubspot.store import decode_after, encode_after

bp = Blueprint("hubspot_properties", __name__, url_prefix="/crm/v3")


@bp.get("/properties/<object_type>")
def list_properties(object_type: str) -> Response:
    """List the properties of an object type (``archived`` for archived ones)."""
    return json_response({"results": current_sandbox().store.catalog.definitions(object_type, bool_arg("archived"))})


@bp.post("/properties/<object_type>")
def create_property(object_type: str) -> Response:
    """Create a custom property; 201."""
    return json_response(current_sandbox().store.catalog.create_definition(object_type, json_object()), 201)


@bp.get("/properties/<object_type>/<name>")
def get_property(object_type: str, name: str) -> Response:
    """Read one property."""
    found = current_sandbox().store.definition(object_type, name)
    if found is None:
        raise errors.resource_not_found(f"Unable to find property {name} on object type {object_type}")
    return json_response(found)


@bp.patch("/properties/<object_type>/<name>")
def update_property(object_type: str, name: str) -> Response:
    """Change a property."""
    return json_response(current_sandbox().store.catalog.update_definition(object_type, name, json_object()))


@bp.delete("/properties/<object_type>/<name>")
def archive_property(object_type: str, name: str) -> Response:
    """Archive a custom property; 204."""
    current_sandbox().store.catalog.archive_definition(object_type, name)
    return no_content()


def _inputs() -> list[Any]:
    inputs = json_object().get("inputs")
    if not isinstance(inputs, list):
        raise errors.validation_error("inputs must be an array")
    return inputs


@bp.post("/properties/<object_type>/batch/create")
def batch_create_properties(object_type: str) -> Response:
    """Create several properties; 201, or 207 listing the ones that failed."""
    sandbox = current_sandbox()
    started, results, failures = sandbox.clock.now(), [], []
    for item in _inputs():
        try:
            results.append(sandbox.store.catalog.create_definition(object_type, item))
        except errors.HubSpotError as exc:
            failures.append(errors.standard_error(exc.body["category"], exc.body["message"],
                                                  exc.body.get("context")))
    body = batch_envelope(results, started, sandbox.clock.now(), failures)
    return json_response(body, 207 if failures else 201)


@bp.post("/properties/<object_type>/batch/read")
def batch_read_properties(object_type: str) -> Response:
    """Read several properties by name: inputs [{name}]."""
    sandbox = current_sandbox()
    started = sandbox.clock.now()
    names = [str(i.get("name", "")) for i in _inputs() if isinstance(i, dict)]
    results = [d for n in names if (d := sandbox.store.definition(object_type, n)) is not None]
    return json_response(batch_envelope(results, started, sandbox.clock.now()))


@bp.post("/properties/<object_type>/batch/archive")
def batch_archive_properties(object_type: str) -> Response:
    """Archive several custom properties; 204."""
    for item in _inputs():
        current_sandbox().store.catalog.archive_definition(object_type, str(item.get("name", "")))
    return no_content()


@bp.get("/properties/<object_type>/groups")
def list_groups(object_type: str) -> Response:
    """List property groups."""
    return json_response({"results": current_sandbox().store.catalog.groups(object_type, bool_arg("archived"))})


@bp.post("/properties/<object_type>/groups")
def create_group(object_type: str) -> Response:
    """Create a property group {name, label, displayOrder}; 201."""
    return json_response(current_sandbox().store.catalog.save_group(object_type, json_object()), 201)


@bp.get("/properties/<object_type>/groups/<name>")
def get_group(object_type: str, name: str) -> Response:
    """Read one property group."""
    return json_response(current_sandbox().store.catalog.group(object_type, name))


@bp.patch("/properties/<object_type>/groups/<name>")
def update_group(object_type: str, name: str) -> Response:
    """Change a group's label or display order."""
    return json_response(current_sandbox().store.catalog.save_group(object_type, json_object(), name))


@bp.delete("/properties/<object_type>/groups/<name>")
def archive_group(object_type: str, name: str) -> Response:
    """Archive a property group; 204."""
    current_sandbox().store.catalog.archive_group(object_type, name)
    return no_content()


@bp.get("/owners/")
@bp.get("/owners")
def list_owners() -> Response:
    """List owners (``email`` filter, ``limit`` ≤ 500 default 100, ``after``, ``archived``)."""
    owners = current_sandbox().store.owners(bool_arg("archived"))
    email = request.args.get("email")
    if email:
        owners = [o for o in owners if o["email"].casefold() == email.casefold()]
    start, limit = decode_after(request.args.get("after")), int_arg("limit", 100, 500)
    owners = [o for o in owners if int(o["id"]) >= start]
    body: dict[str, Any] = {"results": owners[:limit]}
    if len(owners) > limit:
        after = encode_after(owners[limit]["id"])
        body["paging"] = {"next": {"after": after, "link": f"?after={after}"}}
    return json_response(body)


@bp.get("/owners/<owner_id>")
def get_owner(owner_id: str) -> Response:
    """Read an owner by ``id`` (default) or by ``userId`` (``idProperty=userId``)."""
    by = request.args.get("idProperty", "id")
    if by not in ("id", "userId"):
        raise errors.validation_error("idProperty must be id or userId", context={"idProperty": [by]})
    owners = current_sandbox().store.owners(bool_arg("archived"))
    found = next((o for o in owners if str(o[by]) == owner_id), None)
    if found is None:
        raise errors.resource_not_found(f"No owner with {by} {owner_id}")
    return json_response(found)
