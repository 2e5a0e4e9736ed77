"""The contact panel: an embeddable HTML page with the QuickBooks customer link, the Payment & Billing summary
and the "QuickBooks Transactions" folder (docs/architecture.md §4, §6).

- ``GET /panel/<id>/contacts/<crm_contact_id>?token=`` shows it; the token is signed for that contact
  (panel_tokens). A bad, expired or foreign token gets a 403 page saying so. The CRM's back end gets such a URL
  with its API key when its user opens a contact (``POST /api/v1/connections/<id>/contacts/<contact>/panel-url``)
  and puts it in the contact page's iframe: the user sees a link to this one contact, for minutes.
- ``GET /panel/<id>/embed/<crm_contact_id>?token=<embed token>`` redirects to the panel with a fresh contact
  token. Kept for CRMs that can only put a fixed URL template in their pages: the embed token in it opens every
  contact of the connection, so it must stay server-side (docs: README, "Security").

The page works without JavaScript (filters are links and a GET form), uses no external assets, and may be
framed only by the connection's CRM web origin (``frame-ancestors``; ``connection add --crm-web-origin``, by
default the origin of the CRM's API URL). Tokens travel in URLs, so the page sends no
Referer and is never cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from crm_qb.connections import crm_web_origin, web_origin
from crm_qb.db import db
from crm_qb.models import Connection, FolderItem
from crm_qb.qbo.deeplinks import AppLinks
from crm_qb.runtime import runtime
from crm_qb.sync.rules import status as st
from crm_qb.sync.rules.money import format_money
from crm_qb.sync.transactions import registry
from crm_qb.web.panel_tokens import PanelTokenError, check_embed_token, check_panel_token, make_panel_token
from crm_qb.web.readmodels.folder import (
    STATUSES,
    FolderPage,
    FolderQuery,
    InvalidFolderQuery,
    LinkStatus,
    app_base,
    customer_url,
    find_link,
    folder_page,
    item_url,
    link_status,
    parse_folder_query,
    rate_text,
)
from crm_qb.web.readmodels.summary import summary_json
from crm_qb.web.readmodels.time import time_json
from crm_qb.web.routing import is_contact_id

bp = Blueprint("panel", __name__, url_prefix="/panel")

TYPE_PLURALS = {t.entity: t.plural for t in registry.TYPES}
# Badge tone per status (each type's entry in the registry names its statuses' tones); the colours of each tone,
# with a contrast ratio of at least 7:1 for every pair (tests/unit/test_folder_rules.py checks it).
BADGE_COLOURS = {  # tone: (text, background)
    "ok": ("#14532d", "#dcfce7"), "info": ("#1e3a8a", "#dbeafe"), "warn": ("#713f12", "#fef3c7"),
    "bad": ("#7f1d1d", "#fee2e2"), "neutral": ("#1f2937", "#e5e7eb"),
}
PANEL_PER_PAGE = "25"


@dataclass(frozen=True)
class Row:
    """One folder item ready to show."""

    type_label: str
    number: str
    date: str
    second_date: str | None
    status: str
    tone: str
    status_note: str | None
    amount: str
    home_amount: str | None
    rate: str | None
    balance: str | None
    url: str
    open_label: str
    customer_id: str | None = None  # the item's QBO customer: the contact's own, or one of its sub-customers
    customer_name: str | None = None


@bp.get("/<int:connection_id>/contacts/<path:crm_contact_id>")
def contact_panel(connection_id: int, crm_contact_id: str) -> Response:
    """The panel of one contact, for a holder of a panel token made for it."""
    connection = db.session.get(Connection, connection_id)
    if connection is None or not is_contact_id(crm_contact_id):
        return _denied(None, "This panel link is not valid. Open the panel again from the contact's page.")
    try:
        check_panel_token(_secret(), request.args.get("token"), connection, crm_contact_id)
    except PanelTokenError as exc:
        return _denied(connection, str(exc))
    try:
        query = _query()
    except InvalidFolderQuery as exc:
        return _page(connection, "panel_error.html", 400, title="Filter not understood", message=str(exc))
    return _page(connection, "panel.html", 200, **_context(connection, crm_contact_id, query))


@bp.get("/<int:connection_id>/embed/<path:crm_contact_id>")
def embed(connection_id: int, crm_contact_id: str) -> BaseResponse:
    """Exchange a connection's embed token for a fresh panel URL of ``crm_contact_id`` (302)."""
    connection = db.session.get(Connection, connection_id)
    if connection is None or not is_contact_id(crm_contact_id):
        return _denied(None, "This embedding link is not valid.")
    try:
        check_embed_token(_secret(), request.args.get("token"), connection)
    except PanelTokenError as exc:
        return _denied(connection, str(exc))
    token = make_panel_token(_secret(), connection, crm_contact_id)
    target = url_for("panel.contact_panel", connection_id=connection.id, crm_contact_id=crm_contact_id, token=token)
    response = redirect(target, code=302)
    _secure(response, connection)
    return response


def _context(connection: Connection, crm_contact_id: str, query: FolderQuery) -> dict[str, Any]:
    link = find_link(connection.id, crm_contact_id)
    state = link_status(link)
    base = app_base(runtime(), connection)
    linked = state.state == "linked" and bool(state.qbo_customer_id)
    page = folder_page(connection.id, str(state.qbo_customer_id), query) if linked else FolderPage([], 0, query)
    summary = summary_json(connection, link, base) if linked and link is not None else None
    home = connection.home_currency or ""
    return {
        "state": state, "summary": summary, "query": query, "page": page, "home": home,
        "customer_url": customer_url(base, state.qbo_customer_id) if linked else None,
        "rows": [_row(item, base, home) for item in page.items],
        "type_links": _type_links(query, summary), "statuses": STATUSES,
        "prev_url": _url(query, page=query.page - 1) if query.page > 1 else None,
        "next_url": _url(query, page=query.page + 1) if query.page < page.pages else None,
        "filter_hidden": _hidden(query), "money": _money, "plural": TYPE_PLURALS, "title": _title(state),
        "badge_colours": BADGE_COLOURS, "time": time_json(connection, crm_contact_id, base),
    }


def _row(item: FolderItem, base: AppLinks, home: str) -> Row:
    txn_type = registry.get(item.txn_type)
    label = txn_type.label
    number = item.doc_number or f"#{item.qbo_id}"
    foreign = bool(home) and item.currency != home
    return Row(
        type_label=label, number=number, date=_day(item.txn_date), second_date=_second_date(item),
        status=item.status, tone=registry.badge_tone(item.status), status_note=_status_note(item),
        amount=format_money(item.total, item.currency),
        home_amount=(format_money(item.home_total, home) + (" (computed)" if item.home_computed else ""))
        if foreign else None,
        rate=f"1 {item.currency} = {rate_text(item.exchange_rate)} {home}" if foreign else None,
        balance=format_money(item.balance, item.currency) if txn_type.shows_balance else None,
        url=item_url(base, item), open_label=f"Open {label.lower()} {number} in QuickBooks (new tab)",
        customer_id=item.qbo_customer_id, customer_name=(item.details or {}).get("customer_name"),
    )


def _second_date(item: FolderItem) -> str | None:
    if item.due_date:
        return f"Due {_day(item.due_date)}"
    if item.expiration_date:
        return f"Expires {_day(item.expiration_date)}"
    return None


def _status_note(item: FolderItem) -> str | None:
    days = (item.details or {}).get("days_overdue")
    if item.status == st.OVERDUE and days:
        return f"{days} day{'s' if days != 1 else ''}"
    if (item.details or {}).get("partial") and item.status != st.PARTIALLY_PAID:
        return registry.get(item.txn_type).partial_note
    return None


def _type_links(query: FolderQuery, summary: dict[str, Any] | None) -> list[dict[str, Any]]:
    counts = (summary or {}).get("counts", {})
    links = [{"label": "All", "count": sum(counts.values()), "url": _url(query, types=(), page=1),
              "current": not query.types}]
    for name in registry.NAMES:
        if counts.get(name):
            links.append({"label": TYPE_PLURALS[name], "count": counts[name],
                          "url": _url(query, types=(name,), page=1), "current": query.types == (name,)})
    return links


def _url(query: FolderQuery, **changes: Any) -> str:
    """This page's URL with the token and the filters, ``changes`` applied (types, statuses, page)."""
    values = {"types": query.types, "statuses": query.statuses, "page": query.page, **changes}
    params: list[tuple[str, str]] = [("token", request.args.get("token", ""))]
    params += [("type", t) for t in values["types"]] + [("status", s) for s in values["statuses"]]
    if values["page"] > 1:
        params.append(("page", str(values["page"])))
    return f"{request.path}?{urlencode(params)}"


def _hidden(query: FolderQuery) -> list[tuple[str, str]]:
    return [("token", request.args.get("token", ""))] + [("type", t) for t in query.types]


def _query() -> FolderQuery:
    args = request.args
    return parse_folder_query(args.getlist("type"), args.getlist("status"), args.get("page"),
                              args.get("per_page") or PANEL_PER_PAGE)


def _money(value: str | None, currency: str) -> str:
    return format_money(Decimal(value), currency) if value is not None else "—"


def _day(value: date | None) -> str:
    return f"{value.day} {value:%b %Y}" if value else "—"


def _title(state: LinkStatus) -> str:
    return f"QuickBooks · {state.customer_name}" if state.customer_name else "QuickBooks"


def _denied(connection: Connection | None, message: str) -> Response:
    return _page(connection, "panel_error.html", 403, title="This panel cannot be opened", message=message)


def _page(connection: Connection | None, template: str, status: int, **context: Any) -> Response:
    response = Response(render_template(template, **context), status=status, mimetype="text/html")
    _secure(response, connection)
    return response


def _secure(response: BaseResponse, connection: Connection | None) -> None:
    ancestors = crm_web_origin(connection) if connection else "'none'"
    if connection is not None and connection.crm_kind == "hubspot" and ancestors == HUBSPOT_APP_ORIGIN:
        ancestors += " https://*.hubspot.com"  # the app card's modal is served from HubSpot's hosts (card.md)
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; base-uri 'none'; "
        f"frame-ancestors {ancestors}"
    )
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"


HUBSPOT_APP_ORIGIN = "https://app.hubspot.com"


def crm_origin(crm_base_url: str) -> str:
    """The origin (scheme://host[:port]) of a CRM base URL, as CSP frame-ancestors wants it."""
    return web_origin(crm_base_url)


def _secret() -> str:
    return runtime().settings.secret_key
