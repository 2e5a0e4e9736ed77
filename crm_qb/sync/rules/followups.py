"""Overdue follow-up rules, why a follow-up closes, and the task text (pure: no I/O).

Rules: a rule of N days is reached by an invoice with a positive balance once it is at least N days overdue.
An invoice due today is not overdue; partial payments do not stop a rule while a balance is left. Only the most
advanced rule reached fires, and only when the invoice has not had it or a later one (``rule_to_fire``): an
invoice first seen 37 days overdue gets one task, "30 days overdue", not three; a first sync of a company with
many old invoices makes one task per invoice; later rules fire as the invoice ages. Every task title says its
rule (``{rule}``, e.g. "30 days overdue"). A follow-up
closes when its invoice is deleted, voided, paid in full, moved to another contact or no longer overdue, in that
order of precedence. Every task description ends with a marker naming connection, invoice and rule, by which a
task a crashed run created is found again (``task_marker``). Text past the CRM's limits is cut, the marker kept.

Templates are plain text with ``{name}`` placeholders from PLACEHOLDERS; ``{{`` and ``}}`` write a literal
brace. Nothing else is interpreted (no attribute access or format specs, unlike ``str.format``), and inserted
values are never re-read as templates, so a customer name with braces is safe.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from crm_qb.sync.rules.money import format_money
from crm_qb.sync.rules.status import days_overdue

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
    "rule",
    "rule_days",
)
# One token per match: an escaped brace, a placeholder, a stray brace, or a run of plain text.
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]|[^{}]+")
TITLE_MAX = 255  # the reference CRM's limits (section 6 sets none); text past them is cut, the marker kept
DESCRIPTION_MAX = 4000
CLOSE_REASONS = {
    "paid": "the invoice was paid in full",
    "voided": "the invoice was voided in QuickBooks",
    "deleted": "the invoice was deleted in QuickBooks",
    "moved": "the invoice was moved to another customer",
    "not_overdue": "the invoice is no longer overdue",
}
CONTACT_GONE = "the CRM contact no longer exists"


@dataclass(frozen=True)
class Invoice:
    """What follow-ups need of one mirrored invoice, and the CRM contact of its customer (None: unlinked)."""

    qbo_id: str
    contact_id: str | None
    doc_number: str | None
    due_date: date | None
    total: Decimal
    balance: Decimal
    currency: str
    voided: bool
    customer_name: str | None = None

    def overdue(self, today: date) -> bool:
        """True when a balance is owed and the due date is before ``today``."""
        return not self.voided and self.balance > 0 and days_overdue(self.due_date, today) > 0


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


def rule_to_fire(due_date: date, balance: Decimal, today: date, rule_days: Sequence[int],
                 reached: int | None) -> int | None:
    """The one rule an invoice gets a task for on ``today``, or None.

    That is the most advanced rule it has reached, when it is beyond ``reached`` (the most advanced rule the
    invoice already had a task for, None when it never had one); the rules it skipped never fire.
    """
    due = due_rules(due_date, balance, today, rule_days)
    if not due or (reached is not None and due[-1] <= reached):
        return None
    return due[-1]


def rule_label(rule_days: int) -> str:
    """How a task names its rule: "1 day overdue", "30 days overdue"."""
    return f"{rule_days} day overdue" if rule_days == 1 else f"{rule_days} days overdue"


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


def task_marker(connection_id: int, qbo_invoice_id: str, rule_days: int) -> str:
    """Return the marker that ends a follow-up task's description and identifies it in the CRM."""
    return f"[crm-qb follow-up {connection_id}:{qbo_invoice_id}:{rule_days}]"


def closing_reason(row_contact_id: str, invoice: Invoice | None, today: date) -> str | None:
    """Return why a follow-up must be completed (a CLOSE_REASONS text), or None while it is still due."""
    if invoice is None:
        return CLOSE_REASONS["deleted"]
    if invoice.voided:
        return CLOSE_REASONS["voided"]
    if invoice.balance <= 0:
        return CLOSE_REASONS["paid"]
    if invoice.contact_id != row_contact_id:
        return CLOSE_REASONS["moved"]
    if not invoice.overdue(today):
        return CLOSE_REASONS["not_overdue"]
    return None


def task_fields(invoice: Invoice, today: date, deep_link: str, customer: str, rule_days: int) -> dict[str, object]:
    """Return the template values for ``invoice``'s task of rule ``rule_days`` on ``today`` (money in its currency)."""
    return {
        "rule": rule_label(rule_days),
        "rule_days": rule_days,
        "invoice_number": invoice.doc_number or invoice.qbo_id,
        "amount": format_money(invoice.total, invoice.currency),
        "balance": format_money(invoice.balance, invoice.currency),
        "currency": invoice.currency,
        "due_date": invoice.due_date.isoformat() if invoice.due_date else "",
        "days_overdue": days_overdue(invoice.due_date, today),
        "deep_link": deep_link,
        "customer": customer,
    }


def task_text(title_template: str, description_template: str, values: Mapping[str, object],
              marker: str) -> tuple[str, str]:
    """Return a task's (title, description): rendered, cut to the limits, the description ending with ``marker``."""
    title = _clip(render_task(title_template, values).strip() or marker, TITLE_MAX)
    body = _clip(render_task(description_template, values).strip(), DESCRIPTION_MAX - len(marker) - 2)
    return title, f"{body}\n\n{marker}" if body else marker


def completion_note(description: str | None, reason: str, today: date) -> str:
    """Return ``description`` with a line saying crm-qb completed the task and why, within the length limit."""
    note = f"Completed by crm-qb on {today.isoformat()}: {reason}."
    text = description or ""
    if note in text:
        return text
    keep = DESCRIPTION_MAX - len(note) - 2
    return f"{_clip(text, keep)}\n\n{note}" if text else note


def tags_with(tags: Iterable[str], tag: str, wanted: bool) -> list[str]:
    """Return ``tags`` with ``tag`` present (appended) or absent, other tags kept in order."""
    others = [existing for existing in tags if existing != tag]
    return [*others, tag] if wanted else others


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"
