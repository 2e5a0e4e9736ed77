"""The ``crm-qb`` command (the public contract: docs/architecture.md §6, README "The crm-qb command").

Every command reads settings once from the environment; a bad setting ends the command with one line naming it
(exit code 2), never a stack trace.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from collections.abc import Callable
from functools import wraps
from typing import Any

import click

from crm_qb.config import Settings, load_settings
from crm_qb.errors import CrmQbError

log = logging.getLogger("crm_qb.cli")

DEFAULT_WEB_PORT = 5000
DEFAULT_QBO_SANDBOX_PORT = 8701
DEFAULT_CRM_SANDBOX_PORT = 8702


def _friendly_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn crm-qb's own errors into one clear line on stderr and exit code 2."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CrmQbError as exc:
            click.echo(f"crm-qb: {exc}", err=True)
            sys.exit(2)

    return wrapper


def _settings() -> Settings:
    return load_settings()


def _app() -> Any:
    from crm_qb.app import create_app

    return create_app(_settings())


def _setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(level=os.environ.get("CRM_QB_LOG_LEVEL", level).upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@click.group()
def main() -> None:
    """crm-qb keeps a CRM and QuickBooks Online in step."""


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@_friendly_errors
def db_upgrade() -> None:
    """Create or upgrade the schema to the latest migration."""
    from flask_migrate import upgrade

    from crm_qb.app import MIGRATIONS_DIR

    app = _app()
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR)
    click.echo("database is at the latest schema")


@main.group()
def connection() -> None:
    """Manage connections (one CRM account linked to one QBO company)."""


@connection.command("add")
@click.option("--crm-url", required=True, help="Base URL of the CRM's REST API (docs/architecture.md §5).")
@click.option("--crm-token", required=True, help="Bearer token crm-qb uses to call the CRM.")
@click.option("--name", default=None, help="A name for people to recognise the connection by.")
@_friendly_errors
def connection_add(crm_url: str, crm_token: str, name: str | None) -> None:
    """Create a connection and print it as JSON (the API key and hook secret are shown only here)."""
    from crm_qb.connections import create_connection
    from crm_qb.runtime import runtime

    app = _app()
    with app.app_context():
        created = create_connection(runtime(app).secrets, crm_url=crm_url, crm_token=crm_token, name=name)
        click.echo(json.dumps(created.as_json()))


@connection.command("list")
@_friendly_errors
def connection_list() -> None:
    """List connections, one JSON object a line."""
    from crm_qb.connections import describe, list_connections

    app = _app()
    with app.app_context():
        for item in list_connections():
            click.echo(json.dumps(describe(item)))


@connection.command("show")
@click.argument("connection_id", type=int)
@_friendly_errors
def connection_show(connection_id: int) -> None:
    """Show one connection as JSON (no secrets)."""
    from crm_qb.connections import describe
    from crm_qb.db import db as database
    from crm_qb.models import Connection

    app = _app()
    with app.app_context():
        found = database.session.get(Connection, connection_id)
        if found is None:
            raise click.ClickException(f"no connection {connection_id}")
        click.echo(json.dumps(describe(found), indent=2))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=DEFAULT_WEB_PORT, show_default=True, type=int)
@click.option("--workers", default=4, show_default=True, type=int, help="gunicorn worker processes")
@click.option("--access-log/--no-access-log", default=False, show_default=True)
@_friendly_errors
def web(host: str, port: int, workers: int, access_log: bool) -> None:
    """Serve the web app (webhooks, API, panel, admin) with gunicorn."""
    _settings()  # fail here, with a clear message, rather than in every gunicorn worker
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers", str(workers),
            "--timeout", "30", "--graceful-timeout", "10", "--keep-alive", "5"]
    if access_log:
        argv += ["--access-logfile", "-"]
    os.execv(sys.executable, [*argv, "crm_qb.app:create_app()"])


@main.command()
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@_friendly_errors
def worker(burst: bool) -> None:
    """Run an RQ worker for every queue."""
    from workers.worker import run_worker

    _setup_logging()
    run_worker(_app(), burst=burst)


@main.command()
@_friendly_errors
def scheduler() -> None:
    """Enqueue the periodic jobs (inbox sweep, ...) until stopped."""
    import signal

    from workers.schedule import run_scheduler

    _setup_logging()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run_scheduler(_app(), stop)


@main.command()
@click.option("--status", type=click.Choice(["failed", "pending"]), default="failed", show_default=True)
@click.option("--connection", "connection_id", type=int, default=None, help="Only this connection's events.")
@_friendly_errors
def replay(status: str, connection_id: int | None) -> None:
    """Re-run inbound events that failed (or are still pending), e.g. after fixing a CRM outage."""
    from workers.maintenance import replay_events

    app = _app()
    with app.app_context():
        count = replay_events(status, connection_id)
    click.echo(f"{count} event(s) queued for processing")


@main.group()
def sandbox() -> None:
    """Local stand-ins for QuickBooks Online and a CRM."""


@sandbox.command("qbo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=DEFAULT_QBO_SANDBOX_PORT, show_default=True, type=int)
@click.option("--db", "persist_path", default=None, help="Persist to this SQLite file (default: in memory).")
def sandbox_qbo(host: str, port: int, persist_path: str | None) -> None:
    """Serve the local QBO sandbox; prints one JSON line (its /_sandbox/info) when ready."""
    from crm_qb.sandbox.qbo.server import run

    run(host=host, port=port, persist_path=persist_path)


@sandbox.command("crm")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=DEFAULT_CRM_SANDBOX_PORT, show_default=True, type=int)
@click.option("--db", "persist_path", default=None, help="Persist to this SQLite file (default: in memory).")
def sandbox_crm(host: str, port: int, persist_path: str | None) -> None:
    """Serve the reference CRM; prints one JSON line (its /_sandbox/info) when ready."""
    from crm_qb.sandbox.crm.server import run

    run(host=host, port=port, persist_path=persist_path)


@sandbox.command("hubspot")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8703, show_default=True, type=int)
@click.option("--db", "persist_path", default=None, help="Persist to this SQLite file (default: in memory).")
@click.option("--portal-id", default=62515, show_default=True, type=int)
def sandbox_hubspot(host: str, port: int, persist_path: str | None, portal_id: int) -> None:
    """Serve the local HubSpot; prints one JSON line (its /_sandbox/info) when ready."""
    from crm_qb.sandbox.hubspot.server import run

    run(host=host, port=port, persist_path=persist_path, portal_id=portal_id)


@main.command()
@click.option("--port", default=DEFAULT_WEB_PORT, show_default=True, type=int)
@click.option("--qbo-sandbox-port", default=DEFAULT_QBO_SANDBOX_PORT, show_default=True, type=int)
@click.option("--crm-sandbox-port", default=DEFAULT_CRM_SANDBOX_PORT, show_default=True, type=int)
@_friendly_errors
def up(port: int, qbo_sandbox_port: int, crm_sandbox_port: int) -> None:
    """Run everything on embedded defaults in the foreground: sandboxes, web, worker, scheduler."""
    from crm_qb.up import run_up

    sys.exit(run_up(_settings(), web_port=port, qbo_port=qbo_sandbox_port, crm_port=crm_sandbox_port))


@main.command("admin-url")
@click.argument("connection_id", type=int)
@click.option("--expires-in", default=60, show_default=True, type=click.IntRange(1, 7 * 24 * 60),
              help="Minutes the link stays valid.")
@_friendly_errors
def admin_url(connection_id: int, expires_in: int) -> None:
    """Print a signed, expiring link to the connection's admin page (under CRM_QB_PUBLIC_URL)."""
    from crm_qb.db import db as database
    from crm_qb.models import Connection
    from crm_qb.runtime import runtime
    from crm_qb.web.signing import admin_url as signed_admin_url

    app = _app()
    settings = runtime(app).settings
    with app.app_context():
        if database.session.get(Connection, connection_id) is None:
            raise click.ClickException(f"no connection {connection_id}")
    click.echo(signed_admin_url(settings.public_url, settings.secret_key, connection_id, expires_in * 60))


@main.group()
def followups() -> None:
    """Overdue-invoice follow-ups: view or change a connection's rules, or scan now."""


@followups.command("configure")
@click.argument("connection_id", type=int)
@click.option("--enable/--disable", "enabled", default=None, help="Create tasks for overdue invoices, or stop.")
@click.option("--days", default=None, help="Comma-separated days overdue that each create a task, e.g. 1,14,30.")
@click.option("--title-template", default=None, help="Task title; placeholders like {invoice_number}, {balance}.")
@click.option("--description-template", default=None, help="Task description; the same placeholders.")
@click.option("--tag/--no-tag", "tag_enabled", default=None, help="Keep a tag on contacts with overdue invoices.")
@click.option("--tag-name", default=None, help='The tag (default "QuickBooks: overdue").')
@click.option("--reset", is_flag=True, help="Go back to the defaults first.")
@_friendly_errors
def followups_configure(connection_id: int, reset: bool, days: str | None, **options: Any) -> None:
    """Change the connection's follow-up settings (none given: just show them); prints them as JSON."""
    from crm_qb.sync.followups.service import configure_followups
    from crm_qb.sync.followups.settings import parse_days

    changes = {key: value for key, value in options.items() if value is not None}
    if "tag_name" in changes:
        changes["tag"] = changes.pop("tag_name")
    if days is not None:
        changes["rule_days"] = parse_days(days)
    with _app().app_context():
        click.echo(json.dumps(configure_followups(connection_id, changes, reset=reset).to_json(), indent=2))


@followups.command("scan")
@click.argument("connection_id", type=int)
@click.option("--invoice", "invoice_id", default=None, help="Only this QBO invoice id.")
@_friendly_errors
def followups_scan(connection_id: int, invoice_id: str | None) -> None:
    """Run the follow-up scan now (create due tasks, complete stale ones, tags); prints what it did."""
    from crm_qb.runtime import runtime
    from crm_qb.sync.followups.service import scan_connection, scan_invoice

    _setup_logging("WARNING")
    app = _app()
    with app.app_context():
        services = runtime(app).sync_services()
        result = (scan_connection(services, connection_id) if invoice_id is None
                  else scan_invoice(services, connection_id, invoice_id))
    click.echo(json.dumps(result.to_json()))


@main.command("panel-url")
@click.argument("connection_id", type=int)
@click.argument("crm_contact_id")
@click.option("--ttl", type=click.IntRange(min=1), default=None,
              help="Seconds the link stays valid (default 3600; for '*' 30 days).")
@_friendly_errors
def panel_url(connection_id: int, crm_contact_id: str, ttl: int | None) -> None:
    """Print a signed contact-panel URL; for contact '*', the CRM iframe URL template (an embed credential)."""
    from crm_qb.db import db as database
    from crm_qb.models import Connection
    from crm_qb.runtime import runtime
    from crm_qb.web import panel_tokens as tokens

    app = _app()
    secret, public = runtime(app).settings.secret_key, runtime(app).settings.public_url
    with app.app_context():
        found = database.session.get(Connection, connection_id)
        if found is None:
            raise click.ClickException(f"no connection {connection_id}")
        if crm_contact_id == tokens.ALL_CONTACTS:
            token = tokens.make_embed_token(secret, found, ttl or tokens.DEFAULT_EMBED_TTL_SECONDS)
            click.echo(tokens.embed_url_template(public, connection_id, token))
        else:
            token = tokens.make_panel_token(secret, found, crm_contact_id, ttl or tokens.DEFAULT_TTL_SECONDS)
            click.echo(tokens.panel_url(public, connection_id, crm_contact_id, token))


@connection.command("configure")
@click.argument("connection_id", type=int)
@click.option("--set", "assignments", multiple=True, metavar="sync.KEY=VALUE",
              help="e.g. sync.direction=both, sync.conflict_policy=qbo_wins, sync.fields.notes=off (repeatable).")
@_friendly_errors
def connection_configure(connection_id: int, assignments: tuple[str, ...]) -> None:
    """Change a connection's sync settings and print them as JSON (validated; a bad key or value exits 2)."""
    from crm_qb.db import db as database
    from crm_qb.models import Connection
    from crm_qb.sync.settings import SETTINGS_KEY, apply_assignments

    app = _app()
    with app.app_context():
        found = database.session.get(Connection, connection_id)
        if found is None:
            raise click.ClickException(f"no connection {connection_id}")
        found.settings = apply_assignments(found.settings, assignments)
        database.session.commit()
        click.echo(json.dumps(found.settings[SETTINGS_KEY]))

@connection.command("demo", hidden=True)
@click.option("--crm-url", required=True)
@click.option("--crm-token", required=True)
@click.option("--realm", "realm_id", required=True)
@click.option("--web-url", required=True)
@click.option("--backfill/--no-backfill", default=True, help="Enqueue the backfill that links existing customers.")
@_friendly_errors
def connection_demo(crm_url: str, crm_token: str, realm_id: str, web_url: str, backfill: bool) -> None:
    """For ``crm-qb up``: connect the reference CRM to a sandbox realm and print the connection as JSON."""
    from crm_qb.demo import wire_demo
    from crm_qb.runtime import runtime

    app = _app()
    made = wire_demo(app, crm_url=crm_url, crm_token=crm_token, realm_id=realm_id, web_url=web_url)
    if backfill:
        runtime(app).jobs.backfill(made["id"])
    click.echo(json.dumps(made))


@main.command("backfill")
@click.argument("connection_id", type=int)
@click.option("--dry-run", is_flag=True, help="Write nothing; report what a backfill would do.")
@click.option("--enqueue", is_flag=True, help="Hand the backfill to a worker and print the job id.")
@_friendly_errors
def backfill_command(connection_id: int, dry_run: bool, enqueue: bool) -> None:
    """Sync every QBO customer and transaction and every CRM contact of a connection; set its CDC cursor."""
    from crm_qb.runtime import runtime
    from crm_qb.sync.pipeline.backfill import check_backfillable, run_backfill

    if dry_run and enqueue:
        raise click.UsageError("--dry-run runs in the foreground; leave out --enqueue")
    _setup_logging("WARNING")
    app = _app()
    with app.app_context():
        check_backfillable(connection_id)
        if enqueue:
            queued = runtime(app).jobs.backfill(connection_id)
            click.echo(queued.job_id if queued.queued else f"{queued.job_id} (already waiting or running)")
            return
        services = runtime(app).sync_services()
        report = run_backfill(services, connection_id, dry_run=dry_run, progress=lambda phase, counts: click.echo(
            f"{phase} page {counts.pages}: seen={counts.seen} linked={counts.linked} created={counts.created} "
            f"updated={counts.updated} review={counts.review} unchanged={counts.unchanged} "
            f"skipped={counts.skipped} failed={counts.failed}", err=True))
    click.echo(json.dumps(report.to_json()))

if __name__ == "__main__":
    main()
