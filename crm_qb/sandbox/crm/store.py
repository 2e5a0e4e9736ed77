"""Contacts and tasks of the reference CRM, in SQLite (in memory, or in a file to survive restarts).

One lock serialises every write, and change events are emitted under that lock, so hooks leave in the order
the changes happened. ``updated_at`` is strictly increasing across the store (a change in the same microsecond
as the previous one is stamped one microsecond later); paging by ``(updated_at, id)`` is therefore stable: a
contact changed during a walk moves behind the cursor's end and is seen again, never skipped.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_qb.sandbox.crm.hooks import make_event
from crm_qb.sandbox.crm.validation import ADDRESS_KEYS, ApiError, empty_address, invalid

Emit = Callable[[dict[str, Any]], None]
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
SCHEMA = """
CREATE TABLE IF NOT EXISTS contacts (
    id TEXT PRIMARY KEY, updated_at TEXT NOT NULL, email_folded TEXT, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ix_contacts_updated ON contacts (updated_at, id);
CREATE INDEX IF NOT EXISTS ix_contacts_email ON contacts (email_folded);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, contact_id TEXT NOT NULL, created_at TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS ix_tasks_contact ON tasks (contact_id, created_at, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


def stamp(moment: datetime) -> str:
    """Format an aware time as fixed-width UTC ISO 8601 (``...T12:00:00.000000Z``), which sorts as text."""
    return moment.astimezone(UTC).strftime(STAMP_FORMAT)


def encode_cursor(updated_at: str, contact_id: str) -> str:
    """Return the opaque cursor that resumes a walk after ``(updated_at, contact_id)``."""
    return base64.urlsafe_b64encode(json.dumps([updated_at, contact_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """Return the ``(updated_at, id)`` a cursor points after, else raise a 400 naming ``cursor``."""
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise invalid("cursor", "not a cursor returned by this API") from None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(part, str) for part in value)):
        raise invalid("cursor", "not a cursor returned by this API")
    return value[0], value[1]


def not_found(kind: str, object_id: str) -> ApiError:
    """Return the 404 for an unknown contact or task."""
    return ApiError(404, "not_found", f"no {kind} with id {object_id!r}")


def new_contact(contact_id: str) -> dict[str, Any]:
    """Return an empty contact record."""
    text = dict.fromkeys(("first_name", "last_name", "company", "display_name", "email", "phone", "mobile",
                          "notes", "website", "owner_id"))
    return {"id": contact_id, "version": 0, "updated_at": None, **text, "billing_address": empty_address(),
            "shipping_address": empty_address(), "tags": [], "active": True, "quickbooks": None}


def apply_changes(contact: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``contact`` with validated ``changes`` applied (addresses merged part by part)."""
    updated = json.loads(json.dumps(contact))
    for key, value in changes.items():
        if key in ADDRESS_KEYS:
            updated[key] = empty_address() if value is None else {**updated[key], **value}
        else:
            updated[key] = value
    return updated


class CrmStore:
    """Thread-safe contact and task storage that reports every contact change through ``emit``."""

    def __init__(self, path: str | None, emit: Emit, clock: Callable[[], datetime] | None = None) -> None:
        self._db = sqlite3.connect(path or ":memory:", check_same_thread=False)
        self._db.executescript(SCHEMA)
        self._lock = threading.RLock()
        self._emit = emit
        self._clock = clock or (lambda: datetime.now(UTC))
        self._last = self._latest_stamp()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    # -- meta -----------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """Return a stored setting, or None."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        """Store (or, with None, remove) a setting."""
        with self._lock, self._db:
            self._db.execute("DELETE FROM meta WHERE key = ?", (key,))
            if value is not None:
                self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))

    def wipe(self) -> None:
        """Delete every contact and task (settings stay); no events are sent."""
        with self._lock, self._db:
            self._db.execute("DELETE FROM contacts")
            self._db.execute("DELETE FROM tasks")

    # -- contacts -------------------------------------------------------------------------------------

    def get_contact(self, contact_id: str) -> dict[str, Any]:
        """Return a contact, else raise a 404."""
        with self._lock:
            row = self._db.execute("SELECT data FROM contacts WHERE id = ?", (contact_id,)).fetchone()
        if row is None:
            raise not_found("contact", contact_id)
        return json.loads(row[0])

    def list_contacts(self, *, updated_since: datetime | None = None, after: tuple[str, str] | None = None,
                      email: str | None = None, limit: int = 100) -> tuple[list[dict[str, Any]], str | None]:
        """Return up to ``limit`` contacts in ``(updated_at, id)`` order and the cursor of the next page."""
        clauses, params = ["1 = 1"], []
        if updated_since is not None:
            clauses.append("updated_at >= ?")
            params.append(stamp(updated_since))
        if after is not None:
            clauses.append("(updated_at, id) > (?, ?)")
            params.extend(after)
        if email is not None:
            clauses.append("email_folded = ?")
            params.append(email.strip().casefold())
        sql = f"SELECT data FROM contacts WHERE {' AND '.join(clauses)} ORDER BY updated_at, id LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*params, limit + 1)).fetchall()
        contacts = [json.loads(row[0]) for row in rows[:limit]]
        more = len(rows) > limit
        return contacts, encode_cursor(contacts[-1]["updated_at"], contacts[-1]["id"]) if more else None

    def count_contacts(self) -> int:
        """Return how many contacts exist."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM contacts").fetchone()[0]

    def create_contact(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Create a contact from validated fields, emit contact.created and return it."""
        with self._lock:
            contact = apply_changes(new_contact("ct_" + secrets.token_hex(8)), changes)
            self._save(contact)
            self._emit(make_event("contact.created", contact["updated_at"], contact=contact))
            return contact

    def update_contact(self, contact_id: str, changes: dict[str, Any],
                       expected_version: int | None = None) -> dict[str, Any]:
        """Apply validated changes (412 when ``expected_version`` is stale); a no-op changes nothing."""
        with self._lock:
            current = self._current(contact_id, expected_version)
            updated = apply_changes(current, changes)
            if updated == current:
                return current
            self._save(updated)
            self._emit(make_event("contact.updated", updated["updated_at"], contact=updated))
            return updated

    def delete_contact(self, contact_id: str, expected_version: int | None = None) -> None:
        """Delete a contact and its tasks and emit contact.deleted."""
        with self._lock:
            self._current(contact_id, expected_version)
            with self._db:
                self._db.execute("DELETE FROM contacts WHERE id = ?", (contact_id,))
                self._db.execute("DELETE FROM tasks WHERE contact_id = ?", (contact_id,))
            self._emit(make_event("contact.deleted", self._next_stamp(), contact_id=contact_id))

    def merge_contacts(self, contact_id: str, into: str, expected_version: int | None = None) -> dict[str, Any]:
        """Merge ``contact_id`` into ``into``: fill the survivor's empty fields, move tasks, delete the loser."""
        if contact_id == into:
            raise invalid("into", "a contact cannot be merged into itself")
        with self._lock:
            loser = self._current(contact_id, expected_version)
            survivor = self.get_contact(into)
            merged = _fill_from(survivor, loser)
            with self._db:
                self._db.execute("DELETE FROM contacts WHERE id = ?", (contact_id,))
                self._db.execute("UPDATE tasks SET contact_id = ?, data = json_set(data, '$.contact_id', ?)"
                                 " WHERE contact_id = ?", (into, into, contact_id))
            self._emit(make_event("contact.merged", self._next_stamp(), contact_id=contact_id, merged_into=into))
            if merged == survivor:
                return survivor
            self._save(merged)
            self._emit(make_event("contact.updated", merged["updated_at"], contact=merged))
            return merged

    def put_quickbooks(self, contact_id: str, summary: dict[str, Any]) -> dict[str, Any]:
        """Store the integration's billing summary as given; not a contact change (no version, no hook)."""
        with self._lock:
            contact = self.get_contact(contact_id)
            contact["quickbooks"] = summary
            with self._db:
                self._db.execute("UPDATE contacts SET data = ? WHERE id = ?", (json.dumps(contact), contact_id))
            return contact

    def _current(self, contact_id: str, expected_version: int | None) -> dict[str, Any]:
        """Return the contact, raising 404 when unknown and 412 when ``expected_version`` is stale."""
        contact = self.get_contact(contact_id)
        if expected_version is not None and expected_version != contact["version"]:
            raise ApiError(412, "version_conflict",
                           f"contact {contact_id!r} is at version {contact['version']}, not {expected_version}")
        return contact

    def _save(self, contact: dict[str, Any]) -> None:
        """Bump version and updated_at, then write the contact."""
        contact["version"] += 1
        contact["updated_at"] = self._next_stamp()
        email = (contact["email"] or "").strip().casefold() or None
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO contacts (id, updated_at, email_folded, data)"
                             " VALUES (?, ?, ?, ?)", (contact["id"], contact["updated_at"], email,
                                                      json.dumps(contact)))

    def _next_stamp(self) -> str:
        """Return a change time later than every earlier one (callers hold the lock)."""
        moment = self._clock().astimezone(UTC)
        if self._last is not None and moment <= self._last:
            moment = self._last + timedelta(microseconds=1)
        self._last = moment
        return stamp(moment)

    def _latest_stamp(self) -> datetime | None:
        """Return the newest change time already stored (for a persisted store)."""
        row = self._db.execute("SELECT MAX(updated_at) FROM contacts").fetchone()
        return datetime.strptime(row[0], STAMP_FORMAT).replace(tzinfo=UTC) if row[0] else None

    # -- tasks ----------------------------------------------------------------------------------------

    def list_tasks(self, contact_id: str, status: str | None = None) -> list[dict[str, Any]]:
        """Return a contact's tasks, oldest first, optionally only those with ``status``."""
        with self._lock:
            self.get_contact(contact_id)
            rows = self._db.execute("SELECT data FROM tasks WHERE contact_id = ? ORDER BY created_at, id",
                                    (contact_id,)).fetchall()
        tasks = [json.loads(row[0]) for row in rows]
        return [task for task in tasks if status is None or task["status"] == status]

    def get_task(self, task_id: str) -> dict[str, Any]:
        """Return a task, else raise a 404."""
        with self._lock:
            row = self._db.execute("SELECT data FROM tasks WHERE id = ?", (task_id,)).fetchone()
        if row is None:
            raise not_found("task", task_id)
        return json.loads(row[0])

    def create_task(self, contact_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Create a task on a contact from validated fields and return it."""
        with self._lock:
            self.get_contact(contact_id)
            task = {"id": "tk_" + secrets.token_hex(8), "contact_id": contact_id, "title": None,
                    "description": None, "due_date": None, "status": "open", "owner_id": None,
                    "created_at": self._next_stamp(), "completed_at": None}
            self._save_task(_task_with(task, changes, self._next_stamp))
            return self.get_task(task["id"])

    def update_task(self, task_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply validated changes to a task and return it."""
        with self._lock:
            task = _task_with(self.get_task(task_id), changes, self._next_stamp)
            self._save_task(task)
            return task

    def delete_task(self, task_id: str) -> None:
        """Delete a task, else raise a 404."""
        with self._lock:
            self.get_task(task_id)
            with self._db:
                self._db.execute("DELETE FROM tasks WHERE id = ?", (task_id,))

    def _save_task(self, task: dict[str, Any]) -> None:
        """Write a task."""
        with self._db:
            self._db.execute("INSERT OR REPLACE INTO tasks (id, contact_id, created_at, data) VALUES (?, ?, ?, ?)",
                             (task["id"], task["contact_id"], task["created_at"], json.dumps(task)))


def _task_with(task: dict[str, Any], changes: dict[str, Any], now: Callable[[], str]) -> dict[str, Any]:
    """Return ``task`` with changes applied; completed_at follows the status."""
    updated = {**task, **changes}
    if updated["status"] == "done" and task["completed_at"] is None:
        updated["completed_at"] = now()
    elif updated["status"] == "open":
        updated["completed_at"] = None
    return updated


def _fill_from(survivor: dict[str, Any], loser: dict[str, Any]) -> dict[str, Any]:
    """Return the survivor with its empty fields taken from the loser and the tags of both."""
    merged = json.loads(json.dumps(survivor))
    for key, value in loser.items():
        if key in ("id", "version", "updated_at", "quickbooks", "active", "tags"):
            continue
        if key in ADDRESS_KEYS:
            if not any(merged[key].values()):
                merged[key] = value
        elif merged.get(key) in (None, ""):
            merged[key] = value
    merged["tags"] = list(dict.fromkeys([*survivor["tags"], *loser["tags"]]))
    return merged
