"""Small helpers shared by the sandbox's views: JSON responses with QBO's headers, body parsing."""

from __future__ import annotations

import uuid

from flask import Response, request

from . import faults, jsonio


def json_response(body: object, status: int = 200, *, text: bytes | str | None = None) -> Response:
    """A JSON response (Decimal written as numbers) with an ``intuit_tid`` header, as QBO sends; ``text``: the
    body already written."""
    response = Response(jsonio.dumps(body) if text is None else text, status=status, mimetype="application/json")
    response.headers["intuit_tid"] = str(uuid.uuid4())
    return response


def data_response(body: object) -> Response:
    """``json_response(body)`` for an answer of realm data (no floats: ``jsonio.dumps_data``), written faster."""
    return json_response(body, text=jsonio.dumps_data(body))


def json_body() -> object:
    """The request body parsed as JSON with Decimal money; a QBO fault when it is not JSON."""
    raw = request.get_data()
    try:
        return jsonio.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise faults.unsupported_operation("Invalid byte 1 of 1-byte UTF-8 sequence.") from exc
    except ValueError as exc:
        raise faults.QboFault("2010", "Request has invalid or unsupported property",
                              f"Request body is not valid JSON: {exc}") from exc
    except ArithmeticError as exc:  # decimal.InvalidOperation: a number no Decimal holds (10e999999999999999999)
        raise faults.QboFault("2010", "Request has invalid or unsupported property",
                              "Request body holds a number out of range") from exc


def error_json(code: str, message: str, status: int) -> Response:
    """The control API's error shape (DESIGN.md section 5): {"error": {"code", "message"}}."""
    return json_response({"error": {"code": code, "message": message}}, status)
