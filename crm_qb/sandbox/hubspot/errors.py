"""HubSpot's error bodies (docs/hubspot/facts.md §10): ``{status, message, correlationId, category, ...}``.

Every refusal of the API is a ``HubSpotError`` carrying its HTTP status and the exact JSON body; the app turns
it into a response. The wording of messages follows what HubSpot is documented or observed to send (sources in
docs/hubspot/facts.md); where none is known the message is ours and the category is HubSpot's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any


class HubSpotError(Exception):
    """An API refusal: HTTP ``status`` with the JSON ``body`` HubSpot would send, and optional headers."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(body.get("message", ""))
        self.status, self.body, self.headers = status, body, headers or {}


def error_body(message: str, category: str, **extra: Any) -> dict[str, Any]:
    """Return HubSpot's error object with a fresh correlationId."""
    return {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category,
            **extra}


def validation_error(message: str, errors: list[dict[str, Any]] | None = None,
                     context: dict[str, list[str]] | None = None) -> HubSpotError:
    """Return a 400 VALIDATION_ERROR."""
    extra: dict[str, Any] = {}
    if errors:
        extra["errors"] = errors
    if context:
        extra["context"] = context
    return HubSpotError(400, error_body(message, "VALIDATION_ERROR", **extra))


def property_errors(problems: Iterable[dict[str, Any]]) -> HubSpotError:
    """Return the 400 HubSpot answers for invalid property values (each problem: name, error, message)."""
    items = [{"isValid": False, "message": p["message"], "error": p["error"], "name": p["name"],
              "localizedErrorMessage": p["message"]} for p in problems]
    message = "Property values were not valid: " + json.dumps(items, separators=(",", ":"))
    details = [{"message": p["message"], "code": p["error"], "context": {"propertyName": [p["name"]]}}
               for p in items]
    return validation_error(message, errors=details)


def object_not_found(object_id: str) -> HubSpotError:
    """Return the 404 for an unknown object id."""
    return HubSpotError(404, error_body("Object not found.  objectId are usually numeric.", "OBJECT_NOT_FOUND",
                                        context={"id": [object_id]}))


def resource_not_found(message: str = "resource not found") -> HubSpotError:
    """Return a 404 for an unknown path or definition."""
    return HubSpotError(404, error_body(message, "OBJECT_NOT_FOUND"))


def conflict(message: str) -> HubSpotError:
    """Return a 409 CONFLICT."""
    return HubSpotError(409, error_body(message, "CONFLICT"))


def duplicate_contact(existing_id: str) -> HubSpotError:
    """Return the 409 for a contact whose email another contact already has."""
    return conflict(f"Contact already exists. Existing ID: {existing_id}")


def batch_too_large(limit: int) -> HubSpotError:
    """Return the 400 for a batch with too many inputs."""
    return validation_error(f"Batch size limit exceeded: at most {limit} inputs are allowed.",
                            context={"limit": [str(limit)]})


def standard_error(category: str, message: str, context: dict[str, list[str]] | None = None,
                   **extra: Any) -> dict[str, Any]:
    """Return one ``StandardError`` item of a 207 batch response (its ``status`` is the word "error")."""
    return {"status": "error", "category": category, "message": message, "context": context or {},
            "errors": [], "links": {}, **extra}
