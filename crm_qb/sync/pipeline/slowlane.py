"""A company or a CRM that answers slowly syncs as bulk work, so it does not hold the workers other tenants need.

QuickBooks lets a request run up to 120 seconds before cutting it off (docs/qbo/facts.md §4), and crm-qb's client
waits 30 s for an answer; the CRM connectors wait 15 s (REST) and 20 s (HubSpot). A side whose calls take seconds
each is therefore not failing, and an outage's turns (``outage``) do not apply: every change of it would hold a
live worker (an RQ ``SimpleWorker`` runs one job at a time) for as long as the slow side takes, and with two
workers the other tenants' drains queue behind it.

So live drains and live catch-up polls wait at most ``SLOW_ANSWER_SECONDS`` for one QBO answer and
``SLOW_CRM_ANSWER_SECONDS`` for one CRM answer (the clients' timeouts; a call that got none is not sent again, and
its event backs off like any that found the side not answering), and a job that waited that long for one answer
puts its connection in the slow lane (``mark``): a Redis key per drain key (the realm's QBO drains, the
connection's CRM drains) that live drains of it look for before they start and, when it is there, hand over to a
drain on the ``backfill`` queue, as they do for a first sync's backlog (``workers.jobs``); its catch-up polls are
queued there too. The bulk lane is served beside the live queues (every default worker runs a child for it), so the
slow side's calls wait there, with the clients' full timeouts, and the live workers go on. The mark names the slow
side(s); a job in the lane that had answers from each of them and no slow answer takes it out (``clear``): its next
change is live work again (a job that called only the other side, a CRM poll of a slow company, leaves it). The key
expires after ``SLOW_LANE_SECONDS`` without a slow answer, so a mark outlives no trouble.

A CRM that asks to be left alone for longer is slow in the same way: a ``Retry-After`` (a 429 of a rate-limited
CRM, a 503 of one in maintenance) counts as a wait for its answer (``AnswerTimes.asked_to_wait``), and live work
neither sleeps one longer than ``SLOW_CRM_ANSWER_SECONDS`` nor waits longer for a slot of HubSpot's limits (the
call raises ``CrmRateLimitedError`` at once; the event waits, no attempt counted, as for a throttled company); on
the lane the connectors sleep up to 30 s, and the waits keep the connection there while the CRM asks for them.

A side that is slow only once (a large query) keeps its connection in the lane until a job there is answered
quickly: its changes meanwhile sync at the pace of bulk work, which gives way to live work (crm_qb.sync.pacing),
never lost and never applied twice (a drain is a drain on either queue).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from redis import Redis

from crm_qb.crm.protocol import CrmConnector
from crm_qb.keys import RedisKeys
from crm_qb.models import EventSource
from crm_qb.qbo.client import QboClient

log = logging.getLogger(__name__)

# One QBO answer at least this slow puts its connection in the slow lane, and live work waits no longer for one.
# Our choice, not Intuit's: far past what a live drain's calls (a query, a write, a CDC read of up to 1,000 objects
# after a burst) take when QuickBooks is well, and a sixth of the client's 30 s timeout, so a slow company holds a
# live worker for 5 s once.
SLOW_ANSWER_SECONDS = 5.0
# The same for the CRM, shorter: live work asks a CRM for one record at a time (a read, a write, a page of 100
# changed contacts), answered in a fraction of a second when it is well (the reference CRM's p95 is under 0.1 s on
# the bench), so 2 s is already slow, and a CRM that turns slow holds a live worker for 2 s, not 5, before its
# connection moves to the lane. On the 2-core bench one of two live workers held 5 s was enough to queue the
# other tenants' drains up to half a second (docs/benchmarks-history.md, "A slow CRM").
SLOW_CRM_ANSWER_SECONDS = 2.0
SLOW_LANE_SECONDS = 600  # how long a mark lasts without another slow answer


QBO, CRM = EventSource.QBO.value, EventSource.CRM.value  # the sides, as a mark names them
SIDE_NAMES = {QBO: "QuickBooks", CRM: "the CRM"}


def slow_after(side: str) -> float:
    """Seconds of waiting for one answer of ``side`` that make it slow (and that live work waits at most)."""
    return SLOW_ANSWER_SECONDS if side == QBO else SLOW_CRM_ANSWER_SECONDS


@dataclass(frozen=True)
class Observed:
    """How one connection's clients fared in a drain (or a poll): per side, the slowest answer and how many came."""

    connection_id: int
    realm_id: str
    slowest: Mapping[str, float]
    answers: Mapping[str, int]

    @classmethod
    def of(cls, connection_id: int, qbo: QboClient, crm: CrmConnector) -> Observed:
        """What ``qbo`` and ``crm`` (a job's clients of the connection) saw."""
        times = {QBO: qbo.answer_times, CRM: crm.answer_times}
        return cls(connection_id, qbo.realm_id, {side: t.slowest for side, t in times.items()},
                   {side: t.count for side, t in times.items()})

    @property
    def slow_sides(self) -> list[str]:
        """The sides that kept the job waiting as long as makes them slow (``slow_after``) for one answer."""
        return [side for side, slowest in self.slowest.items() if slowest >= slow_after(side)]

    @property
    def slow(self) -> bool:
        return bool(self.slow_sides)

    def quick(self, sides: Iterable[str]) -> bool:
        """Every side of ``sides`` answered, and no answer of either side was slow: they are not slow (now).
        A job that called only the other side says nothing about them."""
        return not self.slow and all(self.answers.get(side, 0) > 0 for side in sides)


def live_qbo_options() -> dict[str, Any]:
    """The QBO client options of live work: wait at most ``SLOW_ANSWER_SECONDS`` for an answer, and do not send a
    call that got none again (the lane takes it from there, with the client's full timeout)."""
    return {"timeout": SLOW_ANSWER_SECONDS, "retry_timeouts": False}


def live_crm_options() -> dict[str, Any]:
    """The CRM connector options of live work (``CrmEnvironment`` fields), as ``live_qbo_options`` for QBO: wait
    at most ``SLOW_CRM_ANSWER_SECONDS`` for an answer, through a Retry-After or for a rate-limit slot, and do not
    send a call that got no answer again."""
    return {"max_wait": SLOW_CRM_ANSWER_SECONDS, "retry_timeouts": False}


def lane_keys(keys: RedisKeys, connection_id: int, realm_id: str) -> tuple[str, str]:
    """The slow-lane keys of a connection: its realm's QBO drains and its own CRM drains."""
    return keys.slow_lane(QBO, realm_id), keys.slow_lane(CRM, str(connection_id))


def record(redis: Redis, keys: RedisKeys, observed: Iterable[Observed], *, in_lane: bool) -> None:
    """Put the slow connections in the lane (or keep them there); when the job ran in the lane (``in_lane``: bulk
    work), take out those whose slow side answered quickly. A live job only runs for a connection outside the lane,
    so it has nothing to take out, and a healthy connection's drain costs no Redis call here."""
    for seen in observed:
        if seen.slow:
            mark(redis, keys, seen)
        elif in_lane and any(seen.answers.values()):
            _clear_if_quick(redis, keys, seen)


def mark(redis: Redis, keys: RedisKeys, seen: Observed) -> None:
    """Put ``seen``'s connection in the slow lane for ``SLOW_LANE_SECONDS`` (from now), the mark naming its slow
    sides (only their quick answers take it out)."""
    qbo_key, crm_key = lane_keys(keys, seen.connection_id, seen.realm_id)
    sides = " ".join(seen.slow_sides)
    pipe = redis.pipeline(transaction=False)
    pipe.set(qbo_key, sides, ex=SLOW_LANE_SECONDS)
    pipe.set(crm_key, sides, ex=SLOW_LANE_SECONDS, get=True)
    _, was = pipe.execute()
    if was is None:
        side = max(seen.slow_sides, key=lambda s: seen.slowest[s])
        log.warning("connection %s: %s took %.1f s to answer (or asked to wait that long); its changes sync as "
                    "bulk work until it answers within %g s again", seen.connection_id, SIDE_NAMES[side],
                    seen.slowest[side], slow_after(side))


def _clear_if_quick(redis: Redis, keys: RedisKeys, seen: Observed) -> None:
    """Take the connection out of the lane when the sides its mark names all answered quickly in this job."""
    marked = redis.get(keys.slow_lane(CRM, str(seen.connection_id)))
    if marked is None:
        return
    # A mark written before it named its sides ("1") was QuickBooks'.
    sides = [side for side in _text(marked).split() if side in SIDE_NAMES] or [QBO]
    if seen.quick(sides):
        clear(redis, keys, seen.connection_id, seen.realm_id, sides)


def clear(redis: Redis, keys: RedisKeys, connection_id: int, realm_id: str, sides: Iterable[str] = (QBO,)) -> None:
    """Take the connection out of the slow lane (its slow ``sides`` answered quickly)."""
    if redis.delete(*lane_keys(keys, connection_id, realm_id)):
        log.warning("connection %s: %s answers quickly again; its changes are live work again", connection_id,
                    " and ".join(SIDE_NAMES[side] for side in sides))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def in_lane(redis: Redis, keys: RedisKeys, connection_id: int, realm_id: str | None = None) -> bool:
    """Whether the connection's work beside its drains (catch-up polls, follow-up checks, summary pushes) belongs on
    the bulk lane: its company or CRM answers slowly, or its first sync's backlog (``realm_id``'s QBO events given,
    its CRM events always) is still being settled as bulk work.

    During a backlog a live catch-up poll would wait on a live worker for the connection's lock, which the
    backlog's bulk drains hold batch after batch (they give way to live work, so each takes seconds), and the CRM's
    poll would read the thousands of contacts the first sync just made: both as bulk work instead."""
    names = [keys.slow_lane(CRM, str(connection_id)), keys.bulk_backlog(CRM, str(connection_id))]
    if realm_id:
        names.append(keys.bulk_backlog(QBO, realm_id))
    return bool(redis.exists(*names))
