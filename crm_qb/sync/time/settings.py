"""Per-connection time settings, stored under ``Connection.settings["time"]`` (JSON, no migration).

Keys (defaults in brackets):
- ``enabled`` [true]: billable CRM activities become QBO TimeActivity (DESIGN §9).
- ``default_item`` [none]: the id of the QBO service item for time whose ``service`` names no item. Without
  it, such time is sent without an ``ItemRef`` and QBO fills in its "Hours" item when the company has one
  (docs/qbo/time-activity.md); when that is refused, the time is held until a default item is set.
- ``activity_url`` [``{crm}/ui/contacts/{contact_id}#activity-{activity_id}``]: the link back to the activity
  written into each TimeActivity's description; ``{crm}`` is the connection's CRM web origin.

User → Employee/Vendor mappings set by hand are rows (``time_user_mappings``), not settings: they are set with
``crm-qb time configure <id> --map-user CRM_USER=Employee:ID`` (``crm_qb.sync.time.admin``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from crm_qb.errors import PermanentError

TIME_KEY = "time"
DEFAULT_ACTIVITY_URL = "{crm}/ui/contacts/{contact_id}#activity-{activity_id}"
PLACEHOLDERS = ("crm", "contact_id", "activity_id")


class TimeSettingsError(PermanentError):
    """A time setting is unknown or has an invalid value; the message names the key and the value."""


@dataclass(frozen=True)
class TimeSettings:
    """How one connection turns billable activities into QBO time."""

    enabled: bool = True
    default_item: str | None = None
    activity_url: str = DEFAULT_ACTIVITY_URL

    def as_json(self) -> dict[str, Any]:
        """The JSON object stored under ``Connection.settings["time"]``."""
        return {"enabled": self.enabled, "default_item": self.default_item, "activity_url": self.activity_url}


def parse_time_settings(raw: Mapping[str, Any] | None) -> TimeSettings:
    """Validate a ``time`` settings object; TimeSettingsError names the first bad key and its value."""
    raw = raw or {}
    if not isinstance(raw, Mapping):
        raise TimeSettingsError(f"time settings must be an object, got {type(raw).__name__}")
    unknown = sorted(set(raw) - {"enabled", "default_item", "activity_url"})
    if unknown:
        raise TimeSettingsError(f"time.{unknown[0]}: unknown setting")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise TimeSettingsError(f"time.enabled: invalid value {enabled!r}: must be true or false")
    return TimeSettings(enabled, _item(raw.get("default_item")), _template(raw.get("activity_url")))


def _item(value: Any) -> str | None:
    if value is None or value == "":
        return None
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    if not text.isdigit() or len(text) > 64:
        raise TimeSettingsError(f"time.default_item: invalid value {value!r}: must be a QuickBooks item id")
    return text


def _template(value: Any) -> str:
    if value is None or value == "":
        return DEFAULT_ACTIVITY_URL
    if not isinstance(value, str) or "{activity_id}" not in value or len(value) > 500:
        raise TimeSettingsError(f"time.activity_url: invalid value {value!r}: must contain {{activity_id}}")
    try:
        value.format(**{name: "x" for name in PLACEHOLDERS})
    except (KeyError, IndexError, ValueError):
        raise TimeSettingsError(f"time.activity_url: invalid value {value!r}: only {{crm}}, {{contact_id}} and "
                                "{activity_id} may be used") from None
    return value


def time_settings_of(connection_settings: Mapping[str, Any] | None) -> TimeSettings:
    """The time settings stored in a connection's ``settings`` JSON (defaults when absent)."""
    return parse_time_settings((connection_settings or {}).get(TIME_KEY))


def with_time_settings(connection_settings: Mapping[str, Any] | None, settings: TimeSettings) -> dict[str, Any]:
    """New connection settings holding ``settings`` under ``time``."""
    return {**(connection_settings or {}), TIME_KEY: settings.as_json()}
