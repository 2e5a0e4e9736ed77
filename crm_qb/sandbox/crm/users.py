"""The reference CRM's users: the people who own contacts and tasks and log activities.

A user is ``{"id", "name", "email", "active"}``. Users are never deleted, only made inactive, as in real CRMs:
the activities they logged keep naming them. Emails are unique (case-folded), so mapping a user to a QBO
Employee or Vendor by email is never ambiguous on the CRM side. A new CRM starts with ``DEMO_USERS``; their
names match Employees of the QBO sandbox's companies (Emily Platt is in the demo company) so that time logged
by them can flow on a first run, while Riley Chen matches nobody and shows the "user waits in review" path.
User changes send no hooks; a client reads ``GET /users`` when it needs them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from crm_qb.sandbox.crm.db import SandboxDb
from crm_qb.sandbox.crm.validation import ApiError, invalid, require_object, valid_email

DEMO_USERS: tuple[Mapping[str, Any], ...] = (
    {"id": "u1", "name": "Emily Platt", "email": "emily.platt@example.com", "active": True},
    {"id": "u2", "name": "John Johnson", "email": "john.johnson@example.com", "active": True},
    {"id": "u3", "name": "Riley Chen", "email": "riley.chen@example.com", "active": True},
)
USER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NAME_LIMIT = 255
EMAIL_LIMIT = 254
SEEDED_MARK = "users_seeded"


def user_changes(body: Any, *, creating: bool) -> dict[str, Any]:
    """Validate a user create/edit body (``id`` only on create) and return the fields to write."""
    body = require_object(body)
    allowed = ("id", "name", "email", "active") if creating else ("name", "email", "active")
    changes = {key: _user_value(key, value, allowed) for key, value in body.items()}
    for required in ("name", "email"):
        if creating and required not in changes:
            raise invalid(required, "is required")
    return changes


def _user_value(key: str, value: Any, allowed: tuple[str, ...]) -> Any:
    """Validate one user field."""
    if key not in allowed:
        raise invalid(key, "is read-only" if key == "id" else "unknown field")
    if key == "active":
        if not isinstance(value, bool):
            raise invalid(key, "must be true or false")
        return value
    if not isinstance(value, str) or not value.strip():
        raise invalid(key, "must be a non-empty string")
    if key == "id" and not USER_ID.match(value):
        raise invalid(key, "must be 1 to 64 letters, digits, '_' or '-'")
    if key == "name" and len(value) > NAME_LIMIT:
        raise invalid(key, f"longer than {NAME_LIMIT} characters")
    if key == "email" and not valid_email(value, EMAIL_LIMIT):
        raise invalid(key, f"not an email address of at most {EMAIL_LIMIT} characters")
    return value


def fold(email: str) -> str:
    """Return the form emails are compared in."""
    return email.strip().casefold()


class UserStore:
    """Users in the shared database; every write holds the database lock."""

    def __init__(self, db: SandboxDb) -> None:
        self._db = db

    def list_users(self) -> list[dict[str, Any]]:
        """Return every user, oldest first."""
        return self._db.many("SELECT data FROM users ORDER BY rowid")

    def get_user(self, user_id: str) -> dict[str, Any]:
        """Return a user, else raise a 404."""
        user = self._db.one("SELECT data FROM users WHERE id = ?", (user_id,))
        if user is None:
            raise ApiError(404, "not_found", f"no user with id {user_id!r}")
        return user

    def create_user(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Create a user from validated fields (``id`` generated as ``u<n>`` when not given) and return it."""
        with self._db.lock:
            user_id = fields.get("id") or self._next_id()
            if self._db.exists("users", user_id):
                raise invalid("id", f"a user with id {user_id!r} exists")
            user = {"id": user_id, "name": fields["name"], "email": fields["email"],
                    "active": fields.get("active", True)}
            self._write(user, insert=True)
            return user

    def update_user(self, user_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Apply validated changes to a user and return it."""
        with self._db.lock:
            user = {**self.get_user(user_id), **changes}
            self._write(user, insert=False)
            return user

    def seed_once(self, users: Iterable[Mapping[str, Any]]) -> None:
        """Create ``users`` the first time this database is opened (a persisted CRM keeps its own later)."""
        with self._db.lock:
            if self._db.get_meta(SEEDED_MARK) is None:
                self.restore(users)
                self._db.set_meta(SEEDED_MARK, "1")

    def restore(self, users: Iterable[Mapping[str, Any]]) -> None:
        """Replace every user by ``users`` (validated like a create)."""
        with self._db.lock:
            with self._db.conn:
                self._db.conn.execute("DELETE FROM users")
            for user in users:
                self.create_user(user_changes(dict(user), creating=True))

    def _next_id(self) -> str:
        """Return the first free ``u<n>`` id."""
        number = self._db.conn.execute("SELECT COUNT(*) FROM users").fetchone()[0] + 1
        while self._db.exists("users", f"u{number}"):
            number += 1
        return f"u{number}"

    def _write(self, user: dict[str, Any], *, insert: bool) -> None:
        """Store a user; a second user with the same email (case-folded) is a 400 naming ``email``."""
        email = fold(user["email"])
        taken = self._db.conn.execute("SELECT id FROM users WHERE email_folded = ? AND id != ?",
                                      (email, user["id"])).fetchone()
        if taken:
            raise invalid("email", f"user {taken[0]!r} has this email")
        sql = ("INSERT INTO users (id, email_folded, data) VALUES (?, ?, ?)" if insert
               else "UPDATE users SET email_folded = ?2, data = ?3 WHERE id = ?1")
        with self._db.conn:
            self._db.conn.execute(sql, (user["id"], email, json.dumps(user)))
