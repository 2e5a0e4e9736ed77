"""The sandbox's Flask app factory."""

from __future__ import annotations

from flask import Flask, Response, request

from .api import make_api_blueprint
from .applinks import make_applinks_blueprint
from .control import make_control_blueprint
from .http import error_json
from .oauth_views import make_oauth_blueprint
from .sandbox import Sandbox, SandboxConfig

EXTENSION = "qbo_sandbox"


def create_app(config: SandboxConfig | None = None) -> Flask:
    """Build the sandbox app; the ``Sandbox`` is at ``app.extensions["qbo_sandbox"]`` (no thread started)."""
    sandbox = Sandbox(config or SandboxConfig())
    app = Flask(__name__)
    app.extensions[EXTENSION] = sandbox

    def base_url() -> str:
        return sandbox.base_url or request.host_url.rstrip("/")

    app.register_blueprint(make_oauth_blueprint(sandbox, base_url))
    app.register_blueprint(make_api_blueprint(sandbox))
    app.register_blueprint(make_control_blueprint(sandbox, base_url))
    app.register_blueprint(make_applinks_blueprint(sandbox))

    @app.errorhandler(404)
    def not_found(_error: Exception) -> Response:
        return error_json("not_found", f"no route for {request.method} {request.path}", 404)

    @app.errorhandler(405)
    def not_allowed(_error: Exception) -> Response:
        return error_json("method_not_allowed", f"{request.method} is not allowed on {request.path}", 405)

    return app


def sandbox_of(app: Flask) -> Sandbox:
    """The ``Sandbox`` behind an app made by ``create_app``."""
    return app.extensions[EXTENSION]
