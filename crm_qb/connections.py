"""Creating and describing connections (a CRM account and its QBO company)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from sqlalchemy import select

from crm_qb.crm.factory import DEFAULT_KIND, check_kind
from crm_qb.crypto import SecretBox, hash_api_key, new_api_key
from crm_qb.db import db
from crm_qb.errors import PermanentError
from crm_qb.models import Connection


class InvalidConnectionInput(PermanentError):
    """A value given for a new connection is not acceptable; the message names it."""


@dataclass(frozen=True)
class NewConnection:
    """A connection just created, with the two secrets that are shown exactly once."""

    connection: Connection
    api_key: str
    crm_hook_secret: str

    def as_json(self) -> dict[str, Any]:
        """The object ``crm-qb connection add`` prints (docs/architecture.md §6; README, "The crm-qb command")."""
        return {"id": self.connection.id, "name": self.connection.name, "crm_url": self.connection.crm_base_url,
                "api_key": self.api_key, "crm_hook_secret": self.crm_hook_secret}


def create_connection(box: SecretBox, *, crm_url: str, crm_token: str, name: str | None = None,
                      crm_kind: str = DEFAULT_KIND) -> NewConnection:
    """Create and commit a connection for the CRM of ``crm_kind`` at ``crm_url``; its secrets are returned once."""
    check_kind(crm_kind)
    parsed = urlparse(crm_url or "")
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidConnectionInput(f"--crm-url must be an http(s) URL, got {crm_url!r}")
    if not (crm_token or "").strip():
        raise InvalidConnectionInput("--crm-token must not be empty")
    api_key, hook_secret = new_api_key(), secrets.token_urlsafe(32)
    connection = Connection(
        name=(name or parsed.netloc)[:200], crm_kind=crm_kind, crm_base_url=crm_url.rstrip("/"),
        crm_token_encrypted=box.encrypt(crm_token.strip()), crm_hook_secret_encrypted=box.encrypt(hook_secret),
        api_key_hash=hash_api_key(api_key), settings={},
    )
    db.session.add(connection)
    db.session.commit()
    return NewConnection(connection, api_key, hook_secret)


def describe(connection: Connection) -> dict[str, Any]:
    """A JSON-safe summary of ``connection`` without any secret."""
    def iso(value: Any) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": connection.id, "name": connection.name, "crm_kind": connection.crm_kind,
        "crm_url": connection.crm_base_url,
        "qbo": {
            "status": connection.qbo_status.value, "reason": connection.qbo_status_reason,
            "realm_id": connection.qbo_realm_id, "company_name": connection.qbo_company_name,
            "home_currency": connection.home_currency, "multicurrency": connection.multicurrency_enabled,
            "access_token_expires_at": iso(connection.qbo_access_expires_at),
            "refresh_token_expires_at": iso(connection.qbo_refresh_expires_at),
        },
        "settings": connection.settings, "last_sync_at": iso(connection.last_sync_at),
        "created_at": iso(connection.created_at),
    }


def list_connections() -> list[Connection]:
    """Every connection, oldest first."""
    return list(db.session.scalars(select(Connection).order_by(Connection.id)))
