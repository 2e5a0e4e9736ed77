"""A connection: one CRM account linked to one QBO company (realm)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, Integer
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_qb.db import UTCDateTime, db
from crm_qb.models.mixins import ConnectionOwned, Timestamps, UpdatedAt
from crm_qb.models.types import JSONType, Key, Label, PlainText, value_enum

if TYPE_CHECKING:
    from crm_qb.models.contact_link import ContactLink


class QboStatus(enum.Enum):
    """Where the connection stands with QuickBooks."""

    NOT_CONNECTED = "not_connected"
    CONNECTED = "connected"
    NEEDS_RECONNECT = "needs_reconnect"
    DISCONNECTED = "disconnected"


# Where a connection stands with its CRM (``connections.crm_status``): only OAuth grants ever leave "connected".
CRM_CONNECTED, CRM_NEEDS_RECONNECT, CRM_NOT_CONNECTED = "connected", "needs_reconnect", "not_connected"


class Connection(Timestamps, db.Model):  # type: ignore[name-defined,misc]
    """A CRM account and its QBO company, with their encrypted credentials and per-connection settings."""

    __tablename__ = "connections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Label(200))
    # Which connector talks to the CRM (crm_qb.crm.factory.KINDS); "rest": the REST contract, docs/architecture.md §5.
    crm_kind: Mapped[str] = mapped_column(Key(32), default="rest", server_default="rest")
    crm_base_url: Mapped[str] = mapped_column(Key(500))
    # Where the CRM's web pages are served (the panel may be framed only there); None: crm_base_url's origin.
    crm_web_origin: Mapped[str | None] = mapped_column(Key(500))
    crm_token_encrypted: Mapped[str] = mapped_column(PlainText)
    crm_hook_secret_encrypted: Mapped[str] = mapped_column(PlainText)
    # The CRM's own account id (HubSpot's portal id): webhooks and app-card requests find their connections by it.
    crm_account_id: Mapped[str | None] = mapped_column(Key(64), index=True)
    # A CRM OAuth grant (HubSpot): the refresh token and when the access token (crm_token_encrypted) expires.
    crm_refresh_token_encrypted: Mapped[str | None] = mapped_column(PlainText)
    crm_access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # "connected", or "needs_reconnect" when the CRM refused the grant (crm_qb.crm.errors.CrmNeedsReconnectError).
    crm_status: Mapped[str] = mapped_column(Key(32), default="connected", server_default="connected")
    crm_status_reason: Mapped[str | None] = mapped_column(PlainText)
    api_key_hash: Mapped[str] = mapped_column(Key(64), unique=True)
    # Mixed into the key that signs this connection's panel tokens; a new value revokes them all (None: legacy rows).
    panel_secret: Mapped[str | None] = mapped_column(Key(64))
    # Admin links and sessions carry it; raising it revokes every one of them.
    admin_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    qbo_realm_id: Mapped[str | None] = mapped_column(Key(64), index=True)
    qbo_status: Mapped[QboStatus] = mapped_column(value_enum(QboStatus), default=QboStatus.NOT_CONNECTED)
    qbo_status_reason: Mapped[str | None] = mapped_column(PlainText)
    qbo_access_token_encrypted: Mapped[str | None] = mapped_column(PlainText)
    qbo_refresh_token_encrypted: Mapped[str | None] = mapped_column(PlainText)
    qbo_access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    qbo_refresh_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    qbo_company_name: Mapped[str | None] = mapped_column(Label(500))
    qbo_is_sandbox: Mapped[bool] = mapped_column(Boolean, default=False)
    home_currency: Mapped[str | None] = mapped_column(Key(3))
    multicurrency_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    company_timezone: Mapped[str] = mapped_column(Key(64), default="UTC")
    settings: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    cdc_cursor: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The CRM catch-up poll (crm_qb.sync.pipeline.crm_poll): the CRM's updated_at read up to, and when it ran.
    crm_cursor: Mapped[datetime | None] = mapped_column(UTCDateTime())
    crm_polled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A side that stopped answering ("qbo" or "crm"), since when and why (crm_qb.sync.pipeline.outage).
    outage_side: Mapped[str | None] = mapped_column(Key(8))
    outage_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    outage_reason: Mapped[str | None] = mapped_column(PlainText)

    contact_links: Mapped[list[ContactLink]] = relationship(back_populates="connection")

    def __repr__(self) -> str:
        return f"<Connection {self.id} realm={self.qbo_realm_id} {self.qbo_status.value}>"


class QboReference(ConnectionOwned, UpdatedAt, db.Model):  # type: ignore[name-defined,misc]
    """A QBO reference-list entry (a term or payment method) so ids can be shown by name."""

    __tablename__ = "qbo_references"
    __table_args__ = (db.UniqueConstraint("connection_id", "kind", "qbo_id"),
                      db.Index("ix_qbo_references_connection_id", "connection_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(Key(32))
    qbo_id: Mapped[str] = mapped_column(Key(64))
    name: Mapped[str] = mapped_column(Label(500))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
