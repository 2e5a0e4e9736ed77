"""A QBO transaction mirrored into a contact's "QuickBooks Transactions" folder."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Date, Integer
from sqlalchemy.orm import Mapped, mapped_column

from crm_qb.db import UTCDateTime, db
from crm_qb.models.mixins import ConnectionOwned, Timestamps
from crm_qb.models.types import ExactDecimal, JSONType, Key, Label


class FolderItem(ConnectionOwned, Timestamps, db.Model):  # type: ignore[name-defined,misc]
    """One QBO transaction (invoice, payment, estimate, sales receipt, ...) of one customer."""

    __tablename__ = "folder_items"
    __table_args__ = (
        db.UniqueConstraint("connection_id", "txn_type", "qbo_id"),
        db.Index("ix_folder_items_customer", "connection_id", "qbo_customer_id", "txn_date"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    qbo_customer_id: Mapped[str] = mapped_column(Key(64))
    txn_type: Mapped[str] = mapped_column(Key(32))
    qbo_id: Mapped[str] = mapped_column(Key(64))
    doc_number: Mapped[str | None] = mapped_column(Label(64))
    txn_date: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)
    expiration_date: Mapped[date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(Key(32))
    currency: Mapped[str] = mapped_column(Key(3))
    exchange_rate: Mapped[Decimal] = mapped_column(ExactDecimal(28, 12), default=Decimal(1))
    total: Mapped[Decimal] = mapped_column(ExactDecimal())
    balance: Mapped[Decimal] = mapped_column(ExactDecimal(), default=Decimal(0))
    home_total: Mapped[Decimal] = mapped_column(ExactDecimal())
    home_balance: Mapped[Decimal] = mapped_column(ExactDecimal(), default=Decimal(0))
    home_computed: Mapped[bool] = mapped_column(Boolean, default=False)
    linked_txns: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    details: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    qbo_sync_token: Mapped[str | None] = mapped_column(Key(32))
    qbo_updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
