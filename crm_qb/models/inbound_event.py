"""A change reported to us (QBO webhook, CRM change hook, CDC poll), stored before it is acknowledged."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from crm_qb.db import UTCDateTime, db, utcnow
from crm_qb.models.types import JSONType, Key, PlainText, value_enum


class EventSource(enum.Enum):
    """Who told us about the change."""

    QBO = "qbo"
    CRM = "crm"


class EventStatus(enum.Enum):
    """Where the event is in its life: waiting, done, deliberately ignored, failed for good, or refused at ingress
    because a value could not be stored (its reason says which)."""

    PENDING = "pending"
    PROCESSED = "processed"
    IGNORED = "ignored"
    FAILED = "failed"
    REJECTED = "rejected"


class InboundEvent(db.Model):  # type: ignore[name-defined,misc]
    """One entity change; the unique (source, dedupe_key) makes a redelivery a no-op."""

    __tablename__ = "inbound_events"
    __table_args__ = (
        db.UniqueConstraint("source", "dedupe_key"),
        db.Index("ix_inbound_events_status_received", "status", "received_at"),
        db.Index("ix_inbound_events_status_next_attempt", "status", "next_attempt_at"),
        # A drain's pending events (one connection's, in id order) and a realm's routing: found without reading
        # every other tenant's pending events, so one tenant's backlog (a first sync's echoes, a side that is down)
        # does not slow the others' drains (migration 0007_event_idx).
        db.Index("ix_inbound_events_connection_status", "connection_id", "status", "id"),
        db.Index("ix_inbound_events_realm_status", "realm_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[EventSource] = mapped_column(value_enum(EventSource, 8))
    dedupe_key: Mapped[str] = mapped_column(Key(400))
    connection_id: Mapped[int | None] = mapped_column(ForeignKey("connections.id", ondelete="SET NULL"))
    realm_id: Mapped[str | None] = mapped_column(Key(64))
    entity: Mapped[str] = mapped_column(Key(64))
    entity_id: Mapped[str | None] = mapped_column(Key(128))
    operation: Mapped[str] = mapped_column(Key(32))
    occurred_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[EventStatus] = mapped_column(value_enum(EventStatus), default=EventStatus.PENDING)
    status_reason: Mapped[str | None] = mapped_column(PlainText)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # A pending event whose last attempt failed waits until then (crm_qb.sync.rules.retry); None: due now.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the retention job emptied ``payload`` (personal data is kept CRM_QB_EVENT_RETENTION_DAYS, not forever).
    payload_pruned_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
