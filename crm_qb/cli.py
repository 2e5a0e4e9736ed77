"""The ``crm-qb`` command (the public contract: docs/architecture.md §6, README "The crm-qb command").

Every command reads settings once from the environment. Every error the user can fix ends the command with one
line on stderr, ``crm-qb: <what>``, naming the setting or argument to fix, and exit code 2: a bad setting, an
unknown connection id, a bad option (click's usage errors are folded into the same line), a busy port, an
unreachable Redis or database. Only a bug shows a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
from typing import Any

import click
from redis.exceptions import RedisError
from sqlalchemy.exc import OperationalError, ProgrammingError

from crm_qb.config import Settings, load_settings
from crm_qb.errors import CrmQbError
from workers.niced import DEFAULT_BULK_NICE  # a light module (os, threading), like crm_qb's own

log = logging.getLogger("crm_qb.cli")

DEFAULT_WEB_PORT = 5000
DEFAULT_QBO_SANDBOX_PORT = 8701
DEFAULT_CRM_SANDBOX_PORT = 8702
DEFAULT_HUBSPOT_SANDBOX_PORT = 8703
USAGE_ERROR = 2


class CliError(CrmQbError):
    """An error of the command line itself (a busy port, a missing choice); the message names what to fix."""


class _Cli(click.Group):
    """The ``crm-qb`` group: every error the user can fix becomes one line and exit code 2."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.exceptions.Abort:
            _fail("aborted", 1)
        except click.ClickException as exc:  # usage errors: a bad option, a missing argument, an unknown command
            _fail(exc.format_message().replace("\n", " "))
        except CrmQbError as exc:
            _fail(str(exc))
        except RedisError as exc:
            _fail(f"Redis is not reachable ({type(exc).__name__}); start it or fix CRM_QB_REDIS_URL")
        except (OperationalError, ProgrammingError) as exc:
            detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else type(exc).__name__
            _fail(f"the database refused ({detail}); check CRM_QB_DATABASE_URL and run `crm-qb db upgrade`")
        sys.exit(result if isinstance(result, int) else 0)


def _fail(message: str, code: int = USAGE_ERROR) -> None:
    click.echo(f"crm-qb: {message}", err=True)
    sys.exit(code)


def _settings() -> Settings:
    return load_settings()


def _app() -> Any:
    from crm_qb.app import create_app

    return create_app(_settings())


def _setup_logging(settings: Settings | None = None, default: str = "INFO") -> None:
    """Log at CRM_QB_LOG_LEVEL (else ``default``) with secrets redacted from every record (crm_qb.logs)."""
    from crm_qb.logs import setup_logging

    settings = settings or _settings()
    setup_logging(settings.log_level or default, settings.secrets())


def _connection(connection_id: int) -> Any:
    """The connection (inside an app context); the standard one-line error when there is none."""
    from crm_qb.connections import get_connection

    return get_connection(connection_id)


def _who() -> str:
    """Who a command acts as, for the audit log: the shell user on this host."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for the uid (containers)
        user = str(os.getuid())
    return f"cli:{user}@{socket.gethostname()}"


def _require_free(host: str, port: int, option: str) -> None:
    """CliError naming ``option`` when host:port cannot be bound (something listens there); 0 is any port."""
    if port == 0:
        return
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise CliError(f"{option} {port}: {host}:{port} cannot be used ({exc.strerror}); "
                           f"choose another with {option}") from None


@click.group(cls=_Cli)
def main() -> None:
    """crm-qb keeps a CRM and QuickBooks Online in step."""


@main.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the schema to the latest migration."""
    from crm_qb.app import upgrade_schema

    upgrade_schema(_app())
    click.echo("database is at the latest schema")


@main.group()
def connection() -> None:
    """Manage connections (one CRM account linked to one QBO company)."""


@connection.command("add")
@click.option("--crm", "crm_kind", type=click.Choice(["rest", "hubspot"]), default="rest", show_default=True,
              help="The CRM's kind: the REST contract (docs/architecture.md §5) or HubSpot (README, \"HubSpot\").")
@click.option("--crm-url", default=None, help="Base URL of the CRM's API (rest: required; hubspot: default "
                                              "CRM_QB_HUBSPOT_API_BASE).")
@click.option("--crm-token", default=None, help="Bearer token crm-qb uses to call the CRM (rest: required).")
@click.option("--hubspot-token", default=None, help="hubspot: a private-app access token.")
@click.option("--hubspot-oauth", is_flag=True, help="hubspot: connect later through HubSpot's OAuth install.")
@click.option("--hubspot-client-secret", default=None,
              help="hubspot: the secret that signs this portal's webhooks and card requests, when it is not "
                   "CRM_QB_HUBSPOT_CLIENT_SECRET (e.g. a private app's client secret).")
@click.option("--name", default=None, help="A name for people to recognise the connection by.")
@click.option("--crm-web-origin", default=None,
              help="Where the CRM's web pages live (the only origin that may frame the panel); default: the "
                   "origin of --crm-url (hubspot: CRM_QB_HUBSPOT_APP_BASE).")
def connection_add(crm_kind: str, crm_url: str | None, crm_token: str | None, hubspot_token: str | None,
                   hubspot_oauth: bool, hubspot_client_secret: str | None, name: str | None,
                   crm_web_origin: str | None) -> None:
    """Create a connection and print it as JSON (the API key and hook secret are shown only here)."""
    from crm_qb.connections import create_connection
    from crm_qb.runtime import runtime

    app = _app()
    with app.app_context():
        if crm_kind == "hubspot":
            created = _add_hubspot(app, crm_url, hubspot_token or crm_token, hubspot_oauth, hubspot_client_secret,
                                   name, crm_web_origin)
        else:
            if not crm_url or not crm_token:
                raise CliError("--crm-url and --crm-token are required for a CRM of kind rest")
            created = create_connection(runtime(app).secrets, crm_url=crm_url, crm_token=crm_token, name=name,
                                        crm_web_origin=crm_web_origin)
        click.echo(json.dumps(created.as_json()))


def _add_hubspot(app: Any, api_base: str | None, token: str | None, oauth: bool, client_secret: str | None,
                 name: str | None, web_origin: str | None) -> Any:
    """A HubSpot connection: with a private-app token (portal read, properties created) or waiting for OAuth."""
    from crm_qb.connections import create_hubspot_connection
    from crm_qb.crm.hubspot.connector import set_up_portal
    from crm_qb.runtime import runtime

    rt = runtime(app)
    base = api_base or rt.settings.hubspot_api_base
    if bool(token) == oauth:
        raise CliError("give either --hubspot-token (a private app) or --hubspot-oauth (HubSpot's OAuth install)")
    if oauth and not rt.hubspot.oauth_ready:
        raise CliError("--hubspot-oauth needs CRM_QB_HUBSPOT_CLIENT_ID and CRM_QB_HUBSPOT_CLIENT_SECRET")
    portal = set_up_portal(base, token) if token else None
    return create_hubspot_connection(rt.secrets, api_base=base, token=token, name=name, portal_id=portal,
                                     client_secret=client_secret,
                                     web_origin_url=web_origin or rt.settings.hubspot_app_base)


@connection.command("list")
def connection_list() -> None:
    """List connections, one JSON object a line."""
    from crm_qb.connections import describe, list_connections

    app = _app()
    with app.app_context():
        for item in list_connections():
            click.echo(json.dumps(describe(item)))


@connection.command("show")
@click.argument("connection_id", type=int)
def connection_show(connection_id: int) -> None:
    """Show one connection as JSON (no secrets)."""
    from crm_qb.connections import describe

    app = _app()
    with app.app_context():
        click.echo(json.dumps(describe(_connection(connection_id)), indent=2))


@connection.command("configure")
@click.argument("connection_id", type=int)
@click.option("--set", "assignments", multiple=True, metavar="sync.KEY=VALUE|panel.KEY=VALUE",
              help="e.g. sync.direction=both, sync.conflict_policy=qbo_wins, sync.fields.notes=off, "
                   "panel.push_summary=true (repeatable).")
@click.option("--crm-web-origin", default=None,
              help="Where the CRM's web pages live (the panel's frame-ancestors); 'default' goes back to the "
                   "origin of the CRM's API URL.")
def connection_configure(connection_id: int, assignments: tuple[str, ...], crm_web_origin: str | None) -> None:
    """Change a connection's settings (validated; a bad key or value exits 2) and print them as JSON.

    Prints the sync settings object; when a panel setting or the web origin is given, an object with
    ``sync``, ``panel`` and ``crm_web_origin`` instead.
    """
    from crm_qb.connections import crm_web_origin as web_origin_of
    from crm_qb.connections import set_crm_web_origin
    from crm_qb.panel_settings import PANEL_KEY, apply_panel_assignments, panel_settings_of
    from crm_qb.runtime import runtime
    from crm_qb.sync.settings import SETTINGS_KEY, SyncSettingsError, apply_assignments, sync_settings_of
    from crm_qb.sync.settings_changes import store_settings, turned_on

    panel = [a for a in assignments if a.strip().startswith(PANEL_KEY + ".")]
    sync = [a for a in assignments if a not in panel]
    unknown = [a for a in sync if not a.strip().startswith(SETTINGS_KEY + ".")]
    if unknown:
        raise SyncSettingsError(f"--set {unknown[0]!r}: unknown setting; settings are named sync.<key> or "
                                "panel.<key> (README, \"Per-connection settings\")")
    app = _app()
    with app.app_context():
        found = _connection(connection_id)
        changed = store_settings(found, apply_panel_assignments(apply_assignments(found.settings, sync), panel)
                                 if panel else apply_assignments(found.settings, sync), _who())
        if turned_on(changed):
            runtime(app).jobs.catch_up(connection_id)  # both sides, from where their polls stopped
        if crm_web_origin is not None:
            set_crm_web_origin(connection_id, None if crm_web_origin == "default" else crm_web_origin)
        if not panel and crm_web_origin is None:
            click.echo(json.dumps(found.settings[SETTINGS_KEY]))
            return
        click.echo(json.dumps({"sync": sync_settings_of(found.settings).as_json(),
                               "panel": panel_settings_of(found.settings).as_json(),
                               "crm_web_origin": web_origin_of(found)}))


@connection.command("rotate")
@click.argument("connection_id", type=int)
@click.option("--api-key", "api_key", is_flag=True, help="A new API key; the old one stops working at once.")
@click.option("--hook-secret", "hook_secret", is_flag=True,
              help="A new CRM hook secret; hooks signed with the old one are refused (401) from now on.")
@click.option("--panel-secret", "panel_secret", is_flag=True,
              help="A new panel signing secret; every panel URL and embed token made before stops working.")
def connection_rotate(connection_id: int, api_key: bool, hook_secret: bool, panel_secret: bool) -> None:
    """Replace a connection's credentials and print the new ones as JSON (shown only here)."""
    from crm_qb import connections as conns
    from crm_qb.runtime import runtime

    if not (api_key or hook_secret or panel_secret):
        raise click.UsageError("name what to rotate: --api-key, --hook-secret and/or --panel-secret")
    app = _app()
    rotated: dict[str, Any] = {"id": connection_id}
    with app.app_context():
        _connection(connection_id)
        if api_key:
            rotated["api_key"] = conns.rotate_api_key(connection_id)
        if hook_secret:
            rotated["crm_hook_secret"] = conns.rotate_hook_secret(runtime(app).secrets, connection_id)
        if panel_secret:
            conns.rotate_panel_secret(connection_id)
            rotated["panel_secret"] = "rotated"
    log.info("connection %s: rotated %s", connection_id, ", ".join(k for k in rotated if k != "id"))
    click.echo(json.dumps(rotated))


def web_processes() -> int:
    """``crm-qb web``'s default process count: one per CPU this process may run on, at least 2.

    Fewer processes with more threads each cost less CPU per webhook than more processes (less switching between
    processes, larger commit groups; docs/benchmarks-history.md): on 2 CPUs, 2 x 8 used 1.5 ms a webhook where 4 x 4
    used 2.1 ms (SQLite). Two keep a second process serving while one restarts.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 2)
    return max(2, min(cpus, 64))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=DEFAULT_WEB_PORT, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=lambda: web_processes(), show_default="one per CPU, at least 2",
              type=click.IntRange(1, 64), help="gunicorn processes")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 64),
              help="threads per process (gthread); concurrent webhooks of a process share one commit")
@click.option("--access-log/--no-access-log", default=False, show_default=True)
def web(host: str, port: int, workers: int, threads: int, access_log: bool) -> None:
    """Serve the web app (webhooks, API, panel, admin) with gunicorn."""
    _settings()  # fail here, with a clear message, rather than in every gunicorn worker
    _require_free(host, port, "--port")
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers", str(workers),
            "--worker-class", "gthread", "--threads", str(threads),
            "--timeout", "30", "--graceful-timeout", "10", "--keep-alive", "5",
            "--config", "python:crm_qb.gunicorn_conf"]
    if access_log:
        argv += ["--access-logfile", "-"]
    os.execv(sys.executable, [*argv, "crm_qb.app:create_app()"])


@main.command()
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.option("--queues", default=None, metavar="NAMES",
              help="Serve only these queues, comma-separated (inbound,sync,scheduled,backfill; default all). "
                   "E.g. inbound,sync,scheduled: a worker that never takes a backfill.")
@click.option("--nice", type=click.IntRange(0, 19), default=0, show_default=True,
              help="Run at this CPU niceness (Linux nice, 0 to 19): e.g. --queues backfill --nice 10, a worker for "
                   "first syncs and their backlog that yields the CPU to live drains.")
@click.option("--bulk-nice", type=click.IntRange(0, 19), default=DEFAULT_BULK_NICE, show_default=True,
              help="Run each bulk job (the backfill queue) on a thread at this niceness (Linux; a worker started "
                   "nicer keeps its own), so a worker of every queue gives the CPU to the live drains of the "
                   "host's other workers; 0: off.")
@click.option("--idle", is_flag=True,
              help="Run at Linux's idle CPU priority (SCHED_IDLE): the worker's jobs get a core only when no other "
                   "process wants one. Only with --queues backfill: e.g. --queues backfill --nice 10 --idle.")
@click.option("--bulk-idle/--no-bulk-idle", default=True, show_default=True,
              help="The bulk child (--bulk-process) runs --idle as well as at --bulk-nice (Linux), so live drains "
                   "never wait for its CPU; --no-bulk-idle: at --bulk-nice only.")
@click.option("--bulk-process/--no-bulk-process", default=True, show_default=True,
              help="Serve the backfill queue from a child process (crm-qb worker --queues backfill, at --bulk-nice) "
                   "and the live queues here, so live work never waits for a first sync; --no-bulk-process: run "
                   "bulk jobs in this worker, between live ones. A --burst worker always runs them itself.")
@click.option("--exit-with-parent", "parent_pid", type=int, default=None, hidden=True)
def worker(burst: bool, queues: str | None, nice: int, idle: bool, bulk_idle: bool, bulk_nice: int,
           bulk_process: bool, parent_pid: int | None) -> None:
    """Run an RQ worker for every queue (or those of --queues)."""
    from workers.bulk_process import BulkProcess, child_argv, exit_with_parent
    from workers.queues import BACKFILL, QUEUE_NAMES, parse_queue_names
    from workers.worker import lower_priority, run_worker

    try:
        served = parse_queue_names(queues) if queues is not None else QUEUE_NAMES
    except ValueError as exc:
        raise click.UsageError(f"--queues: {exc}") from None
    if parent_pid is not None:
        exit_with_parent(parent_pid)
    _setup_logging()
    child = None
    if bulk_process and not burst and BACKFILL in served and len(served) > 1:
        served = tuple(name for name in served if name != BACKFILL)
        child = BulkProcess(child_argv(bulk_nice, bulk_idle))
    try:
        lower_priority(nice, served, idle)  # first, so that every thread the worker starts inherits it
    except ValueError as exc:
        raise click.UsageError(f"--idle: {exc}") from None
    app = _app()
    runtime_redis(app).ping()  # an unreachable Redis is one line, not a traceback from inside RQ
    if child is not None:
        child.start()
    try:
        run_worker(app, burst=burst, queues=served, bulk_nice=bulk_nice,
                   on_stop=child.request_stop if child is not None else None)
    finally:
        if child is not None:
            child.stop()


@main.command()
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
def replay(status: str, connection_id: int | None) -> None:
    """Re-run inbound events that failed (or are still pending), e.g. after fixing a CRM outage."""
    from workers.maintenance import replay_events

    app = _app()
    with app.app_context():
        if connection_id is not None:
            _connection(connection_id)
        count = replay_events(status, connection_id)
    click.echo(f"{count} event(s) queued for processing")


@main.group()
def sandbox() -> None:
    """Local stand-ins for QuickBooks Online and a CRM."""


@sandbox.command("qbo")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=DEFAULT_QBO_SANDBOX_PORT, show_default=True, type=click.IntRange(0, 65535))
@click.option("--db", "persist_path", default=None, help="Persist to this SQLite file (default: in memory).")
def sandbox_qbo(host: str, port: int, persist_path: str | None) -> None:
    """Serve the local QBO sandbox; prints one JSON line (its /_sandbox/info) when ready."""
    from crm_qb.sandbox.qbo.server import run

    _require_free(host, port, "--port")
    run(host=host, port=port, persist_path=persist_path)


@sandbox.command("crm")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=DEFAULT_CRM_SANDBOX_PORT, show_default=True, type=click.IntRange(0, 65535))
@click.option("--db", "persist_path", default=None, help="Persist to this SQLite file (default: in memory).")
def sandbox_crm(host: str, port: int, persist_path: str | None) -> None:
    """Serve the reference CRM; prints one JSON line (its /_sandbox/info) when ready."""
    from crm_qb.sandbox.crm.server import run

    _require_free(host, port, "--port")
    run(host=host, port=port, persist_path=persist_path)


@sandbox.command("hubspot")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=DEFAULT_HUBSPOT_SANDBOX_PORT, show_default=True, type=click.IntRange(0, 65535))
@click.option("--db", "persist_path", default=None, help="Persist to this SQLite file (default: in memory).")
@click.option("--portal-id", default=62515, show_default=True, type=int)
def sandbox_hubspot(host: str, port: int, persist_path: str | None, portal_id: int) -> None:
    """Serve the local HubSpot; prints one JSON line (its /_sandbox/info) when ready."""
    from crm_qb.sandbox.hubspot.server import run

    _require_free(host, port, "--port")
    run(host=host, port=port, persist_path=persist_path, portal_id=portal_id)


@main.command()
@click.option("--port", default=DEFAULT_WEB_PORT, show_default=True, type=click.IntRange(1, 65535))
@click.option("--qbo-sandbox-port", default=DEFAULT_QBO_SANDBOX_PORT, show_default=True,
              type=click.IntRange(1, 65535))
@click.option("--crm-sandbox-port", default=DEFAULT_CRM_SANDBOX_PORT, show_default=True,
              type=click.IntRange(1, 65535))
@click.option("--crm", "crm_kind", type=click.Choice(["rest", "hubspot"]), default="rest", show_default=True,
              help="The demo CRM: the reference CRM (rest) or the local HubSpot.")
@click.option("--hubspot-sandbox-port", default=DEFAULT_HUBSPOT_SANDBOX_PORT, show_default=True,
              type=click.IntRange(1, 65535))
@click.option("--verbose", is_flag=True, help="Show every process's output here instead of in <instance>/logs/.")
def up(port: int, qbo_sandbox_port: int, crm_sandbox_port: int, crm_kind: str, hubspot_sandbox_port: int,
       verbose: bool) -> None:
    """Run everything on embedded defaults in the foreground: sandboxes, web, worker, scheduler."""
    from crm_qb.up import run_up

    settings = _settings()
    crm_option, crm_port = (("--hubspot-sandbox-port", hubspot_sandbox_port) if crm_kind == "hubspot"
                            else ("--crm-sandbox-port", crm_sandbox_port))
    for option, value in (("--port", port), ("--qbo-sandbox-port", qbo_sandbox_port), (crm_option, crm_port)):
        _require_free("127.0.0.1", value, option)
    _setup_logging(settings)
    sys.exit(run_up(settings, web_port=port, qbo_port=qbo_sandbox_port, crm_port=crm_port, crm_kind=crm_kind,
                    verbose=verbose))


@main.command("admin-url")
@click.argument("connection_id", type=int)
@click.option("--expires-in", default=60, show_default=True, type=click.IntRange(1, 7 * 24 * 60),
              help="Minutes the link stays valid.")
@click.option("--revoke-sessions", is_flag=True,
              help="First end every admin session and void every admin link of the connection.")
def admin_url(connection_id: int, expires_in: int, revoke_sessions: bool) -> None:
    """Print a signed, expiring link to the connection's admin page (under CRM_QB_PUBLIC_URL)."""
    from crm_qb.connections import revoke_admin_sessions
    from crm_qb.runtime import runtime
    from crm_qb.web.signing import admin_url as signed_admin_url

    app = _app()
    settings = runtime(app).settings
    with app.app_context():
        epoch = revoke_admin_sessions(connection_id) if revoke_sessions else _connection(connection_id).admin_epoch
    if revoke_sessions:
        click.echo(f"every earlier admin link and session of connection {connection_id} is revoked", err=True)
    click.echo(signed_admin_url(settings.public_url, settings.secret_key, connection_id, expires_in * 60,
                                epoch=epoch))


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
        _connection(connection_id)
        click.echo(json.dumps(configure_followups(connection_id, changes, reset=reset, who=_who()).to_json(), indent=2))


@followups.command("scan")
@click.argument("connection_id", type=int)
@click.option("--invoice", "invoice_id", default=None, help="Only this QBO invoice id.")
def followups_scan(connection_id: int, invoice_id: str | None) -> None:
    """Run the follow-up scan now (create due tasks, complete stale ones, tags); prints what it did."""
    from crm_qb.runtime import runtime
    from crm_qb.sync.followups.service import scan_connection, scan_invoice

    _setup_logging(default="WARNING")
    app = _app()
    with app.app_context():
        _connection(connection_id)
        services = runtime(app).sync_services()
        result = (scan_connection(services, connection_id) if invoice_id is None
                  else scan_invoice(services, connection_id, invoice_id))
    click.echo(json.dumps(result.to_json()))


@main.group()
def time() -> None:
    """Billable time (CRM activities → QBO TimeActivity): default item, user mappings, status."""


@time.command("configure")
@click.argument("connection_id", type=int)
@click.option("--default-item", default=None, help="QBO service item id for time whose service names no item.")
@click.option("--no-default-item", "clear_default_item", is_flag=True, help="Remove the default item.")
@click.option("--map-user", "map_users", multiple=True, metavar="CRM_USER=Employee:ID|Vendor:ID",
              help="Record a CRM user's time for this QBO employee or vendor (repeatable).")
@click.option("--enable/--disable", "enabled", default=None, help="Turn the time sync on or off.")
@click.option("--activity-url", default=None,
              help="The link back to an activity in each description: {crm}, {contact_id}, {activity_id}.")
def time_configure(connection_id: int, default_item: str | None, clear_default_item: bool,
                   map_users: tuple[str, ...], enabled: bool | None, activity_url: str | None) -> None:
    """Validate (in QBO) and store time settings, then send the time they held; prints the status as JSON."""
    from crm_qb.runtime import runtime
    from crm_qb.sync.time.admin import configure

    mapping: dict[str, str] = {}
    for item in map_users:
        user, sep, ref = item.partition("=")
        if not sep or not user.strip() or not ref.strip():
            raise click.BadParameter(f"expected CRM_USER=Employee:ID or CRM_USER=Vendor:ID, got {item!r}",
                                     param_hint="--map-user")
        mapping[user.strip()] = ref.strip()
    _setup_logging(default="WARNING")
    app = _app()
    with app.app_context():
        _connection(connection_id)
        result = configure(runtime(app).sync_services(), connection_id, default_item=default_item,
                           clear_default_item=clear_default_item, map_users=mapping, enabled=enabled,
                           activity_url=activity_url, who=_who())
    click.echo(json.dumps(result, indent=2))


@time.command("status")
@click.argument("connection_id", type=int)
def time_status(connection_id: int) -> None:
    """Print the connection's time settings, entries by state, users and held time as JSON."""
    from crm_qb.sync.time.admin import status

    with _app().app_context():
        _connection(connection_id)
        click.echo(json.dumps(status(connection_id), indent=2))


@main.command("panel-url")
@click.argument("connection_id", type=int)
@click.argument("crm_contact_id")
@click.option("--ttl", type=click.IntRange(min=1, max=365 * 86400), default=None,
              help="Seconds the link stays valid (default 3600; for '*' 30 days).")
def panel_url(connection_id: int, crm_contact_id: str, ttl: int | None) -> None:
    """Print a signed contact-panel URL; for contact '*', the CRM iframe URL template (an embed credential)."""
    from crm_qb.runtime import runtime
    from crm_qb.web import panel_tokens as tokens
    from crm_qb.web.routing import is_contact_id

    app = _app()
    secret, public = runtime(app).settings.secret_key, runtime(app).settings.public_url
    with app.app_context():
        found = _connection(connection_id)
        if crm_contact_id == tokens.ALL_CONTACTS:
            token = tokens.make_embed_token(secret, found, ttl or tokens.DEFAULT_EMBED_TTL_SECONDS)
            click.echo(tokens.embed_url_template(public, connection_id, token))
            return
        if not is_contact_id(crm_contact_id):
            raise click.BadParameter("longer than 128 characters or with a NUL: no contact has such an id",
                                     param_hint="CRM_CONTACT_ID")
        token = tokens.make_panel_token(secret, found, crm_contact_id, ttl or tokens.DEFAULT_TTL_SECONDS)
        click.echo(tokens.panel_url(public, connection_id, crm_contact_id, token))


@connection.command("demo", hidden=True)
@click.option("--crm-url", required=True)
@click.option("--crm-token", required=True)
@click.option("--realm", "realm_id", required=True)
@click.option("--web-url", required=True)
@click.option("--backfill/--no-backfill", default=True,
              help="Start the first sync (it starts by itself once previewed), or for a connection that has "
                   "synced before, enqueue a backfill that catches up. --no-backfill: a new connection's first "
                   "sync waits, opened, for `crm-qb sync preview` and `crm-qb sync start`, as a user's does.")
def connection_demo(crm_url: str, crm_token: str, realm_id: str, web_url: str, backfill: bool) -> None:
    """For ``crm-qb up``: connect the reference CRM to a sandbox realm and print the connection's id as JSON.

    Its secrets go straight to the reference CRM (as a CRM vendor would configure them); none is printed, so
    none ends up in ``up``'s output. The demo connection opts in to starting its first sync by itself.
    """
    from crm_qb.demo import start_demo_sync, wire_demo

    app = _app()
    made = wire_demo(app, crm_url=crm_url, crm_token=crm_token, realm_id=realm_id, web_url=web_url)
    if backfill:
        start_demo_sync(app, made["id"])
    click.echo(json.dumps({"id": made["id"], "realm_id": made["realm_id"]}))


@connection.command("demo-hubspot", hidden=True)
@click.option("--api-base", required=True)
@click.option("--token", required=True)
@click.option("--realm", "realm_id", required=True)
@click.option("--web-url", required=True)
@click.option("--backfill/--no-backfill", default=True, help="Enqueue the backfill that links existing contacts.")
def connection_demo_hubspot(api_base: str, token: str, realm_id: str, web_url: str, backfill: bool) -> None:
    """For ``crm-qb up --crm hubspot``: connect the local HubSpot to a sandbox realm; print the id as JSON."""
    from crm_qb.demo_hubspot import wire_hubspot_demo
    from crm_qb.runtime import runtime

    app = _app()
    made = wire_hubspot_demo(app, api_base=api_base, token=token, realm_id=realm_id, web_url=web_url)
    if backfill:
        runtime(app).jobs.backfill(made["id"])
    click.echo(json.dumps({"id": made["id"], "realm_id": made["realm_id"], "portal_id": made["portal_id"]}))


@main.command("backfill")
@click.argument("connection_id", type=int)
@click.option("--dry-run", is_flag=True, help="Write nothing; report what a backfill would do.")
@click.option("--enqueue", is_flag=True, help="Hand the backfill to a worker and print the job id.")
def backfill_command(connection_id: int, dry_run: bool, enqueue: bool) -> None:
    """Sync every QBO customer and transaction and every CRM contact of a connection; set its CDC cursor."""
    from crm_qb.runtime import runtime
    from crm_qb.sync.pipeline.backfill import check_backfillable, run_backfill

    if dry_run and enqueue:
        raise click.UsageError("--dry-run runs in the foreground; leave out --enqueue")
    _setup_logging(default="WARNING")
    app = _app()
    with app.app_context():
        _connection(connection_id)
        check_backfillable(connection_id)
        if enqueue:
            queued = runtime(app).jobs.backfill(connection_id)
            click.echo(queued.job_id if queued.queued else f"{queued.job_id} (already waiting or running)")
            return
        runtime(app).qbo()  # missing QBO settings: one line naming them, before any work starts
        services = runtime(app).sync_services()
        report = run_backfill(services, connection_id, dry_run=dry_run, progress=_progress)
    click.echo(json.dumps(report.to_json()))


def _progress(phase: str, counts: Any) -> None:
    click.echo(f"{phase} page {counts.pages}: seen={counts.seen} linked={counts.linked} created={counts.created} "
               f"updated={counts.updated} review={counts.review} unchanged={counts.unchanged} "
               f"skipped={counts.skipped} failed={counts.failed}", err=True)


def runtime_redis(app: Any) -> Any:
    """The app's Redis client (for a reachability check before a long-running command starts)."""
    from crm_qb.runtime import runtime

    return runtime(app).redis


def _register_console() -> None:
    from crm_qb.cli_console import register

    register(main, connection, _app, _connection, _who, _setup_logging)


_register_console()


def _add_sync_commands() -> None:
    from crm_qb.cli_sync import sync

    main.add_command(sync)


_add_sync_commands()


if __name__ == "__main__":
    main()
