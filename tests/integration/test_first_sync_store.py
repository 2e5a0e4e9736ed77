"""A first sync's records are looked up by entity and id through the unique index, on both databases: a page of a
run that already holds thousands of records neither reads them all nor mixes up two entities' equal ids
(crm_qb/sync/firstsync/store.py)."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import func, select

from crm_qb.db import db
from crm_qb.models import SyncRunRecord
from crm_qb.sync.firstsync import store
from crm_qb.sync.firstsync.runner import RecordRow
from tests.support.connections import add_connection
from tests.support.plans import query_plans


def _rows(entity: str, ids: range, action: str) -> list[RecordRow]:
    return [RecordRow(phase="customers", entity=entity, object_id=str(n), action=action) for n in ids]


def test_records_are_found_by_entity_and_id_through_the_index(app: Flask, backend: str) -> None:
    connection = add_connection(app).id
    with app.app_context():
        run = store.open_run(connection, "first_sync").id
        store.save_page(run, "preview", _rows("Customer", range(3000), "create"))
        store.save_page(run, "preview", _rows("Invoice", range(3000), "mirror"))  # the same ids, another entity
        with query_plans(db.engine, "sync_run_records") as plans:
            planned = store.planned_actions(run, [("Customer", "7"), ("Invoice", "7"), ("Invoice", "2999"),
                                                  ("Payment", "7")])
            store.save_page(run, "preview", _rows("Customer", range(10, 12), "link"))  # replaces two records
        assert planned == {("Customer", "7"): "create", ("Invoice", "7"): "mirror", ("Invoice", "2999"): "mirror"}
        assert plans and all("uq_sync_run_records" in plan or "sqlite_autoindex_sync_run_records" in plan
                             for plan in plans), plans
        if backend != "sqlite":  # the ids are looked up in the index, not filtered from the stage's records
            looked_up = [plan.split("Index Cond", 1)[1].split("Filter")[0] for plan in plans]
            assert all("(object_id)::text" in cond for cond in looked_up), plans
        replaced = db.session.execute(select(SyncRunRecord.entity, SyncRunRecord.action, SyncRunRecord.attempts)
                                      .where(SyncRunRecord.run_id == run, SyncRunRecord.object_id == "10")
                                      .order_by(SyncRunRecord.entity)).all()
        assert [tuple(r) for r in replaced] == [("Customer", "link", 2), ("Invoice", "mirror", 1)]
        assert db.session.scalar(select(func.count()).select_from(SyncRunRecord)
                                 .where(SyncRunRecord.run_id == run)) == 6000
