"""A CRM task created for an overdue invoice under one rule (e.g. "14 days overdue")."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Integer
from sqlalchemy.orm import Mapped, mapped_column

from crm_qb.db import UTCDateTime, db
from crm_qb.models.mixins import ConnectionOwned, CreatedAt
from crm_qb.models.types import Key, PlainText, value_enum


class FollowUpStatus(enum.Enum):
    """Open in the CRM, completed by us (paid, voided, ...), or closed by a CRM user."""

    PENDING = "pending"
    OPEN = "open"
    COMPLETED = "completed"
    CLOSED_BY_USER = "closed_by_user"


class FollowUp(ConnectionOwned, CreatedAt, db.Model):  # type: ignore[name-defined,misc]
    """At most one per (connection, invoice, rule): the unique constraint decides, not check-then-insert."""

    __tablename__ = "follow_ups"
    __table_args__ = (db.UniqueConstraint("connection_id", "qbo_invoice_id", "rule_days"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    qbo_invoice_id: Mapped[str] = mapped_column(Key(64))
    rule_days: Mapped[int] = mapped_column(Integer)
    crm_contact_id: Mapped[str] = mapped_column(Key(128))
    crm_task_id: Mapped[str | None] = mapped_column(Key(128))
    status: Mapped[FollowUpStatus] = mapped_column(value_enum(FollowUpStatus), default=FollowUpStatus.PENDING)
    status_reason: Mapped[str | None] = mapped_column(PlainText)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When a create of this row's task was first sent to the CRM (committed before the call). None: no create was
    # ever sent, so no task in the CRM can carry the row's marker and the marker search is skipped
    # (crm_qb/sync/followups/scan.py; migration 0008_followup_attempt).
    task_attempted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
