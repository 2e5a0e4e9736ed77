"""``crm-qb sync``: the first sync and history imports from a shell (DESIGN §11), the same objects as the API.

- ``sync preview <id>`` computes the first sync's preview here (or shows the one computed) and prints
  ``{"link", "create_in_crm", "create_in_qbo", "review", "transactions", "followups", …}``; with ``--from`` and
  ``--to`` it opens a history import of that date range and previews it instead.
- ``sync start <id>`` starts the run (a no-op once started): a worker runs it, or this process with ``--wait``.
- ``sync status <id>`` prints ``{"state", "phase", "done", "total", "failed", …}``.
- ``sync report <id>`` prints every record's outcome as JSON lines, or CSV with ``--csv``; ``sync retry <id>``
  runs the failed records again; ``sync configure <id> --auto-start`` makes the first sync start by itself.
``--history`` points start/status/report/retry at the connection's latest history import.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import click


def _cli() -> Any:
    from crm_qb import cli  # late: ``python -m crm_qb.cli`` imports this module while defining its group

    return cli


def _echo(value: Any) -> None:
    click.echo(json.dumps(value))


@click.group()
def sync() -> None:
    """The first sync and history imports: preview, start, status, report, retry."""


def _run(connection_id: int, history: bool) -> Any:
    from crm_qb.sync.firstsync import store
    from crm_qb.sync.firstsync.service import SyncRunRefused

    _cli()._connection(connection_id)
    run = store.latest(connection_id, store.HISTORY if history else store.FIRST)
    if run is None:
        what = "history import (crm-qb sync preview <id> --from … --to …)" if history else \
            "first sync (crm-qb sync preview <id>)"
        raise SyncRunRefused(f"connection {connection_id} has no {what} yet")
    return run


@sync.command("preview")
@click.argument("connection_id", type=int)
@click.option("--from", "date_from", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="History import: first transaction date (YYYY-MM-DD).")
@click.option("--to", "date_to", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="History import: last transaction date (YYYY-MM-DD).")
@click.option("--refresh", is_flag=True, help="Compute the first sync's preview again.")
def preview(connection_id: int, date_from: Any, date_to: Any, refresh: bool) -> None:
    """Compute (or show) the preview and print it as one JSON object."""
    from crm_qb.runtime import runtime
    from crm_qb.sync.firstsync import service, store
    from crm_qb.sync.pipeline.backfill import check_backfillable

    if (date_from is None) != (date_to is None):
        raise click.UsageError("a history import needs both --from and --to")
    cli = _cli()
    cli._setup_logging(default="WARNING")
    app = cli._app()
    with app.app_context():
        cli._connection(connection_id)
        check_backfillable(connection_id)
        if date_from is not None:
            run = service.open_history(connection_id, _day(date_from), _day(date_to))
        else:
            run = service.open_first_sync(None, connection_id)
        if run.state in (store.WAITING, store.PREVIEWING) or (refresh and run.state == store.PREVIEWED):
            runtime(app).qbo()  # missing QBO settings: one line naming them, before any work starts
            settings = runtime(app).settings
            service.preview_here(runtime(app).sync_services(), run.id, page_size=settings.backfill_page_size)
        _echo(service.preview_json(store.fresh(run.id)))


def _day(value: Any) -> date:
    return value.date()  # type: ignore[no-any-return]


@sync.command("start")
@click.argument("connection_id", type=int)
@click.option("--history", is_flag=True, help="The latest history import instead of the first sync.")
@click.option("--wait", is_flag=True, help="Run it in this process and print the status at the end.")
def start(connection_id: int, history: bool, wait: bool) -> None:
    """Start the run (a no-op once started) and print its status."""
    from crm_qb.runtime import runtime
    from crm_qb.sync.firstsync import service, store

    cli = _cli()
    cli._setup_logging(default="WARNING")
    app = cli._app()
    with app.app_context():
        run_id = _run(connection_id, history).id
        service.start(runtime(app).jobs, run_id)
        if wait:
            runtime(app).qbo()
            services = runtime(app).sync_services()
            service.execute(services, run_id, page_size=runtime(app).settings.backfill_page_size)
        _echo(service.status_json(store.fresh(run_id)))


@sync.command("status")
@click.argument("connection_id", type=int)
@click.option("--history", is_flag=True, help="The latest history import instead of the first sync.")
def status(connection_id: int, history: bool) -> None:
    """Print the run's status as one JSON object."""
    from crm_qb.sync.firstsync import service

    with _cli()._app().app_context():
        _echo(service.status_json(_run(connection_id, history)))


@sync.command("report")
@click.argument("connection_id", type=int)
@click.option("--history", is_flag=True, help="The latest history import instead of the first sync.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV (a header line, one line per record).")
@click.option("--failed", is_flag=True, help="Only the records that failed (JSON lines).")
def report(connection_id: int, history: bool, as_csv: bool, failed: bool) -> None:
    """Print every record's outcome (JSON lines, or CSV)."""
    from crm_qb.sync.firstsync import report as reports
    from crm_qb.sync.firstsync import store

    with _cli()._app().app_context():
        run_id = _run(connection_id, history).id
        if as_csv:
            for line in reports.csv_lines(run_id):
                click.echo(line, nl=False)
            return
        rows = store.failed_records(run_id) if failed else store.walk(run_id, store.RUN)
        for record in rows:
            _echo(reports.record_json(record))


@sync.command("retry")
@click.argument("connection_id", type=int)
@click.option("--history", is_flag=True, help="The latest history import instead of the first sync.")
@click.option("--wait", is_flag=True, help="Retry in this process and print the status at the end.")
def retry(connection_id: int, history: bool, wait: bool) -> None:
    """Run the failed records of a finished run again; print the status."""
    from crm_qb.runtime import runtime
    from crm_qb.sync.firstsync import service, store

    cli = _cli()
    cli._setup_logging(default="WARNING")
    app = cli._app()
    with app.app_context():
        run = _run(connection_id, history)
        run_id = run.id
        if run.state != store.DONE:
            raise service.SyncRunRefused(f"run {run_id} is {run.state}; retry its failed records once it is done")
        if wait:
            service.retry_failed(runtime(app).sync_services(), run_id)
        else:
            runtime(app).jobs.sync_retry(run_id)
        _echo(service.status_json(store.fresh(run_id)))


@sync.command("configure")
@click.argument("connection_id", type=int)
@click.option("--auto-start/--no-auto-start", "auto_start", default=None,
              help="Start the first sync by itself once its preview is computed.")
def configure(connection_id: int, auto_start: bool | None) -> None:
    """Show or change the first-sync setting; prints it as JSON."""
    from crm_qb.db import db
    from crm_qb.sync.firstsync.settings import auto_start_of, with_auto_start

    with _cli()._app().app_context():
        connection = _cli()._connection(connection_id)
        if auto_start is not None:
            connection.settings = with_auto_start(connection.settings, auto_start)
            db.session.commit()
        _echo({"auto_start": auto_start_of(connection.settings)})
