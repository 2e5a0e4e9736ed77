"""Fetching the current state of changed QBO objects for a drain: one CDC call per burst, not a query per batch.

Webhooks carry ids, not objects, so a drain reads what changed. For a few ids one ``Id IN (...)`` query is
cheapest. For a burst, one CDC call (``changedSince`` = the oldest change of the batch, less a margin) returns
every object changed since then, up to 1,000 (docs/qbo/facts.md §4, §6): the batch's objects and, usually, those
of the rest of the burst, whose events the same drain meets in its next batches, or the next drain job meets
(a burst's webhooks keep arriving while a drain runs, so it takes a few jobs). The answer is kept
(``ChangeCache``: in the job, and in a Redis hash per realm and entity for CACHE_SECONDS, for the realm's next
drain jobs, on any host) and later batches are served from it, so a burst of 1,000 changes costs one or two
calls instead of one per batch.

An object is served from the cache only when it is QBO's state after the change its event reports: its
LastUpdatedTime is a later second than the change, or the same second and the call that read it started after the
event was received (QBO keeps whole seconds, so an object of the change's second may be the state before a second
change within that second; serving it settled that change as "unchanged" and lost it until the next one). A change
made after the CDC call is read again. Deleted stubs (``status: Deleted``),
ids absent from the answer (a capped answer, or a clock skew) and events without a change time fall back to the
query, as before (one query for all of them). The answer is current state, exactly what the query would return.
A drain that met a burst arriving (``burst``) reads with CDC however few ids it misses: the answer also holds the
burst's changes whose webhooks have not arrived yet.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from redis import Redis

from crm_qb.keys import RedisKeys
from crm_qb.qbo.client import QboClient, cdc_groups, last_updated

CDC_FROM_IDS = 20  # fewer ids than this are read with one query (the same one call, a smaller answer)
CDC_MARGIN = timedelta(seconds=5)  # changedSince this much before the oldest change (one-second resolution)
CDC_REACH = timedelta(days=29)  # CDC looks back at most 30 days
CACHE_SECONDS = 300  # a burst's answer serves the realm's drains this long (a burst settles well within it)
DECIMAL_TAG = "__decimal__"
STORED_AT, STORED_OBJECT = "fetched", "object"  # a cached answer's object and when its call started


@dataclass
class ChangeCache:
    """The objects the drains have read from CDC answers: this job's in memory, the realm's recent ones in Redis,
    each with when the call that read it started (``fetched``, crm-qb's clock)."""

    redis: Redis | None = None
    keys: RedisKeys | None = None
    objects: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    fetched: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)
    # Set by a drain that met a burst arriving (pipeline/burst.py): read with CDC however few ids are missing,
    # since its answer also carries the burst's changes whose webhooks are still on the way.
    burst: bool = False

    def serve(self, realm: str, entity: str, wanted: Mapping[str, datetime | None],
              received: Mapping[str, datetime] | None = None) -> dict[str, dict[str, Any]]:
        """The wanted objects held that are current for the change each event reports (``_covers``)."""
        held = self._load(realm, entity, [i for i, changed in wanted.items() if changed is not None])
        when = self.fetched.get((realm, entity), {})
        got = received if received is not None else {}
        return {i: held[i] for i, changed in wanted.items()
                if i in held and _covers(held[i], changed, when.get(i), got.get(i))}

    def peek(self, realm: str, entity: str, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The objects of these ids held from the realm's recent CDC answers (this job's or, in Redis, the other
        drains'), however old their change: for lookups that no event of the object asked for (a job's parent)."""
        wanted = list(dict.fromkeys(ids))
        held = self._load(realm, entity, wanted)
        return {i: held[i] for i in wanted if i in held}

    def held(self, realm: str, entity: str) -> dict[str, dict[str, Any]]:
        """Every object of ``entity`` this job holds for ``realm`` (from its CDC answers), by id."""
        return dict(self.objects.get((realm, entity), {}))

    def keep(self, realm: str, entity: str, objects: list[dict[str, Any]], fetched: float | None = None) -> None:
        """Remember the live objects of a CDC answer whose call started at ``fetched`` (epoch seconds; deleted stubs
        are not states to sync), here and in Redis."""
        live = {str(o["Id"]): o for o in objects if o.get("Id") is not None and o.get("status") != "Deleted"}
        self.objects.setdefault((realm, entity), {}).update(live)
        if fetched is not None:
            self.fetched.setdefault((realm, entity), {}).update(dict.fromkeys(live, fetched))
        if live and self.redis is not None and self.keys is not None:
            key = self.keys.cdc_answer(realm, entity)
            pipe = self.redis.pipeline()
            pipe.hset(key, mapping={i: json.dumps({STORED_AT: fetched, STORED_OBJECT: o}, default=_encode)
                                    for i, o in live.items()})
            pipe.expire(key, CACHE_SECONDS)
            pipe.execute()

    def _load(self, realm: str, entity: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        """This job's objects of ``entity``, after adding those of ``ids`` it lacks from Redis."""
        held = self.objects.setdefault((realm, entity), {})
        unseen = [i for i in ids if i not in held]
        if unseen and self.redis is not None and self.keys is not None:
            when = self.fetched.setdefault((realm, entity), {})
            for i, text in zip(unseen, self.redis.hmget(self.keys.cdc_answer(realm, entity), unseen), strict=True):
                if text:
                    stored = json.loads(text, object_hook=_decimals)
                    if isinstance(stored, dict) and set(stored) == {STORED_AT, STORED_OBJECT}:
                        held[i] = stored[STORED_OBJECT]
                        if isinstance(stored[STORED_AT], int | float):
                            when[i] = float(stored[STORED_AT])
                    else:  # written before answers carried their time: only a newer second serves it
                        held[i] = stored
        return held


def _encode(value: Any) -> Any:
    """JSON for QBO's exact amounts (parsed as Decimal): kept exact, and decoded back by ``_decimals``."""
    if isinstance(value, Decimal):
        return {DECIMAL_TAG: str(value)}
    raise TypeError(f"cannot store {type(value).__name__} in a CDC answer")


def _decimals(obj: dict[str, Any]) -> Any:
    return Decimal(obj[DECIMAL_TAG]) if len(obj) == 1 and DECIMAL_TAG in obj else obj


def current_objects(qbo: QboClient, entity: str, wanted: Mapping[str, datetime | None], cache: ChangeCache | None,
                    *, include_inactive: bool = False, now: datetime | None = None,
                    received: Mapping[str, datetime] | None = None) -> dict[str, dict[str, Any]]:
    """QBO's current objects for the wanted ids (each with the change time its events report, and when crm-qb
    received them), by id."""
    if cache is None:  # outside a drain (no answers to share): one query, as before
        return qbo.read_many(entity, wanted, include_inactive=include_inactive) if wanted else {}
    realm = qbo.realm_id
    found = cache.serve(realm, entity, wanted, received)
    missing = {i: changed for i, changed in wanted.items() if i not in found}
    since = _cdc_since(missing, now or datetime.now(UTC), 1 if cache.burst else CDC_FROM_IDS)
    if since is not None:
        started = time.time()  # before the call: its answer is QBO's state at this moment or later
        cache.keep(realm, entity, cdc_groups(qbo.cdc([entity], since)).get(entity, []), started)
        found.update(cache.serve(realm, entity, missing, received))
        missing = {i: changed for i, changed in missing.items() if i not in found}
    if missing:
        found.update(qbo.read_many(entity, missing, include_inactive=include_inactive))
    return found


def _cdc_since(missing: Mapping[str, datetime | None], now: datetime, from_ids: int = CDC_FROM_IDS
               ) -> datetime | None:
    """Where a CDC call for these ids starts, or None when a query is the better call (fewer than ``from_ids``
    ids with a change time, or too old)."""
    times = [changed for changed in missing.values() if changed is not None]
    if not times or len(times) < from_ids:
        return None
    since = min(times) - CDC_MARGIN
    return since if now - since < CDC_REACH else None


def _covers(obj: Mapping[str, Any], changed: datetime | None, fetched: float | None = None,
            received: datetime | None = None) -> bool:
    """Whether ``obj`` is QBO's state after a change reported at ``changed`` and received at ``received``.

    QBO keeps whole seconds, so an object whose LastUpdatedTime is the change's second may be the state *before*
    it: a second change of the customer within that second. Such an object serves the event only when the call
    that read it started after the event was received (QBO sends a webhook after the change is saved), both times
    on crm-qb's clocks. An object from a later second than the change is newer than it in any case.
    """
    updated = last_updated(obj)
    if changed is None or updated is None:
        return False
    second = changed.astimezone(UTC).replace(microsecond=0)
    if updated > second:
        return True
    if updated < second or fetched is None or received is None:
        return False
    return fetched > (received if received.tzinfo else received.replace(tzinfo=UTC)).timestamp()
