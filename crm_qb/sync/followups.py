"""Follow-ups: CRM tasks for overdue invoices, completed when the invoice no longer needs one (DESIGN §4).

How a task is made exactly once per (connection, invoice, rule), through retries, concurrent scans and crashes:
1. The FollowUp row is *reserved* first (INSERT ... ON CONFLICT DO NOTHING, status pending) and committed: the
   unique constraint decides, so two scans can never both own a rule.
2. Work on one row (create, complete) happens under a short Redis lock per row, and the row is re-read after
   the lock is taken, so two scans never talk to the CRM about the same row at once.
3. Before creating, the contact's tasks are listed and searched for the row's marker (``task_marker``), which
   every task description ends with: a task created by a run that crashed before recording it is found and
   recorded, never created twice. Then the task id and status open are recorded by a guarded UPDATE.
No database transaction is open while the CRM is called. A task a CRM user completed or deleted becomes
``closed_by_user``; its row stays, so no rule creates it again.

Decisions: every rule that has fired gets its task (an invoice first seen 30 days overdue gets the 1-, 14- and
30-day tasks at once); a task's due date is the company's today; the contact tag is reconciled for every linked
contact that has invoices (one GET each, a PATCH only when the tag is wrong) when the connection enables it.
An invoice moved to another customer completes its tasks; its rows stay, so rules that already fired on the old
contact do not fire again on the new one (later rules do).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from decimal import Decimal
from functools import cached_property
from typing import Any

from flask import current_app
from redis import Redis
from redis.exceptions import LockError
from sqlalchemy import Numeric, cast, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult

from crm_qb.crm.errors import (
    ContactNotFoundError,
    CrmAuthError,
    CrmPermanentError,
    TaskNotFoundError,
    VersionConflictError,
)
from crm_qb.crm.protocol import Contact, CrmConnector, NewTask, Task
from crm_qb.crm.rest import RestConnector
from crm_qb.db import db, utcnow
from crm_qb.errors import ConfigError, PermanentError
from crm_qb.models import Connection, ContactLink, FolderItem, FollowUp, FollowUpStatus, LinkState
from crm_qb.qbo.deeplinks import transaction_link
from crm_qb.runtime import runtime
from crm_qb.sync.followup_rules import due_rules, render_task
from crm_qb.sync.followup_settings import FollowupSettings, parse_settings, reset_settings, updated_settings
from crm_qb.sync.money import format_money
from crm_qb.sync.status import VOIDED, company_today, days_overdue

log = logging.getLogger(__name__)

ACTIVE = (FollowUpStatus.PENDING, FollowUpStatus.OPEN)
LOCK_SECONDS = 600  # longer than the connector's worst case for one list + one create (retries included)
TAG_ATTEMPTS = 3
TITLE_MAX = 255  # the reference CRM's limits (section 6 sets none); text past them is cut, the marker kept
DESCRIPTION_MAX = 4000
RESERVE_BATCH = 500
CLOSE_REASONS = {
    "paid": "the invoice was paid in full",
    "voided": "the invoice was voided in QuickBooks",
    "deleted": "the invoice was deleted in QuickBooks",
    "moved": "the invoice was moved to another customer",
    "not_overdue": "the invoice is no longer overdue",
}
CONTACT_GONE = "the CRM contact no longer exists"


class UnknownConnectionError(PermanentError):
    """No connection has the id given."""


@dataclass(frozen=True)
class Invoice:
    """What follow-ups need of one mirrored invoice, and the CRM contact of its customer (None: unlinked)."""

    qbo_id: str
    contact_id: str | None
    doc_number: str | None
    due_date: date | None
    total: Decimal
    balance: Decimal
    currency: str
    voided: bool
    customer_name: str | None = None

    def overdue(self, today: date) -> bool:
        """True when a balance is owed and the due date is before ``today``."""
        return not self.voided and self.balance > 0 and days_overdue(self.due_date, today) > 0


@dataclass(frozen=True)
class Row:
    """A snapshot of one FollowUp row."""

    id: int
    qbo_invoice_id: str
    rule_days: int
    crm_contact_id: str
    crm_task_id: str | None
    status: FollowUpStatus


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


# -- pure rules -----------------------------------------------------------------------------------------


def task_marker(connection_id: int, qbo_invoice_id: str, rule_days: int) -> str:
    """Return the marker that ends a follow-up task's description and identifies it in the CRM."""
    return f"[crm-qb follow-up {connection_id}:{qbo_invoice_id}:{rule_days}]"


def closing_reason(row_contact_id: str, invoice: Invoice | None, today: date) -> str | None:
    """Return why a follow-up must be completed (a CLOSE_REASONS text), or None while it is still due."""
    if invoice is None:
        return CLOSE_REASONS["deleted"]
    if invoice.voided:
        return CLOSE_REASONS["voided"]
    if invoice.balance <= 0:
        return CLOSE_REASONS["paid"]
    if invoice.contact_id != row_contact_id:
        return CLOSE_REASONS["moved"]
    if not invoice.overdue(today):
        return CLOSE_REASONS["not_overdue"]
    return None


def task_fields(invoice: Invoice, today: date, deep_link: str, customer: str) -> dict[str, object]:
    """Return the template values for ``invoice`` on ``today`` (money in the invoice's currency)."""
    return {
        "invoice_number": invoice.doc_number or invoice.qbo_id,
        "amount": format_money(invoice.total, invoice.currency),
        "balance": format_money(invoice.balance, invoice.currency),
        "currency": invoice.currency,
        "due_date": invoice.due_date.isoformat() if invoice.due_date else "",
        "days_overdue": days_overdue(invoice.due_date, today),
        "deep_link": deep_link,
        "customer": customer,
    }


def build_task(settings: FollowupSettings, values: Mapping[str, object], marker: str, today: date,
               owner_id: str | None) -> NewTask:
    """Return the task to create: rendered title, description ending with ``marker``, due ``today``."""
    title = _clip(render_task(settings.title_template, values).strip() or marker, TITLE_MAX)
    body = render_task(settings.description_template, values).strip()
    body = _clip(body, DESCRIPTION_MAX - len(marker) - 2)
    return NewTask(title=title, description=f"{body}\n\n{marker}" if body else marker, due_date=today,
                   owner_id=owner_id)


def completion_note(description: str | None, reason: str, today: date) -> str:
    """Return ``description`` with a line saying crm-qb completed the task and why, within the length limit."""
    note = f"Completed by crm-qb on {today.isoformat()}: {reason}."
    text = description or ""
    if note in text:
        return text
    keep = DESCRIPTION_MAX - len(note) - 2
    return f"{_clip(text, keep)}\n\n{note}" if text else note


def tags_with(tags: Iterable[str], tag: str, wanted: bool) -> list[str]:
    """Return ``tags`` with ``tag`` present (appended) or absent, other tags kept in order."""
    others = [existing for existing in tags if existing != tag]
    return [*others, tag] if wanted else others


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


# -- public services ------------------------------------------------------------------------------------


def scan_connection(connection_id: int, *, now: datetime | None = None,
                    crm: CrmConnector | None = None) -> ScanResult:
    """Create the tasks due at ``now``, complete those no longer due, and reconcile tags, for a connection."""
    with _Scan.open(connection_id, now, crm) as scan:
        return scan.run(None)


def scan_invoice(connection_id: int, qbo_invoice_id: str, *, now: datetime | None = None,
                 crm: CrmConnector | None = None) -> ScanResult:
    """Like scan_connection for one invoice (call after it is synced); also reconciles its contacts' tag."""
    with _Scan.open(connection_id, now, crm) as scan:
        return scan.run(str(qbo_invoice_id))


def close_followups(connection_id: int, qbo_invoice_id: str, reason: str, *, now: datetime | None = None,
                    crm: CrmConnector | None = None) -> ScanResult:
    """Complete the invoice's open tasks with ``reason`` (a CLOSE_REASONS key or a sentence); reconcile tags."""
    text = CLOSE_REASONS.get(reason, reason).strip()
    if not text:
        raise ValueError("close_followups needs a reason, e.g. 'paid', 'voided', 'deleted' or 'moved'")
    with _Scan.open(connection_id, now, crm) as scan:
        return scan.close_invoice(str(qbo_invoice_id), text)


def followup_settings(connection_id: int) -> FollowupSettings:
    """Return the connection's follow-up settings (defaults where unset)."""
    connection = _connection(connection_id)
    settings = parse_settings(connection.settings)
    db.session.rollback()
    return settings


def configure_followups(connection_id: int, changes: Mapping[str, Any], *, reset: bool = False) -> FollowupSettings:
    """Apply ``changes`` (after going back to the defaults when ``reset``), commit, and return the settings."""
    connection = db.session.scalars(
        select(Connection).where(Connection.id == connection_id).with_for_update()).one_or_none()
    if connection is None:
        db.session.rollback()
        raise UnknownConnectionError(f"no connection {connection_id}")
    try:
        stored = reset_settings(connection.settings) if reset else dict(connection.settings or {})
        connection.settings = updated_settings(stored, changes)  # a new dict, so the JSON change is saved
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    log.info("connection %s follow-up settings changed: %s", connection_id, sorted(changes))
    return followup_settings(connection_id)


def _connection(connection_id: int) -> Connection:
    connection = db.session.get(Connection, connection_id)
    if connection is None:
        db.session.rollback()
        raise UnknownConnectionError(f"no connection {connection_id}")
    return connection


# -- one scan -------------------------------------------------------------------------------------------


class _Scan:
    """One scan of one connection: its settings, clock, CRM connector and per-scan caches."""

    def __init__(self, connection: Connection, now: datetime, crm: CrmConnector, owns_crm: bool) -> None:
        self.connection_id: int = connection.id
        self.settings = parse_settings(connection.settings)
        self.now = now
        self.today = company_today(now, connection.company_timezone or "UTC")
        self.crm, self._owns_crm = crm, owns_crm
        rt = runtime()
        self.redis: Redis = rt.redis
        self.lock_prefix = f"{rt.settings.queue_prefix}:followups:{self.connection_id}"
        self.result = ScanResult()
        self._tasks: dict[str, list[Task]] = {}
        self._contacts: dict[str, Contact] = {}

    @classmethod
    def open(cls, connection_id: int, now: datetime | None, crm: CrmConnector | None) -> _Scan:
        """Load the connection and build the scan (a connector from its stored URL and token unless given)."""
        connection = _connection(connection_id)
        owns = crm is None
        if crm is None:
            crm = RestConnector(connection.crm_base_url, runtime().secrets.decrypt(connection.crm_token_encrypted))
        scan = cls(connection, now or utcnow(), crm, owns)
        db.session.rollback()
        return scan

    def __enter__(self) -> _Scan:
        return self

    def __exit__(self, *_: object) -> None:
        if self._owns_crm and isinstance(self.crm, RestConnector):
            self.crm.close()
        db.session.rollback()

    @cached_property
    def app_base(self) -> str:
        """The QuickBooks web app base for deep links (read only when a task is created)."""
        from crm_qb.qbo.services import qbo_services

        try:
            return qbo_services(current_app).endpoints.app_base
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    # -- the two entry points --

    def run(self, invoice_id: str | None) -> ScanResult:
        """Reserve the rules due, bring every active row up to date, then reconcile tags."""
        rows = _active_rows(self.connection_id, invoice_id)
        invoices = _invoices(self.connection_id, self.today, invoice_id, {row.qbo_invoice_id for row in rows})
        if self.settings.enabled:
            _reserve(self.connection_id, self._due(invoices.values()))
        for row in _active_rows(self.connection_id, invoice_id):
            self._update_row(row, invoices)
        if self.settings.tag_enabled:
            contacts = {inv.contact_id for inv in invoices.values() if inv.contact_id}
            contacts |= {row.crm_contact_id for row in rows}
            self._reconcile_tags(_contacts_with_invoices(self.connection_id) if invoice_id is None else contacts)
        self._log("scan" if invoice_id is None else f"scan of invoice {invoice_id}")
        return self.result

    def close_invoice(self, invoice_id: str, reason: str) -> ScanResult:
        """Complete every active follow-up of one invoice with ``reason``, then reconcile its contacts' tags."""
        rows = _active_rows(self.connection_id, invoice_id)
        for row in rows:
            self._locked(row.id, lambda fresh: self._close(fresh, reason))
        if self.settings.tag_enabled:
            invoices = _invoices(self.connection_id, self.today, invoice_id, set())
            contacts = {row.crm_contact_id for row in rows}
            self._reconcile_tags(contacts | {inv.contact_id for inv in invoices.values() if inv.contact_id})
        self._log(f"close of invoice {invoice_id} ({reason})")
        return self.result

    # -- rows --

    def _due(self, invoices: Iterable[Invoice]) -> list[dict[str, Any]]:
        """The (invoice, rule) rows that should exist on today, for invoices of linked contacts."""
        return [
            {"qbo_invoice_id": inv.qbo_id, "rule_days": days, "crm_contact_id": inv.contact_id}
            for inv in invoices if inv.contact_id and inv.due_date and not inv.voided
            for days in due_rules(inv.due_date, inv.balance, self.today, self.settings.rule_days)
        ]

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
        lock = self.redis.lock(f"{self.lock_prefix}:row:{row_id}", timeout=LOCK_SECONDS, blocking=False)
        if not lock.acquire():
            self.result.busy += 1
            return
        try:
            row = _row(row_id)
            if row is not None and row.status in ACTIVE:
                self._guarded(row, work)
        finally:
            _release(lock)

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
            _set_reason(row.id, f"{type(exc).__name__}: {exc}"[:2000])
            self.result.failed.append(f"follow-up {row.id}: {exc}")
            log.error("connection %s follow-up %s refused by the CRM: %s", self.connection_id, row.id, exc)

    def _ensure_task(self, row: Row, invoice: Invoice) -> None:
        """Record the row's task: the one a crashed run left in the CRM (found by marker), else a new one."""
        if row.status != FollowUpStatus.PENDING:
            return
        marker = task_marker(self.connection_id, row.qbo_invoice_id, row.rule_days)
        existing = self._find_marked(row.crm_contact_id, marker)
        if existing is not None and existing.status == "done":
            self._finish(row, FollowUpStatus.CLOSED_BY_USER, "completed in the CRM", existing.id)
            return
        task = existing or self.crm.create_task(row.crm_contact_id, self._new_task(row, invoice, marker))
        if _record(row.id, FollowUpStatus.PENDING, status=FollowUpStatus.OPEN, crm_task_id=task.id,
                   status_reason=None):
            if existing is None:
                self.result.created += 1
            log.info("connection %s follow-up %s: task %s %s for invoice %s rule %s", self.connection_id, row.id,
                     task.id, "found" if existing else "created", row.qbo_invoice_id, row.rule_days)

    def _new_task(self, row: Row, invoice: Invoice, marker: str) -> NewTask:
        contact = self._contact(row.crm_contact_id)
        customer = invoice.customer_name or _contact_name(contact)
        link = transaction_link(self.app_base, "Invoice", invoice.qbo_id)
        return build_task(self.settings, task_fields(invoice, self.today, link, customer), marker, self.today,
                          contact.owner_id)

    def _check_still_open(self, row: Row) -> None:
        """Mark the row closed_by_user when its task was completed or deleted in the CRM."""
        task = self._task(row.crm_contact_id, row.crm_task_id)
        if task is None:
            self._finish(row, FollowUpStatus.CLOSED_BY_USER, "deleted in the CRM", row.crm_task_id)
        elif task.status == "done":
            self._finish(row, FollowUpStatus.CLOSED_BY_USER, "completed in the CRM", row.crm_task_id)

    def _close(self, row: Row, reason: str) -> None:
        """Complete the row's task in the CRM with a note saying why, and the row with it."""
        task = (self._find_marked(row.crm_contact_id, task_marker(self.connection_id, row.qbo_invoice_id,
                                                                  row.rule_days))
                if row.status == FollowUpStatus.PENDING else self._task(row.crm_contact_id, row.crm_task_id))
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

    def _finish(self, row: Row, status: FollowUpStatus, reason: str, task_id: str | None) -> None:
        if _record(row.id, row.status, status=status, status_reason=reason, crm_task_id=task_id,
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

    def _task(self, contact_id: str, task_id: str | None) -> Task | None:
        if contact_id not in self._tasks:
            self._tasks[contact_id] = self.crm.list_tasks(contact_id)
        return next((t for t in self._tasks[contact_id] if t.id == task_id), None)

    def _contact(self, contact_id: str) -> Contact:
        if contact_id not in self._contacts:
            self._contacts[contact_id] = self.crm.get_contact(contact_id)
        return self._contacts[contact_id]

    # -- tags --

    def _reconcile_tags(self, contact_ids: Iterable[str]) -> None:
        """Put the tag on each contact with an overdue invoice and take it off the others."""
        ids = sorted(set(contact_ids))
        overdue = _contacts_overdue(self.connection_id, ids, self.today)
        for contact_id in ids:
            try:
                self._set_tag(contact_id, contact_id in overdue)
            except ContactNotFoundError:
                log.info("connection %s: contact %s is gone; no tag to keep", self.connection_id, contact_id)

    def _set_tag(self, contact_id: str, wanted: bool) -> None:
        """Add or remove the tag at the contact's current version, re-reading after a version conflict."""
        tag = self.settings.tag
        for attempt in range(TAG_ATTEMPTS):
            contact = self.crm.get_contact(contact_id)
            if (tag in contact.tags) == wanted:
                return
            try:
                self.crm.update_contact(contact_id, contact.version, {"tags": tags_with(contact.tags, tag, wanted)})
            except VersionConflictError:
                if attempt == TAG_ATTEMPTS - 1:
                    raise
                continue
            if wanted:
                self.result.tagged += 1
            else:
                self.result.untagged += 1
            return

    def _log(self, what: str) -> None:
        log.info("connection %s follow-up %s on %s: %s", self.connection_id, what, self.today.isoformat(),
                 self.result.to_json())


# -- database ------------------------------------------------------------------------------------------


def _active_rows(connection_id: int, invoice_id: str | None) -> list[Row]:
    """The connection's pending and open follow-ups (of one invoice when given); ends the transaction."""
    query = select(FollowUp).where(FollowUp.connection_id == connection_id, FollowUp.status.in_(ACTIVE))
    if invoice_id is not None:
        query = query.where(FollowUp.qbo_invoice_id == invoice_id)
    rows = [_snapshot(item) for item in db.session.scalars(query.order_by(FollowUp.id))]
    db.session.rollback()
    return rows


def _row(row_id: int) -> Row | None:
    item = db.session.get(FollowUp, row_id)
    row = _snapshot(item) if item is not None else None
    db.session.rollback()
    return row


def _snapshot(item: FollowUp) -> Row:
    return Row(item.id, item.qbo_invoice_id, item.rule_days, item.crm_contact_id, item.crm_task_id, item.status)


def _invoice_query(connection_id: int) -> Any:
    link = (ContactLink.connection_id == FolderItem.connection_id) & (
        ContactLink.qbo_customer_id == FolderItem.qbo_customer_id) & (ContactLink.state == LinkState.LINKED)
    return (select(FolderItem, ContactLink.crm_contact_id).outerjoin(ContactLink, link)
            .where(FolderItem.connection_id == connection_id, FolderItem.txn_type == "Invoice"))


def _invoices(connection_id: int, today: date, invoice_id: str | None, also: set[str]) -> dict[str, Invoice]:
    """Invoices overdue with a balance on ``today`` (or just ``invoice_id``), plus those in ``also``."""
    query = _invoice_query(connection_id)
    if invoice_id is not None:
        query = query.where(FolderItem.qbo_id == invoice_id)
    else:
        # SQLite stores money as text: compare it as a number. The exact test is Invoice.overdue, in Python.
        overdue = (FolderItem.due_date < today) & (cast(FolderItem.balance, Numeric(18, 2)) > 0)
        query = query.where(or_(overdue, FolderItem.qbo_id.in_(sorted(also))) if also else overdue)
    found = {item.qbo_id: _invoice(item, contact_id) for item, contact_id in db.session.execute(query)}
    db.session.rollback()
    return found


def _invoice(item: FolderItem, contact_id: str | None) -> Invoice:
    customer = (item.details or {}).get("CustomerRef") or {}
    return Invoice(qbo_id=item.qbo_id, contact_id=contact_id, doc_number=item.doc_number, due_date=item.due_date,
                   total=item.total, balance=item.balance, currency=item.currency, voided=item.status == VOIDED,
                   customer_name=customer.get("name") if isinstance(customer, dict) else None)


def _contacts_with_invoices(connection_id: int) -> list[str]:
    """Every linked contact whose customer has at least one mirrored invoice."""
    query = _invoice_query(connection_id).with_only_columns(ContactLink.crm_contact_id).distinct()
    ids = [contact_id for contact_id in db.session.scalars(query) if contact_id]
    db.session.rollback()
    return ids


def _contacts_overdue(connection_id: int, contact_ids: list[str], today: date) -> set[str]:
    """Those of ``contact_ids`` with at least one invoice overdue with a balance on ``today``."""
    if not contact_ids:
        return set()
    query = _invoice_query(connection_id).where(ContactLink.crm_contact_id.in_(contact_ids),
                                                FolderItem.due_date < today)
    overdue = {contact_id for item, contact_id in db.session.execute(query)
               if _invoice(item, contact_id).overdue(today)}
    db.session.rollback()
    return overdue


def _reserve(connection_id: int, due: list[dict[str, Any]]) -> None:
    """Insert a pending row for each due rule that has none; the unique constraint skips the others."""
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for start in range(0, len(due), RESERVE_BATCH):
        values = [{**item, "connection_id": connection_id, "status": FollowUpStatus.PENDING, "created_at": utcnow()}
                  for item in due[start:start + RESERVE_BATCH]]
        db.session.execute(insert(FollowUp).values(values).on_conflict_do_nothing(
            index_elements=["connection_id", "qbo_invoice_id", "rule_days"]))
        db.session.commit()


def _record(row_id: int, expected: FollowUpStatus, **values: Any) -> bool:
    """Update the row only if it still has status ``expected``; commit; return whether it changed."""
    result = db.session.execute(
        update(FollowUp).where(FollowUp.id == row_id, FollowUp.status == expected).values(**values))
    assert isinstance(result, CursorResult)  # an UPDATE always answers with a cursor result
    db.session.commit()
    return bool(result.rowcount)


def _set_reason(row_id: int, reason: str) -> None:
    db.session.execute(update(FollowUp).where(FollowUp.id == row_id).values(status_reason=reason))
    db.session.commit()


def _release(lock: Any) -> None:
    try:
        lock.release()
    except LockError:
        # The lock expired while we worked: the work is done and recorded; nothing is left to undo.
        log.warning("a follow-up lock expired before it was released (%s)", lock.name)


def _contact_name(contact: Contact) -> str:
    names = " ".join(part for part in (contact.first_name, contact.last_name) if part)
    return contact.display_name or contact.company or names or contact.id
