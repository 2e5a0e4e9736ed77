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
from crm_qb.sync.followups.settings import parse_settings
from crm_qb.sync.settings import SETTINGS_KEY as SYNC_KEY
from crm_qb.sync.settings import sync_settings_of

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


def _effective(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The settings with each capability's defaults filled in, so "unset" and "set to the default" compare equal."""
    return {**settings, SYNC_KEY: sync_settings_of(settings).as_json(),
            FOLLOWUPS_KEY: parse_settings(settings).to_json(), PANEL_KEY: panel_settings_of(settings).as_json()}
