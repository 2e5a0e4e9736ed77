"""A minimal HubSpot contact record page, at HubSpot's own path ``/contacts/<portal>/record/0-1/<id>``.

It shows the contact's properties and associated objects and, where HubSpot shows app cards, the crm-qb card:
when a card backend URL is set (``POST /_sandbox/card``) the page calls it as ``hubspot.fetch`` does (signed,
server-side) and shows what came back; when a panel URL template is set (``POST /_sandbox/panel``) the card's
"Open QuickBooks panel" opens it in a frame, as the real card's button opens an iframe modal. No script, no
external assets; a Content-Security-Policy allows frames from the panel's origin only.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, current_app, make_response, render_template_string

from crm_qb.sandbox.hubspot.control import fetch_as_card
from crm_qb.sandbox.hubspot.errors import HubSpotError
from crm_qb.sandbox.hubspot.state import current_sandbox

bp = Blueprint("hubspot_ui", __name__)
PAGE_SIZE = 500
SHOWN = ("firstname", "lastname", "email", "phone", "mobilephone", "company", "website", "address", "city",
         "state", "zip", "country", "lifecyclestage", "hubspot_owner_id", "createdate", "lastmodifieddate")

LAYOUT = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · Local HubSpot</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 64rem; padding: 1rem; color: #213343; }
a { color: #0068b1; } a:focus, summary:focus { outline: 3px solid #f90; }
table { border-collapse: collapse; } th, td { text-align: left; padding: .3rem .8rem .3rem 0; vertical-align: top; }
.card { border: 1px solid #cbd6e2; border-radius: 4px; padding: .5rem 1rem; margin: 1rem 0; }
iframe { width: 100%; min-height: 32rem; border: 1px solid #cbd6e2; }
.muted { color: #516f90; }
</style>
</head>
<body>
<header><p><a href="{{ url_for('hubspot_ui.contacts', portal_id=portal) }}">Contacts</a>
 · portal {{ portal }}</p></header>
<main>{% block main %}{% endblock %}</main>
</body>
</html>"""

CONTACTS = """{% extends layout %}{% block main %}
<h1>Contacts</h1>
{% if contacts %}<table><caption class="muted">{{ contacts|length }} contact(s){% if more %}, the first
{{ contacts|length }} shown{% endif %}</caption>
<thead><tr><th scope="col">Name</th><th scope="col">Email</th><th scope="col">Company</th></tr></thead><tbody>
{% for c in contacts %}<tr><td><a href="{{ url_for('hubspot_ui.record', portal_id=portal, object_id=c.id) }}">
{{ name(c) }}</a></td><td>{{ c.properties.email or "" }}</td><td>{{ c.properties.company or "" }}</td></tr>
{% endfor %}</tbody></table>{% else %}<p>No contacts yet.</p>{% endif %}
{% endblock %}"""

RECORD = """{% extends layout %}{% block main %}
<h1>{{ name(c) }}</h1>
<section aria-labelledby="about"><h2 id="about">About this contact</h2>
<table><tbody>{% for label, value in rows %}<tr><th scope="row">{{ label }}</th><td>{{ value }}</td></tr>
{% endfor %}</tbody></table></section>
<section aria-labelledby="linked"><h2 id="linked">Associations</h2>
{% for kind, items in linked %}<h3>{{ kind|capitalize }}</h3><ul>{% for item in items %}
<li>{{ item }}</li>{% endfor %}</ul>{% else %}<p class="muted">None.</p>{% endfor %}</section>
<section class="card" aria-labelledby="qb"><h2 id="qb">QuickBooks</h2>
{% if card is none %}<p class="muted">No app card backend configured (POST /_sandbox/card).</p>
{% elif card.status != 200 %}<p role="alert">The card's backend answered {{ card.status or "nothing" }}.</p>
{% else %}{% for key, value in summary %}<p><strong>{{ key }}</strong>: {{ value }}</p>{% endfor %}
{% if transactions %}<table><caption>Recent transactions</caption><thead><tr>{% for h in headers %}
<th scope="col">{{ h }}</th>{% endfor %}</tr></thead><tbody>{% for t in transactions %}<tr>{% for h in headers %}
<td>{{ t.get(h, "") }}</td>{% endfor %}</tr>{% endfor %}</tbody></table>{% endif %}{% endif %}
{% if panel_url %}<details><summary>Open QuickBooks panel</summary>
<iframe src="{{ panel_url }}" title="QuickBooks panel for {{ name(c) }}"></iframe></details>
<p><a href="{{ panel_url }}" target="_blank" rel="noopener">Open the panel in a new tab</a></p>
{% else %}<p class="muted">No panel configured (POST /_sandbox/panel).</p>{% endif %}
</section>
{% endblock %}"""


def contact_name(contact: dict[str, Any]) -> str:
    """Return the name HubSpot shows: first + last, else email, else the record id."""
    values = contact["properties"]
    full = " ".join(v for v in (values.get("firstname"), values.get("lastname")) if v)
    return full or values.get("email") or f"Contact {contact['id']}"


def page(template: str, panel_url: str | None = None, **context: Any) -> Response:
    """Render a page with a CSP that allows inline styles and frames from the panel's origin only."""
    layout = current_app.jinja_env.from_string(LAYOUT)
    html = render_template_string(template, layout=layout, name=contact_name, portal=current_sandbox().portal_id,
                                  panel_url=panel_url, **context)
    response = make_response(html)
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(panel_url)) if panel_url else None
    frames = f" frame-src {origin};" if origin else ""
    response.headers["Content-Security-Policy"] = f"default-src 'none'; style-src 'unsafe-inline';{frames}"
    return response


@bp.get("/contacts/<int:portal_id>/objects/0-1/views/all/list")
def contacts(portal_id: int) -> Response:
    """List contacts with links to their record pages."""
    sandbox = current_sandbox()
    if portal_id != sandbox.portal_id:
        abort(404)
    found, more = sandbox.store.page("contacts", None, PAGE_SIZE)
    return page(CONTACTS, title="Contacts", contacts=found, more=more is not None)


@bp.get("/contacts/<int:portal_id>/record/0-1/<object_id>")
def record(portal_id: int, object_id: str) -> Response:
    """Show a contact record with its associations and the QuickBooks card."""
    sandbox = current_sandbox()
    if portal_id != sandbox.portal_id:
        abort(404)
    try:
        contact = sandbox.store.get("contacts", object_id)
    except HubSpotError:
        abort(404)
    card = fetch_as_card(sandbox.card_url.replace("{id}", contact["id"])) if sandbox.card_url else None
    summary, transactions = _card_content(card)
    headers = list(dict.fromkeys(k for t in transactions for k in t if not isinstance(t[k], dict | list)))
    return page(RECORD, panel_url=sandbox.panel_url(contact["id"]), title=contact_name(contact), c=contact,
                rows=[(n, contact["properties"].get(n) or "") for n in SHOWN], linked=_linked(contact["id"]),
                card=card, summary=summary, transactions=transactions, headers=headers)


def _card_content(card: dict[str, Any] | None) -> tuple[list[tuple[str, Any]], list[dict[str, Any]]]:
    """Return (summary rows, recent transactions) from the backend's answer (docs/hubspot/card.md)."""
    body = card.get("body") if card else None
    if not isinstance(body, dict):
        return [], []
    summary = body.get("summary") if isinstance(body.get("summary"), dict) else {}
    rows = [(k, v) for k, v in summary.items() if not isinstance(v, dict | list)]
    transactions = [t for t in body.get("transactions") or [] if isinstance(t, dict)]
    return rows, transactions


def _linked(contact_id: str) -> list[tuple[str, list[str]]]:
    store = current_sandbox().store
    linked = []
    for kind, label_property in (("companies", "name"), ("tasks", "hs_task_subject"), ("calls", "hs_call_title"),
                                 ("meetings", "hs_meeting_title")):
        items = []
        for to_id, _types in store.associations("contacts", contact_id, kind):
            values = store.get(kind, to_id)["properties"]
            status = f" ({values['hs_task_status']})" if values.get("hs_task_status") else ""
            items.append(f"{values.get(label_property) or to_id}{status}")
        if items:
            linked.append((kind, items))
    return linked

