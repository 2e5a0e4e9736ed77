"""The query plans of the SELECTs a block of code sends: to show a query is answered from an index."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine


@contextmanager
def query_plans(engine: Engine, table: str) -> Iterator[list[str]]:
    """Collect the plan (``EXPLAIN``, SQLite's ``EXPLAIN QUERY PLAN``) of every SELECT from ``table`` run inside the
    block, each as one line of text; the table is analysed first on PostgreSQL, as a running system's would be."""
    sqlite = engine.dialect.name == "sqlite"
    plans: list[str] = []

    def explain(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> Any:
        if statement.lstrip().upper().startswith("SELECT") and f"FROM {table}" in statement:
            if not sqlite:
                cursor.execute(f"ANALYZE {table}")
            cursor.execute(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + statement, parameters)
            plans.append(" ".join(str(row) for row in cursor.fetchall()))
        return statement, parameters

    event.listen(engine, "before_cursor_execute", explain, retval=True)
    try:
        yield plans
    finally:
        event.remove(engine, "before_cursor_execute", explain)
