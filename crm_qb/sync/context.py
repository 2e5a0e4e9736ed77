"""What a customer sync needs for one connection: its settings, a QBO client, a CRM connector, and a lock.

Work on one connection is serialised across workers by a Redis lock (``connection_lock``): a drain of QBO
webhooks, a drain of CRM hooks and the CDC poll of the same connection never interleave, so two workers never
merge the same link from stale bases. The lock is per connection (not per link) because one change can touch two
links (merges) and a link is found by either side's id; a connection's changes are few per second, so the
coarser lock costs little. No database transaction is open while the lock's holder calls QBO or the CRM. The
lock lives LOCK_TTL_SECONDS and a thread renews it while it is held, so a worker killed with -9 blocks its
connection for seconds, not for as long as the longest sync might take.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from redis import Redis
from redis.exceptions import LockError, RedisError
from redis.lock import Lock

from crm_qb.crm.protocol import CrmConnector
from crm_qb.crm.rest import RestConnector
from crm_qb.db import db
from crm_qb.errors import PermanentError, TransientError
from crm_qb.models import Connection
from crm_qb.qbo.client import QboClient
from crm_qb.qbo.services import qbo_services
from crm_qb.runtime import runtime
from crm_qb.sync.matching import Candidate
from crm_qb.sync.sync_settings import SyncSettings, sync_settings_of

log = logging.getLogger(__name__)

LOCK_TTL_SECONDS = 15
LOCK_RENEW_SECONDS = 5
LOCK_WAIT_SECONDS = 30


class ConnectionBusyError(TransientError):
    """Another worker holds the connection's sync lock for longer than we wait; retry later."""


class ConnectionGoneError(PermanentError):
    """The connection was deleted."""


@dataclass
class SyncContext:
    """One connection's sync dependencies for the duration of one job."""

    connection_id: int
    settings: SyncSettings
    qbo: QboClient
    crm: CrmConnector
    job_id: str | None = None
    home_currency: str | None = None
    term_names: dict[str, str] = field(default_factory=dict)
    payment_method_names: dict[str, str] = field(default_factory=dict)
    # CRM contacts as name-match candidates, walked at most once per job (the CRM contract has no name search).
    crm_pool: list[Candidate] | None = None
    # Invoices whose folder item changed in this job: the job's caller asks for their follow-ups to be re-checked.
    invoices_changed: set[str] = field(default_factory=set)

    def close(self) -> None:
        """Close the HTTP sessions."""
        self.qbo.close()
        close = getattr(self.crm, "close", None)
        if close:
            close()


def build_context(app: Flask, connection_id: int, job_id: str | None = None, **qbo_options: Any) -> SyncContext:
    """A SyncContext for ``connection_id``; ConnectionGoneError when it does not exist. Ends its read transaction."""
    connection = db.session.get(Connection, connection_id)
    if connection is None:
        db.session.rollback()
        raise ConnectionGoneError(f"connection {connection_id} does not exist")
    settings = sync_settings_of(connection.settings)
    qbo = qbo_services(app).client_for(connection, **qbo_options)
    crm = RestConnector(connection.crm_base_url, runtime(app).secrets.decrypt(connection.crm_token_encrypted))
    context = SyncContext(connection_id, settings, qbo, crm, job_id, connection.home_currency,
                          *_reference_names(connection_id))
    db.session.rollback()
    return context


def settings_of(connection_id: int) -> SyncSettings:
    """The sync settings of ``connection_id``; ConnectionGoneError when it does not exist. Ends the read."""
    connection = db.session.get(Connection, connection_id)
    settings = sync_settings_of(connection.settings) if connection is not None else None
    db.session.rollback()
    if settings is None:
        raise ConnectionGoneError(f"connection {connection_id} does not exist")
    return settings


def _reference_names(connection_id: int) -> tuple[dict[str, str], dict[str, str]]:
    from crm_qb.models import QboReference
    from crm_qb.qbo.company import PAYMENT_METHOD, TERM

    rows = db.session.query(QboReference).filter_by(connection_id=connection_id).all()
    terms = {row.qbo_id: row.name for row in rows if row.kind == TERM}
    methods = {row.qbo_id: row.name for row in rows if row.kind == PAYMENT_METHOD}
    return terms, methods


@contextmanager
def connection_lock(redis: Redis, prefix: str, connection_id: int) -> Iterator[None]:
    """Hold the connection's sync lock (renewed while held); ConnectionBusyError when taken for LOCK_WAIT_SECONDS."""
    # thread_local=False: the renewing thread uses the token that this thread acquired.
    lock = redis.lock(f"{prefix}:sync:connection:{connection_id}", timeout=LOCK_TTL_SECONDS,
                      blocking_timeout=LOCK_WAIT_SECONDS, thread_local=False)
    if not lock.acquire():
        raise ConnectionBusyError(f"connection {connection_id} is being synced by another worker")
    stop = threading.Event()
    keeper = threading.Thread(target=_keep_alive, args=(lock, stop, connection_id), daemon=True,
                              name=f"sync-lock-{connection_id}")
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join()
        try:
            lock.release()
        except LockError:  # an expired lock cannot be released; the work is done either way
            log.warning("sync lock of connection %s had expired before release", connection_id)


def _keep_alive(lock: Lock, stop: threading.Event, connection_id: int) -> None:
    """Renew ``lock`` every LOCK_RENEW_SECONDS until ``stop`` is set; logs failures and never raises."""
    while not stop.wait(LOCK_RENEW_SECONDS):
        try:
            lock.reacquire()
        except LockError:  # lost (expired and taken): the other holder's writes meet our versions and tokens
            log.warning("sync lock of connection %s was lost while held", connection_id)
            return
        except RedisError as exc:  # Redis blinked: try again at the next tick, while the TTL lasts
            log.warning("sync lock of connection %s not renewed: %s", connection_id, type(exc).__name__)
