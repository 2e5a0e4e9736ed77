"""Columns that several tables share, declared once.

``ConnectionOwned``: the row belongs to one connection and goes with it (``ON DELETE CASCADE``); a table that
also wants the single-column index declares it in its ``__table_args__`` (most lead a composite key with the
connection instead). ``CreatedAt`` and ``Timestamps``: when a row was made and, for rows that change, last
changed (timezone-aware UTC, set by the application, not the database).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from crm_qb.db import UTCDateTime, utcnow


class ConnectionOwned:
    """A row of one connection, deleted with it."""

    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))


class CreatedAt:
    """When the row was made."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Timestamps(CreatedAt):
    """When the row was made and when it last changed."""

    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class UpdatedAt:
    """When the row last changed (for rows whose creation time nobody needs)."""

    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
