"""Per-connection panel settings, stored under ``Connection.settings["panel"]`` (JSON, no migration).

Keys (defaults in brackets):
- ``push_summary`` [false]: also write each linked contact's Payment & Billing summary into the CRM
  (``PUT /contacts/{id}/quickbooks`` of the REST contract, docs/architecture.md §5) whenever its customer or its
  folder changes, for CRMs that show QuickBooks data natively rather than (or besides) in the panel. The sync
  notes which customers changed; a job per customer pushes after the sync committed
  (``workers/summary_jobs.py``).

``crm-qb connection configure <id> --set panel.push_summary=true`` validates before it stores.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, ValidationError
from marshmallow import fields as mf

from crm_qb.errors import PermanentError

PANEL_KEY = "panel"


class PanelSettingsError(PermanentError):
    """A panel setting is unknown or has an invalid value; the message names the key and the value."""


@dataclass(frozen=True)
class PanelSettings:
    """How one connection's contact panel reaches its CRM."""

    push_summary: bool = False

    def as_json(self) -> dict[str, Any]:
        """The JSON object stored under ``Connection.settings["panel"]``."""
        return {"push_summary": self.push_summary}


class _PanelSchema(Schema):
    push_summary = mf.Boolean(truthy={True}, falsy={False})  # JSON true/false only, not "yes" or 1


def parse_panel_settings(raw: Mapping[str, Any] | None) -> PanelSettings:
    """Validate a ``panel`` settings object; PanelSettingsError names the first bad key and its value."""
    raw = raw or {}
    if not isinstance(raw, Mapping):
        raise PanelSettingsError(f"panel settings must be an object, got {type(raw).__name__}")
    try:
        loaded = _PanelSchema().load(dict(raw))
    except ValidationError as exc:
        key = sorted(exc.normalized_messages(), key=str)[0]
        shown = raw.get(key, "<missing>") if isinstance(key, str) else "<missing>"
        message = "unknown setting" if key not in _PanelSchema().fields else "must be true or false"
        raise PanelSettingsError(f"panel.{key}: invalid value {shown!r}: {message}") from None
    return PanelSettings(**loaded)


def panel_settings_of(connection_settings: Mapping[str, Any] | None) -> PanelSettings:
    """The panel settings stored in a connection's ``settings`` JSON (defaults when absent)."""
    return parse_panel_settings((connection_settings or {}).get(PANEL_KEY))


def apply_panel_assignments(connection_settings: Mapping[str, Any] | None,
                            assignments: Iterable[str]) -> dict[str, Any]:
    """Return new connection settings with ``panel.KEY=VALUE`` assignments applied and validated."""
    current = panel_settings_of(connection_settings).as_json()
    for assignment in assignments:
        key, _, value = assignment.partition("=")
        name = key.strip().removeprefix(PANEL_KEY + ".")
        try:
            current[name] = json.loads(value.strip())
        except ValueError:
            current[name] = value.strip()
    return {**(connection_settings or {}), PANEL_KEY: parse_panel_settings(current).as_json()}
