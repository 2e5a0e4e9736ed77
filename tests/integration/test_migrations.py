"""The Alembic migration builds exactly the models' schema on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from sqlalchemy import text

from crm_qb.db import built_on, db


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
