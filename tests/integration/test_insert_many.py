"""``db.insert_many``: the rows it stores are the rows SQLAlchemy's own executemany stores, defaults included.

It hands each value to its column's bind processor and the driver itself (the backfill's bulk inserts: folder
items, links, audit entries, a first sync's records): an executemany on SQLite, a COPY on PostgreSQL. Either way
every stored column must equal what ``db.session.execute(insert(table), rows)`` stores for the same rows: JSON
without NUL, exact decimals as text on SQLite, UTC timestamps, the Python-side defaults of the columns left out,
and text with the characters COPY escapes. A duplicate key is SQLAlchemy's ``IntegrityError`` on both.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Table, Text, cast, insert, select
from sqlalchemy.exc import IntegrityError, StatementError

from crm_qb.db import db, insert_many
from crm_qb.models import AuditEntry, ContactLink, FolderItem, SyncRun, SyncRunRecord
from crm_qb.models.types import ValueNotStorable
from tests.support.connections import add_connection

VOLATILE = {"id", "created_at", "updated_at"}  # the row id, and the defaults taken at each row's insert


def _folder_rows(connection_id: int, prefix: str) -> list[dict[str, Any]]:
    return [{"connection_id": connection_id, "txn_type": "Invoice", "qbo_id": f"{prefix}{n}", "qbo_customer_id": "7",
             "doc_number": "A\x00-1" if n == 0 else None, "txn_date": date(2026, 1, n + 1), "due_date": None,
             "expiration_date": None, "status": "Open", "currency": "USD", "exchange_rate": Decimal("1.000000000001"),
             "total": Decimal("10.10"), "balance": Decimal(0), "home_total": Decimal("10.10"),
             "home_balance": Decimal("0.00"), "home_computed": n == 1,
             "linked_txns": [{"type": "Payment", "id": "9", "amount": "1.10"}],
             "details": {"status_input": {"TotalAmt": "10.10", "Note\x00": "a\x00b"}, "days_overdue": n},
             "qbo_sync_token": "0", "qbo_updated_at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)} for n in range(3)]


def _stored(table: Table, where: Any) -> list[dict[str, Any]]:
    """The stored rows as the database holds them (each column as text), without the volatile columns."""
    columns = [cast(c, Text).label(c.key) for c in table.c if c.key not in VOLATILE]
    rows = db.session.execute(select(*columns).where(where).order_by(table.c.id)).mappings().all()
    return [{k: v for k, v in row.items() if k not in ("qbo_id", "crm_contact_id", "qbo_customer_id")} for row in rows]


def test_insert_many_stores_what_sqlalchemy_stores(app: Flask) -> None:
    connection_id = add_connection(app).id
    with app.app_context():
        folder = FolderItem.__table__
        insert_many(folder, _folder_rows(connection_id, "m"))
        db.session.execute(insert(folder), _folder_rows(connection_id, "s"))
        links = ContactLink.__table__
        link_row = {"connection_id": connection_id, "state": "review", "base": {}, "qbo_owned": {"b": "1\x00"},
                    "qbo_sync_token": None, "qbo_updated_at": None, "crm_version": None, "crm_updated_at": None,
                    "qbo_active": True, "review_reason": "two\x00", "review_candidates": ["1", "2"]}
        insert_many(links, [{**link_row, "crm_contact_id": None, "qbo_customer_id": "m1"}])
        db.session.execute(insert(links), [{**link_row, "crm_contact_id": None, "qbo_customer_id": "s1"}])
        audit = AuditEntry.__table__
        audit_row = {"connection_id": connection_id, "inbound_event_id": None, "job_id": None, "action": "x",
                     "direction": "qbo_to_crm", "entity": "Customer", "entity_id": "1", "diff": {"to_crm": {}},
                     "outcome": "ok", "message": None, "intuit_tid": None}
        insert_many(audit, [audit_row, {**audit_row, "action": "y"}])
        db.session.execute(insert(audit), [audit_row, {**audit_row, "action": "y"}])
        db.session.commit()

        made = _stored(folder, folder.c.qbo_id.like("m%"))
        assert made == _stored(folder, folder.c.qbo_id.like("s%")) and len(made) == 3
        assert "\x00" not in str(made)
        assert _stored(links, links.c.qbo_customer_id == "m1") == _stored(links, links.c.qbo_customer_id == "s1")
        rows = _stored(audit, audit.c.connection_id == connection_id)
        assert rows[:2] == rows[2:] and [r["action"] for r in rows] == ["x", "y", "x", "y"]
        stamps = db.session.execute(select(folder.c.created_at, folder.c.updated_at)).all()
        assert all(created is not None and updated is not None for created, updated in stamps)
        items = db.session.scalars(select(FolderItem).where(FolderItem.qbo_id.like("m%")).order_by(FolderItem.id)).all()
        assert items[0].exchange_rate == Decimal("1.000000000001") and items[0].total == Decimal("10.10")
        assert items[0].created_at.tzinfo is not None and items[0].doc_number == "A-1"


def test_a_key_too_long_is_refused_as_sqlalchemy_refuses_it(app: Flask) -> None:
    connection_id = add_connection(app).id
    with app.app_context():
        rows = _folder_rows(connection_id, "x" * 70)
        with pytest.raises(StatementError) as refused:
            insert_many(FolderItem.__table__, rows)
        assert isinstance(refused.value.orig, ValueNotStorable)
        db.session.rollback()
        assert db.session.scalar(select(FolderItem.id)) is None


def _record_rows(run_id: int, prefix: str) -> list[dict[str, Any]]:
    return [{"run_id": run_id, "stage": "run", "phase": "transactions", "entity": "Invoice",
             "object_id": f"{prefix}{n}", "name": f"Invoice {n} \u00b7 O'Brien, \"Tab\tand\\slash\"\nline",
             "action": "create", "planned": None, "partner_id": None, "partner_name": None,
             "candidates": [{"id": "c\x00", "name": None}] if n else [], "reason": None, "error": None,
             "error_code": None, "intuit_tid": None, "attempts": 1, "updated_at": datetime(2026, 12, 5, tzinfo=UTC),
             "dismissed_at": None} for n in range(3)]


def test_a_first_syncs_records_are_stored_as_sqlalchemy_stores_them(app: Flask) -> None:
    connection_id = add_connection(app).id
    with app.app_context():
        run = SyncRun(connection_id=connection_id, kind="first", state="running", preview={}, progress={},
                      checkpoint={})
        db.session.add(run)
        db.session.flush()
        records = SyncRunRecord.__table__
        insert_many(records, _record_rows(run.id, "m"))
        db.session.execute(insert(records), _record_rows(run.id, "s"))
        db.session.commit()
        made, plain = (_stored(records, records.c.object_id.like(f"{prefix}%")) for prefix in ("m", "s"))
        assert [row["object_id"] for row in made] == ["m0", "m1", "m2"] and len(plain) == 3
        assert [{**row, "object_id": None} for row in made] == [{**row, "object_id": None} for row in plain]
        stored = db.session.scalars(select(SyncRunRecord).where(SyncRunRecord.object_id == "m1")).one()
        assert stored.name == "Invoice 1 \u00b7 O'Brien, \"Tab\tand\\slash\"\nline"
        assert stored.candidates == [{"id": "c", "name": None}] and stored.updated_at.tzinfo is not None


def test_a_duplicate_key_is_an_integrity_error_and_nothing_of_the_rows_is_kept(app: Flask) -> None:
    connection_id = add_connection(app).id
    with app.app_context():
        insert_many(FolderItem.__table__, _folder_rows(connection_id, "d"))
        db.session.commit()
        with pytest.raises(IntegrityError):
            insert_many(FolderItem.__table__, _folder_rows(connection_id, "e") + _folder_rows(connection_id, "d"))
        db.session.rollback()
        assert sorted(db.session.scalars(select(FolderItem.qbo_id))) == ["d0", "d1", "d2"]
