"""A field both sides changed differently in one sync window, and how it was decided."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from crm_qb.db import UTCDateTime, db
from crm_qb.models.mixins import ConnectionOwned, CreatedAt
from crm_qb.models.types import JSONType, Key, value_enum


class ConflictStatus(enum.Enum):
    """Decided automatically, confirmed by a person, or flipped to the other side's value by a person."""

    DECIDED = "decided"
    CONFIRMED = "confirmed"
    FLIPPED = "flipped"


class Conflict(ConnectionOwned, CreatedAt, db.Model):  # type: ignore[name-defined,misc]
    """One field conflict: both values, both change times, the winner and the rule that chose it."""

    __tablename__ = "conflicts"
    __table_args__ = (db.Index("ix_conflicts_connection_id", "connection_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    contact_link_id: Mapped[int | None] = mapped_column(ForeignKey("contact_links.id", ondelete="SET NULL"))
    field: Mapped[str] = mapped_column(Key(64))
    qbo_value: Mapped[Any] = mapped_column(JSONType, nullable=True)
    crm_value: Mapped[Any] = mapped_column(JSONType, nullable=True)
    qbo_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    crm_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    winner: Mapped[str] = mapped_column(Key(8))
    rule: Mapped[str] = mapped_column(Key(32))
    status: Mapped[ConflictStatus] = mapped_column(value_enum(ConflictStatus), default=ConflictStatus.DECIDED)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
