"""Cursor paging by ``(updated_at, id)``, shared by contacts and activities.

Because change times are strictly increasing across the CRM, a record changed during a walk moves behind the
cursor and is returned again later in the same walk: nothing is skipped.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from crm_qb.sandbox.crm.db import SandboxDb
from crm_qb.sandbox.crm.validation import invalid

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100


def encode_cursor(updated_at: str, row_id: str) -> str:
    """Return the opaque cursor that resumes a walk after ``(updated_at, row_id)``."""
    return base64.urlsafe_b64encode(json.dumps([updated_at, row_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    """Return the ``(updated_at, id)`` a cursor points after, else raise a 400 naming ``cursor``."""
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise invalid("cursor", "not a cursor returned by this API") from None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(part, str) for part in value)):
        raise invalid("cursor", "not a cursor returned by this API")
    return value[0], value[1]


def page_limit(value: str | None) -> int:
    """Parse a ``limit`` query parameter (1..1000, default 100), else raise a 400 naming ``limit``."""
    if value is None or value == "":
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise invalid("limit", f"must be an integer from 1 to {MAX_LIMIT}")
    return int(value)


def walk_page(db: SandboxDb, table: str, filters: list[tuple[str, Any]], after: tuple[str, str] | None,
              limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """Return up to ``limit`` rows of ``table`` matching ``filters`` (SQL clause, value) after the cursor."""
    clauses = ["1 = 1", *(clause for clause, _ in filters)]
    params: list[Any] = [value for _, value in filters]
    if after is not None:
        clauses.append("(updated_at, id) > (?, ?)")
        params.extend(after)
    sql = f"SELECT data FROM {table} WHERE {' AND '.join(clauses)} ORDER BY updated_at, id LIMIT ?"
    rows = db.many(sql, (*params, limit + 1))
    found = rows[:limit]
    more = len(rows) > limit
    return found, encode_cursor(found[-1]["updated_at"], found[-1]["id"]) if more else None
