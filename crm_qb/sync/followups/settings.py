"""Per-connection follow-up settings, stored in ``Connection.settings["followups"]`` and validated here.

Keys (all optional in storage; missing ones take the defaults below):
- ``enabled`` (bool): create tasks for overdue invoices. Turning it off stops new tasks; open tasks of invoices
  that get paid, voided, deleted or moved are still completed.
- ``rule_days`` (list of whole numbers >= 1): the days overdue at which an invoice gets a task; on first sight
  only the most advanced rule reached fires (``crm_qb.sync.rules.followups.rule_to_fire``).
- ``title_template`` / ``description_template``: task text, ``{placeholder}`` syntax of ``followup_rules``.
- ``tag_enabled`` (bool): keep ``tag`` on every linked contact that has an overdue invoice, and off otherwise.
- ``tag`` (text): the tag's name.

Bad input raises InvalidFollowupSettings whose message names each bad key and says what is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from crm_qb.errors import PermanentError
from crm_qb.sync.rules.followups import DEFAULT_RULE_DAYS, validate_rule_days, validate_template

SETTINGS_KEY = "followups"
DEFAULT_TITLE = "Overdue invoice {invoice_number}: {balance} ({rule})"
DEFAULT_DESCRIPTION = (
    "Invoice {invoice_number} for {customer} is {days_overdue} days overdue.\n"
    "Amount: {amount}\nBalance due: {balance}\nDue date: {due_date}\n"
    "Open in QuickBooks: {deep_link}"
)
DEFAULT_TAG = "QuickBooks: overdue"
MAX_RULES = 20
MAX_RULE_DAYS = 3650
MAX_TEMPLATE = 4000
MAX_TAG = 100


class InvalidFollowupSettings(PermanentError):
    """Follow-up settings that cannot be used; the message names every bad key."""


@dataclass(frozen=True)
class FollowupSettings:
    """The follow-up settings of one connection, validated."""

    enabled: bool = True
    rule_days: tuple[int, ...] = DEFAULT_RULE_DAYS
    title_template: str = DEFAULT_TITLE
    description_template: str = DEFAULT_DESCRIPTION
    tag_enabled: bool = False
    tag: str = DEFAULT_TAG

    def to_json(self) -> dict[str, Any]:
        """Return the JSON object stored under ``Connection.settings["followups"]``."""
        data = asdict(self)
        data["rule_days"] = list(self.rule_days)
        return data


def _check_template(value: str) -> None:
    try:
        validate_template(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def _check_days(value: list[int]) -> None:
    if not value:
        raise ValidationError("needs at least one day; set enabled to false to stop follow-ups")
    if len(value) > MAX_RULES:
        raise ValidationError(f"at most {MAX_RULES} rules, got {len(value)}")
    for days in value:
        if days > MAX_RULE_DAYS:
            raise ValidationError(f"{days} is more than {MAX_RULE_DAYS} days")
    try:
        validate_rule_days(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class StrictBoolean(fields.Boolean):
    """A boolean that must be JSON true or false (marshmallow would also take "yes", 1, "on")."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError(f"must be true or false, got {value!r}")
        return value


class FollowupSettingsSchema(Schema):
    """Validates a whole or partial settings object; unknown keys are refused by name."""

    class Meta:
        unknown = RAISE

    enabled = StrictBoolean()
    rule_days = fields.List(
        fields.Integer(strict=True, validate=validate.Range(min=1, error="must be a whole number >= 1")),
        validate=_check_days,
    )
    title_template = fields.String(validate=[validate.Length(min=1, max=MAX_TEMPLATE), _check_template])
    description_template = fields.String(validate=[validate.Length(max=MAX_TEMPLATE), _check_template])
    tag_enabled = StrictBoolean()
    tag = fields.String(validate=validate.Length(min=1, max=MAX_TAG))

    @validates_schema
    def _tag_not_blank(self, data: dict[str, Any], **_: Any) -> None:
        if "tag" in data and not data["tag"].strip():
            raise ValidationError("must not be blank", "tag")


def parse_settings(stored: Mapping[str, Any] | None) -> FollowupSettings:
    """Return the settings in ``stored`` (a connection's settings JSON) over the defaults; raise if invalid."""
    raw = (stored or {}).get(SETTINGS_KEY) or {}
    return _merge(FollowupSettings(), raw)


def updated_settings(stored: Mapping[str, Any] | None, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``stored`` with ``changes`` applied to the follow-up settings; raise if invalid."""
    merged = _merge(parse_settings(stored), changes)
    return {**(stored or {}), SETTINGS_KEY: merged.to_json()}


def reset_settings(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return a copy of ``stored`` with the follow-up settings back to the defaults."""
    return {key: value for key, value in (stored or {}).items() if key != SETTINGS_KEY}


def parse_days(text: str) -> list[int]:
    """Return the days of a comma-separated list such as "1,14,30"; raise naming the first bad item."""
    days = []
    for item in text.split(","):
        item = item.strip()
        if not item.isdigit():
            raise InvalidFollowupSettings(f"rule_days: {item!r} is not a whole number (write e.g. 1,14,30)")
        days.append(int(item))
    return days


def _merge(base: FollowupSettings, changes: Mapping[str, Any]) -> FollowupSettings:
    if not isinstance(changes, Mapping):
        raise InvalidFollowupSettings(f"follow-up settings must be an object, got {type(changes).__name__}")
    try:
        clean = FollowupSettingsSchema().load(dict(changes), partial=True)
    except ValidationError as exc:
        raise InvalidFollowupSettings("invalid follow-up settings: " + _describe(exc.messages)) from None
    if "rule_days" in clean:
        clean["rule_days"] = validate_rule_days(clean["rule_days"])
    if "tag" in clean:
        clean["tag"] = clean["tag"].strip()
    return FollowupSettings(**{**asdict(base), **clean})


def _describe(messages: Any, prefix: str = "") -> str:
    """Flatten marshmallow's nested messages into "key: problem; key[0]: problem"."""
    if isinstance(messages, Mapping):
        parts = []
        for key, value in messages.items():
            name = f"{prefix}[{key}]" if isinstance(key, int) else (f"{prefix}.{key}" if prefix else str(key))
            if key == "_schema":
                name = prefix or "settings"
            parts.append(_describe(value, name))
        return "; ".join(parts)
    if isinstance(messages, Sequence) and not isinstance(messages, str):
        known = ", ".join(FollowupSettingsSchema().fields)
        text = " ".join(str(m).replace("Unknown field.", f"unknown setting (known: {known})") for m in messages)
        return f"{prefix}: {text}" if prefix else text
    return f"{prefix}: {messages}" if prefix else str(messages)
