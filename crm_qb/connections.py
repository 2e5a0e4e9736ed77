"""Creating, describing and re-keying connections (a CRM account and its QBO company).

A connection holds four credentials of its own: the API key the CRM's back end calls crm-qb with (stored as a
hash), the secret that signs the CRM's change hooks (encrypted), the panel secret mixed into the key that signs
its panel URLs, and the admin epoch its admin links and sessions carry. Each can be replaced at once
(``rotate_*``, ``revoke_admin_sessions``); the old one stops working with the commit, because every check reads
the connection's current value (README, "Security").
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import select

from crm_qb.crm.factory import DEFAULT_KIND, check_kind
from crm_qb.crypto import SecretBox, hash_api_key, new_api_key
from crm_qb.db import db
from crm_qb.errors import PermanentError
from crm_qb.models import CRM_CONNECTED, CRM_NOT_CONNECTED, Connection

_HOST = re.compile(r"[a-z0-9._\-]+|[0-9a-f:.]+")  # a DNS name or an IPv4/IPv6 address (urlparse lower-cases it)


class InvalidConnectionInput(PermanentError):
    """A value given for a new connection is not acceptable; the message names it."""


class UnknownConnection(PermanentError):
    """No connection has the id given; the message names it."""


@dataclass(frozen=True)
class NewConnection:
    """A connection just created, with the two secrets that are shown exactly once."""

    connection: Connection
    api_key: str
    crm_hook_secret: str

    def as_json(self) -> dict[str, Any]:
        """The object ``crm-qb connection add`` prints (docs/architecture.md §6; README, "The crm-qb command")."""
        found = {"id": self.connection.id, "name": self.connection.name, "crm_url": self.connection.crm_base_url,
                 "api_key": self.api_key, "crm_hook_secret": self.crm_hook_secret}
        if self.connection.crm_kind != "rest":
            found.update(crm_kind=self.connection.crm_kind, crm_account_id=self.connection.crm_account_id,
                         crm_status=self.connection.crm_status)
        return found


def create_connection(box: SecretBox, *, crm_url: str, crm_token: str, name: str | None = None,
                      crm_kind: str = DEFAULT_KIND, crm_web_origin: str | None = None) -> NewConnection:
    """Create and commit a connection for the CRM of ``crm_kind`` at ``crm_url``; its secrets are returned once.

    ``crm_web_origin`` is where the CRM's web pages live (the only origin that may frame the panel); by default
    the origin of ``crm_url``.
    """
    check_kind(crm_kind)
    parsed = urlparse(crm_url or "")
    if parsed.scheme not in ("http", "https") or not parsed.netloc or len(crm_url) > 500:
        raise InvalidConnectionInput(f"--crm-url must be an http(s) URL of at most 500 characters, got {crm_url!r}")
    if not (crm_token or "").strip():
        raise InvalidConnectionInput("--crm-token must not be empty")
    origin = web_origin(crm_web_origin) if crm_web_origin else None
    api_key, hook_secret = new_api_key(), secrets.token_urlsafe(32)
    connection = Connection(
        name=(name or parsed.netloc)[:200], crm_kind=crm_kind, crm_base_url=crm_url.rstrip("/"),
        crm_web_origin=origin, crm_token_encrypted=box.encrypt(crm_token.strip()),
        crm_hook_secret_encrypted=box.encrypt(hook_secret), api_key_hash=hash_api_key(api_key),
        panel_secret=new_panel_secret(), settings={},
    )
    db.session.add(connection)
    db.session.commit()
    return NewConnection(connection, api_key, hook_secret)


def create_hubspot_connection(box: SecretBox, *, api_base: str, token: str | None, name: str | None = None,
                              portal_id: str | None = None, client_secret: str | None = None,
                              web_origin_url: str = "https://app.hubspot.com") -> NewConnection:
    """Create and commit a HubSpot connection (DESIGN §10).

    With a private-app ``token`` the connection is ready at once (``portal_id`` is the token's portal, read by the
    caller with ``crm_qb.crm.hubspot.connector.set_up_portal``, which also creates the QuickBooks properties).
    Without one it waits for HubSpot's OAuth install (``crm_status`` "not_connected", README "HubSpot").
    ``client_secret`` is the secret that signs this portal's webhooks and card requests when it is not the
    installation's app (``CRM_QB_HUBSPOT_CLIENT_SECRET``), e.g. a private app's own client secret.
    """
    parsed = urlparse(api_base or "")
    if parsed.scheme not in ("http", "https") or not parsed.netloc or len(api_base) > 500:
        raise InvalidConnectionInput(f"--crm-url must be HubSpot's API URL (http(s), at most 500 characters), "
                                     f"got {api_base!r}")
    api_key, hook_secret = new_api_key(), (client_secret or "").strip() or secrets.token_urlsafe(32)
    connection = Connection(
        name=(name or f"HubSpot {portal_id or 'portal'}")[:200], crm_kind="hubspot",
        crm_base_url=api_base.rstrip("/"), crm_web_origin=web_origin(web_origin_url),
        crm_token_encrypted=box.encrypt((token or "").strip()), crm_hook_secret_encrypted=box.encrypt(hook_secret),
        crm_account_id=portal_id, crm_status=CRM_CONNECTED if (token or "").strip() else CRM_NOT_CONNECTED,
        api_key_hash=hash_api_key(api_key), panel_secret=new_panel_secret(), settings={},
    )
    db.session.add(connection)
    db.session.commit()
    return NewConnection(connection, api_key, hook_secret)


def get_connection(connection_id: int) -> Connection:
    """The connection with ``connection_id``; UnknownConnection names the id when there is none."""
    found = db.session.get(Connection, connection_id)
    if found is None:
        raise UnknownConnection(f"no connection {connection_id} (check CONNECTION_ID; `crm-qb connection list` shows "
                                "them)")
    return found


def web_origin(url: str) -> str:
    """The origin (``scheme://host[:port]``, no user info or path) of an http(s) URL; InvalidConnectionInput if bad.

    It goes into the panel's Content-Security-Policy header, so only the characters a host name or address has
    are accepted.
    """
    parsed = urlparse(url or "")
    try:
        port = parsed.port
    except ValueError:
        port, parsed = None, parsed._replace(scheme="")
    host = parsed.hostname or ""
    if parsed.scheme not in ("http", "https") or not _HOST.fullmatch(host):
        raise InvalidConnectionInput(f"--crm-web-origin must be an http(s) URL such as https://crm.example.com, "
                                     f"got {url!r}")
    host = f"[{host}]" if ":" in host else host
    return f"{parsed.scheme}://{host}" + (f":{port}" if port else "")


def crm_web_origin(connection: Connection) -> str:
    """Where the connection's CRM serves its web pages: the configured origin, else its API URL's origin."""
    return connection.crm_web_origin or web_origin(connection.crm_base_url)


def set_crm_web_origin(connection_id: int, url: str | None) -> Connection:
    """Set (None: reset to the API URL's origin) where the CRM's web pages live; committed."""
    connection = get_connection(connection_id)
    connection.crm_web_origin = web_origin(url) if url else None
    db.session.commit()
    return connection


def new_panel_secret() -> str:
    """A fresh per-connection panel secret (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


def rotate_api_key(connection_id: int) -> str:
    """Give the connection a new API key (committed; the old one stops working); return it, shown once."""
    connection, api_key = get_connection(connection_id), new_api_key()
    connection.api_key_hash = hash_api_key(api_key)
    db.session.commit()
    return api_key


def rotate_hook_secret(box: SecretBox, connection_id: int) -> str:
    """Give the connection a new CRM hook secret (committed; hooks signed with the old one are refused)."""
    connection, secret = get_connection(connection_id), secrets.token_urlsafe(32)
    connection.crm_hook_secret_encrypted = box.encrypt(secret)
    db.session.commit()
    return secret


def rotate_panel_secret(connection_id: int) -> None:
    """Give the connection a new panel secret (committed): every panel URL and embed token made before is void."""
    get_connection(connection_id).panel_secret = new_panel_secret()
    db.session.commit()


def revoke_admin_sessions(connection_id: int) -> int:
    """Void every admin link and session of the connection (committed); return the new admin epoch."""
    connection = get_connection(connection_id)
    connection.admin_epoch = (connection.admin_epoch or 0) + 1
    db.session.commit()
    return connection.admin_epoch


def describe(connection: Connection) -> dict[str, Any]:
    """A JSON-safe summary of ``connection`` without any secret."""
    def iso(value: Any) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": connection.id, "name": connection.name, "crm_kind": connection.crm_kind,
        "crm_url": connection.crm_base_url, "crm_web_origin": crm_web_origin(connection),
        "crm": {"status": connection.crm_status, "reason": connection.crm_status_reason,
                "account_id": connection.crm_account_id,
                "auth": "oauth" if connection.crm_refresh_token_encrypted else "token",
                "access_token_expires_at": iso(connection.crm_access_expires_at)},
        "qbo": {
            "status": connection.qbo_status.value, "reason": connection.qbo_status_reason,
            "realm_id": connection.qbo_realm_id, "company_name": connection.qbo_company_name,
            "home_currency": connection.home_currency, "multicurrency": connection.multicurrency_enabled,
            "access_token_expires_at": iso(connection.qbo_access_expires_at),
            "refresh_token_expires_at": iso(connection.qbo_refresh_expires_at),
        },
        "settings": connection.settings, "last_sync_at": iso(connection.last_sync_at),
        "created_at": iso(connection.created_at),
        "outage": {"side": connection.outage_side, "since": iso(connection.outage_since),
                   "reason": connection.outage_reason} if connection.outage_side else None,
        "polls": {"qbo_cdc_cursor": iso(connection.cdc_cursor), "crm_cursor": iso(connection.crm_cursor),
                  "crm_polled_at": iso(connection.crm_polled_at)},
    }


def list_connections() -> list[Connection]:
    """Every connection, oldest first."""
    return list(db.session.scalars(select(Connection).order_by(Connection.id)))
