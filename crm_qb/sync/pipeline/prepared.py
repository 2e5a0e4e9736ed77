"""One SQL statement run as a named prepared statement in a single libpq call (psycopg 3's ``PGconn``).

Ingress's group INSERT (``events._DriverInsert``) runs once per commit group on a kept autocommit connection.
psycopg's cursor runs a statement as a sequence of non-blocking libpq calls (send, flush, wait for the socket,
consume, get each result), and releases the GIL around each of them: in a gthread worker every release hands the
GIL to one of the request threads waiting for it and takes it back afterwards, a context switch or two each
under load, five to seven times per group. ``PQexecPrepared`` is one blocking call: the GIL is released once,
for the round trip. It also skips the cursor's Python (its query preparation, parameter adaptation and result
loading), which a statement of one text parameter and two text columns does not need (docs/benchmarks-history.md).

This is used only where it means the same as the cursor: a psycopg connection in autocommit mode, idle (no
transaction, no pipeline), so the statement commits by itself exactly as the cursor's would. Anywhere else the
caller uses the cursor. The statement is prepared once per connection (remembered with the pool entry's ``info``,
keyed by the libpq connection itself so a replaced one is prepared again), and prepared again if the server no
longer knows it (``DISCARD ALL``, a pooler). Errors are psycopg's own exceptions, made from the result as psycopg
makes them, so SQLAlchemy's handling (``DBAPIError``, a lost connection seen as a disconnect) is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeGuard

import psycopg
from psycopg import errors, pq

_PREPARED_KEY = "crm_qb.prepared"  # in the pool entry's info: (the PGconn, the names prepared on it)
_UNKNOWN_STATEMENT = "26000"  # invalid_sql_statement_name: the server does not know the prepared statement


class PreparedStatement:
    """A statement with ``$1``-style placeholders, run through libpq on psycopg connections that allow it."""

    def __init__(self, name: str, text: str) -> None:
        self.name = name.encode("ascii")
        self.text = text

    @staticmethod
    def usable(dbapi_connection: Any) -> TypeGuard[psycopg.Connection[Any]]:
        """Whether running the statement here means what the cursor means: a psycopg connection in autocommit,
        with no transaction or pipeline open (the statement commits itself, as the cursor's would)."""
        if not isinstance(dbapi_connection, psycopg.Connection) or not dbapi_connection.autocommit:
            return False
        pgconn = dbapi_connection.pgconn
        return (
            pgconn.transaction_status == pq.TransactionStatus.IDLE and pgconn.pipeline_status == pq.PipelineStatus.OFF
        )

    def run(
        self, dbapi_connection: psycopg.Connection[Any], info: dict[Any, Any], params: Sequence[str]
    ) -> list[tuple[str | None, ...]]:
        """Execute with text ``params`` on ``dbapi_connection`` (``usable``); its rows, as text.

        ``info`` is the pool entry's info dictionary of that connection: where the prepared names are kept.
        """
        encoding = dbapi_connection.info.encoding
        values = [param.encode(encoding) for param in params]
        with dbapi_connection.lock:  # psycopg's own lock of the connection, as its cursors take it
            pgconn = dbapi_connection.pgconn
            self._prepare(pgconn, info, encoding)
            result = pgconn.exec_prepared(self.name, values)
            if _unknown(result):  # deallocated behind our back: prepare it again, once
                self._prepare(pgconn, info, encoding, again=True)
                result = pgconn.exec_prepared(self.name, values)
        _check(result, encoding, pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)
        return [
            tuple(_text(result.get_value(row, column), encoding) for column in range(result.nfields))
            for row in range(result.ntuples)
        ]

    def _prepare(self, pgconn: pq.abc.PGconn, info: dict[Any, Any], encoding: str, again: bool = False) -> None:
        kept = info.get(_PREPARED_KEY)
        if kept is None or kept[0] is not pgconn:
            kept = info[_PREPARED_KEY] = (pgconn, set())
        names: set[bytes] = kept[1]
        if self.name in names and not again:
            return
        names.discard(self.name)
        _check(pgconn.prepare(self.name, self.text.encode(encoding)), encoding, pq.ExecStatus.COMMAND_OK)
        names.add(self.name)


def _unknown(result: pq.abc.PGresult) -> bool:
    return (
        result.status == pq.ExecStatus.FATAL_ERROR
        and result.error_field(pq.DiagnosticField.SQLSTATE) == _UNKNOWN_STATEMENT.encode()
    )


def _check(result: pq.abc.PGresult, encoding: str, *ok: pq.ExecStatus) -> None:
    """Raise psycopg's exception for a result that is not one of ``ok`` (a lost connection included: its
    result is an error and the connection's status is BAD, which SQLAlchemy's psycopg dialect calls a
    disconnect)."""
    if result.status in ok:
        return
    if result.status == pq.ExecStatus.FATAL_ERROR:
        raise errors.error_from_result(result, encoding=encoding)
    raise psycopg.InterfaceError(f"unexpected result status {pq.ExecStatus(result.status).name}")


def _text(value: bytes | None, encoding: str) -> str | None:
    return None if value is None else value.decode(encoding)
