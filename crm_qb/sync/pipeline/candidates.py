"""The backfill's index of match candidates: keyed by normalised e-mail and names, in Redis or in memory.

Name matching needs the other side's records, and the CRM contract has no name search. The backfill walks the
CRM's contacts once into this index (a Redis hash for a real run, deleted at its end and expiring after a day if
the job dies; a dict for a dry run, which writes nothing outside the process), so the worker's memory stays flat
in the number of contacts. ``lookup`` gives the candidates ``matching.match`` would pick from among all of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

from redis import Redis

from crm_qb.crm.protocol import Contact, CrmConnector
from crm_qb.sync.customers.reconcile import contact_json
from crm_qb.sync.rules.mapping import canonical_from_crm
from crm_qb.sync.rules.matching import Candidate, candidate, normalise_name

INDEX_TTL_SECONDS = 24 * 3600


class Store(Protocol):
    """Where an index keeps its rows: lists of rows by key."""

    def get_many(self, keys: Sequence[str]) -> list[list[list[Any]]]:
        """The rows of each key, in the order of ``keys`` (an empty list for a key never written)."""
        ...

    def append_many(self, rows: Mapping[str, list[list[Any]]]) -> None:
        """Append rows to each key."""
        ...


class DictStore:
    """Index rows in a dict (dry runs: no writes outside the process)."""

    def __init__(self) -> None:
        self.data: dict[str, list[list[Any]]] = {}

    def get_many(self, keys: Sequence[str]) -> list[list[list[Any]]]:
        """The rows of each key."""
        return [self.data.get(key, []) for key in keys]

    def append_many(self, rows: Mapping[str, list[list[Any]]]) -> None:
        """Append rows to each key."""
        for key, values in rows.items():
            self.data.setdefault(key, []).extend(values)


# KEYS[1]: the hash; ARGV: field, JSON list of rows, ..., then the expiry. A field's JSON list is extended in
# place: "[a,b]" and "[c]" make "[a,b,c]".
_APPEND = """
for i = 1, #ARGV - 1, 2 do
  local old = redis.call('HGET', KEYS[1], ARGV[i])
  if old and old ~= '[]' then
    redis.call('HSET', KEYS[1], ARGV[i], string.sub(old, 1, -2) .. ',' .. string.sub(ARGV[i + 1], 2))
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[#ARGV])
return 1
"""


class RedisStore:
    """Index rows in one Redis hash (field: key, value: JSON list of rows), expiring after a day."""

    def __init__(self, redis: Redis, name: str) -> None:
        self.redis, self.name = redis, name
        self._append = redis.register_script(_APPEND)

    def get_many(self, keys: Sequence[str]) -> list[list[list[Any]]]:
        """The rows of each key (one HMGET)."""
        if not keys:
            return []
        return [json.loads(raw) if raw else [] for raw in self.redis.hmget(self.name, list(keys))]

    def append_many(self, rows: Mapping[str, list[list[Any]]]) -> None:
        """Append rows to each key and renew the hash's expiry (one script: one round trip, and the rows already
        there are extended as JSON text in Redis rather than read, decoded and written back)."""
        if not rows:
            return
        args: list[str | int] = []
        for key, values in rows.items():
            if values:
                args += [key, json.dumps(values)]
        self._append(keys=[self.name], args=[*args, INDEX_TTL_SECONDS])

    def drop(self) -> None:
        """Delete the whole index."""
        self.redis.delete(self.name)


def crm_keys(c: Candidate) -> list[str]:
    """Index keys as the CRM-side match compares: case-folded email, normalised display name and company."""
    names = {normalise_name(c.display_name), normalise_name(c.company)} - {""}
    return ([f"e:{c.email}"] if c.email else []) + [f"n:{name}" for name in sorted(names)]


def qbo_keys(c: Candidate) -> list[str]:
    """Index keys as QBO's ``=`` queries compare: email, DisplayName and CompanyName, case-insensitively."""
    keys = [f"e:{c.email}"] if c.email else []
    keys += [f"d:{c.display_name.casefold()}"] if c.display_name else []
    return keys + ([f"c:{c.company.casefold()}"] if c.company else [])


class CandidateIndex:
    """Match candidates by key: email hits first (active or not), else name hits among active candidates."""

    def __init__(self, store: Store, keys: Callable[[Candidate], list[str]]) -> None:
        self.store, self.keys = store, keys
        self.cache: dict[str, list[list[Any]]] = {}  # rows of the keys prefetched for the page at hand

    def add_many(self, entries: Iterable[tuple[Candidate, bool]]) -> None:
        """Add (candidate, active) pairs."""
        rows: dict[str, list[list[Any]]] = {}
        for c, active in entries:
            for key in self.keys(c):
                rows.setdefault(key, []).append([c.id, c.email, c.display_name, c.company, active])
        self.store.append_many(rows)
        for key in rows.keys() & self.cache.keys():
            self.cache[key] = self.cache[key] + rows[key]

    def prefetch(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Read the rows of every key of ``records`` at once (one round trip for a page instead of one per record).

        Until the next prefetch, ``lookup`` reads those keys from memory; ``add_many`` keeps them in step.
        """
        keys = sorted({key for record in records for key in self.keys(candidate("record", record))})
        self.cache = dict(zip(keys, self.store.get_many(keys), strict=True))

    def lookup(self, record: Mapping[str, Any]) -> tuple[list[Candidate], list[Candidate]]:
        """(email candidates of any state, active name candidates) for a canonical record; newest row wins."""
        keys = self.keys(candidate("record", record))
        missing = [key for key in keys if key not in self.cache]
        read = dict(zip(missing, self.store.get_many(missing), strict=True))
        email_rows: list[list[Any]] = []
        name_rows: list[list[Any]] = []
        for key in keys:
            rows = self.cache[key] if key in self.cache else read[key]
            (email_rows if key.startswith("e:") else name_rows).extend(rows)
        return _candidates(email_rows, False), _candidates(name_rows, True)


def _candidates(rows: list[list[Any]], active_only: bool) -> list[Candidate]:
    latest = {row[0]: row for row in rows}
    return [Candidate(row[0], row[1], row[2], row[3]) for row in latest.values() if row[4] or not active_only]


def contact_entry(contact: Contact) -> tuple[Candidate, bool]:
    """A contact as an index entry: its candidate and whether it is active."""
    return candidate(contact.id, canonical_from_crm(contact_json(contact))), contact.active


def load_crm_index(crm: CrmConnector, index: CandidateIndex, page_size: int) -> int:
    """Walk every CRM contact once into ``index``; return how many were seen."""
    seen = 0
    for page in crm.list_contacts_updated_since(None, page_size=page_size):
        index.add_many(contact_entry(contact) for contact in page.contacts)
        seen += len(page.contacts)
    return seen
