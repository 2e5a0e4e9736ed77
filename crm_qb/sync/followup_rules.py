"""Overdue follow-up rules and the task template language.

Rules: a rule of N days fires for an invoice with a positive balance once it is at least N days overdue.
An invoice due today is not overdue; partial payments do not stop a rule while a balance is left.

Templates are plain text with ``{name}`` placeholders from PLACEHOLDERS; ``{{`` and ``}}`` write a literal
brace. Nothing else is interpreted (no attribute access or format specs, unlike ``str.format``), and inserted
values are never re-read as templates, so a customer name with braces is safe.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal

from crm_qb.sync.status import days_overdue

DEFAULT_RULE_DAYS: tuple[int, ...] = (1, 14, 30)
PLACEHOLDERS: tuple[str, ...] = (
    "invoice_number",
    "amount",
    "balance",
    "currency",
    "due_date",
    "days_overdue",
    "deep_link",
    "customer",
)
# One token per match: an escaped brace, a placeholder, a stray brace, or a run of plain text.
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]|[^{}]+")


def validate_rule_days(rule_days: Sequence[int]) -> tuple[int, ...]:
    """Return the rule days sorted and de-duplicated; raise ValueError unless each is an int >= 1."""
    for days in rule_days:
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise ValueError(f"follow-up rule days must be whole numbers >= 1, got {days!r}")
    return tuple(sorted(set(rule_days)))


def due_rules(due_date: date, balance: Decimal, today: date, rule_days: Sequence[int]) -> list[int]:
    """Return the rules (days) that fire for an invoice on ``today``, ascending; none when balance <= 0."""
    rules = validate_rule_days(rule_days)
    if balance <= 0:
        return []
    overdue = days_overdue(due_date, today)
    return [days for days in rules if overdue >= days]


def validate_template(template: str) -> None:
    """Return None if ``template`` is valid; raise ValueError naming an unknown placeholder or stray brace."""
    _parse(template)


def render_task(template: str, fields: Mapping[str, object]) -> str:
    """Return ``template`` with each placeholder replaced by str(value); ValueError if one is absent."""
    parts = []
    for is_placeholder, text in _parse(template):
        if not is_placeholder:
            parts.append(text)
        elif text in fields:
            parts.append(str(fields[text]))
        else:
            raise ValueError(f"template uses {{{text}}} but no value was given for it")
    return "".join(parts)


def _parse(template: str) -> list[tuple[bool, str]]:
    """Return (is_placeholder, text) tokens; plain text has escaped braces already unescaped."""
    tokens = []
    for match in _TOKEN.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            tokens.append((False, token[0]))
        elif token in ("{", "}"):
            raise ValueError(
                f"unmatched {token!r} at position {match.start()} in template; write {token * 2}"
            )
        elif match.group(1) is not None:
            tokens.append((True, _placeholder(match.group(1), match.start())))
        else:
            tokens.append((False, token))
    return tokens


def _placeholder(name: str, position: int) -> str:
    if name not in PLACEHOLDERS:
        raise ValueError(
            f"unknown placeholder {{{name}}} at position {position}; known: {', '.join(PLACEHOLDERS)}"
        )
    return name
