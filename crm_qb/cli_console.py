"""The admin console's operations in the ``crm-qb`` command, so nothing is page-only (DESIGN §11).

``crm-qb review list|resolve``, ``crm-qb failures list|retry|dismiss``, ``crm-qb audit``, ``crm-qb connection
health|sync-now``; settings are ``crm-qb connection configure`` (audited). Each prints JSON; each acts through
the same domain functions as the pages and the API, in this process (``review resolve`` and ``sync-now`` do the
work here, under the connection's lock, unless ``--enqueue`` hands it to a worker).
"""

from __future__ import annotations

import json
from typing import Any

import click


def register(main: click.Group, connection: click.Group, app: Any, connection_of: Any, who: Any,
             logging_setup: Any) -> None:
    """Add the console's commands to ``main`` and to its ``connection`` group."""
    ctx = _Context(app, connection_of, who, logging_setup)
    main.add_command(_review_group(ctx))
    main.add_command(_failures_group(ctx))
    main.add_command(_audit_command(ctx))
    main.add_command(_conflicts_group(ctx))
    connection.add_command(_health_command(ctx))
    connection.add_command(_sync_now_command(ctx))


class _Context:
    """What the commands borrow from ``crm_qb.cli``: the app factory, the connection lookup, who acts."""

    def __init__(self, app: Any, connection_of: Any, who: Any, logging_setup: Any) -> None:
        self.app, self.connection_of, self.who, self.logging_setup = app, connection_of, who, logging_setup


def _echo(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _review_group(ctx: _Context) -> click.Group:
    @click.group("review")
    def review() -> None:
        """Records waiting for a person (ambiguous matches, merges of two linked records)."""

    @review.command("list")
    @click.argument("connection_id", type=int)
    @click.option("--page", type=click.IntRange(min=1), default=1, show_default=True,
                  help="Which page of waiting records (oldest first).")
    @click.option("--per-page", type=click.IntRange(1, 200), default=50, show_default=True,
                  help="Records a page, as the API's per_page (at most 200).")
    def review_list(connection_id: int, page: int, per_page: int) -> None:
        """Print one page of the waiting records with their candidates, read from both sides now."""
        from crm_qb.web.admin_pages import waiting_records

        ctx.logging_setup(default="WARNING")
        with ctx.app().app_context():
            _echo(waiting_records(ctx.connection_of(connection_id), page, per_page).as_json())

    @review.command("resolve")
    @click.argument("connection_id", type=int)
    @click.argument("link_id", type=int)
    @click.argument("action", type=click.Choice(["link", "create", "ignore", "recheck", "merge", "deactivate"]))
    @click.option("--candidate", default=None, help="The candidate's id (for link).")
    @click.option("--enqueue", is_flag=True, help="Hand it to a worker and print the job id.")
    def review_resolve(connection_id: int, link_id: int, action: str, candidate: str | None, enqueue: bool) -> None:
        """Take ACTION on one waiting record (LINK_ID from ``review list``)."""
        from crm_qb.runtime import runtime
        from crm_qb.sync.customers.review import check_action, resolve

        ctx.logging_setup(default="WARNING")
        app = ctx.app()
        with app.app_context():
            ctx.connection_of(connection_id)
            check_action(connection_id, link_id, action, candidate)
            if enqueue:
                queued = runtime(app).jobs.resolve_review(connection_id, link_id, action, candidate, ctx.who())
                _echo({"job_id": queued.job_id, "queued": queued.queued})
                return
            outcome = resolve(runtime(app).sync_services(), connection_id, link_id, action, candidate,
                              who=ctx.who())
            _echo({"link_id": link_id, "action": action, "outcome": outcome})

    return review


def _failures_group(ctx: _Context) -> click.Group:
    @click.group("failures")
    def failures() -> None:
        """Events and records that failed: list, retry, dismiss."""

    @failures.command("list")
    @click.argument("connection_id", type=int)
    def failures_list(connection_id: int) -> None:
        """Print the failures with the reason in words, the raw error, attempts and the last try."""
        from crm_qb.sync.failures import list_failures

        ctx.logging_setup(default="WARNING")
        with ctx.app().app_context():
            _echo({"failures": [f.as_json() for f in list_failures(ctx.connection_of(connection_id))]})

    def _verb(name: str) -> click.Command:
        @click.command(name)
        @click.argument("connection_id", type=int)
        @click.option("--event", "event_id", type=int, default=None, help="Only this failed event.")
        @click.option("--record", "record_id", type=int, default=None, help="Only this failed record (audit id).")
        @click.option("--sync-record", "sync_record_id", type=int, default=None,
                      help="Only this failed record of a first sync or history import.")
        def command(connection_id: int, event_id: int | None, record_id: int | None,
                    sync_record_id: int | None) -> None:
            chosen = {k: v for k, v in (("event", event_id), ("record", record_id), ("sync_record", sync_record_id))
                      if v is not None}
            if len(chosen) > 1:
                raise click.UsageError("give one of --event, --record or --sync-record")
            from crm_qb.runtime import runtime
            from crm_qb.sync import failures as store

            kind, one = next(iter(chosen.items()), ("all", None))
            ctx.logging_setup(default="WARNING")
            app = ctx.app()
            with app.app_context():
                found = ctx.connection_of(connection_id)
                count = store.retry(found, kind, one, runtime(app).jobs, ctx.who()) if name == "retry" \
                    else store.dismiss(found, kind, one, ctx.who())
            _echo({"retried" if name == "retry" else "dismissed": count})

        command.help = ("Put failures back to work (all, or one with --event/--record/--sync-record)."
                        if name == "retry" else
                        "Take failures off the list (all, or one with --event/--record/--sync-record).")
        return command

    failures.add_command(_verb("retry"))
    failures.add_command(_verb("dismiss"))
    return failures


def _audit_command(ctx: _Context) -> click.Command:
    @click.command("audit")
    @click.argument("connection_id", type=int)
    @click.option("--record", default=None, help="An id, or part of a customer's name.")
    @click.option("--kind", default=None, help="customer, contact, link, merge, conflict, review, settings, …")
    @click.option("--outcome", default=None, help="ok, failed, skipped, …")
    @click.option("--since", default=None, help="From this date (YYYY-MM-DD, UTC).")
    @click.option("--until", default=None, help="To this date (YYYY-MM-DD, UTC), inclusive.")
    @click.option("--include-unchanged", is_flag=True, help="Also syncs that changed nothing.")
    @click.option("--page", default="1", help="Page of 50, newest first.")
    def audit(connection_id: int, **filters: Any) -> None:
        """Print the audit log as people read it (names, field changes before → after)."""
        from crm_qb.web.readmodels.audit import InvalidAuditQuery, audit_page, parse_audit_query

        args = {key: (str(value) if value not in (None, False) else None) for key, value in filters.items()}
        try:
            query = parse_audit_query(args)
        except InvalidAuditQuery as exc:
            raise click.BadParameter(str(exc), param_hint=f"--{exc.field.replace('_', '-')}") from None
        ctx.logging_setup(default="WARNING")
        with ctx.app().app_context():
            ctx.connection_of(connection_id)
            rows, total = audit_page(connection_id, query)
        _echo({"entries": [row.as_json() for row in rows], "page": query.page, "total": total})

    return audit


def _health_command(ctx: _Context) -> click.Command:
    @click.command("health")
    @click.argument("connection_id", type=int)
    def health(connection_id: int) -> None:
        """Print the connection's health: status, last webhook and poll, pending, hourly counts, rate waits."""
        from crm_qb.runtime import runtime
        from crm_qb.web.health import connection_report
        from crm_qb.web.readmodels.health import health_details, waited_seconds

        ctx.logging_setup(default="WARNING")
        app = ctx.app()
        with app.app_context():
            found = ctx.connection_of(connection_id)
            _echo({**connection_report(found), **health_details(found, waited_seconds(runtime(app), found)).as_json()})

    return health


def _sync_now_command(ctx: _Context) -> click.Command:
    @click.command("sync-now")
    @click.argument("connection_id", type=int)
    @click.option("--enqueue", is_flag=True, help="Hand it to a worker and print the job id.")
    @click.option("--contact", "contact_id", default=None,
                  help="Only this CRM contact: re-read it and its QBO customer, reconcile, re-read its transactions.")
    def sync_now(connection_id: int, enqueue: bool, contact_id: str | None) -> None:
        """Sync the connection now (a CDC poll and every change waiting, whatever its mode), or one contact."""
        from crm_qb.runtime import runtime

        ctx.logging_setup(default="WARNING")
        app = ctx.app()
        with app.app_context():
            ctx.connection_of(connection_id)
            if enqueue:
                queued = (runtime(app).jobs.sync_contact_now(connection_id, contact_id, ctx.who()) if contact_id
                          else runtime(app).jobs.sync_now(connection_id))
                _echo({"job_id": queued.job_id, "queued": queued.queued})
                return
            runtime(app).qbo()  # missing QBO settings: one line naming them, before any work starts
            if contact_id:
                from crm_qb.sync.pipeline.contact_now import sync_contact_now

                _echo(sync_contact_now(runtime(app).sync_services(), connection_id, contact_id,
                                       who=ctx.who()).as_json())
                return
            from crm_qb.sync.pipeline.on_demand import sync_now as run

            _echo({"seen": run(runtime(app).sync_services(), connection_id)})

    return sync_now


def _conflicts_group(ctx: _Context) -> click.Group:
    @click.group("conflicts")
    def conflicts() -> None:
        """Fields both sides changed in one window: list, keep the decision, or flip it."""

    @conflicts.command("list")
    @click.argument("connection_id", type=int)
    def conflicts_list(connection_id: int) -> None:
        """Print the newest conflicts with the contact's name and the rule in plain words."""
        from crm_qb.web.review_pages import conflict_rows

        ctx.logging_setup(default="WARNING")
        with ctx.app().app_context():
            _echo({"conflicts": conflict_rows(ctx.connection_of(connection_id))})

    @conflicts.command("keep")
    @click.argument("connection_id", type=int)
    @click.argument("conflict_id", type=int)
    def conflicts_keep(connection_id: int, conflict_id: int) -> None:
        """Keep the automatic decision of a conflict."""
        from crm_qb.sync.customers.conflict_review import confirm

        ctx.logging_setup(default="WARNING")
        with ctx.app().app_context():
            ctx.connection_of(connection_id)
            confirm(connection_id, conflict_id)
        _echo({"conflict_id": conflict_id, "status": "confirmed"})

    @conflicts.command("flip")
    @click.argument("connection_id", type=int)
    @click.argument("conflict_id", type=int)
    def conflicts_flip(connection_id: int, conflict_id: int) -> None:
        """Write the other value of a conflict to both sides (here, under the connection's lock)."""
        from crm_qb.runtime import runtime
        from crm_qb.sync.customers.conflict_review import flip, plan_flip

        ctx.logging_setup(default="WARNING")
        app = ctx.app()
        with app.app_context():
            ctx.connection_of(connection_id)
            flip(runtime(app).sync_services(), plan_flip(connection_id, conflict_id))
        _echo({"conflict_id": conflict_id, "status": "flipped"})

    return conflicts
