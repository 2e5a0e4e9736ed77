"""Which statements may run outside a transaction on PostgreSQL (crm_qb/reads_without_begin.py)."""

from __future__ import annotations

from typing import Any

import pytest

from crm_qb.reads_without_begin import reads_only


@pytest.mark.parametrize(("query", "plain"), [
    ("SELECT 1", True),
    ("\n  select id FROM t", True),
    ("SELECT id FROM t WHERE x = %s FOR UPDATE", False),
    ("SELECT id FROM t FOR  no key  update SKIP LOCKED", False),
    ("SELECT id FROM t FOR SHARE", False),
    ("SELECT id FROM t FOR KEY SHARE", False),
    ("WITH x AS (SELECT 1) SELECT * FROM x", False),
    ("INSERT INTO t VALUES (1) RETURNING id", False),
    ("SAVEPOINT sa_savepoint_1", False),
    (b"SELECT 1", False),
])
def test_what_counts_as_a_plain_read(query: Any, plain: bool) -> None:
    assert reads_only(query) is plain
