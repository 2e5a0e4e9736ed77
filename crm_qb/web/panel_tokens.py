"""Signed, expiring tokens for the contact panel.

Two kinds, each signed with the app's SECRET_KEY (itsdangerous) under its own salt:

- a *panel token* opens one contact's panel (``/panel/<connection>/contacts/<contact>?token=``). The normal way
  to get one is the CRM's back end asking with its API key, for the contact its user is viewing
  (``POST /api/v1/connections/<id>/contacts/<contact>/panel-url``), valid for PANEL_URL_TTL_SECONDS;
- an *embed token* is the connection-scoped credential of the older iframe URL template
  (``/panel/<connection>/embed/{id}?token=``): it is exchanged for a fresh panel token of whichever contact the
  URL names, so whoever sees it can open every contact's panel of that connection by changing the id. It is
  kept for CRMs that cannot call an API when they render a page; it lives long (default 30 days) and belongs in
  the CRM's server-side configuration, never in a page a user can read.

The salt also carries the connection's API key hash and its panel secret: a token only verifies for the
connection it was made for, and rotating either (``crm-qb connection rotate``) revokes all of its tokens. Expiry
is inside the signed payload, so each token can have its own lifetime.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from itsdangerous import BadSignature, URLSafeSerializer

from crm_qb.models import Connection

DEFAULT_TTL_SECONDS = 3600
PANEL_URL_TTL_SECONDS = 900
MAX_PANEL_URL_TTL_SECONDS = 3600
DEFAULT_EMBED_TTL_SECONDS = 30 * 86400
ALL_CONTACTS = "*"
_PANEL_SALT = "crm-qb.panel.contact.v1"
_EMBED_SALT = "crm-qb.panel.embed.v1"


class PanelTokenError(Exception):
    """A token that does not open this panel; the message is safe to show to the person holding it."""


@dataclass(frozen=True)
class PanelGrant:
    """What a valid token allows: one connection, one contact (or all, for embed tokens), until ``expires``."""

    connection_id: int
    crm_contact_id: str
    expires: int


def make_panel_token(secret_key: str, connection: Connection, crm_contact_id: str,
                     ttl: int = DEFAULT_TTL_SECONDS, now: float | None = None) -> str:
    """Return a token opening ``crm_contact_id``'s panel of ``connection`` for ``ttl`` seconds."""
    if crm_contact_id == ALL_CONTACTS:
        raise ValueError("a panel token names one contact; use make_embed_token for all contacts")
    return _dumps(secret_key, _PANEL_SALT, connection, crm_contact_id, ttl, now)


def make_embed_token(secret_key: str, connection: Connection, ttl: int = DEFAULT_EMBED_TTL_SECONDS,
                     now: float | None = None) -> str:
    """Return a connection-scoped embed token valid for ``ttl`` seconds."""
    return _dumps(secret_key, _EMBED_SALT, connection, ALL_CONTACTS, ttl, now)


def check_panel_token(secret_key: str, token: str | None, connection: Connection, crm_contact_id: str,
                      now: float | None = None) -> PanelGrant:
    """Return the grant of a panel token for this contact; PanelTokenError says why it does not open it."""
    grant = _loads(secret_key, _PANEL_SALT, token, connection, now)
    if grant.crm_contact_id != crm_contact_id:
        raise PanelTokenError("This link was made for another contact. Open the panel from the contact's page.")
    return grant


def check_embed_token(secret_key: str, token: str | None, connection: Connection,
                      now: float | None = None) -> PanelGrant:
    """Return the grant of a connection's embed token; PanelTokenError says why it is not valid."""
    return _loads(secret_key, _EMBED_SALT, token, connection, now)


def panel_url(public_url: str, connection_id: int, crm_contact_id: str, token: str) -> str:
    """The absolute URL of a contact's panel under ``public_url``."""
    path = f"/panel/{connection_id}/contacts/{quote(crm_contact_id, safe='')}"
    return f"{public_url.rstrip('/')}{path}?{urlencode({'token': token})}"


def embed_url_template(public_url: str, connection_id: int, token: str) -> str:
    """The CRM iframe URL template (``{id}`` is the contact id) for a connection's embed token."""
    return f"{public_url.rstrip('/')}/panel/{connection_id}/embed/{{id}}?{urlencode({'token': token})}"


def _dumps(secret_key: str, salt: str, connection: Connection, contact: str, ttl: int, now: float | None) -> str:
    if isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0:
        raise ValueError(f"ttl must be a positive whole number of seconds, got {ttl!r}")
    if not contact:
        raise ValueError("crm_contact_id must not be empty")
    expires = int((time.time() if now is None else now) + ttl)
    payload = {"c": connection.id, "k": contact, "e": expires}
    return str(_serializer(secret_key, salt, connection).dumps(payload))


def _loads(secret_key: str, salt: str, token: str | None, connection: Connection, now: float | None) -> PanelGrant:
    if not token:
        raise PanelTokenError("This panel link has no token. Open the panel from the contact's page.")
    try:
        payload: Any = _serializer(secret_key, salt, connection).loads(token)
    except BadSignature:
        raise PanelTokenError("This panel link is not valid. Open the panel again from the contact's page.") from None
    grant = PanelGrant(int(payload["c"]), str(payload["k"]), int(payload["e"]))
    if grant.connection_id != connection.id:
        raise PanelTokenError("This panel link belongs to another connection.")
    if grant.expires <= (time.time() if now is None else now):
        raise PanelTokenError("This panel link has expired. Reload the contact's page to get a new one.")
    return grant


def _serializer(secret_key: str, salt: str, connection: Connection) -> URLSafeSerializer:
    scope = f"{connection.id}:{connection.api_key_hash}:{connection.panel_secret or ''}"
    return URLSafeSerializer(secret_key, salt=f"{salt}:{scope}")
