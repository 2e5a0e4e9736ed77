"""PostgreSQL: a read that opens no transaction sends no BEGIN and no ROLLBACK.

Jobs and requests read in short transactions and end each one (``db.session.rollback()`` after the read), so that
no transaction stays open across a QuickBooks or CRM call. psycopg, outside autocommit, opens a transaction with a
``BEGIN`` of its own before the first statement, and the end is a ``ROLLBACK``: three round trips for one
``SELECT``. A live drain makes about eighteen such reads. Each round trip waits for the database to be scheduled;
on a host whose cores are busy (a first sync running beside the live work), those waits were most of what slowed
the live drains (docs/benchmarks-history.md, "Reads without BEGIN").

``ReadWithoutBegin`` is the connections' cursor class (psycopg's ``cursor_factory``). A statement that only reads,
run while the connection has no transaction open, runs in autocommit: one round trip, and nothing to end. Every
other statement, and every statement inside a transaction, runs as psycopg runs it: the first write opens the
transaction (psycopg's own ``BEGIN``), and what follows reads inside it, its own writes included.

Why a read outside the transaction means the same here: PostgreSQL's default isolation, READ COMMITTED (crm-qb
never asks for another), gives every statement a snapshot of its own, inside a transaction or not, so a plain
``SELECT`` sees the same rows either way. What does not hold for a read out of a transaction is excluded, so it
opens one as before: a row lock (``FOR UPDATE``, ``FOR SHARE``, their ``KEY`` forms), a server-side cursor
(``DECLARE``, psycopg's ``ServerCursor``, another class), anything not starting with ``SELECT`` (a ``WITH``, a
``SAVEPOINT``, every write). A ``SELECT`` of a function that writes or takes a transaction-scoped lock would also
need one; crm-qb runs none. A connection set to autocommit by its owner (the webhooks' group commit) is left as
it is.
"""

from __future__ import annotations

import re
from contextlib import suppress
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

# A row-locking clause: the read must hold its locks in a transaction.
_LOCKING = re.compile(r"\bFOR\s+(?:NO\s+KEY\s+UPDATE|UPDATE|KEY\s+SHARE|SHARE)\b", re.IGNORECASE)


def reads_only(query: Any) -> bool:
    """Whether ``query`` is a plain ``SELECT`` (text, no row lock): one that may run outside a transaction."""
    if not isinstance(query, str):
        return False  # bytes or a composed query: not looked into, so run as psycopg runs it
    return query.lstrip()[:6].upper() == "SELECT" and _LOCKING.search(query) is None


class ReadWithoutBegin(psycopg.Cursor[Any]):
    """psycopg's cursor, running a read that opens no transaction in autocommit (module docstring)."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> ReadWithoutBegin:
        conn = self.connection
        outside = (not conn.autocommit and conn.info.transaction_status == TransactionStatus.IDLE
                   and reads_only(query))
        if outside:
            conn.autocommit = True
        try:
            super().execute(query, params, **kwargs)
        finally:
            if outside:
                with suppress(psycopg.Error):  # the connection broke meanwhile: SQLAlchemy discards it
                    conn.autocommit = False
        return self
