"""The first sync end to end against a seeded QBO sandbox realm and the reference CRM: connect (nothing written),
preview by a worker, start, report; the preview's numbers are the run's; both sides' data checked after each
step. Nothing is stubbed: QBO and the CRM answer over HTTP on 127.0.0.1, jobs run on a real RQ worker.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from redis import Redis
from sqlalchemy import func, select, update

from crm_qb.cli import main
from crm_qb.db import db, utcnow
from crm_qb.models import (
    Connection,
    ContactLink,
    EventSource,
    FolderItem,
    FollowUp,
    InboundEvent,
    LinkState,
    SyncRun,
    SyncRunRecord,
)
from crm_qb.runtime import runtime
from crm_qb.sandbox.crm.server import RunningServer
from crm_qb.sync.context import build_context
from crm_qb.sync.customers.review import recheck_naming
from crm_qb.sync.firstsync import service, store
from crm_qb.sync.firstsync.outcomes import COUNT_KEYS
from crm_qb.web.signing import link_token
from tests.conftest import settings_env
from tests.support import sync as support
from tests.support.sync import Harness, QboSandbox, running_harness

qbo_sandbox, crm_server = support.qbo_sandbox, support.crm_server

CUSTOMERS, TRANSACTIONS, SEED = 12, 30, 7


@pytest.fixture
def seeded(tmp_path: Path, database_url: str, redis_client: Redis, qbo_sandbox: QboSandbox,
           crm_server: RunningServer) -> Iterator[Harness]:
    """A connection to a seeded realm (12 customers, 30 transactions, months old), no first sync opened yet."""
    body = {"customers": CUSTOMERS, "transactions": TRANSACTIONS, "multicurrency": False, "seed": SEED}
    qbo_sandbox.realm_id = qbo_sandbox.post("/_sandbox/realms", body)["realm_id"]
    with running_harness(tmp_path, database_url, qbo_sandbox, crm_server) as made:
        yield made


def prepare_crm(h: Harness) -> dict[str, str]:
    """Two CRM contacts: one with a customer's email (so it links), one new person (so it is created in QBO)."""
    customer = next(c for c in qbo_customers(h) if (c.get("PrimaryEmailAddr") or {}).get("Address")
                    and not c.get("ParentRef") and len(c["DisplayName"]) < 200)
    by_email = h.crm_user("POST", "/contacts", {"first_name": "Someone",
                                                "email": customer["PrimaryEmailAddr"]["Address"].upper()})
    new = h.crm_user("POST", "/contacts", {"first_name": "Grace", "last_name": "Hopper",
                                           "email": "grace@example.com"})
    return {"customer": customer["Id"], "by_email": by_email["id"], "new": new["id"]}


def qbo_customers(h: Harness) -> list[dict[str, Any]]:
    """Every customer of the realm, read through the QBO API."""
    with h.app.app_context():
        ctx = build_context(runtime(h.app).sync_services(), h.connection_id)
        try:
            return list(ctx.qbo.query_all("Customer", "Active IN (true, false)"))
        finally:
            ctx.close()


def side_counts(h: Harness) -> dict[str, int]:
    """What exists on each side: CRM contacts and tasks, QBO customers, links, folder items, follow-ups."""
    contacts = h.contacts()
    tasks = sum(len(h.crm_api("GET", f"/contacts/{c['id']}/tasks")["tasks"]) for c in contacts)
    with h.app.app_context():
        result = {name: int(db.session.scalar(select(func.count()).select_from(model)) or 0)
                  for name, model in (("links", ContactLink), ("folder", FolderItem), ("followups", FollowUp))}
        db.session.rollback()
    return {**result, "contacts": len(contacts), "tasks": tasks, "customers": len(qbo_customers(h))}


def open_and_preview(h: Harness) -> int:
    """Open the first sync as connecting does, let a worker compute the preview; the run id."""
    with h.app.app_context():
        run = service.open_first_sync(runtime(h.app).jobs, h.connection_id)
        run_id = run.id
    h.work()
    return run_id


def run_state(h: Harness, run_id: int) -> dict[str, Any]:
    """The run's preview and status objects."""
    with h.app.app_context():
        run = store.run_of(run_id)
        assert run is not None
        result = {"preview": service.preview_json(run), "status": service.status_json(run)}
        db.session.rollback()
        return result


def test_preview_writes_nothing_and_the_run_does_what_it_announced(seeded: Harness) -> None:
    h = seeded
    ids = prepare_crm(h)
    before = side_counts(h)

    run_id = open_and_preview(h)

    assert side_counts(h) == before  # the preview wrote nothing on either side, nor in crm-qb
    preview = run_state(h, run_id)["preview"]
    assert preview["state"] == "previewed" and preview["ready"] is True
    counts = {key: preview[key] for key in COUNT_KEYS}
    assert all(isinstance(n, int) for n in counts.values())
    assert counts["link"] >= 1 and counts["create_in_crm"] >= 1 and counts["create_in_qbo"] == 1
    assert counts["transactions"] == TRANSACTIONS
    with h.app.app_context():
        pairs, _ = store.records(run_id, store.PREVIEW, ("link",))
        assert (ids["customer"], ids["by_email"]) in {(r.object_id, r.partner_id) for r in pairs}
        assert all(r.partner_name for r in pairs)  # the pair shows the contact's name, not only its id
        created_in_qbo, _ = store.records(run_id, store.PREVIEW, ("create_in_qbo",))
        assert [r.object_id for r in created_in_qbo] == [ids["new"]]
        db.session.rollback()

    with h.app.app_context():
        assert service.start(runtime(h.app).jobs, run_id) is True
    h.work()

    state = run_state(h, run_id)
    status = state["status"]
    assert status["state"] == "done" and status["done"] == status["total"] > 0
    assert status["counts"] == counts  # the same numbers, failures counted under what was planned
    after = side_counts(h)
    # The seed's customer with a 500-character name is refused by the CRM: one failure, with its reason; an
    # overdue invoice of that customer then gets no follow-up task, reported as a failure of its own.
    with h.app.app_context():
        failed = store.failed_records(run_id)
        assert [(r.entity, r.planned) for r in failed][:1] == [("Customer", "create_in_crm")]
        assert {(r.entity, r.planned) for r in failed[1:]} <= {("FollowUp", "followup")}
        assert "CRM refused" in (failed[0].reason or "") and failed[0].error and failed[0].error_code
        db.session.rollback()
    assert status["failed"] == len(failed)
    missing_tasks = len(failed) - 1
    assert after["contacts"] == before["contacts"] + counts["create_in_crm"] - 1
    assert after["customers"] == before["customers"] + counts["create_in_qbo"]
    assert after["folder"] == counts["transactions"]
    assert after["tasks"] == before["tasks"] + counts["followups"] - missing_tasks == after["followups"]
    linked = [link for link in h.links() if link.state == LinkState.LINKED]
    assert len(linked) == counts["link"] + counts["create_in_crm"] + counts["create_in_qbo"] - 1
    assert h.link_of_customer(ids["customer"]).crm_contact_id == ids["by_email"]


def test_start_is_a_no_op_once_started_and_preview_is_refused_after(seeded: Harness) -> None:
    h = seeded
    run_id = open_and_preview(h)
    jobs = runtime(h.app).jobs
    with h.app.app_context():
        assert service.start(jobs, run_id) is True
    h.work()
    contacts = side_counts(h)
    with h.app.app_context():
        assert service.start(jobs, run_id) is False
        assert service.request_preview(jobs, run_id) is False
        assert service.open_first_sync(jobs, h.connection_id).id == run_id
    h.work()
    assert side_counts(h) == contacts


def test_events_wait_for_the_first_sync_and_are_applied_after_it(seeded: Harness) -> None:
    h = seeded
    run_id = open_and_preview(h)
    person = h.crm_user("POST", "/contacts", {"first_name": "Late", "last_name": "Comer", "email": "late@ex.com"})
    h.crm_hook("created", h.contact(person["id"]))
    customers = len(qbo_customers(h))
    h.work()
    assert len(qbo_customers(h)) == customers  # held: the first sync has not started
    with h.app.app_context():
        service.start(runtime(h.app).jobs, run_id)
    h.work()
    assert any(link.crm_contact_id == person["id"] for link in h.links() if link.state == LinkState.LINKED)
    assert len(qbo_customers(h)) == customers + 1  # created once: by the run (the event then finds it linked)


def test_a_first_sync_and_the_backlog_it_leaves_are_bulk_work_live_again_after(seeded: Harness) -> None:
    """Issue 16: the run waits on the ``backfill`` queue (a live-only worker never takes it), the drains its end
    wakes (the events that waited for it) run there too, and the connection's next change drains as live work."""
    from workers.queues import BACKFILL, INBOUND, queue
    from workers.worker import build_worker

    h = seeded
    run_id = open_and_preview(h)
    person = h.crm_user("POST", "/contacts", {"first_name": "Late", "last_name": "Comer", "email": "late@ex.com"})
    h.crm_hook("created", h.contact(person["id"]))
    rt = runtime(h.app)
    live, bulk = queue(rt.redis, INBOUND, rt.keys), queue(rt.redis, BACKFILL, rt.keys)
    with h.app.app_context():
        service.start(rt.jobs, run_id)
    build_worker(h.app, queues=("inbound", "sync", "scheduled")).work(burst=True)
    assert run_state(h, run_id)["status"]["state"] == "running"  # the live-only worker left it waiting
    assert bulk.job_ids == [f"sync-run-{run_id}"] and live.count == 0
    build_worker(h.app, queues=(BACKFILL,)).work(burst=True, max_jobs=1)  # the run, and nothing more
    assert run_state(h, run_id)["status"]["state"] == "done"
    assert [job.func_name for job in bulk.jobs] == ["workers.jobs.drain_crm_connection"] and live.count == 0
    build_worker(h.app, queues=("inbound", "sync", "scheduled")).work(burst=True)
    assert bulk.count == 1  # the backlog's drain is not live work
    build_worker(h.app, queues=(BACKFILL,)).work(burst=True)
    assert any(link.crm_contact_id == person["id"] for link in h.links() if link.state == LinkState.LINKED)
    h.crm_hook("updated", {**h.contact(person["id"]), "first_name": "Later"})
    assert bulk.count == 0 and live.count == 1  # after the run, a change is live work again


def test_catch_up_polls_due_while_its_backlog_is_settled_are_bulk_work(seeded: Harness) -> None:
    """Issue 16 (a 17 s stall of the live tenants in the benchmark): a first sync's backlog is settled by bulk
    drains, which hold the connection's lock batch after batch. A catch-up poll falling due then waited for that
    lock on a live worker (up to 30 s), and the CRM's poll read every contact the run had just made there. Both
    are queued on the bulk lane until the backlog is settled; then they are live work again."""
    from crm_qb.sync.pipeline import slowlane
    from workers.queues import BACKFILL, SYNC, queue
    from workers.sync_jobs import schedule_cdc_polls
    from workers.worker import build_worker

    h = seeded
    run_id = open_and_preview(h)
    person = h.crm_user("POST", "/contacts", {"first_name": "Late", "last_name": "Comer", "email": "late@ex.com"})
    h.crm_hook("created", h.contact(person["id"]))  # waits for the run: its end leaves it as the backlog
    rt = runtime(h.app)
    live, bulk = queue(rt.redis, SYNC, rt.keys), queue(rt.redis, BACKFILL, rt.keys)
    with h.app.app_context():
        service.start(rt.jobs, run_id)
    build_worker(h.app, queues=("inbound", "sync", "scheduled")).work(burst=True)  # the hook's event waits
    build_worker(h.app, queues=(BACKFILL,)).work(burst=True, max_jobs=1)  # the run, and nothing more
    assert [job.func_name for job in bulk.jobs] == ["workers.jobs.drain_crm_connection"]

    with h.app.app_context():  # both polls fall due while the backlog waits
        db.session.execute(update(Connection).values(cdc_cursor=utcnow() - timedelta(hours=1),
                                                     crm_polled_at=utcnow() - timedelta(hours=1)))
        db.session.commit()
        assert schedule_cdc_polls() == 2
    assert sorted(job.func_name for job in bulk.jobs if "poll" in job.func_name) == [
        "workers.sync_jobs.poll_crm_connection", "workers.sync_jobs.poll_qbo_connection"]
    assert live.count == 0
    build_worker(h.app, queues=(BACKFILL,)).work(burst=True)  # the backlog, and the polls beside it
    assert any(link.crm_contact_id == person["id"] for link in h.links() if link.state == LinkState.LINKED)
    assert not slowlane.in_lane(rt.redis, rt.keys, h.connection_id, h.qbo.realm_id)


def test_auto_start_runs_the_first_sync_after_its_preview(seeded: Harness) -> None:
    h = seeded
    with h.app.app_context():
        from crm_qb.sync.firstsync.settings import with_auto_start

        row = db.session.get(Connection, h.connection_id)
        assert row is not None
        row.settings = with_auto_start(row.settings, True)
        db.session.commit()
    run_id = open_and_preview(h)
    h.work()
    status = run_state(h, run_id)["status"]
    assert status["state"] == "done" and side_counts(h)["folder"] == TRANSACTIONS


def test_retry_runs_the_failed_records_again(seeded: Harness) -> None:
    h = seeded
    run_id = open_and_preview(h)
    jobs = runtime(h.app).jobs
    with h.app.app_context():
        service.start(jobs, run_id)
    h.work()
    with h.app.app_context():
        failed = store.failed_records(run_id)
        assert failed[0].entity == "Customer"
        customer_id = failed[0].object_id
        tasks_missing = len(failed) - 1
        db.session.rollback()
    # The bookkeeper shortens the name the CRM refused; the retry now creates the contact.
    h.qbo.edit_customer(customer_id, DisplayName="A shorter name")
    contacts, before_tasks = side_counts(h)["contacts"], side_counts(h)["tasks"]
    with h.app.app_context():
        jobs.sync_retry(run_id)
    h.work()
    with h.app.app_context():
        assert store.failed_records(run_id) == []
        record = db.session.scalar(select(SyncRunRecord).where(SyncRunRecord.run_id == run_id,
                                                               SyncRunRecord.stage == "run",
                                                               SyncRunRecord.object_id == customer_id))
        assert record is not None and (record.action, record.attempts) == ("create_in_crm", 2)
        assert db.session.scalar(select(SyncRun.state).where(SyncRun.id == run_id)) == "done"
        db.session.rollback()
    assert side_counts(h)["contacts"] == contacts + 1
    assert side_counts(h)["tasks"] == before_tasks + tasks_missing  # its overdue invoice's follow-up came too
    assert h.link_of_customer(customer_id).state == LinkState.LINKED


def cli_env(h: Harness) -> dict[str, str]:
    """The environment that gives the command the same settings as the harness's app, QBO sandbox included."""
    settings = runtime(h.app).settings
    return {**settings_env(settings), "CRM_QB_QBO_ENVIRONMENT": "local",
            "CRM_QB_QBO_CLIENT_ID": str(settings.qbo_client_id),
            "CRM_QB_QBO_CLIENT_SECRET": str(settings.qbo_client_secret),
            "CRM_QB_QBO_REDIRECT_URI": str(settings.qbo_redirect_uri),
            "CRM_QB_QBO_DISCOVERY_URL": str(settings.qbo_discovery_url),
            "CRM_QB_QBO_API_BASE": str(settings.qbo_api_base), "CRM_QB_QBO_APP_BASE": str(settings.qbo_app_base)}


def invoke(h: Harness, *args: str) -> Any:
    """Run ``crm-qb sync …``; the decoded JSON of its last output line."""
    result = CliRunner().invoke(main, ["sync", *args], env=cli_env(h))
    assert result.exit_code == 0, result.output
    return json.loads(result.output.strip().splitlines()[-1])


def test_the_sync_commands_preview_start_and_report(seeded: Harness) -> None:
    h = seeded
    prepare_crm(h)
    before = side_counts(h)
    cid = str(h.connection_id)
    status = CliRunner().invoke(main, ["sync", "status", cid], env=cli_env(h))
    assert status.exit_code == 2 and "has no first sync" in status.output

    preview = invoke(h, "preview", cid)
    assert set(COUNT_KEYS) <= set(preview) and all(isinstance(preview[k], int) for k in COUNT_KEYS)
    assert preview["state"] == "previewed" and side_counts(h) == before
    assert invoke(h, "status", cid)["state"] == "previewed"

    done = invoke(h, "start", cid, "--wait")
    assert {k: done[k] for k in ("state", "phase")} == {"state": "done", "phase": None}
    assert done["counts"] == {k: preview[k] for k in COUNT_KEYS} and done["done"] == done["total"]
    assert invoke(h, "start", cid)["state"] == "done"  # a no-op once started
    assert side_counts(h)["folder"] == preview["transactions"]

    csv_out = CliRunner().invoke(main, ["sync", "report", cid, "--csv"], env=cli_env(h))
    rows = list(csv.reader(io.StringIO(csv_out.output)))
    assert rows[0][:5] == ["phase", "entity", "id", "name", "outcome"] and len(rows) - 1 == done["done"]
    failed = CliRunner().invoke(main, ["sync", "report", cid, "--failed"], env=cli_env(h))
    assert [json.loads(line)["outcome"] for line in failed.output.splitlines()] == ["failed"] * done["failed"]


def test_a_history_import_previews_and_mirrors_only_its_date_range(seeded: Harness) -> None:
    h = seeded
    cid = str(h.connection_id)
    invoke(h, "preview", cid)
    invoke(h, "start", cid, "--wait")
    with h.app.app_context():
        dates = sorted(d for (d,) in db.session.execute(select(FolderItem.txn_date)) if d is not None)
        db.session.execute(FolderItem.__table__.delete())  # as if these transactions had never been mirrored
        db.session.commit()
    start, end = dates[len(dates) // 4], dates[3 * len(dates) // 4]
    expected = sum(1 for d in dates if start <= d <= end)

    preview = invoke(h, "preview", cid, "--from", start.isoformat(), "--to", end.isoformat())
    assert preview["kind"] == "history" and preview["transactions"] == expected
    assert preview["link"] == preview["create_in_crm"] == preview["create_in_qbo"] == 0
    assert side_counts(h)["folder"] == 0
    done = invoke(h, "start", cid, "--history", "--wait")
    assert done["state"] == "done" and done["counts"]["transactions"] == expected
    with h.app.app_context():
        mirrored = [d for (d,) in db.session.execute(select(FolderItem.txn_date))]
        db.session.rollback()
    assert len(mirrored) == expected and all(start <= d <= end for d in mirrored)
    assert invoke(h, "status", cid)["kind"] == "first"  # the first sync's status is its own


def admin_session(h: Harness) -> None:
    """Open the connection's signed admin link in the harness's client (starts the admin session)."""
    token = link_token(h.app.config["SECRET_KEY"], h.connection_id)
    assert h.client.get(f"/admin/connections/{h.connection_id}", query_string={"token": token}).status_code == 303


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no form on the page"
    return found.group(1)


def test_the_admin_pages_lead_from_preview_to_progress_to_report(seeded: Harness) -> None:
    h = seeded
    base = f"/admin/connections/{h.connection_id}"
    assert h.client.get(f"{base}/sync").status_code == 403  # no admin session
    admin_session(h)
    before = side_counts(h)
    with h.app.app_context():
        service.open_first_sync(runtime(h.app).jobs, h.connection_id)
    waiting = h.client.get(f"{base}/sync/preview")
    assert waiting.status_code == 200 and "being computed" in waiting.get_data(as_text=True)
    assert "script-src 'self'" in waiting.headers["Content-Security-Policy"]
    h.work()
    assert h.client.get(f"{base}/sync").headers["Location"].endswith("/sync/preview")
    page = h.client.get(f"{base}/sync/preview?list=create_in_crm").get_data(as_text=True)
    assert "Nothing has been written" in page and "Create in the CRM" in page and side_counts(h) == before
    assert h.client.get(f"{base}/sync/preview?list=nonsense").status_code == 400

    assert h.client.post(f"{base}/sync/start", data={"csrf_token": "wrong"}).status_code == 403
    assert side_counts(h) == before
    started = h.client.post(f"{base}/sync/start", data={"csrf_token": csrf(page)})
    assert started.status_code == 303 and "/sync/progress" in started.headers["Location"]
    progress = h.client.get(f"{base}/sync/progress").get_data(as_text=True)
    assert 'http-equiv="refresh"' in progress and 'id="progress-overall"' in progress
    assert h.client.get(f"{base}/sync/status.json").get_json()["state"] == "running"
    h.work()
    status = h.client.get(f"{base}/sync/status.json").get_json()
    assert status["state"] == "done" and side_counts(h)["folder"] == status["counts"]["transactions"] > 0

    assert h.client.get(f"{base}/sync").headers["Location"].endswith("/sync/report")
    report = h.client.get(f"{base}/sync/report?outcome=failed").get_data(as_text=True)
    assert "CRM refused" in report and "Retry the" in report
    csv_answer = h.client.get(f"{base}/sync/report.csv")
    assert csv_answer.mimetype == "text/csv" and "attachment" in csv_answer.headers["Content-Disposition"]
    assert len(list(csv.reader(io.StringIO(csv_answer.get_data(as_text=True))))) == status["done"] + 1
    retry = h.client.post(f"{base}/sync/retry", data={"csrf_token": csrf(report)})
    assert retry.status_code == 303
    h.work()  # the refused name is still too long: the failure stays, with a second attempt
    with h.app.app_context():
        assert all(r.attempts == 2 for r in store.failed_records(status["run_id"]))
        db.session.rollback()


def test_the_json_api_serves_the_same_objects_with_the_api_key(seeded: Harness) -> None:
    h = seeded
    key = h.api_key()
    auth = {"Authorization": f"Bearer {key}"}
    base = f"/api/v1/connections/{h.connection_id}/sync"
    assert h.client.get(f"{base}/status").status_code == 401
    assert h.client.get(f"/api/v1/connections/{h.connection_id + 1}/sync/status", headers=auth).status_code == 404
    assert h.client.get(f"{base}/status", headers=auth).get_json()["state"] == "waiting"
    assert h.client.post(f"{base}/start", headers=auth).status_code == 404

    asked = h.client.post(f"{base}/preview", headers=auth)
    assert asked.status_code == 202 and asked.get_json()["state"] == "previewing"
    early = h.client.post(f"{base}/history/preview", headers=auth, json={"from": "2000-01-01", "to": "2100-01-01"})
    assert early.status_code == 409 and "first sync" in early.get_json()["error"]["message"]
    h.work()
    preview = h.client.get(f"{base}/preview?list=transaction&per_page=5", headers=auth).get_json()
    assert preview["transactions"] == TRANSACTIONS and preview["records"]["total"] == TRANSACTIONS
    assert len(preview["records"]["items"]) == 5 and preview["records"]["pages"] == 6
    assert h.client.get(f"{base}/preview?list=bogus", headers=auth).status_code == 400

    started = h.client.post(f"{base}/start", headers=auth)
    assert started.status_code == 202 and started.get_json()["state"] == "running"
    h.work()
    done = h.client.get(f"{base}/status", headers=auth).get_json()
    assert {k: done[k] for k in ("state", "phase")} == {"state": "done", "phase": None}
    assert set(done) >= {"state", "phase", "done", "total", "failed"}
    assert done["counts"] == {k: preview[k] for k in COUNT_KEYS}
    assert h.client.post(f"{base}/start", headers=auth).get_json()["state"] == "done"  # a no-op
    assert h.client.post(f"{base}/preview", headers=auth).status_code == 409
    failed = h.client.get(f"{base}/report?outcome=failed", headers=auth).get_json()["records"]
    assert failed["total"] == done["failed"] and failed["items"][0]["reason"]
    assert h.client.get(f"{base}/report.csv", headers=auth).mimetype == "text/csv"
    assert side_counts(h)["folder"] == TRANSACTIONS

    bad = h.client.post(f"{base}/history/preview", headers=auth, json={"from": "2024-13-01", "to": "2024-01-01"})
    assert bad.status_code == 400 and bad.get_json()["error"]["code"] == "invalid_from"
    backwards = h.client.post(f"{base}/history/preview", headers=auth, json={"from": "2025-01-01",
                                                                             "to": "2024-01-01"})
    assert backwards.status_code == 409
    history = h.client.post(f"{base}/history/preview", headers=auth, json={"from": "2000-01-01", "to": "2100-01-01"})
    assert history.status_code == 202 and history.get_json()["kind"] == "history"
    h.work()
    previewed = h.client.get(f"{base}/history/preview", headers=auth).get_json()
    assert previewed["transactions"] == 0  # everything is mirrored already: nothing to import
    h.client.post(f"{base}/history/start", headers=auth)
    h.work()
    assert h.client.get(f"{base}/history/status", headers=auth).get_json()["state"] == "done"
    assert h.client.get(f"{base}/status", headers=auth).get_json()["kind"] == "first"


def test_the_page_recomputes_the_preview_and_the_cli_sets_auto_start(seeded: Harness) -> None:
    h = seeded
    admin_session(h)
    base = f"/admin/connections/{h.connection_id}"
    empty = h.client.get(f"{base}/sync/preview").get_data(as_text=True)
    assert "No first sync yet" in empty
    before = side_counts(h)
    asked = h.client.post(f"{base}/sync/preview", data={"csrf_token": csrf(empty)})
    assert asked.status_code == 303
    h.work()
    first = run_state(h, run_id := open_and_preview(h))["preview"]
    page = h.client.get(f"{base}/sync/preview").get_data(as_text=True)
    h.crm_user("POST", "/contacts", {"first_name": "Another", "email": "another@example.com"})
    assert h.client.post(f"{base}/sync/preview", data={"csrf_token": csrf(page)}).status_code == 303
    assert run_state(h, run_id)["preview"]["state"] == "previewing"
    h.work()
    again = run_state(h, run_id)["preview"]
    assert again["create_in_qbo"] == first["create_in_qbo"] + 1  # computed again over the data as it is now
    assert side_counts(h) == {**before, "contacts": before["contacts"] + 1}  # the new contact; nothing written

    assert invoke(h, "configure", str(h.connection_id)) == {"auto_start": False}
    assert invoke(h, "configure", str(h.connection_id), "--auto-start") == {"auto_start": True}
    with h.app.app_context():
        row = db.session.get(Connection, h.connection_id)
        assert row is not None and row.settings["first_sync"] == {"auto_start": True}
        db.session.rollback()


def test_an_ambiguous_customer_is_previewed_with_its_candidates_and_waits_in_review(seeded: Harness) -> None:
    h = seeded
    customers = qbo_customers(h)
    parents = {(c.get("ParentRef") or {}).get("value") for c in customers}
    companies = [c.get("CompanyName") for c in customers]
    customer = next(c for c in customers if c.get("CompanyName") and not c.get("ParentRef") and c["Id"] not in parents
                    and companies.count(c["CompanyName"]) == 1 and len(c["DisplayName"]) < 200)
    twins = [h.crm_user("POST", "/contacts", {"first_name": name, "company": customer["CompanyName"]})["id"]
             for name in ("Ann", "Bob")]
    run_id = open_and_preview(h)
    with h.app.app_context():
        (review,) = [r for r in store.records(run_id, store.PREVIEW, ("review",))[0] if r.entity == "Customer"]
        assert review.object_id == customer["Id"] and sorted(c["id"] for c in review.candidates) == sorted(twins)
        assert all(c["name"] for c in review.candidates)
        db.session.rollback()
    preview = run_state(h, run_id)["preview"]
    contacts = side_counts(h)["contacts"]
    with h.app.app_context():
        service.start(runtime(h.app).jobs, run_id)
    h.work()
    status = run_state(h, run_id)["status"]
    assert status["counts"]["review"] == preview["review"] >= 1
    with h.app.app_context():
        reviewed = store.records(run_id, store.RUN, ("review",))[0]
        assert customer["Id"] in {r.object_id for r in reviewed if r.entity == "Customer"}
        db.session.rollback()
    assert not any(c.get("company") == customer["CompanyName"] and c["id"] not in twins for c in h.contacts())
    assert side_counts(h)["contacts"] == contacts + preview["create_in_crm"] - 1  # the refused long name


def test_the_first_sync_sends_billable_time_logged_before_it_and_reports_each_activity(seeded: Harness) -> None:
    h = seeded
    ids = prepare_crm(h)
    body = {"owner_id": "u1", "type": "meeting", "started_at": "2026-10-01T15:00:00Z", "billable": True,
            "service": "Design"}
    earlier = h.crm_user("POST", "/activities", {**body, "contact_id": ids["by_email"], "subject": "Workshop",
                                                 "duration_minutes": 120})
    h.crm_user("POST", "/activities", {**body, "contact_id": ids["by_email"], "subject": "Unbilled",
                                       "duration_minutes": 30, "billable": False})
    run_id = open_and_preview(h)
    preview = run_state(h, run_id)["preview"]
    assert preview["time"] == 1 and preview["walked"]["time"] == 1  # predicted, nothing sent
    with h.app.app_context():
        assert [r.object_id for r in store.records(run_id, store.PREVIEW, ("time",))[0]] == [earlier["id"]]
        db.session.rollback()
    with h.app.app_context():
        ctx = build_context(runtime(h.app).sync_services(), h.connection_id)
        try:
            assert list(ctx.qbo.query_all("TimeActivity")) == []
        finally:
            ctx.close()

    with h.app.app_context():
        service.start(runtime(h.app).jobs, run_id)
    h.work()

    status = run_state(h, run_id)["status"]
    assert status["state"] == "done" and status["counts"]["time"] == 1 and status["phases"]["time"] == 1
    with h.app.app_context():
        [record] = store.records(run_id, store.RUN, ("time",))[0]
        assert (record.entity, record.object_id, record.phase) == ("Activity", earlier["id"], "time")
        db.session.rollback()
    with h.app.app_context():
        ctx = build_context(runtime(h.app).sync_services(), h.connection_id)
        try:
            [time] = ctx.qbo.query_all("TimeActivity")
        finally:
            ctx.close()
    assert (time["CustomerRef"]["value"], time["Hours"], time["Minutes"]) == (ids["customer"], 2, 0)
    assert time["Description"].startswith("Workshop")


def test_a_first_sync_that_lost_its_lock_stops_after_the_page_and_resumes_without_duplicates(
        seeded: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A worker starved past the lock's ttl may find another worker holding the connection's lock: the first sync
    stops at the end of its page (kept and recorded) instead of writing links beside it, and resumes later."""
    from crm_qb.sync import services as services_module
    from crm_qb.sync.services import ConnectionLockLostError

    h = seeded
    run_id = open_and_preview(h)
    preview = run_state(h, run_id)["preview"]
    rt = runtime(h.app)
    lock_key = rt.keys.sync_lock(h.connection_id)
    monkeypatch.setattr(services_module, "SYNC_LOCK_TTL_SECONDS", 0.3)  # renewed every 0.1 s
    saved_page = service._Sink.page
    pages: list[str] = []

    def page_then_taken_over(sink: Any, phase: str, records: Any, checkpoint: Any) -> None:
        saved_page(sink, phase, records, checkpoint)
        pages.append(phase)
        if len(pages) == 1:  # after the first page another worker takes the lock over
            rt.redis.set(lock_key, "another-worker", px=30_000)
            time.sleep(0.4)

    monkeypatch.setattr(service._Sink, "page", page_then_taken_over)
    with h.app.app_context():
        assert service.start(rt.jobs, run_id) is True  # its job waits in the queue; run here, with small pages
        with pytest.raises(ConnectionLockLostError):
            service.execute(rt.sync_services(), run_id, page_size=5)
    assert pages == ["customers"]  # stopped after its first page
    assert rt.redis.get(lock_key) == b"another-worker"  # the new holder's lock was left alone
    with h.app.app_context():
        run = store.run_of(run_id)
        assert run is not None and run.state == "running" and run.checkpoint["customers"] == 5
        db.session.rollback()
    first_links = {link.qbo_customer_id for link in h.links()}
    assert first_links  # the page's work is kept

    rt.redis.delete(lock_key)  # the other worker is done
    monkeypatch.setattr(service._Sink, "page", saved_page)
    monkeypatch.undo()  # the resumed run keeps the lock's real ttl: 0.3 s was lost under CI's load (a niced thread)
    h.work()  # the queued job resumes the run
    status = run_state(h, run_id)["status"]
    assert status["state"] == "done"
    assert status["counts"] == {key: preview[key] for key in COUNT_KEYS}
    links = h.links()
    assert len({link.qbo_customer_id for link in links}) == len(links)
    assert len({link.crm_contact_id for link in links if link.crm_contact_id}) == len(
        [link for link in links if link.crm_contact_id])
    emails = [c.get("email") for c in h.contacts() if c.get("email")]
    assert len(emails) == len(set(emails))  # no contact created twice


def test_two_customers_sharing_an_email_get_one_contact_and_a_review_as_previewed(
        seeded: Harness, qbo_sandbox: QboSandbox) -> None:
    """QBO allows two customers with one email; the CRM gets one contact for the first and the second waits for a
    person (the contact is taken), as the preview announced and as the backfill does: never a duplicate contact."""
    h = seeded
    first = qbo_sandbox.create_customer(DisplayName="Twin Supplies A", PrimaryEmailAddr={"Address": "twin@example.com"})
    second = qbo_sandbox.create_customer(DisplayName="Twin Supplies B",
                                         PrimaryEmailAddr={"Address": "twin@example.com"})
    job = qbo_sandbox.create_customer(DisplayName="Twin Supplies A Roof", Job=True, ParentRef={"value": first["Id"]},
                                      PrimaryEmailAddr={"Address": "twin@example.com"})
    sub_job = qbo_sandbox.create_customer(DisplayName="Twin Supplies A Roof Gutter", Job=True,
                                          ParentRef={"value": job["Id"]},
                                          PrimaryEmailAddr={"Address": "twin@example.com"})
    run_id = open_and_preview(h)
    preview = run_state(h, run_id)["preview"]
    with h.app.app_context():
        planned = {r.object_id: r.action for r in store.records(run_id, store.PREVIEW, per_page=500)[0]
                   if r.entity == "Customer"}
        db.session.rollback()
    # The jobs share their parent's email: each is shown under its parent's contact, never matched to an
    # ancestor's contact (the sub-job's grandparent's included).
    assert [planned.get(c["Id"]) for c in (first, second, job, sub_job)] == ["create_in_crm", "review", "skip",
                                                                             "skip"]
    calls_before = h.crm_user("GET", "/requests")["endpoints"]

    with h.app.app_context():
        assert service.start(runtime(h.app).jobs, run_id) is True
    h.work()

    status = run_state(h, run_id)["status"]
    assert status["state"] == "done" and status["counts"] == {key: preview[key] for key in COUNT_KEYS}
    twins = [c for c in h.contacts() if (c.get("email") or "").lower() == "twin@example.com"]
    assert len(twins) == 1 and h.link_of_customer(first["Id"]).crm_contact_id == twins[0]["id"]
    assert h.link_of_customer(second["Id"]).state == LinkState.REVIEW
    assert not [link for link in h.links() if link.qbo_customer_id in (job["Id"], sub_job["Id"])]
    calls_after = h.crm_user("GET", "/requests")["endpoints"]
    calls = {endpoint: n - calls_before.get(endpoint, 0) for endpoint, n in calls_after.items()}
    assert calls.get("POST /contacts/batch", 0) >= 1 and not calls.get("POST /contacts"), calls  # created in batches


def test_a_waiting_customer_is_looked_at_again_from_a_recent_cdc_answer_without_a_read(
        seeded: Harness, qbo_sandbox: QboSandbox) -> None:
    """When a candidate contact changes, the customer waiting on it is matched again. In a burst its state is in
    the realm's recent CDC answers: taken from there when at least as new as what the review saw (its SyncToken),
    else read from QBO."""
    from crm_qb.sync.pipeline.fetch import ChangeCache

    h = seeded
    first = qbo_sandbox.create_customer(DisplayName="Twin Goods A", PrimaryEmailAddr={"Address": "goods@example.com"})
    second = qbo_sandbox.create_customer(DisplayName="Twin Goods B", PrimaryEmailAddr={"Address": "goods@example.com"})
    run_id = open_and_preview(h)
    with h.app.app_context():
        assert service.start(runtime(h.app).jobs, run_id) is True
    h.work()
    waiting = h.link_of_customer(second["Id"])
    assert waiting.state == LinkState.REVIEW and waiting.qbo_sync_token == str(second["SyncToken"])
    contact_id = h.link_of_customer(first["Id"]).crm_contact_id
    rt = runtime(h.app)

    def candidate_edited(note: str) -> dict[str, int]:
        """The QBO reads made after the candidate's notes were edited (the edit itself goes to its customer)."""
        qbo_sandbox.reset_counts()
        h.crm_user("PATCH", f"/contacts/{contact_id}", {"notes": note})
        h.crm_hook("updated", h.contact(contact_id))
        h.work()
        return {endpoint: n for endpoint, n in qbo_sandbox.requests_by_endpoint().items()
                if endpoint.startswith("GET")}

    # In a recent CDC answer (as a burst's drains leave it): matched again with no read of its own.
    ChangeCache(rt.redis, rt.keys).keep(qbo_sandbox.realm_id, "Customer", [qbo_sandbox.customer(second["Id"])],
                                        time.time())
    assert candidate_edited("first look") == {}
    assert h.link_of_customer(second["Id"]).state == LinkState.REVIEW
    rechecks = [entry for entry in h.audit("link.review") if entry.entity_id == second["Id"]]
    assert len(rechecks) >= 2  # the first sync's review, and the look again

    # Not in any answer: read.
    rt.redis.delete(rt.keys.cdc_answer(qbo_sandbox.realm_id, "Customer"))
    assert sum(candidate_edited("second look").values()) >= 1
    assert h.link_of_customer(second["Id"]).state == LinkState.REVIEW

    # Not in any answer, but a change of its own waits in the inbox: left to that change's unit (no read).
    qbo_sandbox.reset_counts()
    with h.app.app_context():
        db.session.add(InboundEvent(source=EventSource.QBO, dedupe_key=f"test:{second['Id']}",
                                    connection_id=h.connection_id, realm_id=qbo_sandbox.realm_id,
                                    entity="Customer", entity_id=second["Id"], operation="Update"))
        db.session.commit()
        ctx = build_context(rt.sync_services(), h.connection_id)
        try:
            assert recheck_naming(ctx, "crm", str(contact_id)) == ["left to its own change"]
        finally:
            ctx.close()
    assert qbo_sandbox.requests_by_endpoint() == {}
    h.work()  # the change's own unit looks at it: still waiting (nothing about it changed)
    assert h.link_of_customer(second["Id"]).state == LinkState.REVIEW
