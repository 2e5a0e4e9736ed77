"""Request parsing and responses shared by the local HubSpot's blueprints.

HubSpot's clients send list parameters either repeated (``?properties=a&properties=b``, the Python client's
``multi`` format) or comma-separated (HubSpot's documentation), and booleans as ``false`` or Python's
``False``; both are accepted. JSON answers carry ``application/json;charset=utf-8`` as HubSpot's do.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from flask import Response, request

from crm_qb.sandbox.hubspot import errors
from crm_qb.sandbox.hubspot.definitions import iso_ms
from crm_qb.sandbox.hubspot.render import split_names
from crm_qb.sandbox.hubspot.schema import ObjectType, object_type

JSON_TYPE = "application/json;charset=utf-8"


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Return ``body`` as HubSpot-style JSON."""
    return Response(json.dumps(body, separators=(",", ":")), status=status, mimetype=None,
                    content_type=JSON_TYPE, headers=headers or {})


def no_content() -> Response:
    """Return HubSpot's empty 204."""
    return Response(status=204)


def error_response(error: errors.HubSpotError) -> Response:
    """Return a HubSpotError as its response."""
    return json_response(error.body, error.status, error.headers)


def object_kind(name: str) -> ObjectType:
    """Return the object type a path names, or raise HubSpot's 400 for an unknown one."""
    found = object_type(name)
    if found is None:
        raise errors.HubSpotError(400, errors.error_body(f"Unable to infer object type from: {name}",
                                                         "VALIDATION_ERROR"))
    return found


def json_body() -> Any:
    """Return the parsed JSON body, or raise HubSpot's 400 for a missing or malformed one."""
    raw = request.get_data(cache=True)
    if not raw:
        raise errors.validation_error("Invalid input JSON: the request body is empty")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise errors.validation_error(f"Invalid input JSON on line {getattr(exc, 'lineno', 1)}") from None


def json_object() -> dict[str, Any]:
    """Return the JSON body when it is an object, else raise a 400."""
    body = json_body()
    if not isinstance(body, dict):
        raise errors.validation_error("Invalid input JSON: expected an object")
    return body


def names_arg(name: str) -> list[str]:
    """Return a list query parameter given repeated or comma-separated."""
    return split_names(request.args.getlist(name))


def bool_arg(name: str, default: bool = False) -> bool:
    """Return a boolean query parameter (``true``/``True``/``false``/``False``)."""
    value = request.args.get(name)
    if value is None or value == "":
        return default
    if value.lower() not in ("true", "false"):
        raise errors.validation_error(f"{name} must be true or false, got {value}", context={name: [value]})
    return value.lower() == "true"


def int_arg(name: str, default: int, maximum: int | None = None) -> int:
    """Return a positive integer query parameter, capped at ``maximum``."""
    value = request.args.get(name)
    if value is None or value == "":
        return default
    if not value.isdigit() or int(value) < 1:
        raise errors.validation_error(f"{name} must be a positive integer, got {value}", context={name: [value]})
    return min(int(value), maximum) if maximum else int(value)


def batch_envelope(results: list[Any], started: datetime, completed: datetime,
                   failures: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Return a ``BatchResponse…`` object (with errors and numErrors when some inputs failed)."""
    body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": iso_ms(started),
                            "completedAt": iso_ms(completed)}
    if failures:
        body["numErrors"] = len(failures)
        body["errors"] = failures
    return body
