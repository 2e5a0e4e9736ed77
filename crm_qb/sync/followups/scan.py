"""One follow-up scan of one connection: which rows need a CRM task created, checked or completed, and doing it.

How a task is made exactly once per (connection, invoice, rule), through retries, concurrent scans and crashes:
1. The FollowUp row is *reserved* first (``store.reserve``) and committed: the unique constraint decides, so two
   scans can never both own a rule.
2. Work on one row (create, complete) happens under a Redis lock per row (``crm_qb.locks``, renewed while held,
   not waited for: a busy row is left to the next scan), and the row is re-read after the lock is taken, so two
   scans never talk to the CRM about the same row at once.
3. A create is written ahead: the row's ``task_attempted_at`` is committed before the first create is sent. A row
   that has it may have a task in the CRM that a run crashed before recording, so the contact's tasks are listed
   and searched for the row's marker (``task_marker``, which every task description ends with) and such a task is
   recorded, never created twice. A row without it cannot have one, and the read is skipped. Then the task id and
   status open are recorded by a guarded UPDATE.
4. Rows never tried are created together (``_create_new``): up to 100 are locked, written ahead in one UPDATE and
   sent in one batch create when the connector has one (``crm_qb.crm.batch.create_tasks``: our ``POST
   /tasks/batch``, HubSpot's batch create), so a first sync's 2,000 new tasks cost 20 CRM calls, not 2,000. A task
   the CRM refused is recorded on its row alone. A batch that fails as a whole leaves its rows written ahead: the
   next scan searches each contact's tasks for the marker, as after a crash.
No database transaction is open while the CRM is called. A task a CRM user completed or deleted becomes
``closed_by_user``; its row stays, so no rule creates it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from functools import partial
from typing import Any

from crm_qb.crm.batch import BatchTaskCreates, create_tasks, read_tasks
from crm_qb.crm.errors import ContactNotFoundError, CrmAuthError, CrmPermanentError, TaskNotFoundError
from crm_qb.crm.protocol import Contact, CrmConnector, NewTask, Task
from crm_qb.db import db, utcnow
from crm_qb.errors import ConfigError
from crm_qb.locks import RenewingLock, RenewingLocks
from crm_qb.models import FollowUpStatus
from crm_qb.qbo.deeplinks import AppLinks, links_for
from crm_qb.sync.followups import store
from crm_qb.sync.followups.settings import FollowupSettings, parse_settings
from crm_qb.sync.followups.store import ACTIVE, Row
from crm_qb.sync.followups.tags import TagKeeper
from crm_qb.sync.rules.followups import (
    CONTACT_GONE,
    Invoice,
    closing_reason,
    completion_note,
    rule_to_fire,
    task_fields,
    task_marker,
    task_text,
)
from crm_qb.sync.rules.status import company_today
from crm_qb.sync.services import SyncServices
from crm_qb.sync.transactions import registry

log = logging.getLogger(__name__)

PAGED_CONTACTS_FROM = 50  # fewer contacts to read than this: one read each
PAGE_PER_READS = 10  # a walk of the contact list reads at most one page per this many single reads it replaces
CONTACT_PAGE = 1000  # the REST contract's largest page (HubSpot's connector asks for its own largest, 100)
TASK_BATCH = 100  # new tasks sent together to a CRM that creates many in one call (both batch APIs take 100)


@dataclass
class ScanResult:
    """What one scan did; ``failed`` lists rows the CRM refused (their reason is recorded on the row)."""

    created: int = 0
    completed: int = 0
    closed_by_user: int = 0
    tagged: int = 0
    untagged: int = 0
    busy: int = 0
    failed: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """Return the counts as a JSON-safe object."""
        return asdict(self)


def build_task(settings: FollowupSettings, values: Mapping[str, object], marker: str, today: date,
               owner_id: str | None) -> NewTask:
    """Return the task to create: rendered title, description ending with ``marker``, due ``today``."""
    title, description = task_text(settings.title_template, settings.description_template, values, marker)
    return NewTask(title=title, description=description, due_date=today, owner_id=owner_id)


class Scan:
    """One scan of one connection: its settings, clock, CRM connector and per-scan caches."""

    def __init__(self, services: SyncServices, connection_id: int, now: datetime | None = None,
                 crm: CrmConnector | None = None) -> None:
        connection = store.connection(connection_id)
        self.connection_id: int = connection.id
        self.settings = parse_settings(connection.settings)
        self.now = now or utcnow()
        self.today = company_today(self.now, connection.company_timezone or "UTC")
        self._realm_id, self._sandbox_company = connection.qbo_realm_id, connection.qbo_is_sandbox
        self.services = services
        self._owns_crm = crm is None
        self.crm = crm if crm is not None else services.crm_for(connection)
        db.session.rollback()
        self.result = ScanResult()
        self.tags = TagKeeper(self.crm, self.settings.tag, self.result, services.pace)
        self._tasks: dict[str, list[Task]] = {}  # each contact's tasks, listed once a scan
        self._by_id: dict[str, Task] = {}  # the open rows' tasks read by id (``_read_open_tasks``)
        self._asked: set[str] = set()  # the task ids read by id: one of them not in ``_by_id`` was deleted
        self._contacts: dict[str, Contact] = {}
        self._links: AppLinks | None = None

    def __enter__(self) -> Scan:
        return self

    def __exit__(self, *_: object) -> None:
        if self._owns_crm:
            self.crm.close()
        db.session.rollback()

    # -- the two entry points --

    def run(self, invoice_id: str | None) -> ScanResult:
        """Reserve the rules due, bring every active row up to date, then reconcile tags.

        New tasks are created a hundred per call and open ones read a hundred per call where the CRM can; the
        other rows and each tagged contact are a few CRM calls each. A scan run as bulk work (the first sync's,
        thousands of tasks) gives way to live work before each batch, row and contact (``SyncServices.pace``; the
        others do not pause)."""
        rows = store.active_rows(self.connection_id, invoice_id)
        invoices = store.invoices(self.connection_id, self.today, invoice_id, {row.qbo_invoice_id for row in rows})
        if self.settings.enabled:
            store.reserve(self.connection_id, self._due(invoices.values()))
        active = store.active_rows(self.connection_id, invoice_id)
        self._read_contacts_in_pages(active)
        self._read_open_tasks(active)
        new: list[Row] = []
        for row in active:
            if self._is_new_task(row, invoices):
                new.append(row)  # created together below
                continue
            self.services.pace()
            self._update_row(row, invoices)
        size = TASK_BATCH if isinstance(self.crm, BatchTaskCreates) else 1
        for start in range(0, len(new), size):
            self.services.pace()
            self._create_new(new[start:start + size], invoices)
        if self.settings.tag_enabled:
            contacts = {inv.contact_id for inv in invoices.values() if inv.contact_id}
            contacts |= {row.crm_contact_id for row in rows}
            everyone = invoice_id is None
            self._reconcile_tags(store.contacts_with_invoices(self.connection_id) if everyone else contacts)
        self._log("scan" if invoice_id is None else f"scan of invoice {invoice_id}")
        return self.result

    def close_invoice(self, invoice_id: str, reason: str) -> ScanResult:
        """Complete every active follow-up of one invoice with ``reason``, then reconcile its contacts' tags."""
        rows = store.active_rows(self.connection_id, invoice_id)
        for row in rows:
            self._locked(row.id, lambda fresh: self._close(fresh, reason))
        if self.settings.tag_enabled:
            invoices = store.invoices(self.connection_id, self.today, invoice_id, set())
            contacts = {row.crm_contact_id for row in rows}
            self._reconcile_tags(contacts | {inv.contact_id for inv in invoices.values() if inv.contact_id})
        self._log(f"close of invoice {invoice_id} ({reason})")
        return self.result

    # -- rows --

    def _due(self, invoices: Iterable[Invoice]) -> list[dict[str, Any]]:
        """The (invoice, rule) rows to add on today: at most one per invoice of a linked contact (``rule_to_fire``)."""
        candidates = [inv for inv in invoices if inv.contact_id and not inv.voided]
        reached = store.rules_reached(self.connection_id, (inv.qbo_id for inv in candidates))
        rules = {inv.qbo_id: self._rule_to_fire(inv, reached.get(inv.qbo_id)) for inv in candidates}
        return [{"qbo_invoice_id": inv.qbo_id, "rule_days": rules[inv.qbo_id], "crm_contact_id": inv.contact_id}
                for inv in candidates if rules[inv.qbo_id] is not None]

    def _rule_to_fire(self, invoice: Invoice, reached: int | None) -> int | None:
        if invoice.due_date is None:
            return None
        return rule_to_fire(invoice.due_date, invoice.balance, self.today, self.settings.rule_days, reached)

    def _is_new_task(self, row: Row, invoices: Mapping[str, Invoice]) -> bool:
        """Whether the row wants its first task: pending, never tried, its invoice still overdue and open."""
        invoice = invoices.get(row.qbo_invoice_id)
        return (self.settings.enabled and row.status == FollowUpStatus.PENDING and not row.task_attempted
                and invoice is not None and closing_reason(row.crm_contact_id, invoice, self.today) is None)

    def _update_row(self, row: Row, invoices: Mapping[str, Invoice]) -> None:
        invoice = invoices.get(row.qbo_invoice_id)
        reason = closing_reason(row.crm_contact_id, invoice, self.today)
        if reason is not None:
            self._locked(row.id, lambda fresh: self._close(fresh, reason))
        elif row.status == FollowUpStatus.PENDING and invoice is not None and self.settings.enabled:
            self._locked(row.id, lambda fresh: self._ensure_task(fresh, invoice))
        elif row.status == FollowUpStatus.OPEN:
            self._locked(row.id, self._check_still_open)

    def _locked(self, row_id: int, work: Callable[[Row], None]) -> None:
        """Run ``work`` on the freshly read row under its lock; skip it when another scan holds the lock."""
        with ExitStack() as held:
            if not self._hold(row_id, held):
                return
            row = store.row(row_id)
            if row is not None and row.status in ACTIVE:
                self._guarded(row, work)

    def _guarded(self, row: Row, work: Callable[[Row], None]) -> None:
        """Run ``work``; a vanished contact closes the row, another refusal is recorded on it."""
        try:
            work(row)
        except ContactNotFoundError:
            self._finish(row, FollowUpStatus.CLOSED_BY_USER, CONTACT_GONE, row.crm_task_id)
        except CrmAuthError:
            raise
        except CrmPermanentError as exc:
            # The CRM refused this row (e.g. a rendered title it does not accept): record why, go on.
            store.set_reason(row.id, f"{type(exc).__name__}: {exc}"[:2000])
            self.result.failed.append(f"follow-up {row.id}: {exc}")
            log.error("connection %s follow-up %s refused by the CRM: %s", self.connection_id, row.id, exc)

    def _ensure_task(self, row: Row, invoice: Invoice) -> None:
        """Record the row's task: the one a crashed run left in the CRM (found by marker), else a new one."""
        if row.status != FollowUpStatus.PENDING:
            return
        existing = self._task_of(row)  # searched for only when a create was ever sent
        if existing is not None and existing.status == "done":
            self._finish(row, FollowUpStatus.CLOSED_BY_USER, "completed in the CRM", existing.id)
            return
        if not row.task_attempted and not store.record(row.id, FollowUpStatus.PENDING, task_attempted_at=utcnow()):
            return  # no longer pending: nothing to create
        marker = task_marker(self.connection_id, row.qbo_invoice_id, row.rule_days)
        task = existing or self.crm.create_task(row.crm_contact_id, self._new_task(row, invoice, marker))
        if store.record(row.id, FollowUpStatus.PENDING, status=FollowUpStatus.OPEN, crm_task_id=task.id,
                        status_reason=None):
            if existing is None:
                self.result.created += 1
            log.info("connection %s follow-up %s: task %s %s for invoice %s rule %s", self.connection_id, row.id,
                     task.id, "found" if existing else "created", row.qbo_invoice_id, row.rule_days)

    def _create_new(self, rows: Sequence[Row], invoices: Mapping[str, Invoice]) -> None:
        """Create the first task of each row together: lock the rows (a busy one is left to the next scan), write
        their creates ahead in one UPDATE, send one batch, record the tasks created in one commit and each
        refusal on its own row."""
        with ExitStack() as held:
            owned = self._hold_all(rows, held)
            marked = store.mark_attempted([row.id for row in owned])
            sending: list[tuple[Row, NewTask]] = []
            for row in owned:
                invoice = invoices[row.qbo_invoice_id]
                if row.id in marked:
                    self._guarded(row, partial(self._prepare, invoice=invoice, into=sending))
                    continue
                fresh = store.row(row.id)  # another scan changed it since this one listed it: as any row
                if fresh is not None and fresh.status in ACTIVE:
                    self._guarded(fresh, partial(self._ensure_task, invoice=invoice))
            if not sending:
                return
            results = create_tasks(self.crm, [(row.crm_contact_id, task) for row, task in sending])
            created: dict[int, tuple[Row, str]] = {}
            for (row, _), result in zip(sending, results, strict=True):
                if isinstance(result, CrmPermanentError):
                    self._guarded(row, partial(self._refused, result))
                else:
                    created[row.id] = (row, result.id)
            for row_id in store.record_tasks({row_id: task_id for row_id, (_, task_id) in created.items()}):
                row, task_id = created[row_id]
                self.result.created += 1
                log.info("connection %s follow-up %s: task %s created for invoice %s rule %s", self.connection_id,
                         row.id, task_id, row.qbo_invoice_id, row.rule_days)

    def _hold_all(self, rows: Sequence[Row], held: ExitStack) -> list[Row]:
        """Take the rows' locks until ``held`` closes, one keeper for them all; those another scan holds are
        left out (counted busy)."""
        keys = {self.services.keys.followup_lock(self.connection_id, row.id): row for row in rows}
        locks = RenewingLocks(self.services.redis, list(keys))
        taken = set(locks.acquire())
        held.callback(locks.release)
        self.result.busy += len(keys) - len(taken)
        return [row for key, row in keys.items() if key in taken]

    def _hold(self, row_id: int, held: ExitStack) -> bool:
        """Take the row's lock until ``held`` closes; False when another scan holds it (counted busy)."""
        lock = RenewingLock(self.services.redis, self.services.keys.followup_lock(self.connection_id, row_id),
                            wait=0)
        if not lock.acquire():
            self.result.busy += 1
            return False
        held.callback(lock.release)
        return True

    def _prepare(self, row: Row, invoice: Invoice, into: list[tuple[Row, NewTask]]) -> None:
        """Add the row's task, marked as its own, to the batch ``into``."""
        marker = task_marker(self.connection_id, row.qbo_invoice_id, row.rule_days)
        into.append((row, self._new_task(row, invoice, marker)))

    @staticmethod
    def _refused(refusal: CrmPermanentError, row: Row) -> None:
        """Raise the CRM's refusal of the row's task (``_guarded`` records it on the row)."""
        raise refusal

    def _new_task(self, row: Row, invoice: Invoice, marker: str) -> NewTask:
        contact = self._contact(row.crm_contact_id)
        customer = invoice.customer_name or _contact_name(contact)
        link = registry.followed_up().link(self._app_links(), invoice.qbo_id)
        return build_task(self.settings, task_fields(invoice, self.today, link, customer, row.rule_days), marker,
                          self.today, contact.owner_id)

    def _app_links(self) -> AppLinks:
        """Where deep links open: the web app and this connection's company (read only when a task is created)."""
        if self._links is None:
            try:
                base = self.services.qbo.endpoints.app_base
            except ValueError as exc:
                raise ConfigError(str(exc)) from None
            self._links = links_for(base, self._realm_id, sandbox_company=self._sandbox_company)
        return self._links

    def _check_still_open(self, row: Row) -> None:
        """Mark the row closed_by_user when its task was completed or deleted in the CRM."""
        task = self._task(row.crm_contact_id, row.crm_task_id)
        if task is None:
            self._finish(row, FollowUpStatus.CLOSED_BY_USER, "deleted in the CRM", row.crm_task_id)
        elif task.status == "done":
            self._finish(row, FollowUpStatus.CLOSED_BY_USER, "completed in the CRM", row.crm_task_id)

    def _close(self, row: Row, reason: str) -> None:
        """Complete the row's task in the CRM with a note saying why, and the row with it."""
        task = self._task_of(row)
        if task is None and row.status == FollowUpStatus.PENDING:
            self._finish(row, FollowUpStatus.COMPLETED, f"{reason} (before a task was created)", None)
        elif task is None or task.status == "done":
            why = "deleted in the CRM" if task is None else "completed in the CRM"
            self._finish(row, FollowUpStatus.CLOSED_BY_USER, why, row.crm_task_id)
        else:
            try:
                self.crm.update_task(task.id, {"status": "done",
                                               "description": completion_note(task.description, reason,
                                                                              self.today)})
            except TaskNotFoundError:
                self._finish(row, FollowUpStatus.CLOSED_BY_USER, "deleted in the CRM", task.id)
                return
            self._finish(row, FollowUpStatus.COMPLETED, reason, task.id)

    def _task_of(self, row: Row) -> Task | None:
        """The row's task: found by marker while the row is pending (its id may not be recorded yet); none when
        no create was ever sent for it."""
        if row.status == FollowUpStatus.PENDING:
            if not row.task_attempted:
                return None
            return self._find_marked(row.crm_contact_id, task_marker(self.connection_id, row.qbo_invoice_id,
                                                                     row.rule_days))
        return self._task(row.crm_contact_id, row.crm_task_id)

    def _finish(self, row: Row, status: FollowUpStatus, reason: str, task_id: str | None) -> None:
        if store.record(row.id, row.status, status=status, status_reason=reason, crm_task_id=task_id,
                        completed_at=utcnow()):
            if status == FollowUpStatus.COMPLETED:
                self.result.completed += 1
            else:
                self.result.closed_by_user += 1
            log.info("connection %s follow-up %s (invoice %s rule %s): %s, %s", self.connection_id, row.id,
                     row.qbo_invoice_id, row.rule_days, status.value, reason)

    # -- CRM reads, cached for the scan --

    def _find_marked(self, contact_id: str, marker: str) -> Task | None:
        """The contact's task whose description holds ``marker``, read fresh (another run may just have made it)."""
        self._tasks[contact_id] = self.crm.list_tasks(contact_id)
        return next((t for t in self._tasks[contact_id] if marker in (t.description or "")), None)

    def _read_open_tasks(self, rows: Iterable[Row]) -> None:
        """Read the open rows' tasks by id, a hundred per call, when the CRM can: the hourly scan of a tenant with
        2,000 open follow-ups read its 700-odd contacts' task lists one by one (14 s of a worker, 700 of the CRM's
        calls each hour); a task not returned was deleted. Otherwise each contact's tasks are listed (``_task``)."""
        ids = [row.crm_task_id for row in rows if row.status == FollowUpStatus.OPEN and row.crm_task_id]
        if not ids:
            return
        self.services.pace()
        found = read_tasks(self.crm, ids)
        if found is not None:
            self._by_id, self._asked = found, set(ids)

    def _task(self, contact_id: str, task_id: str | None) -> Task | None:
        if task_id is not None and task_id in self._asked:
            return self._by_id.get(task_id)
        if contact_id not in self._tasks:
            self._tasks[contact_id] = self.crm.list_tasks(contact_id)
        return next((t for t in self._tasks[contact_id] if t.id == task_id), None)

    def _read_contacts_in_pages(self, rows: Iterable[Row]) -> None:
        """Read the contacts new tasks will name (owner, name) from the CRM's contact list when that is cheaper
        than one read each: a first sync's 2,000 tasks went to 1,231 contacts, 1,231 reads, where three pages of
        the list hold them all.

        Only for many contacts (``PAGED_CONTACTS_FROM``), and the walk stops after one page per
        ``PAGE_PER_READS`` reads it replaces: a CRM with far more contacts than the scan needs costs at most that
        share more calls before the rest are read one by one (``_contact``, as before)."""
        wanted = {row.crm_contact_id for row in rows
                  if row.status == FollowUpStatus.PENDING and not row.task_attempted} - set(self._contacts)
        if len(wanted) < PAGED_CONTACTS_FROM:
            return
        budget, walked = len(wanted) // PAGE_PER_READS, 0
        pages = self.crm.list_contacts_updated_since(None, page_size=CONTACT_PAGE)
        while walked < budget:
            self.services.pace()
            page = next(pages, None)
            if page is None:
                break
            walked += 1
            for contact in page.contacts:
                if contact.id in wanted:
                    self._contacts[contact.id] = contact
                    wanted.discard(contact.id)
            if not wanted:
                break
        log.info("connection %s follow-up scan read %s contacts in %s page(s); %s left to read one by one",
                 self.connection_id, len(self._contacts), walked, len(wanted))

    def _contact(self, contact_id: str) -> Contact:
        if contact_id not in self._contacts:
            self._contacts[contact_id] = self.crm.get_contact(contact_id)
        return self._contacts[contact_id]

    def _reconcile_tags(self, contact_ids: Iterable[str]) -> None:
        """Put the tag on each contact with an overdue invoice and take it off the others."""
        ids = sorted(set(contact_ids))
        self.tags.reconcile(ids, store.contacts_overdue(self.connection_id, ids, self.today), self.connection_id)

    def _log(self, what: str) -> None:
        log.info("connection %s follow-up %s on %s: %s", self.connection_id, what, self.today.isoformat(),
                 self.result.to_json())


def _contact_name(contact: Contact) -> str:
    names = " ".join(part for part in (contact.first_name, contact.last_name) if part)
    return contact.display_name or contact.company or names or contact.id
