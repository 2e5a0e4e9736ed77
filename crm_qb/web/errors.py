"""JSON errors in the contract's shape: ``{"error": {"code": "...", "message": "..."}}``."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)

HTML_PREFIXES = ("/panel/", "/admin", "/connections/", "/qbo/")


def json_error(status: int, code: str, message: str) -> tuple[Response, int]:
    """A JSON error response with ``status``."""
    return jsonify({"error": {"code": code, "message": message}}), status


def register_error_handlers(app: Flask) -> None:
    """Answer HTTP errors as JSON (HTML pages keep their own templates) and never leak a stack trace."""

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int] | HTTPException:
        if request.path.startswith(HTML_PREFIXES):
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        return json_error(exc.code or 500, code, exc.description or exc.name or "error")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal_error", "an unexpected error occurred; it has been logged")
