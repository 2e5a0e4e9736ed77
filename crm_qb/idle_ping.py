"""Check a pooled PostgreSQL connection before use only when it sat idle, not on every check-out.

A drain job reads in short transactions and ends each read (so no transaction stays open across a QBO or CRM
call), and every end hands the connection back to the pool. SQLAlchemy's ``pool_pre_ping`` then cost a round trip
(``;``) on each of the 20 to 25 check-outs of one live drain job: a third of the statements the worker sent,
and of the database's work for them (docs/benchmarks-history.md, "Live drains: one ping per idle connection").

What the ping is for is a connection that died while it sat in the pool: the server restarted, an administrator
or a proxy closed it, a firewall forgot it. A connection handed back milliseconds ago has had no such time. So
the ping is made only when the connection was last checked in ``idle_seconds`` or more ago; a new connection
(just opened) is not pinged, as ``pool_pre_ping`` does not ping one either. A failed ping that is a disconnect
invalidates the pool (every connection opened before now), and the check-out takes a fresh connection, as
``pool_pre_ping`` does.

A connection that dies within ``idle_seconds`` of its last use fails its next statement instead. SQLAlchemy
recognises the disconnect and invalidates the pool there too, so the process's other connections are replaced
before their next use, and the failed unit of work is retried: a drain job by RQ (``retry_intervals``), its
events still pending in the database; a webhook by its sender (it was not acknowledged).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import Engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

IDLE_PING_SECONDS = 2.0
_CHECKED_IN = "crm_qb_checked_in_at"


def ping_when_idle(engine: Engine, idle_seconds: float = IDLE_PING_SECONDS,
                   clock: Callable[[], float] = time.monotonic) -> None:
    """Have ``engine``'s pool ping a connection on check-out only when it was idle ``idle_seconds`` or more
    (use instead of ``pool_pre_ping``)."""
    dialect = engine.dialect

    def note_checkin(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        if dbapi_connection is not None:  # None: the connection was invalidated and is gone
            record.info[_CHECKED_IN] = clock()

    def ping_if_idle(dbapi_connection: Any, record: ConnectionPoolEntry, proxy: PoolProxiedConnection) -> None:
        checked_in = record.info.get(_CHECKED_IN)  # info is emptied when a connection is replaced: None is new
        if checked_in is None or clock() - checked_in < idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise exc.InvalidatePoolError(f"pooled connection lost while idle: {error}") from error
            raise

    event.listen(engine, "checkin", note_checkin)
    event.listen(engine, "checkout", ping_if_idle)
