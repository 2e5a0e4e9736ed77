"""Activities of the reference CRM: calls, meetings, emails, tasks and time entries logged against a contact.

They follow the contacts' rules: a version bumped on every change, ``updated_at`` from the CRM-wide strictly
increasing stamps (so paging is stable), a write that changes nothing bumps nothing and sends no hook, and an
``activity.*`` hook for every change. The contact store calls ``delete_for_contact`` and ``move_to`` while it
holds the write lock, so a contact's delete or merge and the hooks of its activities are one ordered step.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

from crm_qb.sandbox.crm.clock import stamp
from crm_qb.sandbox.crm.db import SandboxDb
from crm_qb.sandbox.crm.hooks import make_event
from crm_qb.sandbox.crm.paging import walk_page
from crm_qb.sandbox.crm.validation import ApiError, check_version, invalid


def new_activity(activity_id: str) -> dict[str, Any]:
    """Return an empty activity record with every field in its documented order."""
    return {"id": activity_id, "version": 0, "updated_at": None, "contact_id": None, "owner_id": None,
            "type": None, "subject": None, "notes": None, "started_at": None, "duration_minutes": None,
            "billable": False, "hourly_rate": None, "service": None}


class ActivityStore:
    """Activities in the shared database; every write holds the database lock and emits its hook."""

    def __init__(self, db: SandboxDb) -> None:
        self._db = db

    def get_activity(self, activity_id: str) -> dict[str, Any]:
        """Return an activity, else raise a 404."""
        activity = self._db.one("SELECT data FROM activities WHERE id = ?", (activity_id,))
        if activity is None:
            raise ApiError(404, "not_found", f"no activity with id {activity_id!r}")
        return activity

    def list_activities(self, *, updated_since: datetime | None = None, after: tuple[str, str] | None = None,
                        contact_id: str | None = None,
                        limit: int = 100) -> tuple[list[dict[str, Any]], str | None]:
        """Return up to ``limit`` activities in ``(updated_at, id)`` order and the cursor of the next page."""
        filters: list[tuple[str, Any]] = []
        if updated_since is not None:
            filters.append(("updated_at >= ?", stamp(updated_since)))
        if contact_id is not None:
            filters.append(("contact_id = ?", contact_id))
        return walk_page(self._db, "activities", filters, after, limit)

    def for_contact(self, contact_id: str) -> list[dict[str, Any]]:
        """Return a contact's activities, most recently started first (for the contact page)."""
        return self._db.many("SELECT data FROM activities WHERE contact_id = ? ORDER BY started_at DESC, id",
                             (contact_id,))

    def create_activity(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Create an activity from validated fields (contact and owner must exist), emit its hook, return it."""
        with self._db.lock:
            self._check_references(changes)
            activity = {**new_activity("ac_" + secrets.token_hex(8)), **changes}
            self._save(activity)
            self._db.emit(make_event("activity.created", activity["updated_at"], activity=activity))
            return activity

    def update_activity(self, activity_id: str, changes: dict[str, Any],
                        expected_version: int | None = None) -> dict[str, Any]:
        """Apply validated changes (412 when ``expected_version`` is stale); a no-op changes nothing."""
        with self._db.lock:
            current = self._current(activity_id, expected_version)
            self._check_references(changes)
            updated = {**current, **changes}
            if updated == current:
                return current
            self._save(updated)
            self._db.emit(make_event("activity.updated", updated["updated_at"], activity=updated))
            return updated

    def delete_activity(self, activity_id: str, expected_version: int | None = None) -> None:
        """Delete an activity (412 when ``expected_version`` is stale) and emit activity.deleted."""
        with self._db.lock:
            self._current(activity_id, expected_version)
            self._remove(activity_id)

    def delete_for_contact(self, contact_id: str) -> None:
        """Delete every activity of a contact, each with its hook (the caller holds the lock)."""
        for activity in self.for_contact(contact_id):
            self._remove(activity["id"])

    def move_to(self, contact_id: str, into: str) -> None:
        """Re-attach a merged contact's activities to the survivor, each with its hook (caller holds the lock)."""
        for activity in self.for_contact(contact_id):
            activity["contact_id"] = into
            self._save(activity)
            self._db.emit(make_event("activity.updated", activity["updated_at"], activity=activity))

    def wipe(self) -> None:
        """Delete every activity; no events are sent."""
        with self._db.lock, self._db.conn:
            self._db.conn.execute("DELETE FROM activities")

    def _current(self, activity_id: str, expected_version: int | None) -> dict[str, Any]:
        """Return the activity, raising 404 when unknown and 412 when ``expected_version`` is stale."""
        return check_version("activity", self.get_activity(activity_id), expected_version)

    def _check_references(self, changes: dict[str, Any]) -> None:
        """Raise a 400 naming the field when ``contact_id`` or ``owner_id`` names nothing."""
        for field, table in (("contact_id", "contacts"), ("owner_id", "users")):
            if field in changes and not self._db.exists(table, changes[field]):
                raise invalid(field, f"no {table[:-1]} with id {changes[field]!r}")

    def _save(self, activity: dict[str, Any]) -> None:
        """Bump version and updated_at, then write the activity."""
        activity["version"] += 1
        activity["updated_at"] = self._db.stamps.next()
        with self._db.conn:
            self._db.conn.execute(
                "INSERT OR REPLACE INTO activities (id, contact_id, started_at, updated_at, data)"
                " VALUES (?, ?, ?, ?, ?)", (activity["id"], activity["contact_id"], activity["started_at"],
                                            activity["updated_at"], json.dumps(activity)))

    def _remove(self, activity_id: str) -> None:
        """Delete one activity row and emit activity.deleted."""
        with self._db.conn:
            self._db.conn.execute("DELETE FROM activities WHERE id = ?", (activity_id,))
        self._db.emit(make_event("activity.deleted", self._db.stamps.next(), activity_id=activity_id))
