"""The per-connection first-sync setting, stored under ``Connection.settings["first_sync"]``:

- ``auto_start`` [false]: start the first sync as soon as its preview is computed, without waiting for a person
  (for CRM vendors who provision many tenants; ``crm-qb up``'s demo connection turns it on).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crm_qb.errors import PermanentError

SETTINGS_KEY = "first_sync"


class FirstSyncSettingsError(PermanentError):
    """A first-sync setting has an invalid value; the message names it."""


def auto_start_of(settings: Mapping[str, Any] | None) -> bool:
    """Whether the connection's first sync starts by itself once previewed."""
    raw = (settings or {}).get(SETTINGS_KEY) or {}
    return isinstance(raw, Mapping) and raw.get("auto_start") is True


def with_auto_start(settings: Mapping[str, Any] | None, auto_start: object) -> dict[str, Any]:
    """A copy of ``settings`` with ``auto_start`` set (a new dict, so the JSON column sees the change)."""
    if not isinstance(auto_start, bool):
        raise FirstSyncSettingsError(f"first_sync.auto_start must be true or false, got {auto_start!r}")
    current = dict((settings or {}).get(SETTINGS_KEY) or {})
    return {**(settings or {}), SETTINGS_KEY: {**current, "auto_start": auto_start}}
