"""What the sync reaches outside itself, built once at the edge and passed in.

A job, a view or a CLI command builds one ``SyncServices`` (``crm_qb.runtime.Runtime.sync_services``) and hands
it to the domain functions it calls. The domain never looks an app up (no ``current_app``, no runtime): what it
needs arrives as an argument, so a test can pass its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from redis import Redis

from crm_qb.crm.environment import CrmEnvironment
from crm_qb.crm.factory import connector_for
from crm_qb.crm.hubspot.config import HubSpotConfig
from crm_qb.crm.protocol import CrmConnector
from crm_qb.crypto import SecretBox
from crm_qb.errors import PermanentError, TransientError
from crm_qb.jobqueue import JobQueue
from crm_qb.keys import RedisKeys
from crm_qb.locks import held
from crm_qb.models import Connection
from crm_qb.qbo.services import QboServices
from crm_qb.sync.pacing import no_pace
from crm_qb.sync.pipeline.mirrorproc import MirrorStarter
from crm_qb.sync.rules.retry import TRANSIENT_SCHEDULE

LOCK_WAIT_SECONDS = 30
# Short, and renewed every third of it while held: a worker killed mid-sync blocks the connection for at most this
# long, so a drain woken after the kill (issue 11 item 4: recovery within 10 s) starts within seconds.
SYNC_LOCK_TTL_SECONDS = 6.0


class ConnectionBusyError(TransientError):
    """Another worker holds the connection's sync lock for longer than we wait; retry later."""


class ConnectionLockLostError(ConnectionBusyError):
    """The connection's sync lock expired while its holder worked (renewals failed): stop, retry later."""


class ConnectionGoneError(PermanentError):
    """The connection was deleted."""


@dataclass(frozen=True)
class SyncServices:
    """QuickBooks, the CRMs, Redis and the job queue, as one app sees them."""

    qbo_loader: Callable[[], QboServices]  # built on first use: a missing QBO setting fails only what needs QBO
    secrets: SecretBox
    redis: Redis
    keys: RedisKeys
    jobs: JobQueue
    retry_schedule: tuple[float, ...] = TRANSIENT_SCHEDULE  # CRM_QB_RETRY_SCHEDULE (crm_qb.sync.rules.retry)
    hubspot: HubSpotConfig = field(default_factory=HubSpotConfig)
    # Called between the items of bulk work (a first sync, a backfill): pauses while live work is under way
    # (crm_qb.sync.pacing; the bulk jobs set it, everything else keeps ``no_pace``).
    pace: Callable[[], None] = no_pace
    # Starts a plain backfill's transaction walk in a process of its own (crm_qb.sync.pipeline.mirrorproc; the
    # runtime's when the database is shared between processes); None: the walk runs on the backfill's threads.
    mirror_process: MirrorStarter | None = None

    @property
    def qbo(self) -> QboServices:
        """The app's QBO services (ValueError when the QBO environment's addresses are not all known)."""
        return self.qbo_loader()

    def crm_for(self, connection: Connection, **options: Any) -> CrmConnector:
        """A new connector for ``connection``'s CRM, of its kind (the caller closes it); ``options``: how it calls
        the CRM where the caller asks otherwise than the default (``CrmEnvironment`` fields: ``max_retries``,
        ``max_wait``, ``retry_timeouts``)."""
        environment = self.crm_environment()
        return connector_for(connection, replace(environment, **options) if options else environment)

    def crm_environment(self) -> CrmEnvironment:
        """What the CRM connectors use besides their connection: secrets, Redis, the HubSpot app settings."""
        return CrmEnvironment(self.secrets, self.redis, self.keys, self.hubspot)

    @contextmanager
    def connection_lock(self, connection_id: int, wait: float | None = None,
                        long_holder: float | None = None) -> Iterator[Callable[[], None]]:
        """Hold the connection's sync lock (renewed while held); ConnectionBusyError after ``wait`` seconds
        (LOCK_WAIT_SECONDS unless given: a drain waits less and gives its worker back, pipeline/drain.py), or at
        once when its holder has held it ``long_holder`` seconds already (crm_qb.locks).

        Work on one connection is serialised across workers: a drain of QBO webhooks, a drain of CRM hooks, the
        CDC poll, a backfill and a conflict flip of the same connection never interleave, so two workers never
        merge one link from stale bases. It is per connection (not per link) because one change can touch two
        links (merges) and a link is found by either side's id; a connection's changes are few per second, so
        the coarser lock costs little. No database transaction is open while its holder calls QBO or the CRM.

        The block is given a check to call between its pieces of work: it raises ConnectionLockLostError when no
        renewal got through for a whole ttl (the lock may be another worker's now), so a long holder (a first
        sync) stops at a page boundary and its job resumes from its checkpoint, instead of writing links beside
        the worker that took the lock over.
        """
        def busy() -> ConnectionBusyError:
            return ConnectionBusyError(f"connection {connection_id} is being synced by another worker")

        def lost() -> ConnectionLockLostError:
            return ConnectionLockLostError(f"connection {connection_id}: the sync lock was lost while held "
                                           "(renewals failed for its whole ttl); stopped to resume later")

        with held(self.redis, self.keys.sync_lock(connection_id), busy, ttl=SYNC_LOCK_TTL_SECONDS,
                  wait=LOCK_WAIT_SECONDS if wait is None else wait, long_holder=long_holder) as lock:
            yield partial(lock.ensure_held, lost)
