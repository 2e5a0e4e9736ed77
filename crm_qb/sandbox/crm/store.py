"""Contacts and tasks of the reference CRM, and the facade over its users and activities.

Everything lives in one SQLite database (in memory, or in a file to survive restarts) behind one write lock
(``db.SandboxDb``); change events are emitted under that lock, so hooks leave in the order the changes happened.
``updated_at`` is strictly increasing across the CRM, contacts and activities alike; paging by
``(updated_at, id)`` is therefore stable: a contact changed during a walk moves behind the cursor's end and is
seen again, never skipped. A contact's ``owner_id`` (like a task's) must name a user when set.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

from crm_qb.sandbox.crm.activities import ActivityStore
from crm_qb.sandbox.crm.clock import stamp
from crm_qb.sandbox.crm.db import Emit, SandboxDb
from crm_qb.sandbox.crm.hooks import make_event
from crm_qb.sandbox.crm.paging import walk_page
from crm_qb.sandbox.crm.users import UserStore
from crm_qb.sandbox.crm.validation import ADDRESS_KEYS, ApiError, check_version, empty_address, invalid


def not_found(kind: str, object_id: str) -> ApiError:
    """Return the 404 for an unknown contact or task."""
    return ApiError(404, "not_found", f"no {kind} with id {object_id!r}")


def new_contact(contact_id: str) -> dict[str, Any]:
    """Return an empty contact record."""
    text = dict.fromkeys(("first_name", "last_name", "company", "display_name", "email", "phone", "mobile",
                          "notes", "website", "owner_id"))
    return {"id": contact_id, "version": 0, "updated_at": None, **text, "billing_address": empty_address(),
            "shipping_address": empty_address(), "tags": [], "active": True, "quickbooks": None}


def apply_changes(contact: dict[str, Any], changes: dict[str, Any], *, copy: bool = True) -> dict[str, Any]:
    """Return a copy of ``contact`` with validated ``changes`` applied (addresses merged part by part);
    ``copy=False`` changes ``contact`` itself, for a record nobody else holds yet (``new_contact``'s: copying
    it was a sixth of a batch create's CPU)."""
    updated = json.loads(json.dumps(contact)) if copy else contact
    for key, value in changes.items():
        if key in ADDRESS_KEYS:
            updated[key] = empty_address() if value is None else {**updated[key], **value}
        else:
            updated[key] = value
    return updated


class CrmStore:
    """Thread-safe contacts and tasks, with ``users`` and ``activities`` on the same database and lock."""

    def __init__(self, path: str | None, emit: Emit, clock: Callable[[], datetime] | None = None) -> None:
        self._db = SandboxDb(path, emit, clock)
        self.users = UserStore(self._db)
        self.activities = ActivityStore(self._db)

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    # -- meta -----------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """Return a stored setting, or None."""
        return self._db.get_meta(key)

    def set_meta(self, key: str, value: str | None) -> None:
        """Store (or, with None, remove) a setting."""
        self._db.set_meta(key, value)

    def wipe(self) -> None:
        """Delete every contact, task and activity (users and settings stay); no events are sent."""
        with self._db.lock, self._db.conn:
            self._db.conn.execute("DELETE FROM contacts")
            self._db.conn.execute("DELETE FROM tasks")
        self.activities.wipe()

    # -- contacts -------------------------------------------------------------------------------------

    def get_contact(self, contact_id: str) -> dict[str, Any]:
        """Return a contact, else raise a 404."""
        contact = self._db.one("SELECT data FROM contacts WHERE id = ?", (contact_id,))
        if contact is None:
            raise not_found("contact", contact_id)
        return contact

    def list_contacts(self, *, updated_since: datetime | None = None, after: tuple[str, str] | None = None,
                      email: str | None = None, limit: int = 100) -> tuple[list[dict[str, Any]], str | None]:
        """Return up to ``limit`` contacts in ``(updated_at, id)`` order and the cursor of the next page."""
        filters: list[tuple[str, Any]] = []
        if updated_since is not None:
            filters.append(("updated_at >= ?", stamp(updated_since)))
        if email is not None:
            filters.append(("email_folded = ?", email.strip().casefold()))
        return walk_page(self._db, "contacts", filters, after, limit)

    def contact_ids(self) -> list[str]:
        """Return every contact id, least recently changed first."""
        with self._db.lock:
            return [row[0] for row in self._db.conn.execute("SELECT id FROM contacts ORDER BY updated_at, id")]

    def count_contacts(self) -> int:
        """Return how many contacts exist."""
        with self._db.lock:
            return self._db.conn.execute("SELECT COUNT(*) FROM contacts").fetchone()[0]

    def create_contact(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Create a contact from validated fields, emit contact.created and return it."""
        with self._db.lock:
            self._check_owner(changes)
            contact = apply_changes(new_contact("ct_" + secrets.token_hex(8)), changes, copy=False)
            self._save(contact)
            self._db.emit(make_event("contact.created", contact["updated_at"], contact=contact))
            return contact

    def update_contact(self, contact_id: str, changes: dict[str, Any],
                       expected_version: int | None = None) -> dict[str, Any]:
        """Apply validated changes (412 when ``expected_version`` is stale); a no-op changes nothing."""
        with self._db.lock:
            current = self._current(contact_id, expected_version)
            self._check_owner(changes)
            updated = apply_changes(current, changes)
            if updated == current:
                return current
            self._save(updated)
            self._db.emit(make_event("contact.updated", updated["updated_at"], contact=updated))
            return updated

    def delete_contact(self, contact_id: str, expected_version: int | None = None) -> None:
        """Delete a contact with its tasks and activities; emit activity.deleted for each, then contact.deleted."""
        with self._db.lock:
            self._current(contact_id, expected_version)
            self.activities.delete_for_contact(contact_id)
            with self._db.conn:
                self._db.conn.execute("DELETE FROM contacts WHERE id = ?", (contact_id,))
                self._db.conn.execute("DELETE FROM tasks WHERE contact_id = ?", (contact_id,))
            self._db.emit(make_event("contact.deleted", self._db.stamps.next(), contact_id=contact_id))

    def merge_contacts(self, contact_id: str, into: str, expected_version: int | None = None) -> dict[str, Any]:
        """Merge ``contact_id`` into ``into``: fill the survivor's empty fields, move tasks and activities."""
        if contact_id == into:
            raise invalid("into", "a contact cannot be merged into itself")
        with self._db.lock:
            loser = self._current(contact_id, expected_version)
            survivor = self.get_contact(into)
            merged = _fill_from(survivor, loser)
            with self._db.conn:
                self._db.conn.execute("DELETE FROM contacts WHERE id = ?", (contact_id,))
                self._db.conn.execute("UPDATE tasks SET contact_id = ?, data = json_set(data, '$.contact_id', ?)"
                                      " WHERE contact_id = ?", (into, into, contact_id))
            self._db.emit(make_event("contact.merged", self._db.stamps.next(), contact_id=contact_id,
                                     merged_into=into))
            if merged != survivor:
                self._save(merged)
                self._db.emit(make_event("contact.updated", merged["updated_at"], contact=merged))
            self.activities.move_to(contact_id, into)
            return merged

    def put_quickbooks(self, contact_id: str, summary: dict[str, Any]) -> dict[str, Any]:
        """Store the integration's billing summary as given; not a contact change (no version, no hook)."""
        with self._db.lock:
            contact = self.get_contact(contact_id)
            contact["quickbooks"] = summary
            with self._db.conn:
                self._db.conn.execute("UPDATE contacts SET data = ? WHERE id = ?", (json.dumps(contact), contact_id))
            return contact

    def _current(self, contact_id: str, expected_version: int | None) -> dict[str, Any]:
        """Return the contact, raising 404 when unknown and 412 when ``expected_version`` is stale."""
        return check_version("contact", self.get_contact(contact_id), expected_version)

    def _check_owner(self, changes: dict[str, Any]) -> None:
        """Raise a 400 naming ``owner_id`` when it is set and names no user."""
        owner = changes.get("owner_id")
        if owner is not None and not self._db.exists("users", owner):
            raise invalid("owner_id", f"no user with id {owner!r}")

    def _save(self, contact: dict[str, Any]) -> None:
        """Bump version and updated_at, then write the contact."""
        contact["version"] += 1
        contact["updated_at"] = self._db.stamps.next()
        email = (contact["email"] or "").strip().casefold() or None
        with self._db.conn:
            self._db.conn.execute("INSERT OR REPLACE INTO contacts (id, updated_at, email_folded, data)"
                                  " VALUES (?, ?, ?, ?)", (contact["id"], contact["updated_at"], email,
                                                           json.dumps(contact)))

    # -- tasks ----------------------------------------------------------------------------------------

    def list_tasks(self, contact_id: str, status: str | None = None) -> list[dict[str, Any]]:
        """Return a contact's tasks, oldest first, optionally only those with ``status``."""
        with self._db.lock:
            self.get_contact(contact_id)
            tasks = self._db.many("SELECT data FROM tasks WHERE contact_id = ? ORDER BY created_at, id",
                                  (contact_id,))
        return [task for task in tasks if status is None or task["status"] == status]

    def get_task(self, task_id: str) -> dict[str, Any]:
        """Return a task, else raise a 404."""
        task = self._db.one("SELECT data FROM tasks WHERE id = ?", (task_id,))
        if task is None:
            raise not_found("task", task_id)
        return task

    def get_tasks(self, task_ids: list[str]) -> list[dict[str, Any]]:
        """Return the tasks of ``task_ids`` that exist, in the order asked (unknown ids left out)."""
        marks = ",".join("?" for _ in task_ids)
        found = {task["id"]: task for task in self._db.many(f"SELECT data FROM tasks WHERE id IN ({marks})",
                                                            tuple(task_ids))}
        return [found[task_id] for task_id in dict.fromkeys(task_ids) if task_id in found]

    def create_task(self, contact_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Create a task on a contact from validated fields and return it."""
        with self._db.lock:
            self.get_contact(contact_id)
            self._check_owner(changes)
            task = {"id": "tk_" + secrets.token_hex(8), "contact_id": contact_id, "title": None,
                    "description": None, "due_date": None, "status": "open", "owner_id": None,
                    "created_at": self._db.stamps.next(), "completed_at": None}
            saved = _task_with(task, changes, self._db.stamps.next)
            self._save_task(saved)
            return saved

    def update_task(self, task_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply validated changes to a task and return it."""
        with self._db.lock:
            current = self.get_task(task_id)
            self._check_owner(changes)
            task = _task_with(current, changes, self._db.stamps.next)
            self._save_task(task)
            return task

    def delete_task(self, task_id: str) -> None:
        """Delete a task, else raise a 404."""
        with self._db.lock:
            self.get_task(task_id)
            with self._db.conn:
                self._db.conn.execute("DELETE FROM tasks WHERE id = ?", (task_id,))

    def _save_task(self, task: dict[str, Any]) -> None:
        """Write a task."""
        with self._db.conn:
            self._db.conn.execute("INSERT OR REPLACE INTO tasks (id, contact_id, created_at, data)"
                                  " VALUES (?, ?, ?, ?)",
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
