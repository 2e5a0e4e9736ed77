"""The QBO customer hierarchy as crm-qb has seen it: each customer's parent (sub-customers, or "jobs") and name.

Kept for every customer the sync sees, linked or not, so that a job's transactions can be shown on its parent's
contact and its follow-ups reach the parent's contact when the job has no contact of its own
(docs/architecture.md §3, "Sub-customers").
"""

from __future__ import annotations

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from crm_qb.db import db
from crm_qb.models.mixins import ConnectionOwned, UpdatedAt


class QboCustomer(ConnectionOwned, UpdatedAt, db.Model):  # type: ignore[name-defined,misc]
    """One QBO customer of a connection's company: its parent customer (None at the top) and display name."""

    __tablename__ = "qbo_customers"
    __table_args__ = (
        db.UniqueConstraint("connection_id", "qbo_customer_id"),
        db.Index("ix_qbo_customers_parent", "connection_id", "parent_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    qbo_customer_id: Mapped[str] = mapped_column(String(64))
    parent_id: Mapped[str | None] = mapped_column(String(64))
    display_name: Mapped[str] = mapped_column(String(500))
