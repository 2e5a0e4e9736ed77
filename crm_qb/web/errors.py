"""JSON errors in the contract's shape: ``{"error": {"code": "...", "message": "..."}}``.

HTML paths keep HTML: an error under ``/admin`` (an unknown page, a wrong method, or an unexpected failure) is
the console's own error page with the status, so an operator never sees JSON or a stack trace there; the other
HTML paths (panel, OAuth) keep werkzeug's plain pages for HTTP errors.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from crm_qb.web.connection_page import PageError, error_page

log = logging.getLogger(__name__)

HTML_PREFIXES = ("/panel/", "/admin", "/connections/", "/qbo/")
ADMIN_PREFIX = "/admin/"


def json_error(status: int, code: str, message: str) -> tuple[Response, int]:
    """A JSON error response with ``status``."""
    return jsonify({"error": {"code": code, "message": message}}), status


def register_error_handlers(app: Flask) -> None:
    """Answer HTTP errors as JSON (HTML pages keep their own templates) and never leak a stack trace."""

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int] | HTTPException:
        if request.path.startswith(ADMIN_PREFIX):
            return _admin_page(exc.code or 500, exc.name or "Error", exc.description or exc.name or "error")
        if request.path.startswith(HTML_PREFIXES):
            return exc
        code = (exc.name or "error").lower().replace(" ", "_")
        return json_error(exc.code or 500, code, exc.description or exc.name or "error")

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        if request.path.startswith(ADMIN_PREFIX):
            return _admin_page(500, "Something went wrong", "An unexpected error occurred; it has been logged. "
                               "Reload the page, or try again in a moment.")
        return json_error(500, "internal_error", "an unexpected error occurred; it has been logged")


def _admin_page(status: int, title: str, message: str) -> tuple[Response, int]:
    """The console's error page (web/connection_page.py) for an error no view turned into one."""
    return error_page(PageError(status, title, message)), status
