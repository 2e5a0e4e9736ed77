"""The audit trail: one row per applied change or decision, kept for people to read."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from crm_qb.db import db
from crm_qb.models.mixins import CreatedAt
from crm_qb.models.types import JSONType, Key, Label, PlainText


class AuditEntry(CreatedAt, db.Model):  # type: ignore[name-defined,misc]
    """What happened (action, direction, entity, field diff), its outcome, and where to trace it."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        db.Index("ix_audit_entries_connection_created", "connection_id", "created_at"),
        # /healthz and the health panel count failed records by outcome, per connection and overall
        db.Index("ix_audit_entries_outcome_connection", "outcome", "connection_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    inbound_event_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_events.id", ondelete="SET NULL"))
    job_id: Mapped[str | None] = mapped_column(Label(200))
    action: Mapped[str] = mapped_column(Key(64))
    direction: Mapped[str | None] = mapped_column(Key(16))
    entity: Mapped[str | None] = mapped_column(Key(64))
    entity_id: Mapped[str | None] = mapped_column(Key(128))
    diff: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    outcome: Mapped[str] = mapped_column(Key(32), default="ok")
    message: Mapped[str | None] = mapped_column(PlainText)
    intuit_tid: Mapped[str | None] = mapped_column(Label(128))
