"""Identity before any write: match an unlinked record, and resolve DisplayName clashes (QBO fault 6240).

Decisions:
- ``normalise_name`` keeps accents ("José" and "Jose" may be different people, and a wrong link is worse
  than a review), applies NFKC and case folding, deletes apostrophes ("Bill's" = "Bills"), turns other
  punctuation and symbols into spaces ("Smith-Jones" = "Smith Jones", "Acme, Inc." = "Acme Inc") and folds
  whitespace.
- ``match`` tries the case-folded email first: one candidate links, several are ambiguous. With no email hit
  it compares the normalised display name and company of both sides (any of one against any of the other).
  A name hit whose email is set and differs from the record's is never linked: it makes the outcome ambiguous
  so a person decides, rather than linking the wrong customer or creating a duplicate.
- ``distinct_display_name`` (the 6240 rule): keep the wanted name if free, else append " (2)", " (3)", ...
  trimming the name so the result stays within DisplayName's 500-unit limit. Names are compared
  case-insensitively when ``taken`` is a collection, as QBO's name lookups are.
- Sub-customers (QBO jobs) usually inherit their parent's email and company, so for a job without an email of its
  own (``has_own_email``) neither says anything about it: it matches by its exact normalised display name only
  (``match_exact_name``).
- ``same_person``: the same email means the same person; different emails mean different people; otherwise
  the normalised display names must match and neither company nor given/family names may conflict.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from crm_qb.sync.rules.canonical import canonicalise, truncate, utf16_length

LINKED, AMBIGUOUS, NONE = "linked", "ambiguous", "none"
_APOSTROPHES: frozenset[str] = frozenset("'\u2019\u02bc\u2018`\u00b4")
_DISPLAY_NAME_LIMIT = 500
_MAX_SUFFIX = 10_000


@dataclass(frozen=True)
class Candidate:
    """A record on the other side that an unlinked record might be: its id and identifying fields."""

    id: str
    email: str | None = None
    display_name: str | None = None
    company: str | None = None


@dataclass(frozen=True)
class MatchOutcome:
    """A match: kind "linked" (one id), "ambiguous" (several ids) or "none"; ``by`` is "email" or "name"."""

    kind: str
    ids: tuple[str, ...] = ()
    by: str | None = None

    @property
    def linked_id(self) -> str | None:
        """Return the linked id when kind is "linked", else None."""
        return self.ids[0] if self.kind == LINKED else None


def normalise_name(name: str | None) -> str:
    """Return ``name`` folded for comparison: NFKC, case-folded, accents kept, punctuation/spaces folded."""
    if not name:
        return ""
    if len(name) <= _CACHED_LENGTH:
        return _normalised(name)
    return _fold_name(name)


# Names are folded character by character, and the same names again and again (every candidate key, every
# comparison): short ones are kept, bounded, so a backfill folds each name once and memory stays flat.
_CACHED_LENGTH = 256


@lru_cache(maxsize=1 << 15)
def _normalised(name: str) -> str:
    return _fold_name(name)


def _fold_name(name: str) -> str:
    text = unicodedata.normalize("NFKC", name).casefold()
    kept = "".join(_name_char(char) for char in text)
    return " ".join(kept.split())


def candidate(candidate_id: str, canonical: Mapping[str, object]) -> Candidate:
    """Return a Candidate from a canonical contact."""
    return Candidate(
        id=candidate_id,
        email=_text(canonical, "email"),
        display_name=_text(canonical, "display_name"),
        company=_text(canonical, "company"),
    )


def match(record: Mapping[str, object], candidates: Sequence[Candidate]) -> MatchOutcome:
    """Return how a canonical record matches ``candidates``: by email first, then by normalised name."""
    email = _text(record, "email")
    if email:
        hits = [c.id for c in candidates if _email(c.email) == email]
        if hits:
            return _outcome(hits, by="email")
    names = _names(_text(record, "display_name"), _text(record, "company"))
    hits_by_name = [c for c in candidates if names & _names(c.display_name, c.company)]
    if not hits_by_name:
        return MatchOutcome(NONE)
    conflicting = any(email and _email(c.email) not in (None, email) for c in hits_by_name)
    ids = [c.id for c in hits_by_name]
    return MatchOutcome(AMBIGUOUS, tuple(ids), by="name") if conflicting else _outcome(ids, by="name")


def match_exact_name(record: Mapping[str, object], candidates: Sequence[Candidate]) -> MatchOutcome:
    """Return how a record matches ``candidates`` by its normalised display name alone (a sub-customer's rule)."""
    name = normalise_name(_text(record, "display_name"))
    hits = [c.id for c in candidates if name and normalise_name(c.display_name) == name]
    return _outcome(hits, by="name") if hits else MatchOutcome(NONE)


def has_own_email(record: Mapping[str, object], parent_email: str | None) -> bool:
    """Whether a sub-customer has an email of its own: one, and not its parent's (compared case-folded)."""
    email = _text(record, "email")
    return email is not None and email != _email(parent_email)


def distinct_display_name(wanted: str, taken: Callable[[str], bool] | Collection[str]) -> str:
    """Return ``wanted`` if free, else the first free "wanted (n)" for n = 2, 3, ... within 500 units."""
    base = canonicalise("display_name", wanted)
    if not isinstance(base, str):
        raise ValueError("a display name cannot be empty")
    is_taken = _taken_predicate(taken)
    if not is_taken(base):
        return base
    for number in range(2, _MAX_SUFFIX):
        name = _with_suffix(base, f" ({number})")
        if not is_taken(name):
            return name
    raise ValueError(f"no free display name for {base!r} up to suffix ({_MAX_SUFFIX - 1})")


def same_person(a: Mapping[str, object], b: Mapping[str, object]) -> bool:
    """Return True when two canonical contacts whose display names clash are the same person."""
    email_a, email_b = _text(a, "email"), _text(b, "email")
    if email_a and email_b:
        return email_a == email_b
    if normalise_name(_text(a, "display_name")) != normalise_name(_text(b, "display_name")):
        return False
    return not any(_conflicts(a, b, field) for field in ("company", "given_name", "family_name"))


def _name_char(char: str) -> str:
    if char in _APOSTROPHES:
        return ""
    # Punctuation (P*) and symbols (S*) separate words; letters, digits and combining accents are kept.
    return " " if unicodedata.category(char)[0] in "PS" else char


def _names(*names: str | None) -> set[str]:
    return {normalised for normalised in map(normalise_name, names) if normalised}


def _outcome(ids: list[str], *, by: str) -> MatchOutcome:
    return MatchOutcome(LINKED if len(ids) == 1 else AMBIGUOUS, tuple(ids), by=by)


def _email(value: str | None) -> str | None:
    canonical = canonicalise("email", value)
    return canonical if isinstance(canonical, str) else None


def _text(record: Mapping[str, object], field: str) -> str | None:
    value = canonicalise(field, record.get(field))
    return value if isinstance(value, str) else None


def _conflicts(a: Mapping[str, object], b: Mapping[str, object], field: str) -> bool:
    left, right = normalise_name(_text(a, field)), normalise_name(_text(b, field))
    return bool(left and right and left != right)


def _taken_predicate(taken: Callable[[str], bool] | Collection[str]) -> Callable[[str], bool]:
    if callable(taken):
        return taken
    folded = {name.casefold() for name in taken}
    return lambda name: name.casefold() in folded


def _with_suffix(base: str, suffix: str) -> str:
    room = _DISPLAY_NAME_LIMIT - utf16_length(suffix)
    return truncate(base, room).rstrip() + suffix
