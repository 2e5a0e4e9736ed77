"""Shared fixtures: settings, apps on real SQLite and PostgreSQL, a flushed Redis database.

PostgreSQL tests get one database per test session (migrated once, truncated between tests). When the server is
absent they skip with the reason, except when CRM_QB_TEST_REQUIRE_POSTGRES=1 (CI), where they fail.
Redis tests use database 15 and flush it before and after each test.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from redis import Redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from crm_qb.app import create_app, upgrade_schema
from crm_qb.config import Settings, load_settings


def _redis_test_url() -> str:
    """The test Redis database; under pytest-xdist each worker gets its own (gw0 the given one, gw1 the one below,
    ...), because tests flush their database."""
    base = make_url_redis(os.environ.get("CRM_QB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return base[0] + str(base[1])
    return base[0] + str((base[1] - int(worker[2:])) % 16)


def make_url_redis(url: str) -> tuple[str, int]:
    """Split ``redis://host:port/N`` into its prefix and database number (0 when none is given)."""
    head, _, tail = url.rpartition("/")
    if head.endswith(":/") or not tail.isdigit():
        return url.rstrip("/") + "/", 0
    return head + "/", int(tail)


REDIS_TEST_URL = _redis_test_url()
PG_ADMIN_URL = os.environ.get("CRM_QB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
VERIFIER_TOKEN = "test-verifier-token"


def pytest_configure(config: pytest.Config) -> None:
    """Record the test run's fixed encryption key so every app in the run can read the others' rows."""
    os.environ.setdefault("CRM_QB_TEST_ENCRYPTION_KEY", Fernet.generate_key().decode())


def make_settings(tmp_path: Path, database_url: str | None = None, **overrides: str) -> Settings:
    """Settings for a test: its own instance folder, test Redis, fixed keys, optional database URL."""
    env = {
        "CRM_QB_INSTANCE_PATH": str(tmp_path / "instance"),
        "CRM_QB_REDIS_URL": REDIS_TEST_URL,
        "CRM_QB_SECRET_KEY": "test-secret-key",
        "CRM_QB_ENCRYPTION_KEY": os.environ["CRM_QB_TEST_ENCRYPTION_KEY"],
        "CRM_QB_QBO_WEBHOOK_VERIFIER_TOKEN": VERIFIER_TOKEN,
        "CRM_QB_QUEUE_PREFIX": "crm_qb_test",
    }
    if database_url:
        env["CRM_QB_DATABASE_URL"] = database_url
    env.update({f"CRM_QB_{k.upper()}": v for k, v in overrides.items()})
    return load_settings(env)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that reproduces ``settings`` in a child process."""
    return {
        "CRM_QB_INSTANCE_PATH": str(settings.instance_path),
        "CRM_QB_DATABASE_URL": settings.database_url,
        "CRM_QB_REDIS_URL": settings.redis_url,
        "CRM_QB_SECRET_KEY": settings.secret_key,
        "CRM_QB_ENCRYPTION_KEY": ",".join(settings.encryption_keys),
        "CRM_QB_QBO_WEBHOOK_VERIFIER_TOKEN": settings.qbo_webhook_verifier_token,
        "CRM_QB_QUEUE_PREFIX": settings.queue_prefix,
        "CRM_QB_SWEEP_AFTER_SECONDS": str(settings.sweep_after_seconds),
    }


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo what a command run in-process did to this process's logging (crm_qb.logs.setup_logging)."""
    factory, level = logging.getLogRecordFactory(), logging.getLogger().level
    yield
    logging.setLogRecordFactory(factory)
    logging.getLogger().setLevel(level)


@pytest.fixture
def redis_client() -> Iterator[Redis]:
    """A flushed Redis test database."""
    client = Redis.from_url(REDIS_TEST_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated to the latest schema."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        admin.dispose()
        if os.environ.get("CRM_QB_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required (CRM_QB_TEST_REQUIRE_POSTGRES=1) but unreachable: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {type(exc).__name__}")
    name = f"{os.environ.get('CRM_QB_TEST_POSTGRES_PREFIX', 'crm_qb_test_')}{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


_migrated: set[str] = set()
_sqlite_template: list[Path] = []  # this test process's migrated empty SQLite database, made by the first _migrate


def _migrate(app: Flask) -> None:
    """Bring the app's database to the latest schema.

    A new SQLite file is a copy of this process's first migrated one (SQLite's backup API, so a WAL database is
    copied whole): running every migration takes about 0.1 s, and most tests start from an empty SQLite file.
    """
    from crm_qb.db import db

    with app.app_context():
        url = db.engine.url
        path = Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None
        empty = path is not None and _sqlite_is_empty(path)
        if path is not None and empty and _sqlite_template:
            db.engine.dispose()
            _copy_sqlite(_sqlite_template[0], path)
            return
        upgrade_schema(app)
        if path is not None and empty and not _sqlite_template:
            db.engine.dispose()
            template = Path(tempfile.mkdtemp(prefix="crm-qb-schema-")) / "schema.sqlite3"
            _copy_sqlite(path, template)
            _sqlite_template.append(template)


def _sqlite_is_empty(path: Path) -> bool:
    """Whether the SQLite file is absent or holds no schema yet."""
    if not path.exists():
        return True
    with closing(sqlite3.connect(path)) as conn:
        return int(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]) == 0


def _copy_sqlite(source: Path, target: Path) -> None:
    """Copy one SQLite database to another file, consistently, with the standard library's backup API."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def _truncate(app: Flask) -> None:
    """Empty every table of the app's PostgreSQL database and restart its id sequences, as a new database has them.

    DELETE in dependency order, not TRUNCATE: a test leaves a few rows, and TRUNCATE of every table cost the server
    about 0.1 s per test (new files for each table) where DELETE takes a few milliseconds."""
    from crm_qb.db import db

    with app.app_context():
        tables = [t.name for t in reversed(db.metadata.sorted_tables)]
        sequences = db.session.execute(text(
            "SELECT quote_ident(s.relname) FROM pg_class s JOIN pg_namespace n ON n.oid = s.relnamespace "
            "WHERE s.relkind = 'S' AND n.nspname = current_schema()")).scalars().all()
        statements = [f'DELETE FROM "{table}"' for table in tables]
        statements += [f"ALTER SEQUENCE {sequence} RESTART" for sequence in sequences]
        db.session.execute(text("; ".join(statements)))
        db.session.commit()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """Run the test once on SQLite and once on PostgreSQL."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A database URL for ``backend``: a fresh SQLite file, or the session's PostgreSQL database."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'crm_qb.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings for this test's database and the test Redis."""
    return make_settings(tmp_path, database_url)


@pytest.fixture
def app(settings: Settings, redis_client: Redis) -> Iterator[Flask]:
    """A migrated app on a clean database and a flushed Redis."""
    application = create_app(settings)
    if settings.is_sqlite or settings.database_url not in _migrated:
        _migrate(application)
        _migrated.add(settings.database_url)
    if not settings.is_sqlite:
        _truncate(application)
    yield application
    from crm_qb.db import db

    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask):  # type: ignore[no-untyped-def]
    """A test client of ``app``."""
    return app.test_client()


PAIRWISE_IN_CI = {("rest", "sqlite"), ("hubspot", "postgresql")}


@pytest.hookimpl(tryfirst=True)  # before `-m "not slow"` deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test marked ``hubspot_slow`` runs its HubSpot variant with the slow tests (`scripts/test`), not in CI.

    For tests whose subject does not depend on the CRM (the routing of a shared or throttled company) and whose run
    is long (a 60 s QBO throttle, two CRMs): the REST variant keeps the behaviour in CI, under 15 minutes.
    A test marked ``postgresql_slow`` runs its PostgreSQL variant with the slow tests in the same way: its subject
    does not depend on the database and its SQLite variant keeps it in CI. (Here, in the root conftest, so that it
    applies to every directory's tests, whichever directories a run collects.)

    A test run against both CRM kinds and both databases runs two of its four variants in CI, REST on SQLite (the
    embedded defaults of `crm-qb up`) and HubSpot on PostgreSQL (a production shape): every CRM and every database
    once. The other two run with the slow tests. A test marked ``full_matrix`` keeps all four in CI.
    """
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec else {}
        crm_kind, backend = params.get("crm_kind"), params.get("backend")
        if (crm_kind is not None and backend is not None and not item.get_closest_marker("full_matrix")
                and (crm_kind, backend) not in PAIRWISE_IN_CI):
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("hubspot_slow") and params.get("crm_kind") == "hubspot":
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("postgresql_slow") and params.get("backend") == "postgresql":
            item.add_marker(pytest.mark.slow)
