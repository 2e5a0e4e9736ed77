"""The first sync and history imports as the jobs, the CLI, the API and the admin pages call them.

- ``open_first_sync`` (on connecting QuickBooks): opens the connection's first-sync run and asks for its
  preview; nothing is written to either side until the run is started (``held`` keeps the drains and the poll
  off a connection whose first sync has not finished).
- ``request_preview`` / ``compute_preview``: the preview is the backfill's dry run, recorded; with the
  connection's ``first_sync.auto_start`` the run starts as soon as it is computed.
- ``start`` / ``execute``: the real run, page by page with a checkpoint (a killed worker's run is resumed from
  its last page by the next ``start`` or the scheduler's tick), then the follow-up scan, then the drains wake.
- ``retry_failed``: every failed record again, through the same units webhooks use.
- ``status_json`` / ``preview_json``: DESIGN §11's objects.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import select

from crm_qb.db import db, utcnow
from crm_qb.errors import PermanentError, TransientError
from crm_qb.jobqueue import JobQueue
from crm_qb.models import Connection, FolderItem, FollowUp, SyncRun, SyncRunRecord
from crm_qb.qbo.client import QUERY_MAX_RESULTS
from crm_qb.sync.context import SyncContext, build_context
from crm_qb.sync.customers.crm_side import link_new_contact
from crm_qb.sync.customers.hierarchy import contacts_for
from crm_qb.sync.customers.qbo_side import sync_customer
from crm_qb.sync.firstsync import store
from crm_qb.sync.firstsync.outcomes import COUNT_KEYS, action_of, describe, eta_seconds
from crm_qb.sync.firstsync.runner import (
    FOLLOWUPS,
    DateRange,
    RecordedPreview,
    RecordRow,
    new_checkpoint,
    recorded,
)
from crm_qb.sync.firstsync.settings import auto_start_of
from crm_qb.sync.firstsync.store import (
    DONE,
    FAILED,
    FIRST,
    HISTORY,
    PREVIEW,
    PREVIEWED,
    PREVIEWING,
    RUN,
    RUNNING,
    WAITING,
)
from crm_qb.sync.followups.service import followup_settings, scan_connection, scan_invoice
from crm_qb.sync.followups.store import rules_reached
from crm_qb.sync.pipeline.backfill import (
    CONTACTS,
    CUSTOMERS,
    TIME,
    TRANSACTIONS,
    check_backfillable,
    outcome_counter,
)
from crm_qb.sync.pipeline.events import wake_connection
from crm_qb.sync.rules.followups import rule_to_fire
from crm_qb.sync.rules.status import company_today
from crm_qb.sync.services import SyncServices
from crm_qb.sync.transactions import registry
from crm_qb.sync.transactions.mirror import mirror

log = logging.getLogger(__name__)

HELD_STATES = (WAITING, PREVIEWING, PREVIEWED, RUNNING, FAILED)


class SyncRunRefused(PermanentError):
    """The run cannot do that now (e.g. preview a run already started); the message says why."""


# -- opening and holding -------------------------------------------------------------------------------------


def open_first_sync(jobs: JobQueue | None, connection_id: int) -> SyncRun:
    """The connection's first-sync run, opened (and its preview asked of ``jobs``, when given) if it has none."""
    run = store.latest(connection_id, FIRST)
    if run is not None:
        return run
    connection = db.session.get(Connection, connection_id)
    run = store.open_run(connection_id, FIRST, auto_start=auto_start_of(connection.settings if connection else None))
    log.info("first sync opened connection=%s run=%s auto_start=%s", connection_id, run.id, run.auto_start)
    if jobs is not None:
        request_preview(jobs, run.id)
    return run


def held(connection_id: int) -> bool:
    """Whether the connection's writes wait for its first sync (opened and not done)."""
    state = db.session.scalar(select(SyncRun.state).where(SyncRun.connection_id == connection_id,
                                                          SyncRun.kind == FIRST).order_by(SyncRun.id.desc()).limit(1))
    db.session.rollback()
    return state in HELD_STATES


def open_history(connection_id: int, start: date, end: date) -> SyncRun:
    """A new history import of the transactions dated ``start`` to ``end`` (inclusive); refused when the range is
    empty or a history import of the connection is still under way."""
    if end < start:
        raise SyncRunRefused(f"the date range ends ({end}) before it starts ({start})")
    if held(connection_id):
        raise SyncRunRefused("the first sync of this connection has not finished; it imports every transaction, "
                             "so import history once it is done")
    current = store.latest(connection_id, HISTORY)
    if current is not None and current.state in (PREVIEWING, RUNNING):
        raise SyncRunRefused(f"history import {current.id} is {current.state}; wait for it to finish")
    return store.open_run(connection_id, HISTORY, date_from=start, date_to=end)


# -- preview --------------------------------------------------------------------------------------------------


def request_preview(jobs: JobQueue, run_id: int) -> bool:
    """Ask a worker for the run's preview (again); False when the run has started and a preview means nothing."""
    if not store.move(run_id, (WAITING, PREVIEWED, PREVIEWING), PREVIEWING, phase=None):
        return False
    jobs.sync_preview(run_id)
    return True


def preview_here(services: SyncServices, run_id: int, *, page_size: int = QUERY_MAX_RESULTS) -> SyncRun | None:
    """Compute the run's preview in this process (the CLI); SyncRunRefused once the run has started."""
    if not store.move(run_id, (WAITING, PREVIEWED, PREVIEWING), PREVIEWING, phase=None):
        raise SyncRunRefused(f"run {run_id} has started; its preview is the one shown before it started")
    return compute_preview(services, run_id, page_size=page_size)


def compute_preview(services: SyncServices, run_id: int, *, job_id: str | None = None,
                    page_size: int = QUERY_MAX_RESULTS) -> SyncRun | None:
    """Compute the run's preview (it must be previewing; None otherwise); start it when it starts by itself."""
    run = store.run_of(run_id)
    if run is None or run.state != PREVIEWING:
        db.session.rollback()
        return None
    connection_id, kind, dates, auto = run.connection_id, run.kind, _dates(run), run.auto_start
    check_backfillable(connection_id)
    store.clear(run_id, PREVIEW)
    ctx = build_context(services, connection_id, job_id)
    try:
        walker = recorded(services, ctx, preview=True, sink=_Sink(run_id, PREVIEW), checkpoint=new_checkpoint(),
                          dates=dates, page_size=page_size)
        assert isinstance(walker, RecordedPreview)
        walker.follow_up_rules(*_followup_rules(connection_id))
        walker.execute()
        store.save_page(run_id, PREVIEW, _predicted_followups(connection_id, walker, kind))
    finally:
        ctx.close()
    summary = {"counts": _counts(run_id, PREVIEW), "phases": store.phase_counts(run_id, PREVIEW)}
    store.move(run_id, (PREVIEWING,), PREVIEWED, phase=None, preview=summary, previewed_at=utcnow())
    log.info("sync preview connection=%s run=%s %s", connection_id, run_id, summary["counts"])
    if auto:
        start(services.jobs, run_id)
    return store.run_of(run_id)


def _followup_rules(connection_id: int) -> tuple[date, tuple[int, ...]]:
    settings = followup_settings(connection_id)
    connection = db.session.get(Connection, connection_id)
    today = company_today(utcnow(), (connection.company_timezone if connection else None) or "UTC")
    db.session.rollback()
    return today, tuple(settings.rule_days) if settings.enabled else ()


def _predicted_followups(connection_id: int, walker: RecordedPreview, kind: str) -> list[RecordRow]:
    """The follow-up tasks the first scan after the run would create: one per overdue invoice with a contact."""
    invoices = walker.overdue
    linked: dict[str, str] = {}
    reached: dict[str, int] = {}
    if kind == HISTORY:
        linked = contacts_for(connection_id, {customer for _, customer, _, _, _ in invoices})
        reached = rules_reached(connection_id, [invoice for invoice, *_ in invoices])
        db.session.rollback()
    rows = []
    for invoice, customer, name, due, balance in invoices:
        contact = linked.get(customer) if kind == HISTORY else walker.contact_for(customer)
        prior = reached.get(invoice) if kind == HISTORY else None
        if contact and rule_to_fire(due, balance, walker.today, walker.rule_days, prior) is not None:
            rows.append(RecordRow(FOLLOWUPS, "FollowUp", invoice, "followup", name, partner_id=contact))
    return rows


# -- the run --------------------------------------------------------------------------------------------------


def start(jobs: JobQueue, run_id: int) -> bool:
    """Start the run (from waiting, previewed or failed), or make sure a started one is being worked on (a killed
    worker's run resumes); a finished run is left alone. Whether the run is (now) running."""
    if store.move(run_id, (WAITING, PREVIEWED, FAILED), RUNNING, error=None, finished_at=None):
        run = store.run_of(run_id)
        if run is not None and run.started_at is None:
            store.set_values(run_id, started_at=utcnow())
        log.info("sync run started run=%s", run_id)
    run = store.run_of(run_id)
    state = run.state if run is not None else None
    db.session.rollback()
    if state != RUNNING:
        return False
    jobs.sync_run(run_id)
    return True


def execute(services: SyncServices, run_id: int, *, job_id: str | None = None,
            page_size: int = QUERY_MAX_RESULTS) -> SyncRun | None:
    """Do the run from its checkpoint (it must be running; None otherwise): the backfill, then the follow-ups."""
    run = store.run_of(run_id)
    if run is None or run.state != RUNNING:
        db.session.rollback()
        return None
    connection_id, dates, checkpoint = run.connection_id, _dates(run), dict(run.checkpoint or new_checkpoint())
    try:
        check_backfillable(connection_id)
        if FOLLOWUPS not in checkpoint["phases_done"]:
            _walk(services, run_id, connection_id, dates, checkpoint, job_id, page_size)
            _followups(services, run_id, connection_id, checkpoint)
    except PermanentError as exc:
        store.move(run_id, (RUNNING,), FAILED, error=str(exc))
        log.warning("sync run failed connection=%s run=%s: %s", connection_id, run_id, type(exc).__name__)
        raise
    store.move(run_id, (RUNNING,), DONE, phase=None, finished_at=utcnow())
    log.info("sync run done connection=%s run=%s %s", connection_id, run_id, _counts(run_id, RUN))
    # The events that waited for the first sync (mostly the echoes of what it wrote: a hook for every contact it
    # created) are bulk work too: their drains run where first syncs run, behind live changes.
    wake_connection(services.jobs, connection_id, bulk=True)
    return store.run_of(run_id)


def _walk(services: SyncServices, run_id: int, connection_id: int, dates: DateRange | None,
          checkpoint: dict[str, Any], job_id: str | None, page_size: int) -> None:
    done = set(checkpoint["phases_done"])
    if {CUSTOMERS, TRANSACTIONS, CONTACTS, TIME} <= done or (dates is not None and TRANSACTIONS in done):
        return
    ctx = build_context(services, connection_id, job_id)
    try:
        walker = recorded(services, ctx, preview=False, sink=_Sink(run_id, RUN), checkpoint=checkpoint,
                          dates=dates, page_size=page_size)
        walker.execute()
        walker.enter(FOLLOWUPS)  # marks the last walked phase done
    finally:
        ctx.close()
        services.jobs.push_summaries(connection_id, ctx.summaries_to_push())


def _followups(services: SyncServices, run_id: int, connection_id: int, checkpoint: dict[str, Any]) -> None:
    """The follow-up scan after the walk, its tasks recorded (once: the checkpoint marks it done)."""
    run = store.run_of(run_id)
    since = run.started_at if run is not None and run.started_at else utcnow()
    db.session.rollback()
    scan_connection(services, connection_id)
    rows = db.session.scalars(select(FollowUp).where(FollowUp.connection_id == connection_id,
                                                     FollowUp.created_at >= since)).all()
    names = _invoice_names(connection_id, [row.qbo_invoice_id for row in rows])
    records = [_followup_record(row, names.get(row.qbo_invoice_id)) for row in rows]
    made = {row.qbo_invoice_id for row in rows}
    records += [RecordRow(FOLLOWUPS, "FollowUp", invoice, "failed", name, partner_id=contact, reason=NO_TASK)
                for invoice, name, contact in _planned_followups(run_id) if invoice not in made]
    db.session.rollback()
    checkpoint["phases_done"] = [*checkpoint["phases_done"], FOLLOWUPS]
    store.save_page(run_id, RUN, records, checkpoint=checkpoint,
                    planned={("FollowUp", r.object_id): "followup" for r in records})


NO_TASK = ("The preview announced a follow-up task for this overdue invoice, but the scan made none: its customer "
           "has no CRM contact (see that record's failure) or the invoice is no longer overdue.")


def _planned_followups(run_id: int) -> list[tuple[str, str | None, str | None]]:
    rows = db.session.execute(select(SyncRunRecord.object_id, SyncRunRecord.name, SyncRunRecord.partner_id).where(
        SyncRunRecord.run_id == run_id, SyncRunRecord.stage == PREVIEW, SyncRunRecord.action == "followup")).all()
    return [(str(invoice), name, contact) for invoice, name, contact in rows]


def _followup_record(row: FollowUp, name: str | None) -> RecordRow:
    if row.crm_task_id:
        return RecordRow(FOLLOWUPS, "FollowUp", row.qbo_invoice_id, "followup", name, partner_id=row.crm_contact_id)
    return RecordRow(FOLLOWUPS, "FollowUp", row.qbo_invoice_id, "failed", name, partner_id=row.crm_contact_id,
                     reason="The CRM did not take the follow-up task.", error=row.status_reason)


def _invoice_names(connection_id: int, ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    entity = registry.followed_up()
    rows = db.session.execute(select(FolderItem.qbo_id, FolderItem.doc_number).where(
        FolderItem.connection_id == connection_id, FolderItem.txn_type == entity.entity,
        FolderItem.qbo_id.in_(ids))).all()
    return {str(qbo_id): f"{entity.label} {number or '#' + str(qbo_id)}" for qbo_id, number in rows}


class _Sink:
    """Saves a walk's pages: records (failures under what the preview planned), progress and checkpoint."""

    def __init__(self, run_id: int, stage: str) -> None:
        self.run_id, self.stage = run_id, stage

    def enter(self, phase: str) -> None:
        store.set_values(self.run_id, phase=phase)

    def page(self, phase: str, records: list[RecordRow], checkpoint: dict[str, Any]) -> None:
        if self.stage == PREVIEW:
            store.save_page(self.run_id, PREVIEW, records)
            return
        failed = [(r.entity, r.object_id) for r in records if r.action == "failed"]
        planned = store.planned_actions(self.run_id, failed) if failed else {}
        store.save_page(self.run_id, RUN, records, checkpoint=dict(checkpoint), planned=planned)


def _dates(run: SyncRun) -> DateRange | None:
    if run.kind != HISTORY or run.date_from is None or run.date_to is None:
        return None
    return DateRange(run.date_from, run.date_to)


def resume_runs(jobs: JobQueue) -> int:
    """Queue every run that is previewing or running again: a no-op for a run whose job waits or runs, a resume
    for one whose worker died (its job id is free again). How many were queued."""
    rows = db.session.execute(select(SyncRun.id, SyncRun.state).where(SyncRun.state.in_((PREVIEWING, RUNNING)))).all()
    db.session.rollback()
    queued = [jobs.sync_run(run_id) if state == RUNNING else jobs.sync_preview(run_id) for run_id, state in rows]
    return sum(1 for item in queued if item.queued)


# -- retry ----------------------------------------------------------------------------------------------------


def retry_failed(services: SyncServices, run_id: int, *, job_id: str | None = None,
                 record_ids: Sequence[int] | None = None) -> int:
    """Run every failed record of a finished run again (only those of ``record_ids`` when given: the Failures
    page's retry); return how many now succeeded."""
    run = store.run_of(run_id)
    if run is None or run.state != DONE:
        db.session.rollback()
        raise SyncRunRefused(f"run {run_id} has not finished; retry its failed records once it has")
    connection_id = run.connection_id
    failed = [(r.phase, r.entity, r.object_id, r.name, r.planned) for r in store.failed_records(run_id, record_ids)]
    db.session.rollback()
    if not failed:
        return 0
    ctx = build_context(services, connection_id, job_id)
    rows = []
    try:
        with services.connection_lock(connection_id):
            rows = [_retry_one(services, ctx, *item) for item in failed]
    finally:
        ctx.close()
    store.save_page(run_id, RUN, rows)
    fixed = sum(1 for row in rows if row.action != "failed")
    log.info("sync run retried run=%s failed=%s fixed=%s", run_id, len(rows), fixed)
    return fixed


def _retry_one(services: SyncServices, ctx: SyncContext, phase: str, entity: str, object_id: str,
               name: str | None, planned: str | None) -> RecordRow:
    row = RecordRow(phase, entity, object_id, "failed", name, planned=planned)
    try:
        row.action = action_of(entity, _redo(services, ctx, entity, object_id))
        row.reason = NO_TASK if row.action == "failed" else None
    except TransientError:
        raise
    except (PermanentError, ValueError) as exc:
        db.session.rollback()
        failure = describe(exc)
        row.reason, row.error, row.error_code, row.intuit_tid = (failure.reason, failure.error, failure.code,
                                                                 failure.intuit_tid)
    return row


def _redo(services: SyncServices, ctx: SyncContext, entity: str, object_id: str) -> str:
    """One record through the unit webhooks use; its backfill counter."""
    if entity == "Customer":
        found = ctx.qbo.read_many("Customer", [object_id], include_inactive=True).get(object_id)
        return outcome_counter(sync_customer(ctx, found, [])) if found else "skipped"
    if entity == "Contact":
        return outcome_counter(link_new_contact(ctx, ctx.crm.get_contact(object_id), []))
    if entity == "FollowUp":
        result = scan_invoice(services, ctx.connection_id, object_id)
        return "created" if result.created and not result.failed else "failed"
    txn = ctx.qbo.read_many(entity, [object_id]).get(object_id)
    action = mirror(ctx, entity, object_id, txn).action
    db.session.commit()
    return action if action in ("created", "updated") else "unchanged"


# -- what the callers show ------------------------------------------------------------------------------------


def _counts(run_id: int, stage: str) -> dict[str, int]:
    return store.counts(run_id, stage)


def preview_json(run: SyncRun) -> dict[str, Any]:
    """DESIGN §11's preview object: the six counts (integers), with the run's id, kind, state and totals."""
    counts = (run.preview or {}).get("counts") or dict.fromkeys(COUNT_KEYS, 0)
    return {**{key: int(counts.get(key, 0)) for key in COUNT_KEYS}, "run_id": run.id, "kind": run.kind,
            "state": run.state, "ready": run.state not in (WAITING, PREVIEWING),
            "date_from": _iso(run.date_from), "date_to": _iso(run.date_to),
            "walked": (run.preview or {}).get("phases") or {}, "computed_at": _iso(run.previewed_at)}


def status_json(run: SyncRun) -> dict[str, Any]:
    """DESIGN §11's status object ``{state, phase, done, total, failed}``, with the run's counts and time left."""
    walked = store.phase_counts(run.id, RUN)
    done = sum(walked.values())
    counts = store.counts(run.id, RUN) if run.state in (RUNNING, DONE, FAILED) else dict.fromkeys(
        (*COUNT_KEYS, "failed", "seen"), 0)
    total = done if run.state == DONE else max(done, _total(run))  # the preview's estimate until the end
    elapsed = (utcnow() - run.started_at).total_seconds() if run.started_at and run.state == RUNNING else 0.0
    return {"state": run.state, "phase": run.phase, "done": done, "total": total, "failed": counts["failed"],
            "run_id": run.id, "kind": run.kind, "eta_seconds": eta_seconds(done, total, elapsed) if elapsed else None,
            "counts": {key: counts[key] for key in COUNT_KEYS}, "phases": walked, "totals": _phase_totals(run),
            "started_at": _iso(run.started_at), "finished_at": _iso(run.finished_at), "error": run.error}


def _phase_totals(run: SyncRun) -> dict[str, int]:
    """Records each phase will walk, from the preview (the CRM walk also meets the contacts the run creates)."""
    preview = run.preview or {}
    totals = {phase: int(n) for phase, n in (preview.get("phases") or {}).items()}
    if CONTACTS in totals:
        totals[CONTACTS] += int((preview.get("counts") or {}).get("create_in_crm", 0))
    return totals


def _total(run: SyncRun) -> int:
    """Records the run will walk, from its preview (the CRM walk also meets the contacts the run creates)."""
    preview = run.preview or {}
    phases = preview.get("phases") or {}
    created = int((preview.get("counts") or {}).get("create_in_crm", 0))
    return sum(int(n) for n in phases.values()) + (created if phases.get(CONTACTS) else 0)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
