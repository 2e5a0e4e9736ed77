"""A company that answers slowly syncs as bulk work, so it does not hold the workers other tenants' drains need.

QuickBooks lets a request run up to 120 seconds before cutting it off (docs/qbo/facts.md §4), and crm-qb's client
waits 30 s for an answer. A company whose calls take seconds each is therefore not failing, and an outage's turns
(``outage``) do not apply: every change of it would hold a live worker (an RQ ``SimpleWorker`` runs one job at a
time) for as long as QuickBooks takes, and with two workers the other tenants' drains queue behind it.

So live drains and live CDC polls wait at most ``SLOW_ANSWER_SECONDS`` for one QBO answer (the client's timeout;
a call that got none is not sent again, and its event backs off like any that found QBO not answering), and a
job that waited that long for one answer puts its connection in the slow lane (``mark``): a Redis key per drain
key (the realm's QBO drains, the connection's CRM drains) that live drains of it look for before they start and,
when it is there, hand over to a drain on the ``backfill`` queue, as they do for a first sync's backlog
(``workers.jobs``); its catch-up poll is queued there too. The bulk lane is served beside the live queues (every
default worker runs a child for it), so the slow company's calls wait there, with the client's full timeout, and
the live workers go on. A job in the lane whose answers came quickly takes it out (``clear``): its next change is
live work again. The key expires after ``SLOW_LANE_SECONDS`` without a slow answer, so a mark outlives no trouble.

A company that is slow only once (a large query) stays in the lane until a job there is answered quickly: its
changes meanwhile sync at the pace of bulk work, which gives way to live work (crm_qb.sync.pacing), never lost
and never applied twice (a drain is a drain on either queue).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from redis import Redis

from crm_qb.keys import RedisKeys
from crm_qb.models import EventSource
from crm_qb.qbo.client import QboClient

log = logging.getLogger(__name__)

# One QBO answer at least this slow puts its connection in the slow lane, and live work waits no longer for one.
# Our choice, not Intuit's: far past what a live drain's calls (one query or one write) take when QuickBooks is
# well, and a sixth of the client's 30 s timeout, so a slow company holds a live worker for 5 s once.
SLOW_ANSWER_SECONDS = 5.0
SLOW_LANE_SECONDS = 600  # how long a mark lasts without another slow answer


@dataclass(frozen=True)
class Observed:
    """How one connection's QBO client fared in a drain (or a poll): its slowest answer and how many came."""

    connection_id: int
    realm_id: str
    slowest: float
    answers: int

    @classmethod
    def of(cls, connection_id: int, qbo: QboClient) -> Observed:
        """What ``qbo`` (a job's client of the connection) saw."""
        return cls(connection_id, qbo.realm_id, qbo.slowest_answer, qbo.answers)

    @property
    def slow(self) -> bool:
        return self.slowest >= SLOW_ANSWER_SECONDS

    @property
    def quick(self) -> bool:
        """Answered, and every answer came quickly: the company is not slow (now)."""
        return self.answers > 0 and not self.slow


def live_qbo_options() -> dict[str, Any]:
    """The QBO client options of live work: wait at most ``SLOW_ANSWER_SECONDS`` for an answer, and do not send a
    call that got none again (the lane takes it from there, with the client's full timeout)."""
    return {"timeout": SLOW_ANSWER_SECONDS, "retry_timeouts": False}


def lane_keys(keys: RedisKeys, connection_id: int, realm_id: str) -> tuple[str, str]:
    """The slow-lane keys of a connection: its realm's QBO drains and its own CRM drains."""
    return (keys.slow_lane(EventSource.QBO.value, realm_id), keys.slow_lane(EventSource.CRM.value, str(connection_id)))


def record(redis: Redis, keys: RedisKeys, observed: Iterable[Observed], *, in_lane: bool) -> None:
    """Put the slow connections in the lane (or keep them there); when the job ran in the lane (``in_lane``: bulk
    work), take the quick ones out. A live job only runs for a connection outside the lane, so it has nothing to
    take out, and a healthy connection's drain costs no Redis call here."""
    for seen in observed:
        if seen.slow:
            mark(redis, keys, seen)
        elif seen.quick and in_lane:
            clear(redis, keys, seen.connection_id, seen.realm_id)


def mark(redis: Redis, keys: RedisKeys, seen: Observed) -> None:
    """Put ``seen``'s connection in the slow lane for ``SLOW_LANE_SECONDS`` (from now)."""
    qbo_key, crm_key = lane_keys(keys, seen.connection_id, seen.realm_id)
    pipe = redis.pipeline(transaction=False)
    pipe.set(qbo_key, 1, ex=SLOW_LANE_SECONDS, get=True)
    pipe.set(crm_key, 1, ex=SLOW_LANE_SECONDS)
    was, _ = pipe.execute()
    if was is None:
        log.warning("connection %s: QuickBooks took %.1f s to answer; its changes sync as bulk work until it "
                    "answers within %.0f s again", seen.connection_id, seen.slowest, SLOW_ANSWER_SECONDS)


def clear(redis: Redis, keys: RedisKeys, connection_id: int, realm_id: str) -> None:
    """Take the connection out of the slow lane (its company answered quickly)."""
    if redis.delete(*lane_keys(keys, connection_id, realm_id)):
        log.warning("connection %s: QuickBooks answers quickly again; its changes are live work again", connection_id)


def in_lane(redis: Redis, keys: RedisKeys, connection_id: int) -> bool:
    """Whether the connection's work that calls QuickBooks belongs on the bulk lane (its catch-up poll)."""
    return bool(redis.exists(keys.slow_lane(EventSource.CRM.value, str(connection_id))))
