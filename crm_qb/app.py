"""The application factory: one place where settings, extensions and blueprints come together."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from flask import Flask
from redis import Redis

from crm_qb.config import Settings, load_settings
from crm_qb.db import configure_sqlite, db
from crm_qb.idle_ping import ping_when_idle
from crm_qb.jobqueue import JobQueue
from crm_qb.keys import RedisKeys
from crm_qb.runtime import EXTENSION_KEY, IngressStore, build_runtime
from crm_qb.web.sessions import SessionsExceptWebhooks

PACKAGE_DIR = Path(__file__).resolve().parent
MIGRATIONS_DIR = str(PACKAGE_DIR.parent / "migrations")


def create_app(settings: Settings | None = None) -> Flask:
    """Build the crm-qb web app for ``settings`` (default: read from the environment)."""
    settings = settings or load_settings()
    settings.instance_path.mkdir(parents=True, exist_ok=True)
    app = Flask(__name__, root_path=str(PACKAGE_DIR / "web"), instance_path=str(settings.instance_path))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SQLALCHEMY_DATABASE_URI=settings.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings),
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        JSON_SORT_KEYS=False,
    )
    app.session_interface = SessionsExceptWebhooks()  # webhooks open no cookie session (crm_qb.web.sessions)
    app.extensions[EXTENSION_KEY] = build_runtime(settings, _job_queue(), _ingress())
    db.init_app(app)
    with app.app_context():
        configure_sqlite(db.engine)
        if not settings.is_sqlite:
            ping_when_idle(db.engine)
    _register_blueprints(app)
    logging.getLogger(__name__).debug("app created for %s", settings.database_url.split(":", 1)[0])
    return app


def upgrade_schema(app: Flask, revision: str = "head") -> None:
    """Create or upgrade ``app``'s database to the latest migration, or to ``revision`` (``crm-qb db upgrade``, the
    tests, benches).

    Flask-Migrate (and with it Alembic) is loaded here, not in ``create_app``: the web and worker processes never
    migrate, and importing Alembic cost each of them about 0.3 s of CPU at start.
    """
    from flask_migrate import upgrade

    with app.app_context():
        _add_migrate(app)
        upgrade(directory=MIGRATIONS_DIR, revision=revision)


def create_app_with_migrations() -> Flask:
    """``create_app`` with Flask-Migrate's ``flask db`` commands, to write a migration:
    ``flask --app "crm_qb.app:create_app_with_migrations()" db revision --autogenerate -m "…"``."""
    app = create_app()
    _add_migrate(app)
    return app


def _add_migrate(app: Flask) -> None:
    from flask_migrate import Migrate

    if "migrate" not in app.extensions:
        Migrate(app, db, directory=MIGRATIONS_DIR, render_as_batch=True)


def _engine_options(settings: Settings) -> dict[str, object]:
    if settings.is_sqlite:
        return {"connect_args": {"timeout": 15}}
    # No pool_pre_ping: a connection is checked only when it sat idle (crm_qb.idle_ping, set up in create_app).
    # A read outside a transaction sends no BEGIN and no ROLLBACK (crm_qb.reads_without_begin; psycopg is
    # imported only for PostgreSQL).
    from crm_qb.reads_without_begin import ReadWithoutBegin

    return {"pool_size": 5, "max_overflow": 10, "connect_args": {"cursor_factory": ReadWithoutBegin}}


def _job_queue() -> Callable[[Redis, RedisKeys], JobQueue]:
    """The queue port's implementation: RQ (imported here, the one place the web app meets the workers)."""
    from workers.jobqueue import RqJobQueue

    return RqJobQueue


def _ingress() -> Callable[[], IngressStore]:
    """The webhooks' committer: group commit, one per app and so per process (``webhooks.groupcommit``)."""
    from webhooks.groupcommit import GroupCommit

    return GroupCommit


def _register_blueprints(app: Flask) -> None:
    from crm_qb.web import (
        admin_api,
        admin_pages,
        api,
        connection_page,
        errors,
        headers,
        health,
        hubspot_card,
        hubspot_oauth,
        oauth_views,
        panel,
        review_pages,
        routing,
        sync_api,
        sync_pages,
    )
    from webhooks import crm as crm_hooks
    from webhooks import hubspot as hubspot_hooks
    from webhooks import qbo as qbo_hooks

    routing.install_converters(app)
    headers.install_security_headers(app)
    errors.register_error_handlers(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(qbo_hooks.bp)
    app.register_blueprint(crm_hooks.bp)
    app.register_blueprint(hubspot_hooks.bp)
    app.register_blueprint(hubspot_card.bp)
    app.register_blueprint(hubspot_oauth.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(panel.bp)
    app.register_blueprint(connection_page.bp)
    app.register_blueprint(oauth_views.bp)
    app.register_blueprint(review_pages.bp)
    app.register_blueprint(admin_pages.bp)
    app.register_blueprint(admin_api.bp)
    app.register_blueprint(sync_api.bp)
    app.register_blueprint(sync_pages.bp)
