"""Changing a connection's settings: validated by each capability's settings module, stored, and audited.

Every change, from the admin page, the API or ``crm-qb connection configure`` / ``followups configure``, goes
through ``store_settings``: it compares the connection's settings before and after key by key (``sync.mode``,
``sync.fields.notes``, ``followups.rule_days``, …) and writes one audit entry ``settings.changed`` naming who
changed what, with each key's value before and after. Nothing is written when nothing changed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from crm_qb.db import db
from crm_qb.models import AuditEntry, Connection
from crm_qb.panel_settings import PANEL_KEY, panel_settings_of
from crm_qb.sync.followups.settings import SETTINGS_KEY as FOLLOWUPS_KEY
from crm_qb.sync.followups.settings import InvalidFollowupSettings, parse_settings, updated_settings
from crm_qb.sync.settings import SETTINGS_KEY as SYNC_KEY
from crm_qb.sync.settings import SyncSettingsError, parse_sync_settings, sync_settings_of

log = logging.getLogger(__name__)

MISSING = None  # a key that was not set shows as null (its default applied)


def flatten(settings: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"sync": {"fields": {"notes": "off"}}}`` as ``{"sync.fields.notes": "off"}`` (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        elif not isinstance(value, Mapping):
            flat[name] = value
    return flat


def changes_between(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every key whose value differs: ``{key: {"before", "after"}}``."""
    old, new = flatten(before), flatten(after)
    return {key: {"before": old.get(key, MISSING), "after": new.get(key, MISSING)}
            for key in sorted(old.keys() | new.keys()) if old.get(key, MISSING) != new.get(key, MISSING)}


def store_settings(connection: Connection, settings: dict[str, Any], who: str) -> dict[str, dict[str, Any]]:
    """Store ``settings`` (already validated) on ``connection`` with an audit entry; commit; return the changes."""
    changes = changes_between(_effective(connection.settings or {}), _effective(settings))
    connection.settings = settings  # a new dict, so the JSON column is saved
    if changes:
        db.session.add(AuditEntry(connection_id=connection.id, action="settings.changed", direction="admin",
                                  entity="Settings", entity_id=str(connection.id),
                                  diff={"by": who, "changes": changes}, outcome="ok",
                                  message=f"{len(changes)} setting(s) changed by {who}"))
    db.session.commit()
    if changes:
        log.info("connection %s settings changed by %s: %s", connection.id, who, ", ".join(changes))
    return changes


def turned_on(changes: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether ``changes`` turn the sync back on (then what changed meanwhile is caught up: "Sync now")."""
    enabled = changes.get(f"{SYNC_KEY}.enabled") or {}
    return enabled.get("before") is False and enabled.get("after") is True


def _effective(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings with each capability's defaults filled in, so "unset" and "set to the default" compare equal."""
    sync = sync_settings_of(settings)
    return {**settings, SYNC_KEY: {**sync.as_json(), "fields": sync.field_directions_own()},
            FOLLOWUPS_KEY: parse_settings(settings).to_json(), PANEL_KEY: panel_settings_of(settings).as_json()}


class InvalidSetting(ValueError):
    """A setting that cannot be stored; ``field`` names it (``sync.mode``, ``followups.rule_days``, …)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def validated(current: Mapping[str, Any], sync: Mapping[str, Any], followups: Mapping[str, Any]) -> dict[str, Any]:
    """``current`` settings with partial ``sync`` and ``followups`` changes applied; InvalidSetting names the
    first bad one (each capability's own validation decides)."""
    merged = dict(sync_settings_of(current).as_json())
    for key, value in sync.items():
        if key == "fields" and isinstance(value, Mapping):
            merged["fields"] = {**merged["fields"], **value}
        else:
            merged[key] = value
    try:
        settings = {**current, SYNC_KEY: parse_sync_settings(merged).as_json()}
    except SyncSettingsError as exc:
        raise InvalidSetting(_field_of(str(exc), SYNC_KEY), str(exc)) from None
    if not followups:
        return settings
    try:
        return updated_settings(settings, followups)
    except (InvalidFollowupSettings, ValueError) as exc:
        message = str(exc).removeprefix("invalid follow-up settings: ")
        raise InvalidSetting(f"{FOLLOWUPS_KEY}.{message.split(':', 1)[0].split('[', 1)[0].strip()}",
                             message) from None


def _field_of(message: str, prefix: str) -> str:
    """``sync.mode`` from "sync.mode: invalid value …"."""
    head = message.split(":", 1)[0].strip()
    return head if head.startswith(prefix + ".") else prefix
