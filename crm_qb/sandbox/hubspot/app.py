"""The local HubSpot's Flask app factory.

``create_app`` builds everything but starts no thread; ``sandbox_of(app).start()`` (called by the server)
starts webhook delivery. API refusals are HubSpot-shaped JSON; routing errors on API paths too.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from werkzeug.exceptions import HTTPException

from crm_qb.sandbox.hubspot import (
    account_api,
    associations_api,
    control,
    gateway,
    oauth_views,
    objects_api,
    properties_api,
    ui,
)
from crm_qb.sandbox.hubspot.errors import HubSpotError, error_body
from crm_qb.sandbox.hubspot.http import error_response, json_response
from crm_qb.sandbox.hubspot.state import EXTENSION, Sandbox, SandboxConfig, sandbox_of

__all__ = ["SandboxConfig", "create_app", "sandbox_of"]


def create_app(config: SandboxConfig | None = None) -> Flask:
    """Build the local HubSpot app (no thread started; call ``sandbox_of(app).start()`` for webhooks)."""
    app = Flask(__name__)
    app.json.sort_keys = False
    app.extensions[EXTENSION] = Sandbox(config or SandboxConfig())
    for blueprint in (account_api.bp, objects_api.bp, associations_api.bp, properties_api.bp, oauth_views.bp,
                      control.bp, ui.bp):
        app.register_blueprint(blueprint)
    app.before_request(gateway.before_api_request)
    app.after_request(gateway.after_api_request)
    app.register_error_handler(HubSpotError, error_response)
    app.register_error_handler(control.ControlError, control.control_error)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _http_error(error: HTTPException) -> Any:
    """Answer routing errors: HubSpot-shaped on API paths, plain on pages."""
    if request.path.startswith(("/contacts/", "/oauth/authorize")):
        return error
    if request.path.startswith("/_sandbox/"):
        code = (error.name or "error").lower().replace(" ", "_")
        return json_response({"error": {"code": code, "message": error.description or error.name}}, error.code or 500)
    category = "OBJECT_NOT_FOUND" if error.code == 404 else "VALIDATION_ERROR"
    message = "resource not found" if error.code == 404 else (error.description or error.name)
    return json_response(error_body(message, category), error.code or 500)
