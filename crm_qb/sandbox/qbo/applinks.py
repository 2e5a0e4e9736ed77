"""The QBO web app's deep-link pages (/app/invoice?txnId=..., /app/customerdetail?nameId=...) as plain HTML,
and the company selection QBO applies to them (docs/qbo/deep-links.md).

A page link carries no company: QBO opens the record in whichever company is active in the browser session,
so for a user with several companies a bare ``/app/invoice?txnId=850`` shows another company's invoice 850, or
nothing. The company-scoped form goes through the sign-in route, which makes the company active first and then
opens the page: ``/app/login?pagereq=invoice%3FtxnId%3D850&deeplinkcompanyid=<realm>`` (``/login`` works too).
The sandbox models the session with a cookie holding the active company (the demo realm when there is none);
``deeplinkcompanyid`` or the sandbox's own ``realm`` parameter on a page selects the company as well.
"""

from __future__ import annotations

import re
from html import escape

from flask import Blueprint, Response, redirect, request

from .entities import app_pages
from .jsonio import dumps
from .sandbox import Sandbox
from .store import RealmData

COMPANY_COOKIE = "qbo_sandbox_company"
_ID_PARAMS = ("txnId", "nameId", "id")  # transactions, names, and the time activity page (?id=)
_PAGEREQ = re.compile(r"[A-Za-z]+(\?[^#\s]*)?")


def make_applinks_blueprint(sandbox: Sandbox) -> Blueprint:
    """The web-app blueprint: ``/app/<page>`` record pages and the ``/app/login`` / ``/login`` deep-link entry."""
    bp = Blueprint("qbo_app", __name__)
    pages = app_pages()

    @bp.get("/login")
    @bp.get("/app/login")
    def login() -> Response:
        return _login(sandbox)

    @bp.get("/app/<page>")
    def show(page: str) -> Response:
        chosen = request.args.get("realm") or request.args.get("deeplinkcompanyid")
        realm_id = chosen or request.cookies.get(COMPANY_COOKIE) or sandbox.demo_realm_id
        realm = sandbox.store.realm(realm_id)
        if realm is None:
            return _page("Not found", f"<p>You have no company {escape(realm_id)}.</p>", 404)
        response = _record_page(realm, pages.get(page), page)
        if chosen:
            response.set_cookie(COMPANY_COOKIE, realm_id, httponly=True, samesite="Lax")
        return response

    return bp


def _login(sandbox: Sandbox) -> Response:
    """Make ``deeplinkcompanyid`` the session's company (when given), then open ``pagereq`` in it."""
    pagereq = request.args.get("pagereq", "homepage")
    if not _PAGEREQ.fullmatch(pagereq):
        return _page("Bad request", "<p>pagereq must name a page of the web app.</p>", 400)
    company = request.args.get("deeplinkcompanyid")
    if company is not None and sandbox.store.realm(company) is None:
        return _page("Not found", f"<p>You have no company {escape(company)}.</p>", 404)
    response = redirect(f"/app/{pagereq}", code=302)
    if company is not None:
        response.set_cookie(COMPANY_COOKIE, company, httponly=True, samesite="Lax")
    return response


def _record_page(realm: RealmData, entity: str | None, page: str) -> Response:
    obj_id = next((request.args[name] for name in _ID_PARAMS if request.args.get(name)), None)
    obj = realm.get(entity, obj_id) if entity and obj_id else None
    company = f"<p>Company {escape(realm.settings.company_name)} ({escape(realm.realm_id)})</p>"
    if obj is None:
        return _page("Not found", f"{company}<p>No {escape(page)} with id {escape(str(obj_id))}.</p>", 404)
    title = f"{entity} {obj.get('DocNumber') or obj.get('DisplayName') or obj['Id']}"
    rows = "".join(f"<tr><th>{escape(str(key))}</th><td>{escape(_text(value))}</td></tr>"
                   for key, value in obj.items())
    return _page(title, f"{company}<table>{rows}</table>", 200)


def _text(value: object) -> str:
    return value if isinstance(value, str) else dumps(value)


def _page(title: str, body: str, status: int) -> Response:
    html = (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{escape(title)}</title></head>"
            f"<body><h1>{escape(title)}</h1>{body}</body></html>")
    return Response(html, status=status, mimetype="text/html")
