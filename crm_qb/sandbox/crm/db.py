"""The reference CRM's SQLite database, shared by the contact, task, user and activity stores.

One re-entrant lock serialises every write across all stores, and change events are emitted under it, so hooks
leave in the order the changes happened and a cascade (a contact deleted with its activities) is one step.
Change times come from one ``Stamps``: strictly increasing across the whole CRM, so paging any list by
``(updated_at, id)`` is stable.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from crm_qb.sandbox.crm.clock import Stamps, parse_stamp

Emit = Callable[[dict[str, Any]], None]
SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    id TEXT PRIMARY KEY, updated_at TEXT NOT NULL, email_folded TEXT, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ix_contacts_updated ON contacts (updated_at, id);
CREATE INDEX IF NOT EXISTS ix_contacts_email ON contacts (email_folded);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, contact_id TEXT NOT NULL, created_at TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ix_tasks_contact ON tasks (contact_id, created_at, id);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, email_folded TEXT NOT NULL, data TEXT NOT NULL,
    CONSTRAINT uq_users_email_folded UNIQUE (email_folded));
CREATE TABLE IF NOT EXISTS activities (
    id TEXT PRIMARY KEY, contact_id TEXT NOT NULL, started_at TEXT NOT NULL, updated_at TEXT NOT NULL,
    data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ix_activities_updated ON activities (updated_at, id);
CREATE INDEX IF NOT EXISTS ix_activities_contact ON activities (contact_id, started_at, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""
# Tables whose rows carry an updated_at change time; a restarted CRM continues after the newest of them.
STAMPED_TABLES = ("contacts", "activities")
TABLES = ("contacts", "tasks", "users", "activities")


class SandboxDb:
    """The connection, the write lock, the change-time source and the event sink every store shares."""

    def __init__(self, path: str | None, emit: Emit, clock: Callable[[], datetime] | None = None) -> None:
        self.conn = sqlite3.connect(path or ":memory:", check_same_thread=False)
        self.conn.executescript(SCHEMA)
        self.lock = threading.RLock()
        self.emit = emit
        self.stamps = Stamps(clock or (lambda: datetime.now(UTC)), self._latest_stamp())

    def close(self) -> None:
        """Close the database."""
        with self.lock:
            self.conn.close()

    def one(self, sql: str, params: tuple[Any, ...] = ()) -> dict[str, Any] | None:
        """Return the JSON ``data`` of the first row ``sql`` selects, or None."""
        with self.lock:
            row = self.conn.execute(sql, params).fetchone()
        return json.loads(row[0]) if row else None

    def many(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Return the JSON ``data`` of every row ``sql`` selects."""
        with self.lock:
            rows = self.conn.execute(sql, params).fetchall()
        return [json.loads(row[0]) for row in rows]

    def exists(self, table: str, row_id: str) -> bool:
        """True when ``table`` (one of TABLES) has a row with ``row_id``."""
        if table not in TABLES:
            raise ValueError(f"table must be one of {TABLES}, got {table!r}")
        with self.lock:
            return self.conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (row_id,)).fetchone() is not None

    def get_meta(self, key: str) -> str | None:
        """Return a stored setting, or None."""
        with self.lock:
            row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        """Store (or, with None, remove) a setting."""
        with self.lock, self.conn:
            self.conn.execute("DELETE FROM meta WHERE key = ?", (key,))
            if value is not None:
                self.conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _latest_stamp(self) -> datetime | None:
        """Return the newest change time already stored (for a persisted database)."""
        union = " UNION ALL ".join(f"SELECT MAX(updated_at) AS at FROM {table}" for table in STAMPED_TABLES)
        row = self.conn.execute(f"SELECT MAX(at) FROM ({union})").fetchone()
        return parse_stamp(row[0]) if row[0] else None
