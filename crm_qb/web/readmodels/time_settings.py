"""The "Billable time" part of the Settings page: the time settings as form values, and every CRM user the time
sync knows, mapped or not, with how much of their time is held waiting for a QuickBooks person.

Read from the database only (``sync.time.admin.status``): the page renders without calling QuickBooks; the
values are checked in QuickBooks when they are saved.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from crm_qb.sync.time.admin import status

USER_FIELD = "time.users."


@dataclass(frozen=True)
class TimeUser:
    """A CRM user's row: who, the QuickBooks person their time goes to (None: unmapped), their held entries."""

    id: str
    name: str | None
    email: str | None
    ref: str | None
    qbo_name: str | None
    by: str | None
    waiting_reason: str | None
    held: int

    @property
    def field(self) -> str:
        """The form field of this user's mapping."""
        return USER_FIELD + self.id


def time_form(connection_id: int) -> tuple[dict[str, Any], list[TimeUser]]:
    """The form values of the time settings, and the users: unmapped ones with held time first."""
    found = status(connection_id)
    settings = found["time"]
    held = Counter(str(e["user_id"]) for e in found["held"] if e["kind"] == "user" and e["user_id"])
    users = {str(u["crm_user_id"]): TimeUser(str(u["crm_user_id"]), u["name"], u["email"], u["qbo"], u["qbo_name"],
                                             u["by"], u["review_reason"], held.get(str(u["crm_user_id"]), 0))
             for u in found["users"]}
    for user_id, count in held.items():
        users.setdefault(user_id, TimeUser(user_id, None, None, None, None, None, None, count))
    values = {"time.enabled": "on" if settings["enabled"] else "", "time.default_item": settings["default_item"] or ""}
    values.update({user.field: user.ref or "" for user in users.values()})
    ordered = sorted(users.values(), key=lambda u: (u.ref is not None, -u.held, (u.name or u.id).casefold()))
    return values, ordered


def time_changes(form: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The ``configure`` arguments a posted form asks for, compared with the stored ``values`` (an empty person
    leaves a user as they are: a mapping is replaced, not removed)."""
    changes: dict[str, Any] = {"enabled": form.get("time.enabled") == "on"}
    item = str(form.get("time.default_item", "")).strip()
    if item != values.get("time.default_item", ""):
        changes.update({"default_item": item} if item else {"clear_default_item": True})
    users = {key.removeprefix(USER_FIELD): str(form.get(key, "")).strip() for key in form
             if key.startswith(USER_FIELD)}
    changes["map_users"] = {user: ref for user, ref in users.items()
                            if ref and ref != values.get(USER_FIELD + user, "")}
    return changes
