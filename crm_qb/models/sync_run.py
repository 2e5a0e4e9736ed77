"""A first sync or a history import of one connection, and the outcome of every record it walked.

A run goes waiting → previewing → previewed → running → done | failed (docs/architecture.md §7, "The first
sync"). Its preview and
its run each leave one ``SyncRunRecord`` per record walked (``stage`` "preview" or "run"), so the preview's lists
and the report are paged queries, not documents held in memory. ``checkpoint`` is where a killed run resumes.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Boolean, Date, ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from crm_qb.db import UTCDateTime, db
from crm_qb.models.mixins import ConnectionOwned, Timestamps
from crm_qb.models.types import JSONType, Key, Label, PlainText


class SyncRun(ConnectionOwned, Timestamps, db.Model):  # type: ignore[name-defined,misc]
    """One first sync (``kind`` "first", at most one per connection) or history import (``kind`` "history")."""

    __tablename__ = "sync_runs"
    __table_args__ = (db.Index("ix_sync_runs_connection_kind", "connection_id", "kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(Key(16))
    state: Mapped[str] = mapped_column(Key(16), default="waiting")
    phase: Mapped[str | None] = mapped_column(Key(32))
    date_from: Mapped[date | None] = mapped_column(Date)
    date_to: Mapped[date | None] = mapped_column(Date)
    auto_start: Mapped[bool] = mapped_column(Boolean, default=False)
    preview: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    progress: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    checkpoint: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(PlainText)
    previewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SyncRunRecord(db.Model):  # type: ignore[name-defined,misc]
    """What the preview predicted (``stage`` "preview") or the run did (``stage`` "run") for one record."""

    __tablename__ = "sync_run_records"
    __table_args__ = (
        db.UniqueConstraint("run_id", "stage", "entity", "object_id"),
        db.Index("ix_sync_run_records_run_stage_action", "run_id", "stage", "action"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("sync_runs.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(Key(8))
    phase: Mapped[str] = mapped_column(Key(16))
    entity: Mapped[str] = mapped_column(Key(32))
    object_id: Mapped[str] = mapped_column(Key(128))
    name: Mapped[str | None] = mapped_column(Label(200))
    action: Mapped[str] = mapped_column(Key(16))
    planned: Mapped[str | None] = mapped_column(Key(16))
    partner_id: Mapped[str | None] = mapped_column(Key(128))
    partner_name: Mapped[str | None] = mapped_column(Label(200))
    candidates: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    reason: Mapped[str | None] = mapped_column(PlainText)
    error: Mapped[str | None] = mapped_column(PlainText)
    error_code: Mapped[str | None] = mapped_column(Label(64))
    intuit_tid: Mapped[str | None] = mapped_column(Label(128))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set when an operator dismisses the failed record on the Failures page: the report still shows it failed.
    dismissed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
