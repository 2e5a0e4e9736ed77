"""Billable time (DESIGN §9): a CRM activity's TimeActivity in QBO, and each CRM user's QBO person.

``time_entries`` holds one row per CRM activity the time sync has seen, whatever became of it: the unique
(connection, activity) pair is what makes a create happen once, together with the ``request_id`` stored before
the create is sent (QBO answers a repeated request id with the first answer). Held time (an unmapped user, an
unlinked contact, no item) stays here with its reason until it can go; it is never dropped.
"""

from __future__ import annotations

import enum
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Date, Integer
from sqlalchemy.orm import Mapped, mapped_column

from crm_qb.db import db
from crm_qb.models.mixins import ConnectionOwned, Timestamps
from crm_qb.models.types import ExactDecimal, JSONType, Key, Label, PlainText, value_enum


class TimeState(enum.Enum):
    """Where an activity's time stands."""

    HELD = "held"  # billable time that cannot go yet (hold_reason says why); retried when the reason goes
    CREATING = "creating"  # a create was sent with request_id; the answer was not stored yet
    SYNCED = "synced"  # a TimeActivity exists in QBO and is not billed
    BILLED = "billed"  # QBO billed it (HasBeenBilled): frozen, later CRM edits become conflicts
    REMOVED = "removed"  # not (or no longer) time in QBO: not billable, no duration, or deleted


class TimeEntry(ConnectionOwned, Timestamps, db.Model):  # type: ignore[name-defined,misc]
    """One CRM activity and, once created, its QBO TimeActivity."""

    __tablename__ = "time_entries"
    __table_args__ = (
        db.UniqueConstraint("connection_id", "crm_activity_id"),
        db.Index("ix_time_entries_contact", "connection_id", "crm_contact_id"),
        db.Index("ix_time_entries_state", "connection_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    crm_activity_id: Mapped[str] = mapped_column(Key(128))
    crm_contact_id: Mapped[str | None] = mapped_column(Key(128))
    crm_user_id: Mapped[str | None] = mapped_column(Key(128))
    crm_version: Mapped[int | None] = mapped_column(BigInteger)  # HubSpot's are epoch milliseconds
    state: Mapped[TimeState] = mapped_column(value_enum(TimeState), default=TimeState.HELD)
    hold_kind: Mapped[str | None] = mapped_column(Key(16))  # contact | user | item | qbo | retry: what releases it
    hold_reason: Mapped[str | None] = mapped_column(PlainText)
    activity: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)  # the activity as last seen
    qbo_id: Mapped[str | None] = mapped_column(Key(64))
    qbo_sync_token: Mapped[str | None] = mapped_column(Key(32))
    qbo_customer_id: Mapped[str | None] = mapped_column(Key(64))
    billable_status: Mapped[str | None] = mapped_column(Key(16))
    request_id: Mapped[str | None] = mapped_column(Key(64))
    batch_item_id: Mapped[str | None] = mapped_column(Key(16))
    sent: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # the body of the create, resent as is
    written: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # the fields QBO holds from our last write
    txn_date: Mapped[date | None] = mapped_column(Date)
    minutes: Mapped[int | None] = mapped_column(Integer)
    hourly_rate: Mapped[Decimal | None] = mapped_column(ExactDecimal(18, 4))
    amount: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    currency: Mapped[str | None] = mapped_column(Key(3))
    conflict_version: Mapped[int | None] = mapped_column(BigInteger)  # the CRM version a billed conflict was noted for


class TimeUserMapping(ConnectionOwned, Timestamps, db.Model):  # type: ignore[name-defined,misc]
    """Which QBO Employee or Vendor a CRM user's time is recorded for, and how that was decided."""

    __tablename__ = "time_user_mappings"
    __table_args__ = (db.UniqueConstraint("connection_id", "crm_user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    crm_user_id: Mapped[str] = mapped_column(Key(128))
    name: Mapped[str | None] = mapped_column(Label(255))
    email: Mapped[str | None] = mapped_column(Label(254))
    qbo_kind: Mapped[str | None] = mapped_column(Key(16))  # Employee | Vendor; None while in review
    qbo_id: Mapped[str | None] = mapped_column(Key(64))
    qbo_name: Mapped[str | None] = mapped_column(Label(500))
    source: Mapped[str] = mapped_column(Key(16))  # email | name | manual | review
    review_reason: Mapped[str | None] = mapped_column(PlainText)
    candidates: Mapped[list[Any]] = mapped_column(JSONType, default=list)
