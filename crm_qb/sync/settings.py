"""Per-connection sync settings: validated from ``Connection.settings["sync"]`` into one typed object.

Keys (all optional; defaults in brackets):
- ``enabled`` [true]: sync customers at all.
- ``direction`` [both]: ``both``, ``qbo_to_crm`` (QBO is the master, nothing is written to QBO) or
  ``crm_to_qbo`` (the CRM is the master, nothing is written to the CRM).
- ``conflict_policy`` [recent_wins]: ``recent_wins``, ``qbo_wins`` or ``crm_wins`` (docs/architecture.md §3).
- ``conflict_window_seconds`` [120]: within this many seconds QuickBooks wins under ``recent_wins``.
- ``on_crm_delete`` [unlink]: ``unlink``, or ``unlink_and_deactivate`` (also make the QBO customer inactive).
- ``fields`` [{}]: a direction per canonical field (``both``, ``qbo_to_crm``, ``crm_to_qbo``, ``off``).
- ``cdc_poll_seconds`` [300]: how often the CDC poll catches changes webhooks missed (in ``scheduled`` mode: how
  often the connection syncs at all).
- ``mode`` [realtime]: ``realtime`` (webhooks, hooks and the poll), ``scheduled`` (changes wait and are synced
  every ``cdc_poll_seconds`` by the scheduled poll only) or ``manual`` (changes wait for "Sync now").

The connection-wide direction narrows every field: a field set to ``both`` under ``direction=qbo_to_crm``
behaves as ``qbo_to_crm``; a field whose own direction goes against the connection's becomes ``off``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from marshmallow import Schema, ValidationError, validate
from marshmallow import fields as mf

from crm_qb.errors import PermanentError
from crm_qb.sync.rules.canonical import FIELDS
from crm_qb.sync.rules.mapping import DIRECTIONS, field_settings
from crm_qb.sync.rules.merge import POLICIES

CONNECTION_DIRECTIONS: tuple[str, ...] = ("both", "qbo_to_crm", "crm_to_qbo")
ON_CRM_DELETE: tuple[str, ...] = ("unlink", "unlink_and_deactivate")
MODES: tuple[str, ...] = ("realtime", "scheduled", "manual")
SETTINGS_KEY = "sync"


class SyncSettingsError(PermanentError):
    """A sync setting is unknown or has an invalid value; the message names the key and the value."""


@dataclass(frozen=True)
class SyncSettings:
    """How one connection syncs customers."""

    enabled: bool = True
    direction: str = "both"
    conflict_policy: str = "recent_wins"
    conflict_window_seconds: int = 120
    on_crm_delete: str = "unlink"
    fields: Mapping[str, str] = field(default_factory=dict)
    cdc_poll_seconds: int = 300
    mode: str = "realtime"

    @property
    def realtime(self) -> bool:
        """Whether webhooks and hooks are synced as they arrive (else they wait for the schedule or "Sync now")."""
        return self.mode == "realtime"

    @property
    def window(self) -> timedelta:
        """The conflict window as a timedelta."""
        return timedelta(seconds=self.conflict_window_seconds)

    @property
    def to_crm(self) -> bool:
        """Whether anything may be written to the CRM."""
        return self.direction in ("both", "qbo_to_crm")

    @property
    def to_qbo(self) -> bool:
        """Whether anything may be written to QBO."""
        return self.direction in ("both", "crm_to_qbo")

    def field_directions(self) -> dict[str, str]:
        """A direction for every canonical field, narrowed by the connection-wide direction."""
        return {name: _narrow(self.direction, own) for name, own in field_settings(self.fields).items()}

    def field_directions_own(self) -> dict[str, str]:
        """Each canonical field's own direction (before the connection-wide direction narrows it)."""
        return field_settings(self.fields)

    def as_json(self) -> dict[str, Any]:
        """The JSON object stored under ``Connection.settings["sync"]``."""
        return {"enabled": self.enabled, "direction": self.direction, "conflict_policy": self.conflict_policy,
                "conflict_window_seconds": self.conflict_window_seconds, "on_crm_delete": self.on_crm_delete,
                "fields": dict(self.fields), "cdc_poll_seconds": self.cdc_poll_seconds, "mode": self.mode}


class _SyncSchema(Schema):
    enabled = mf.Boolean()
    direction = mf.String(validate=validate.OneOf(CONNECTION_DIRECTIONS))
    conflict_policy = mf.String(validate=validate.OneOf(POLICIES))
    conflict_window_seconds = mf.Integer(strict=True, validate=validate.Range(min=0, max=86_400))
    on_crm_delete = mf.String(validate=validate.OneOf(ON_CRM_DELETE))
    field_map = mf.Dict(data_key="fields", attribute="fields", keys=mf.String(validate=validate.OneOf(FIELDS)),
                         values=mf.String(validate=validate.OneOf(DIRECTIONS)))
    cdc_poll_seconds = mf.Integer(strict=True, validate=validate.Range(min=60, max=86_400))
    mode = mf.String(validate=validate.OneOf(MODES))


def parse_sync_settings(raw: Mapping[str, Any] | None) -> SyncSettings:
    """Validate a ``sync`` settings object; SyncSettingsError names the first bad key and its value."""
    raw = raw or {}
    if not isinstance(raw, Mapping):
        raise SyncSettingsError(f"sync settings must be an object, got {type(raw).__name__}")
    try:
        loaded = _SyncSchema().load(dict(raw))
    except ValidationError as exc:
        raise SyncSettingsError(_describe(exc.normalized_messages(), raw)) from None
    return SyncSettings(**loaded)


def sync_settings_of(connection_settings: Mapping[str, Any] | None) -> SyncSettings:
    """The sync settings stored in a connection's ``settings`` JSON (defaults when absent)."""
    return parse_sync_settings((connection_settings or {}).get(SETTINGS_KEY))


def apply_assignments(connection_settings: Mapping[str, Any] | None, assignments: Iterable[str]) -> dict[str, Any]:
    """Return new connection settings with ``sync.KEY=VALUE`` assignments applied and validated."""
    current = dict(sync_settings_of(connection_settings).as_json())
    for assignment in assignments:
        key, value = _split(assignment)
        if key.startswith("fields."):
            current["fields"] = {**current["fields"], key.removeprefix("fields."): value}
        else:
            current[key] = _parse_value(value)
    return {**(connection_settings or {}), SETTINGS_KEY: parse_sync_settings(current).as_json()}


def _split(assignment: str) -> tuple[str, str]:
    key, sep, value = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise SyncSettingsError(f"expected KEY=VALUE (e.g. sync.direction=both), got {assignment!r}")
    if not key.startswith(SETTINGS_KEY + "."):
        raise SyncSettingsError(f"unknown setting {key!r}: sync settings are named sync.<key>")
    return key.removeprefix(SETTINGS_KEY + "."), value.strip()


def _parse_value(value: str) -> Any:
    """JSON when it parses (true, 120, {...}), else the text itself (both, recent_wins)."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def _describe(messages: Any, raw: Mapping[str, Any]) -> str:
    key = sorted(messages, key=str)[0]
    detail = messages[key]
    if key == "fields" and isinstance(detail, dict):
        inner = sorted(detail, key=str)[0]
        part = detail[inner]
        which = "key" if "key" in part else "value"
        entry = (raw.get("fields") or {})
        shown = inner if which == "key" else entry.get(inner)
        return f"sync.fields.{inner}: invalid {which} {shown!r}: {_first(part.get(which))}"
    value = raw.get(key, "<missing>")
    return f"sync.{key}: invalid value {value!r}: {_first(detail)}"


def _first(detail: Any) -> str:
    while isinstance(detail, list | dict):
        if isinstance(detail, dict):
            detail = next(iter(detail.values()), "invalid")
        else:
            detail = detail[0] if detail else "invalid"
    return str(detail)


def _narrow(connection: str, own: str) -> str:
    if connection == "both" or own == "off":
        return own
    if own in ("both", connection):
        return connection
    return "off"
