"""The Alembic migration builds exactly the models' schema on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from sqlalchemy import text

from crm_qb.app import create_app, upgrade_schema
from crm_qb.db import built_on, db
from tests.conftest import make_settings
from tests.support.connections import add_connection


def test_migrated_schema_matches_the_models(app: Flask) -> None:
    with app.app_context(), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False,
                                                         "include_object": built_on(conn.dialect.name)})
        diff = [d for d in compare_metadata(context, db.metadata)]
        assert diff == []


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(app: Flask, backend: str) -> None:
    with app.app_context():
        if backend != "sqlite":
            assert db.engine.dialect.name == "postgresql"
            return
        assert db.session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert db.session.execute(text("PRAGMA busy_timeout")).scalar() == 15000


def test_follow_ups_pending_before_0008_keep_their_marker_search(tmp_path: Path) -> None:
    """A pending row from before 0008_followup_attempt may have had a create sent by the code before it, which
    wrote nothing ahead: it is marked attempted, so the next scan still searches the CRM for its task."""
    app = create_app(make_settings(tmp_path, f"sqlite:///{tmp_path / 'old.sqlite3'}"))
    upgrade_schema(app, "0007_event_idx")
    connection_id = add_connection(app).id
    with app.app_context():
        for invoice, status in (("101", "pending"), ("102", "open"), ("103", "completed")):
            db.session.execute(text(
                "INSERT INTO follow_ups (connection_id, qbo_invoice_id, rule_days, crm_contact_id, status, created_at)"
                " VALUES (:connection, :invoice, 1, 'c1', :status, '2026-12-01 10:00:00+00:00')"),
                {"connection": connection_id, "invoice": invoice, "status": status})
        db.session.commit()
        db.engine.dispose()
    upgrade_schema(app)
    with app.app_context():
        rows = db.session.execute(text(
            "SELECT qbo_invoice_id, task_attempted_at IS NOT NULL FROM follow_ups ORDER BY qbo_invoice_id")).all()
        db.engine.dispose()
    assert [tuple(row) for row in rows] == [("101", 1), ("102", 0), ("103", 0)]
