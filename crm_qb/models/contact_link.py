"""A link between a CRM contact and a QBO customer, with the base both sides last agreed on."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, Integer
from sqlalchemy.orm import Mapped, mapped_column, relationship

from crm_qb.db import UTCDateTime, db
from crm_qb.models.mixins import ConnectionOwned, Timestamps
from crm_qb.models.types import JSONType, Key, PlainText, value_enum

if TYPE_CHECKING:
    from crm_qb.models.connection import Connection


class LinkState(enum.Enum):
    """Whether the pair is linked, waiting for a person to choose, or no longer linked."""

    LINKED = "linked"
    REVIEW = "review"
    UNLINKED = "unlinked"


class ContactLink(ConnectionOwned, Timestamps, db.Model):  # type: ignore[name-defined,misc]
    """One CRM contact and its QBO customer; ``base`` holds the canonical values of the last agreement."""

    __tablename__ = "contact_links"
    __table_args__ = (
        db.UniqueConstraint("connection_id", "crm_contact_id"),
        db.UniqueConstraint("connection_id", "qbo_customer_id"),
        db.Index("ix_contact_links_connection_id", "connection_id"),
        db.Index("ix_contact_links_time_walked_at", "connection_id", "time_walked_at"),
        # The records waiting for review of a connection (the console's list, every drain unit's recheck), and on
        # PostgreSQL the ones naming a given candidate (``review.waiting_naming``): without them, each unit of a
        # drain read every link of its connection (migration 0006_review_idx).
        db.Index("ix_contact_links_connection_state", "connection_id", "state"),
        db.Index("ix_contact_links_review_candidates", "review_candidates", postgresql_using="gin",
                 postgresql_ops={"review_candidates": "jsonb_path_ops"}).ddl_if(dialect="postgresql"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    crm_contact_id: Mapped[str | None] = mapped_column(Key(128))
    qbo_customer_id: Mapped[str | None] = mapped_column(Key(64))
    state: Mapped[LinkState] = mapped_column(value_enum(LinkState), default=LinkState.LINKED)
    review_reason: Mapped[str | None] = mapped_column(PlainText)
    review_candidates: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    base: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    qbo_owned: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    qbo_sync_token: Mapped[str | None] = mapped_column(Key(32))
    qbo_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    crm_version: Mapped[str | None] = mapped_column(Key(64))
    crm_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    qbo_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # When the contact's earlier CRM activities were read for billable time (sync/time/earlier.py); None: not yet.
    time_walked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    connection: Mapped[Connection] = relationship(back_populates="contact_links")
