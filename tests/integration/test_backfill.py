"""The backfill against a seeded QBO sandbox realm (records months older than CDC's look-back) and the reference CRM.

Nothing is stubbed: QBO and the CRM answer over HTTP on 127.0.0.1; the sync lock and the candidate index live in
the test Redis database.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq.job import Job
from sqlalchemy import func, select

from crm_qb.app import create_app
from crm_qb.cli import main
from crm_qb.db import db, utcnow
from crm_qb.keys import JobIds
from crm_qb.models import AuditEntry, Conflict, Connection, ContactLink, FolderItem, LinkState, QboStatus
from crm_qb.qbo.client import last_updated
from crm_qb.runtime import runtime
from crm_qb.sandbox.crm.server import RunningServer
from crm_qb.sync.context import build_context
from crm_qb.sync.pipeline.backfill import BackfillReport, PhaseCounts, run_backfill
from tests.conftest import _migrate, _truncate, make_settings, settings_env
from tests.support import sync as support
from tests.support.connections import add_connection
from tests.support.oauth import LiveSandbox, connect, live_sandbox
from tests.support.sync import Harness, QboSandbox, running_harness

qbo_sandbox, crm_server = support.qbo_sandbox, support.crm_server

CUSTOMERS, TRANSACTIONS, SEED = 12, 30, 7
PAGE = 5
CRM_NAME_LIMIT = 255


@pytest.fixture
def seeded(tmp_path: Path, database_url: str, redis_client: Redis, qbo_sandbox: QboSandbox,
           crm_server: RunningServer) -> Iterator[Harness]:
    """A connection to a seeded realm (12 customers, 30 transactions, all last updated months ago)."""
    body = {"customers": CUSTOMERS, "transactions": TRANSACTIONS, "multicurrency": False, "seed": SEED}
    qbo_sandbox.realm_id = qbo_sandbox.post("/_sandbox/realms", body)["realm_id"]
    with running_harness(tmp_path, database_url, qbo_sandbox, crm_server) as made:
        yield made


def _customers(h: Harness) -> list[dict[str, Any]]:
    with h.app.app_context():
        ctx = build_context(runtime(h.app).sync_services(), h.connection_id)
        try:
            return list(ctx.qbo.query_all("Customer", "Active IN (true, false)"))
        finally:
            ctx.close()


def _prepare_crm(h: Harness, customers: list[dict[str, Any]]) -> dict[str, str]:
    """Three CRM contacts: one with customer A's email (other case), one with B's company name, one new person."""
    a = customers[0]
    b = next(c for c in customers[1:] if c.get("CompanyName") and not c.get("ParentRef"))
    by_email = h.crm_user("POST", "/contacts", {"first_name": "Someone",
                                                "email": a["PrimaryEmailAddr"]["Address"].upper(), "phone": "555"})
    by_name = h.crm_user("POST", "/contacts", {"company": b["CompanyName"].upper() + "."})
    new = h.crm_user("POST", "/contacts", {"first_name": "Grace", "last_name": "Hopper",
                                           "email": "grace@example.com"})
    return {"a": a["Id"], "b": b["Id"], "by_email": by_email["id"], "by_name": by_name["id"], "new": new["id"]}


def _backfill(h: Harness, **options: Any) -> tuple[BackfillReport, dict[str, list[int]]]:
    """Run a backfill of 5-row pages; return the report and the page numbers the progress callback saw."""
    seen: dict[str, list[int]] = {}

    def progress(phase: str, counts: PhaseCounts) -> None:
        seen.setdefault(phase, []).append(counts.pages)

    with h.app.app_context():
        report = run_backfill(runtime(h.app).sync_services(), h.connection_id, progress=progress, page_size=PAGE,
                              **options)
    return report, seen


def _rows(h: Harness) -> dict[str, int]:
    with h.app.app_context():
        counts = {model.__name__: int(db.session.scalar(select(func.count()).select_from(model)) or 0)
                  for model in (ContactLink, AuditEntry, FolderItem, Conflict)}
        row = db.session.get(Connection, h.connection_id)
        counts["cursor_set"] = int(row is not None and row.cdc_cursor is not None)
        db.session.rollback()
    return counts


def _crm_counts(h: Harness) -> dict[str, int]:
    return h.crm_user("GET", "/requests")["endpoints"]  # type: ignore[no-any-return]


def _writes(counts: dict[str, int]) -> dict[str, int]:
    return {endpoint: n for endpoint, n in counts.items() if not endpoint.startswith("GET")}


def _jobs_sharing_the_parents_email(customers: list[dict[str, Any]]) -> set[str]:
    by_id = {c["Id"]: c for c in customers}
    email = {c["Id"]: (c.get("PrimaryEmailAddr") or {}).get("Address") for c in customers}
    return {c["Id"] for c in customers if c.get("ParentRef") and c["ParentRef"]["value"] in by_id
            and email[c["Id"]] in (None, email[c["ParentRef"]["value"]])}


def _main(report: BackfillReport, phase: str) -> dict[str, int]:
    counts = report.phases[phase]
    return {name: getattr(counts, name) for name in ("linked", "created", "review", "skipped", "failed")}


def test_backfill_links_every_old_customer_once_mirrors_transactions_and_sets_the_cursor(seeded: Harness) -> None:
    h = seeded
    customers = _customers(h)
    assert len(customers) == CUSTOMERS
    assert all(utcnow() - (last_updated(c) or utcnow()) > timedelta(days=30) for c in customers)  # beyond CDC
    ids = _prepare_crm(h, customers)

    report, pages_seen = _backfill(h)

    links = {link.qbo_customer_id: link for link in h.links() if link.qbo_customer_id}
    # The reference CRM refuses names over 255 characters (the seed has one customer with a 500-character
    # DisplayName): that customer is counted failed, not linked, and the backfill goes on.
    too_long = {c["Id"] for c in customers if len(c["DisplayName"]) > CRM_NAME_LIMIT}
    # Jobs sharing their parent's email get no contact of their own: they are shown under the parent's.
    jobs = _jobs_sharing_the_parents_email(customers)
    assert jobs, "the seed should have sub-customers"
    assert set(links) | too_long | jobs >= {c["Id"] for c in customers} and not set(links) & (too_long | jobs)
    linked = [link for link in links.values() if link.state == LinkState.LINKED]
    assert len({link.crm_contact_id for link in linked}) == len(linked)  # no contact linked twice
    assert links[ids["a"]].crm_contact_id == ids["by_email"] and links[ids["b"]].crm_contact_id == ids["by_name"]
    new_person = next(link for link in linked if link.crm_contact_id == ids["new"])  # created in QBO in phase 3
    assert h.qbo.customer(str(new_person.qbo_customer_id))["PrimaryEmailAddr"]["Address"] == "grace@example.com"
    customers_phase = report.phases["customers"]
    assert customers_phase.seen == CUSTOMERS and customers_phase.failed == len(too_long) == 1
    assert customers_phase.linked == 2
    assert customers_phase.skipped == len(jobs)
    assert customers_phase.created == CUSTOMERS - 2 - customers_phase.review - customers_phase.failed - len(jobs)
    assert len(h.contacts()) == 3 + customers_phase.created  # every contact created exactly once
    assert [link.state for link in links.values()].count(LinkState.REVIEW) == customers_phase.review
    assert report.phases["contacts"].created == 1

    with h.app.app_context():
        grouped = db.session.execute(select(FolderItem.txn_type, func.count()).group_by(FolderItem.txn_type))
        by_type = {str(txn_type): int(count) for txn_type, count in grouped}
        cursor = db.session.get(Connection, h.connection_id).cdc_cursor  # type: ignore[union-attr]
    txns = report.phases["transactions"]
    assert sum(by_type.values()) == TRANSACTIONS == txns.created and by_type == txns.by_type
    assert cursor == report.started_at == report.cdc_cursor

    expected_pages = {"customers": math.ceil(CUSTOMERS / PAGE),
                      "transactions": sum(math.ceil(n / PAGE) for n in by_type.values()),
                      "contacts": len(h.contacts()) // PAGE + 1,  # a full last page has a cursor to an empty one
                      "time": 1}  # the CRM's activities: none logged, one empty page
    assert {phase: len(numbers) for phase, numbers in pages_seen.items()} == expected_pages
    assert all(numbers == list(range(1, len(numbers) + 1)) for numbers in pages_seen.values())


def test_a_second_backfill_changes_nothing(seeded: Harness) -> None:
    h = seeded
    _prepare_crm(h, _customers(h))
    first, _ = _backfill(h)
    rows, contacts = _rows(h), h.contacts()
    h.qbo.reset_counts()
    crm_before = _crm_counts(h)

    second, _ = _backfill(h)

    assert _rows(h) == rows and h.contacts() == contacts
    assert set(h.qbo.requests_by_endpoint()) == {"GET /query"}
    # Only the customer the CRM refused (its name is too long) is tried again, and refused again.
    refused = first.phases["customers"].failed
    assert second.phases["customers"].failed == refused == 1
    # Contacts are created in batches (POST /contacts/batch): the refused one costs one more batch of one.
    assert "POST /contacts" not in crm_before
    assert _writes(_crm_counts(h)) == {**_writes(crm_before),
                                       "POST /contacts/batch": crm_before["POST /contacts/batch"] + refused}
    customers = second.phases["customers"]
    jobs = len(_jobs_sharing_the_parents_email(_customers(h)))
    assert customers.unchanged == CUSTOMERS + 1 - customers.review - refused - jobs  # + the one phase 3 created
    assert customers.skipped == jobs
    assert customers.review == first.phases["customers"].review
    assert (customers.linked, customers.created, customers.updated) == (0, 0, 0)
    assert second.phases["transactions"].unchanged == TRANSACTIONS
    contacts_phase = second.phases["contacts"]
    assert (contacts_phase.linked, contacts_phase.created, contacts_phase.updated) == (0, 0, 0)


def test_a_dry_run_writes_nothing_and_predicts_what_the_real_run_does(seeded: Harness, redis_client: Redis) -> None:
    h = seeded
    _prepare_crm(h, _customers(h))
    rows = _rows(h)
    h.qbo.reset_counts()
    crm_before, redis_keys = _crm_counts(h), set(redis_client.keys())

    dry, pages_seen = _backfill(h, dry_run=True)

    assert _rows(h) == rows and rows["cursor_set"] == 0
    assert set(h.qbo.requests_by_endpoint()) == {"GET /query"}
    assert _writes(_crm_counts(h)) == _writes(crm_before)
    assert set(redis_client.keys()) == redis_keys
    assert dry.dry_run and dry.cdc_cursor is None and pages_seen["customers"] == [1, 2, 3]

    real, _ = _backfill(h)

    # Dry-run cannot know the CRM will refuse the 500-character name: it predicts a create there.
    real_customers = _main(real, "customers")
    assert real_customers["failed"] == 1
    assert _main(dry, "customers") == {**real_customers, "created": real_customers["created"] + 1, "failed": 0}
    assert _main(dry, "transactions") == _main(real, "transactions")
    assert dry.phases["transactions"].by_type == real.phases["transactions"].by_type
    assert (dry.phases["contacts"].created, dry.phases["contacts"].linked) == (1, 0)
    assert (real.phases["contacts"].created, real.phases["contacts"].linked) == (1, 0)


def test_the_cdc_poll_continues_from_the_backfill(seeded: Harness) -> None:
    from workers.sync_jobs import poll_qbo_connection

    h = seeded
    customers = _customers(h)
    _backfill(h)
    target = next(c for c in customers if h.link_of_customer(c["Id"]).state == LinkState.LINKED)
    h.qbo.edit_customer(target["Id"], Notes="changed after the backfill")
    with h.app.app_context():
        assert poll_qbo_connection(h.connection_id) >= 1
    contact_id = str(h.link_of_customer(target["Id"]).crm_contact_id)
    assert h.contact(contact_id)["notes"] == "changed after the backfill"


# -- the command and the job ----------------------------------------------------------------------------------


def _cli_env(app: Flask) -> dict[str, str]:
    """The environment that gives the command the same settings as ``app``, QBO sandbox included."""
    settings = runtime(app).settings
    return {**settings_env(settings), "CRM_QB_QBO_ENVIRONMENT": "local", "CRM_QB_QBO_CLIENT_ID": settings.qbo_client_id,
            "CRM_QB_QBO_CLIENT_SECRET": settings.qbo_client_secret,
            "CRM_QB_QBO_REDIRECT_URI": settings.qbo_redirect_uri,
            "CRM_QB_QBO_DISCOVERY_URL": str(settings.qbo_discovery_url),
            "CRM_QB_QBO_API_BASE": str(settings.qbo_api_base), "CRM_QB_QBO_APP_BASE": str(settings.qbo_app_base)}


def test_the_command_runs_in_the_foreground_or_hands_the_backfill_to_a_worker(seeded: Harness) -> None:
    h = seeded
    runner = CliRunner()
    env = _cli_env(h.app)

    dry = runner.invoke(main, ["backfill", str(h.connection_id), "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    lines = dry.output.strip().splitlines()
    assert lines[0].startswith("customers page 1: seen=12 ")
    assert json.loads(lines[-1])["phases"]["customers"]["seen"] == CUSTOMERS
    assert not h.links()

    queued = runner.invoke(main, ["backfill", str(h.connection_id), "--enqueue"], env=env)
    assert queued.exit_code == 0, queued.output
    assert queued.output.strip() == JobIds.backfill(h.connection_id)
    again = runner.invoke(main, ["backfill", str(h.connection_id), "--enqueue"], env=env)
    assert "already waiting or running" in again.output
    h.work()
    jobs = _jobs_sharing_the_parents_email(_customers(h))  # shown under their parents' contacts, not linked
    assert len([link for link in h.links() if link.qbo_customer_id]) == CUSTOMERS - 1 - len(jobs)  # and refused
    with h.app.app_context():
        assert db.session.get(Connection, h.connection_id).cdc_cursor is not None  # type: ignore[union-attr]


@pytest.fixture
def cli(tmp_path: Path, redis_client: Redis) -> tuple[CliRunner, dict[str, str], Flask]:
    """A CLI on a fresh SQLite database with one connection that was never connected to QuickBooks."""
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'cli.sqlite3'}")
    app = create_app(settings)
    _migrate(app)
    return CliRunner(), settings_env(settings), app


@pytest.mark.parametrize(("state", "message"), [
    ("missing", "crm-qb: no connection 42"),
    ("never", "is not connected to QuickBooks"),
    ("reconnect", "QuickBooks must be reconnected for connection"),
])
def test_the_command_names_what_stops_a_backfill_in_one_line(cli: tuple[CliRunner, dict[str, str], Flask],
                                                             state: str, message: str) -> None:
    runner, env, app = cli
    made = add_connection(app)
    if state == "reconnect":
        with app.app_context():
            row = db.session.get(Connection, made.id)
            assert row is not None
            row.qbo_realm_id, row.qbo_status, row.qbo_status_reason = "1", QboStatus.NEEDS_RECONNECT, "invalid_grant"
            db.session.commit()
    connection_id = 42 if state == "missing" else made.id
    result = runner.invoke(main, ["backfill", str(connection_id)], env=env)
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_dry_run_and_enqueue_together_is_a_usage_error(cli: tuple[CliRunner, dict[str, str], Flask]) -> None:
    runner, env, _app = cli
    result = runner.invoke(main, ["backfill", "1", "--dry-run", "--enqueue"], env=env)
    assert result.exit_code == 2 and "--dry-run runs in the foreground" in result.output


@pytest.fixture
def live() -> Iterator[LiveSandbox]:
    """A fresh QBO sandbox for the OAuth test."""
    with live_sandbox() as sandbox:
        yield sandbox


def test_connecting_for_the_first_time_asks_for_the_first_sync_preview_not_the_backfill(
        tmp_path: Path, database_url: str, redis_client: Redis, live: LiveSandbox) -> None:
    from crm_qb.models import SyncRun

    app = create_app(make_settings(tmp_path, database_url, **live.settings_overrides()))
    _migrate(app)
    if not database_url.startswith("sqlite"):
        _truncate(app)
    made = add_connection(app)
    client: FlaskClient = app.test_client()
    assert connect(client, app, made.id).status_code == 303
    with app.app_context():
        run = db.session.scalar(select(SyncRun).where(SyncRun.connection_id == made.id))
        assert run is not None and (run.kind, run.state) == ("first", "previewing")
        run_id = run.id
    job = Job.fetch(JobIds.sync_run_job("preview", run_id), connection=redis_client)
    assert job.func_name == "workers.firstsync_jobs.preview_run" and job.args == (run_id,)
    assert redis_client.exists(f"rq:job:{JobIds.backfill(made.id)}") == 0
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_the_backfill_gives_way_to_live_work_between_its_items(seeded: Harness) -> None:
    """Bulk work calls its pacer (``SyncServices.pace``) before every customer and contact and after every page,
    so a bulk job can hold back while live work is under way (crm_qb.sync.pacing); the outcome is the same."""
    from dataclasses import replace

    calls = [0]

    def pace() -> None:
        calls[0] += 1

    with seeded.app.app_context():
        services = replace(runtime(seeded.app).sync_services(), pace=pace)
        report = run_backfill(services, seeded.connection_id, page_size=PAGE)
    customers, contacts = report.phases["customers"], report.phases["contacts"]
    pages = sum(counts.pages for counts in report.phases.values())
    assert customers.seen == CUSTOMERS
    assert calls[0] >= customers.seen + contacts.seen + pages
