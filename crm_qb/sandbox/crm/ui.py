"""Plain HTML pages for people: a contact list and a contact page (its activities, its tasks, the crm-qb panel
in an iframe).

Templates are strings rendered by Flask's Jinja with autoescaping on, so every value is escaped. The pages use
no external assets and no script; a Content-Security-Policy says so.

The panel URL: when crm-qb's panel-URL API is configured (``POST /_sandbox/panel {"panel_url_api", "api_key"}``),
the contact page asks crm-qb for it server-side, with the API key, as a CRM's back end should: the browser only
ever sees a short-lived URL for the one contact it shows, never a key or a token that opens other contacts.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import requests
from flask import Blueprint, Response, abort, current_app, make_response, render_template_string

from crm_qb.sandbox.crm.state import current_sandbox
from crm_qb.sandbox.crm.validation import ADDRESS_FIELDS, ApiError

bp = Blueprint("crm_ui", __name__, url_prefix="/ui")
PAGE_SIZE = 1000

LAYOUT = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · Reference CRM</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 60rem; padding: 1rem; color: #111; }
a { color: #0645ad; } a:focus { outline: 3px solid #f90; }
table { border-collapse: collapse; } th, td { text-align: left; padding: .3rem .8rem .3rem 0; vertical-align: top; }
iframe { width: 100%; min-height: 28rem; border: 1px solid #888; }
.muted { color: #555; }
</style>
</head>
<body>
<header><p><a href="{{ url_for('crm_ui.contacts') }}">All contacts</a></p></header>
<main>
{% block main %}{% endblock %}
</main>
</body>
</html>"""

CONTACTS = """{% extends layout %}{% block main %}
<h1>Contacts</h1>
<p class="muted">{{ contacts|length }} contact(s){% if more %}, showing the first {{ contacts|length }}{% endif %}.</p>
{% if contacts %}
<table>
<caption class="muted">Contacts, least recently changed first</caption>
<thead><tr><th scope="col">Name</th><th scope="col">Company</th><th scope="col">Email</th>
<th scope="col">Active</th></tr></thead>
<tbody>
{% for c in contacts %}
<tr><td><a href="{{ url_for('crm_ui.contact', contact_id=c.id) }}">{{ name(c) }}</a></td>
<td>{{ c.company or "" }}</td><td>{{ c.email or "" }}</td><td>{{ "yes" if c.active else "no" }}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}<p>No contacts yet.</p>{% endif %}
{% endblock %}"""

CONTACT = """{% extends layout %}{% block main %}
<h1>{{ name(c) }}</h1>
<section aria-labelledby="details"><h2 id="details">Details</h2>
<table><tbody>
{% for label, value in fields %}<tr><th scope="row">{{ label }}</th><td>{{ value }}</td></tr>
{% endfor %}
</tbody></table></section>
<section aria-labelledby="activities"><h2 id="activities">Activities</h2>
{% if activities %}<table>
<caption class="muted">Calls, meetings, emails, tasks and time logged on this contact, most recent first</caption>
<thead><tr><th scope="col">Type</th><th scope="col">Subject</th><th scope="col">When</th>
<th scope="col">Duration</th><th scope="col">Billable</th><th scope="col">Owner</th></tr></thead>
<tbody>
{% for a in activities %}
<tr><td>{{ a.type }}</td><td>{{ a.subject or "" }}</td><td><time datetime="{{ a.started_at }}">{{ when(a) }}</time></td>
<td>{{ duration(a) }}</td><td>{{ billing(a) }}</td><td>{{ owners.get(a.owner_id, a.owner_id) }}</td></tr>
{% endfor %}
</tbody>
</table>{% else %}<p>No activities.</p>{% endif %}</section>
<section aria-labelledby="tasks"><h2 id="tasks">Tasks</h2>
{% if tasks %}<ul>{% for t in tasks %}
<li>{{ t.title }} — {{ t.status }}{% if t.due_date %}, due {{ t.due_date }}{% endif %}</li>
{% endfor %}</ul>{% else %}<p>No tasks.</p>{% endif %}</section>
<section aria-labelledby="qb"><h2 id="qb">QuickBooks</h2>
{% if panel_url %}<iframe src="{{ panel_url }}" title="QuickBooks panel for {{ name(c) }}"></iframe>
{% elif panel_problem %}<p class="muted" role="status">The QuickBooks panel is unavailable: {{ panel_problem }}</p>
{% else %}<p class="muted">No panel configured (POST /_sandbox/panel).</p>{% endif %}
{% if c.quickbooks %}<h3>Stored billing summary</h3><pre>{{ c.quickbooks|tojson(indent=2) }}</pre>{% endif %}
</section>
{% endblock %}"""


def display_name(contact: dict[str, Any]) -> str:
    """Return the name to show: display_name, else first + last, else company, else email, else the id."""
    full = " ".join(part for part in (contact.get("first_name"), contact.get("last_name")) if part)
    return contact.get("display_name") or full or contact.get("company") or contact.get("email") or contact["id"]


def address_text(address: dict[str, Any]) -> str:
    """Return an address on one line."""
    return ", ".join(address[part] for part in ADDRESS_FIELDS if address.get(part))


def when(activity: dict[str, Any]) -> str:
    """Return an activity's start as ``YYYY-MM-DD HH:MM UTC``."""
    started = activity["started_at"]
    return f"{started[:10]} {started[11:16]} UTC"


def duration(activity: dict[str, Any]) -> str:
    """Return an activity's duration as ``1 h 30 min``, or an empty string when it has none."""
    minutes = activity["duration_minutes"]
    if minutes is None:
        return ""
    hours, rest = divmod(minutes, 60)
    return " ".join(part for part in (f"{hours} h" if hours else "", f"{rest} min" if rest or not hours else "")
                    if part)


def billing(activity: dict[str, Any]) -> str:
    """Return "yes" (with the rate and service when set) or "no"."""
    if not activity["billable"]:
        return "no"
    details = [f"{activity['hourly_rate']}/h" if activity["hourly_rate"] else "", activity["service"] or ""]
    extra = ", ".join(part for part in details if part)
    return f"yes ({extra})" if extra else "yes"


def contact_fields(contact: dict[str, Any], owners: dict[str, str]) -> list[tuple[str, Any]]:
    """Return (label, text) rows for the contact page."""
    plain = ("first_name", "last_name", "company", "display_name", "email", "phone", "mobile", "website",
             "notes")
    rows = [(key.replace("_", " ").capitalize(), contact.get(key) or "") for key in plain]
    owner = contact.get("owner_id")
    rows.append(("Owner", owners.get(owner, owner) if owner else ""))
    rows += [("Billing address", address_text(contact["billing_address"])),
             ("Shipping address", address_text(contact["shipping_address"])),
             ("Tags", ", ".join(contact["tags"])), ("Active", "yes" if contact["active"] else "no"),
             ("Version", contact["version"]), ("Updated", contact["updated_at"]), ("Id", contact["id"])]
    return rows


def page(template: str, panel_origin: str | None = None, **context: Any) -> Response:
    """Render a page with a CSP that allows only inline styles and frames from the panel's origin."""
    layout = current_app.jinja_env.from_string(LAYOUT)
    response = make_response(render_template_string(template, layout=layout, name=display_name, **context))
    frames = f" frame-src {panel_origin};" if panel_origin else ""
    response.headers["Content-Security-Policy"] = f"default-src 'none'; style-src 'unsafe-inline';{frames}"
    return response


@bp.get("/contacts")
def contacts() -> Response:
    """List contacts with links to their pages."""
    found, next_cursor = current_sandbox().store.list_contacts(limit=PAGE_SIZE)
    return page(CONTACTS, title="Contacts", contacts=found, more=next_cursor is not None)


@bp.get("/contacts/<contact_id>")
def contact(contact_id: str) -> Response:
    """Show one contact, its activities and tasks, and the crm-qb panel iframe."""
    sandbox = current_sandbox()
    try:
        found = sandbox.store.get_contact(contact_id)
    except ApiError:
        abort(404)
    panel_url, panel_problem = fetch_panel_url(sandbox.panel_api(), contact_id)
    panel_url = panel_url or sandbox.panel_url(contact_id)
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(panel_url)) if panel_url else None
    owners = {user["id"]: user["name"] for user in sandbox.store.users.list_users()}
    return page(CONTACT, panel_origin=origin, title=display_name(found), c=found,
                fields=contact_fields(found, owners), tasks=sandbox.store.list_tasks(contact_id),
                activities=sandbox.store.activities.for_contact(contact_id), owners=owners, when=when,
                duration=duration, billing=billing, panel_url=panel_url, panel_problem=panel_problem)


def fetch_panel_url(api: tuple[str, str] | None, contact_id: str) -> tuple[str | None, str | None]:
    """Ask crm-qb for the contact's panel URL: (url, None), or (None, why not); (None, None) when not configured."""
    if api is None:
        return None, None
    endpoint, key = api
    try:
        answer = requests.post(endpoint.replace("{id}", quote(contact_id, safe="")), timeout=5,
                               headers={"Authorization": f"Bearer {key}"})
    except requests.RequestException as exc:
        return None, f"crm-qb did not answer ({type(exc).__name__})"
    url = answer.json().get("url") if answer.ok and answer.headers.get("Content-Type", "").startswith(
        "application/json") else None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return None, f"crm-qb answered {answer.status_code}"
    return url, None
