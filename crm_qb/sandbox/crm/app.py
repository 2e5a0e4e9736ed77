"""The reference CRM's Flask app factory.

``create_app`` builds everything but starts no thread; ``sandbox_of(app).start()`` (called by ``server.run``)
starts hook delivery.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, jsonify, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.exceptions import HTTPException

from crm_qb.sandbox.crm import activities_api, api, control, control_activities, ui
from crm_qb.sandbox.crm.state import EXTENSION, Sandbox, SandboxConfig, sandbox_of
from crm_qb.sandbox.crm.validation import ApiError

__all__ = ["SandboxConfig", "create_app", "sandbox_of"]


def create_app(config: SandboxConfig | None = None) -> Flask:
    """Build the reference CRM app (no thread started; call ``sandbox_of(app).start()`` for hooks)."""
    app = Flask(__name__)
    if isinstance(app.json, DefaultJSONProvider):
        app.json.sort_keys = False  # records keep their documented field order
    app.extensions[EXTENSION] = Sandbox(config or SandboxConfig())
    app.register_blueprint(api.bp)
    app.register_blueprint(activities_api.bp)
    app.register_blueprint(control.bp)
    app.register_blueprint(control_activities.bp)
    app.register_blueprint(ui.bp)
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _api_error(error: ApiError) -> Any:
    """Answer an ApiError as JSON."""
    return jsonify(error.as_json()), error.status


def _http_error(error: HTTPException) -> Any:
    """Answer routing errors (404, 405, bad JSON) as JSON, except on the HTML pages."""
    if request.path.startswith("/ui/"):
        return error
    code = (error.name or "error").lower().replace(" ", "_")
    return jsonify({"error": {"code": code, "message": error.description or error.name}}), error.code
