"""The QBO web app's deep-link pages (/app/invoice?txnId=..., /app/customerdetail?nameId=...) as plain HTML."""

from __future__ import annotations

from html import escape

from flask import Blueprint, Response, request

from .entities import app_pages
from .jsonio import dumps
from .sandbox import Sandbox


def make_applinks_blueprint(sandbox: Sandbox) -> Blueprint:
    """The /app blueprint: one page per record, for the realm in ``realm``/``deeplinkcompanyid`` or the demo."""
    bp = Blueprint("qbo_app", __name__, url_prefix="/app")
    pages = app_pages()

    @bp.get("/<page>")
    def show(page: str) -> Response:
        entity = pages.get(page)
        obj_id = request.args.get("nameId") or request.args.get("txnId")
        realm_id = request.args.get("realm") or request.args.get("deeplinkcompanyid") or sandbox.demo_realm_id
        realm = sandbox.store.realm(realm_id)
        obj = realm.get(entity, obj_id) if realm and entity and obj_id else None
        if obj is None:
            return _page("Not found", f"<p>No {escape(page)} with id {escape(str(obj_id))}.</p>", 404)
        title = f"{entity} {obj.get('DocNumber') or obj.get('DisplayName') or obj['Id']}"
        rows = "".join(f"<tr><th>{escape(str(key))}</th><td>{escape(_text(value))}</td></tr>"
                       for key, value in obj.items())
        return _page(title, f"<p>Company {escape(realm_id)}</p><table>{rows}</table>", 200)

    return bp


def _text(value: object) -> str:
    return value if isinstance(value, str) else dumps(value)


def _page(title: str, body: str, status: int) -> Response:
    html = (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{escape(title)}</title></head>"
            f"<body><h1>{escape(title)}</h1>{body}</body></html>")
    return Response(html, status=status, mimetype="text/html")
