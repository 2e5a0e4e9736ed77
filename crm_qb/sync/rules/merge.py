"""The three-way, field-by-field merge of docs/architecture.md §3, and the first-link merge.

For each canonical field, with ``base`` the value both sides last agreed on:
- unchanged on both sides, or changed on both to the same value: nothing is written;
- changed on one side: the new value goes to the other side;
- changed on both to different values: a conflict, resolved by the policy and returned in ``conflicts``.

Policies: ``recent_wins`` (default: the later change wins; when the two change times are within ``window`` of
each other, QBO wins, rule "window_qbo_wins"), ``qbo_wins``, ``crm_wins``.

Directions (per field, see ``mapping.field_settings``):
- ``off``: the field is ignored; its base is kept as it was.
- one-way (``qbo_to_crm`` or ``crm_to_qbo``): the source side is the master. A source change is written to the
  target, even when the target changed too (no conflict is recorded: the policy does not apply to a one-way
  field). A change made only on the target is left where it is and never propagated; the base keeps the
  source's value, so the target is brought back in line the next time the source changes.
``new_base`` always holds every canonical field.

First link (``first_link``): empty fields are filled from the other side and differing fields take QBO's value,
except that the first link never renames the QBO customer: a QBO DisplayName is never overwritten. Where the
display name's direction lets QBO's reach the CRM it fills or replaces the CRM's; under ``crm_to_qbo`` the CRM
keeps its own and only a later CRM change is written to QBO. Pass the CRM's display name as the CRM stores it
(None when empty, not derived), so that QBO's name is written into an empty one and a derived name cannot later
drift (when the company is filled in) and look like a rename made in the CRM.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import cast

from crm_qb.sync.rules.canonical import FIELDS, CanonicalValue, canonicalise_record
from crm_qb.sync.rules.mapping import field_settings

POLICIES: tuple[str, ...] = ("recent_wins", "qbo_wins", "crm_wins")
DEFAULT_WINDOW = timedelta(seconds=120)
_TO_CRM: frozenset[str] = frozenset({"both", "qbo_to_crm"})
_TO_QBO: frozenset[str] = frozenset({"both", "crm_to_qbo"})


@dataclass(frozen=True)
class Conflict:
    """A field both sides changed to different values, and how it was resolved."""

    field: str
    qbo_value: CanonicalValue
    crm_value: CanonicalValue
    qbo_changed_at: datetime
    crm_changed_at: datetime
    winner: str
    rule: str


@dataclass(frozen=True)
class Overwrite:
    """A value the first link replaced on one side (``side`` is "qbo" or "crm"), for the audit log."""

    field: str
    side: str
    old_value: CanonicalValue
    new_value: CanonicalValue


@dataclass(frozen=True)
class MergeResult:
    """What to write to each side, the new base, and what to record (conflicts, first-link overwrites)."""

    to_qbo: Mapping[str, CanonicalValue]
    to_crm: Mapping[str, CanonicalValue]
    new_base: Mapping[str, CanonicalValue]
    conflicts: tuple[Conflict, ...] = ()
    overwritten: tuple[Overwrite, ...] = ()


@dataclass(frozen=True)
class _Field:
    """One field's outcome: its new base and which side (if any) receives the other side's value."""

    base: CanonicalValue
    write_qbo: bool = False
    write_crm: bool = False
    conflict: Conflict | None = None
    overwrite: Overwrite | None = None


def merge(
    base: Mapping[str, object],
    qbo: Mapping[str, object],
    crm: Mapping[str, object],
    *,
    qbo_changed_at: datetime,
    crm_changed_at: datetime,
    policy: str = "recent_wins",
    window: timedelta = DEFAULT_WINDOW,
    directions: Mapping[str, str] | None = None,
) -> MergeResult:
    """Return the three-way merge of ``qbo`` and ``crm`` against ``base`` (canonical contacts)."""
    _check_policy(policy, window)
    _check_aware(qbo_changed_at=qbo_changed_at, crm_changed_at=crm_changed_at)
    settings = field_settings(directions)
    b, q, c = (canonicalise_record(side) for side in (base, qbo, crm))
    times = (qbo_changed_at, crm_changed_at)
    outcomes = {
        name: _merge_field(name, b[name], q[name], c[name], settings[name], policy, window, times)
        for name in FIELDS
    }
    return _result(outcomes, q, c)


def first_link(
    qbo: Mapping[str, object],
    crm: Mapping[str, object],
    *,
    directions: Mapping[str, str] | None = None,
    folded: bool = False,
) -> MergeResult:
    """Return the first-link merge: empty fields filled from the other side, differing ones take QBO's.

    ``folded=True``: both records are ``canonicalise_record``'s answers already (every field, each canonical), as
    ``canonical_from_qbo`` and ``canonical_from_crm`` give them, so they are not folded again (folding is
    idempotent: the same merge). A backfill first-links every customer it creates a contact for.
    """
    settings = field_settings(directions)
    if folded:
        q: Mapping[str, CanonicalValue] = {name: cast(CanonicalValue, qbo[name]) for name in FIELDS}
        c: Mapping[str, CanonicalValue] = {name: cast(CanonicalValue, crm[name]) for name in FIELDS}
    else:
        q, c = canonicalise_record(qbo), canonicalise_record(crm)
    outcomes = {name: _link_field(name, q[name], c[name], settings[name]) for name in FIELDS}
    return _result(outcomes, q, c)


def resolve(
    policy: str, qbo_changed_at: datetime, crm_changed_at: datetime, window: timedelta = DEFAULT_WINDOW
) -> tuple[str, str]:
    """Return (winner "qbo"|"crm", rule) for a two-way conflict under ``policy``."""
    _check_policy(policy, window)
    if policy != "recent_wins":
        return policy.removesuffix("_wins"), policy
    if abs(qbo_changed_at - crm_changed_at) <= window:
        return "qbo", "window_qbo_wins"
    return ("qbo" if qbo_changed_at > crm_changed_at else "crm"), "recent_wins"


def _merge_field(
    name: str,
    b: CanonicalValue,
    q: CanonicalValue,
    c: CanonicalValue,
    direction: str,
    policy: str,
    window: timedelta,
    times: tuple[datetime, datetime],
) -> _Field:
    if direction == "off":
        return _Field(base=b)
    if q == c:
        # Unchanged on both sides, or the same change made on both: nothing to write.
        return _Field(base=q)
    qbo_changed, crm_changed = q != b, c != b
    if direction != "both":
        return _one_way(direction, b, q, c, qbo_changed, crm_changed)
    if not crm_changed:
        return _Field(base=q, write_crm=True)
    if not qbo_changed:
        return _Field(base=c, write_qbo=True)
    winner, rule = resolve(policy, times[0], times[1], window)
    conflict = Conflict(name, q, c, times[0], times[1], winner, rule)
    if winner == "qbo":
        return _Field(base=q, write_crm=True, conflict=conflict)
    return _Field(base=c, write_qbo=True, conflict=conflict)


def _one_way(
    direction: str,
    b: CanonicalValue,
    q: CanonicalValue,
    c: CanonicalValue,
    qbo_changed: bool,
    crm_changed: bool,
) -> _Field:
    if direction == "qbo_to_crm":
        return _Field(base=q, write_crm=True) if qbo_changed else _Field(base=b)
    return _Field(base=c, write_qbo=True) if crm_changed else _Field(base=b)


def _link_field(name: str, q: CanonicalValue, c: CanonicalValue, direction: str) -> _Field:
    if name == "display_name" and q is not None and direction != "off":
        return _link_display_name(q, c, direction)
    if direction == "off" or q == c:
        return _Field(base=q if direction != "off" else None)
    crm_wins = direction == "crm_to_qbo"
    if (q is None or crm_wins) and c is not None and direction in _TO_QBO:
        overwrite = Overwrite(name, "qbo", q, c) if q is not None else None
        return _Field(base=c, write_qbo=True, overwrite=overwrite)
    if q is not None and direction in _TO_CRM:
        overwrite = Overwrite(name, "crm", c, q) if c is not None else None
        return _Field(base=q, write_crm=True, overwrite=overwrite)
    # A one-way source that is empty never blanks the target; the base records the source's (empty) value.
    return _Field(base=q if direction == "qbo_to_crm" else c)


def _link_display_name(q: CanonicalValue, c: CanonicalValue, direction: str) -> _Field:
    """QBO's DisplayName at first link: never overwritten; it fills or replaces the CRM's when it may reach it."""
    if q == c:
        return _Field(base=q)
    if direction in _TO_CRM:
        overwrite = Overwrite("display_name", "crm", c, q) if c is not None else None
        return _Field(base=q, write_crm=True, overwrite=overwrite)
    return _Field(base=c if c is not None else q)


def _result(
    outcomes: Mapping[str, _Field], q: Mapping[str, CanonicalValue], c: Mapping[str, CanonicalValue]
) -> MergeResult:
    return MergeResult(
        to_qbo=MappingProxyType({name: c[name] for name, out in outcomes.items() if out.write_qbo}),
        to_crm=MappingProxyType({name: q[name] for name, out in outcomes.items() if out.write_crm}),
        new_base=MappingProxyType({name: out.base for name, out in outcomes.items()}),
        conflicts=tuple(out.conflict for out in outcomes.values() if out.conflict),
        overwritten=tuple(out.overwrite for out in outcomes.values() if out.overwrite),
    )


def _check_policy(policy: str, window: timedelta) -> None:
    if policy not in POLICIES:
        raise ValueError(f"unknown conflict policy {policy!r}; expected one of {', '.join(POLICIES)}")
    if window < timedelta(0):
        raise ValueError(f"conflict window must not be negative, got {window!r}")


def _check_aware(**times: datetime) -> None:
    for name, value in times.items():
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware, got {value!r}")
