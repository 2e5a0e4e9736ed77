"""The inbox side of ingress: store notices as inbound events under their unique key, then (after commit) wake.

A redelivered notice hits the unique constraint and is skipped by the database itself (no check-then-insert),
so a retry storm from Intuit or a CRM is harmless. Waking the drain job happens only after the commit, so a worker
never looks for a row that is not there yet; if Redis is down at that moment the event is still stored and the
sweep enqueues it later. The hot path does one INSERT, one COMMIT and (in a burst, rarely more than) one Redis
round trip: routing a realm to its connections is left to the worker. Storing is the event state machine's
(``crm_qb.sync.pipeline.events.store``); waking goes through the queue port. The views store through
``store_and_wake``: concurrent webhooks of one process share one commit and one wake per realm
(``webhooks.groupcommit``, the app's ``Runtime.ingress``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from functools import partial

from redis.exceptions import RedisError

from crm_qb.jobqueue import JobQueue
from crm_qb.models import EventSource
from crm_qb.runtime import runtime
from crm_qb.sync.pipeline import events
from crm_qb.sync.pipeline.events import Notice

log = logging.getLogger(__name__)


def record_qbo(notices: Sequence[Notice]) -> list[Notice]:
    """Store QBO notices (routing a realm to its connections is the worker's job); return the new pending ones."""
    return events.store(EventSource.QBO, notices)


def record_crm(notices: Sequence[Notice], connection_id: int) -> list[Notice]:
    """Store CRM notices of one connection; return the new pending ones."""
    return events.store(EventSource.CRM, notices, connection_id)


def dispatch_qbo(new: Iterable[Notice]) -> int:
    """After commit: wake one drain job per realm that got new events; return how many were woken."""
    return _wake(EventSource.QBO, {n.realm_id for n in new if n.realm_id})


def dispatch_crm(new: Iterable[Notice], connection_id: int) -> int:
    """After commit: wake the connection's drain job if it got new events; return how many were woken."""
    return _wake(EventSource.CRM, {str(connection_id)} if any(True for _ in new) else set())


def store_and_wake(source: EventSource, notices: Sequence[Notice], connection_id: int | None = None) -> list[Notice]:
    """Store and commit notices (group-committed with the process's concurrent webhooks), then wake; the new ones."""
    rt = runtime()
    return rt.ingress.store(source, notices, connection_id, partial(_wake_with, rt.jobs))


def _wake(source: EventSource, keys: set[str]) -> int:
    return _wake_with(runtime().jobs, source, keys)


def _wake_with(jobs: JobQueue, source: EventSource, keys: set[str]) -> int:
    """Wake the drain of each key (any thread: no app context needed); how many jobs were queued."""
    try:
        return sum(1 for key in sorted(keys) if jobs.wake(source, key))
    except RedisError as exc:
        # The events are committed; the sweep enqueues them once Redis is back. Never fail the webhook.
        log.warning("enqueue failed, leaving events for the sweep: %s", type(exc).__name__)
        return 0
