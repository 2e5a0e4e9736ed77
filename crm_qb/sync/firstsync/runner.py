"""The backfill, recorded: one record per object walked, saved with a checkpoint after every page.

These classes wrap the backfill's own runs (``crm_qb.sync.pipeline.backfill``) rather than repeat them: the
preview is its dry run, the first sync its real run, a history import its transaction phase over a date range.
What they add, by overriding the per-object and per-page steps only:

- a record per object (``RecordRow``): what was (or would be) done, to whom it links, the candidates of a record
  sent to review, and for a failure the reason in words with the QBO or CRM error (``outcomes.describe``);
- after every page, the page's records and the run's checkpoint are saved together (``Sink.page``), so the
  records never count a page twice and a killed worker resumes after the last saved page: the QBO walks restart
  at ``STARTPOSITION`` (``ResumingQbo``) and the CRM walk at its cursor (``ResumingCrm``); a finished customer
  phase also skips re-reading the CRM's contacts into the match index.
- the preview also predicts the follow-up tasks the first scan would create (``predicted_followups``).

Objects of the page in flight when a worker dies are done again by the resumed run; what was already written is
then seen in step and recorded "unchanged" (the backfill's echo rule), so nothing is written twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Protocol, cast

from sqlalchemy import select

from crm_qb.crm.protocol import Contact, ContactPage, CrmConnector
from crm_qb.db import db, utcnow
from crm_qb.models import ContactLink
from crm_qb.qbo.client import QboClient
from crm_qb.sync.context import SyncContext
from crm_qb.sync.customers.links import LinkRecord
from crm_qb.sync.customers.reconcile import contact_json
from crm_qb.sync.firstsync.outcomes import action_of, describe
from crm_qb.sync.pipeline.backfill import (
    ALL_CUSTOMERS,
    CONTACTS,
    CUSTOMERS,
    PENDING,
    TIME,
    TIME_COUNTERS,
    TRANSACTIONS,
    BackfillReport,
    _DryRun,
    _folder_tokens,
    _predict_txn,
    _Run,
)
from crm_qb.sync.pipeline.candidates import CandidateIndex
from crm_qb.sync.rules.followups import rule_to_fire
from crm_qb.sync.rules.mapping import canonical_from_crm, canonical_from_qbo
from crm_qb.sync.rules.matching import Candidate, match
from crm_qb.sync.rules.status import is_voided
from crm_qb.sync.services import SyncServices
from crm_qb.sync.transactions import registry

READING = "reading"  # the CRM's contacts are read into the match index
FOLLOWUPS = "followups"
NO_CERTAIN_MATCH = "No certain match among the {}: a person chooses (link to one, create new, or ignore)."


@dataclass
class RecordRow:
    """One object's outcome in a preview or a run (``SyncRunRecord`` without its run)."""

    phase: str
    entity: str
    object_id: str
    action: str
    name: str | None = None
    planned: str | None = None
    partner_id: str | None = None
    partner_name: str | None = None
    candidates: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    error: str | None = None
    error_code: str | None = None
    intuit_tid: str | None = None


class Sink(Protocol):
    """Where a recorded run saves its pages: records and checkpoint in one commit, and the phase it enters."""

    def page(self, phase: str, records: list[RecordRow], checkpoint: dict[str, Any]) -> None:
        """Save one finished page's records and the checkpoint after it."""
        ...

    def enter(self, phase: str) -> None:
        """Note that the run entered ``phase``."""
        ...


@dataclass(frozen=True)
class DateRange:
    """A history import's transaction dates, both ends included."""

    start: date
    end: date

    def where(self) -> str:
        """The QBO query condition selecting transactions dated in the range."""
        return f"TxnDate >= '{self.start.isoformat()}' AND TxnDate <= '{self.end.isoformat()}'"


def new_checkpoint() -> dict[str, Any]:
    """The checkpoint of a run that has not finished a page yet: QBO rows walked per phase walk, the CRM walk's
    cursor, and the phases done."""
    return {"customers": 0, "txn": {}, "contacts_cursor": None, "contacts_done": False, "phases_done": []}


# -- resuming walks -----------------------------------------------------------------------------------------


class ResumingQbo:
    """The QBO client, with the backfill's phase walks starting after the checkpoint's pages (and, for a history
    import, only the range's transactions). Every other call goes to the client unchanged."""

    def __init__(self, client: QboClient, checkpoint: dict[str, Any], dates: DateRange | None) -> None:
        self._client, self._checkpoint, self._dates = client, checkpoint, dates
        self.current: str | None = None  # the transaction type being walked

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def query_all(self, entity: str, where: str = "", page_size: int = 1000, *,
                  start: int = 1) -> Iterator[dict[str, Any]]:
        """As ``QboClient.query_all``; a phase walk resumes after the pages the checkpoint has done."""
        if entity == "Customer" and where == ALL_CUSTOMERS:
            start = self._checkpoint["customers"] + 1
        elif entity in registry.NAMES and not where:
            self.current = entity
            start = self._checkpoint["txn"].get(entity, 0) + 1
            where = self._dates.where() if self._dates else ""
        return self._client.query_all(entity, where, page_size, start=start)


class ResumingCrm:
    """The CRM connector, with the contacts phase resuming at the checkpoint's cursor and the index walk skipped
    once the customer phase is done. Every other call goes to the connector unchanged."""

    def __init__(self, crm: CrmConnector, checkpoint: dict[str, Any], phase: Callable[[], str]) -> None:
        self._crm, self._checkpoint, self._phase = crm, checkpoint, phase
        self.next_cursor: str | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._crm, name)

    def list_contacts_updated_since(self, since: Any, *, cursor: str | None = None,
                                    page_size: int = 100) -> Iterator[ContactPage]:
        """As the connector's; the phase walks resume (or are skipped) by the checkpoint."""
        if since is None and cursor is None:
            if self._phase() == CONTACTS:
                if self._checkpoint["contacts_done"]:
                    return iter(())
                cursor = self._checkpoint["contacts_cursor"]
            elif CUSTOMERS in self._checkpoint["phases_done"]:
                return iter(())  # the match index is only needed by the customer phase
        return self._pages(self._crm.list_contacts_updated_since(since, cursor=cursor, page_size=page_size))

    def _pages(self, pages: Iterator[ContactPage]) -> Iterator[ContactPage]:
        for page in pages:
            self.next_cursor = page.next_cursor
            yield page


# -- recording ----------------------------------------------------------------------------------------------


def _candidate_json(candidates: list[Candidate]) -> list[dict[str, Any]]:
    return [{"id": c.id, "name": c.display_name or c.company, "email": c.email} for c in candidates]


def _name_of(candidate_id: str | None, candidates: list[Candidate]) -> str | None:
    found = next((c for c in candidates if c.id == candidate_id), None)
    return (found.display_name or found.company or found.email) if found else None


def _txn_name(entity: str, txn: Mapping[str, Any]) -> str:
    label = registry.get(entity).label
    customer = (txn.get("CustomerRef") or {}).get("name")
    number = txn.get("DocNumber") or txn.get("PaymentRefNum") or f"#{txn.get('Id')}"
    return f"{label} {number}" + (f" · {customer}" if customer else "")


class _Recording:
    """The per-object and per-page steps of a backfill run, recorded (mixed in before ``_Run``/``_DryRun``)."""

    stage = "run"
    ctx: SyncContext
    page_size: int

    def setup(self, sink: Sink, checkpoint: dict[str, Any], dates: DateRange | None) -> None:
        self.sink, self.checkpoint, self.dates = sink, checkpoint, dates
        self.pending: list[RecordRow] = []
        self.names: dict[tuple[str, str], str | None] = {}
        self.links: dict[str, LinkRecord | None] = {}
        self.phase = READING
        self.qbo_walk = ResumingQbo(self.ctx.qbo, checkpoint, dates)
        self.crm_walk = ResumingCrm(self.ctx.crm, checkpoint, lambda: self.phase)
        self.ctx.qbo = cast(QboClient, self.qbo_walk)
        self.ctx.crm = cast(CrmConnector, self.crm_walk)

    def enter(self, phase: str) -> None:
        if self.phase not in (phase, READING) and self.phase not in self.checkpoint["phases_done"]:
            self.checkpoint["phases_done"].append(self.phase)
        self.phase = phase
        self.sink.enter(phase)

    # -- the phases, entered --

    def customers(self, index: CandidateIndex) -> None:
        self.enter(CUSTOMERS)
        super().customers(index)  # type: ignore[misc]

    def transactions(self) -> None:
        self.enter(TRANSACTIONS)
        super().transactions()  # type: ignore[misc]

    def contacts(self) -> None:
        self.enter(CONTACTS)
        super().contacts()  # type: ignore[misc]

    # -- one object --

    def customer(self, customer: dict[str, Any], link: LinkRecord | None, index: CandidateIndex) -> str:
        customer_id = str(customer["Id"])
        self.names[("Customer", customer_id)] = customer.get("DisplayName")
        self.links[customer_id] = link
        self.current = (customer, index)
        return cast(str, super().customer(customer, link, index))  # type: ignore[misc]

    def contact(self, contact: Contact, link: LinkRecord | None) -> str:
        self.names[("Contact", contact.id)] = contact.display_name or " ".join(
            part for part in (contact.first_name, contact.last_name) if part) or contact.company or contact.email
        self.current_contact = contact
        return cast(str, super().contact(contact, link))  # type: ignore[misc]

    def guarded(self, entity: str, object_id: str, unit: Callable[[], str], rollback: bool = True) -> str:
        caught: list[Exception] = []

        def watched() -> str:
            try:
                return unit()
            except Exception as exc:
                caught.append(exc)
                raise

        counter = cast(str, super().guarded(entity, object_id, watched, rollback))  # type: ignore[misc]
        if counter != PENDING:  # a contact still being created is noted when its batch is linked (``settled``)
            self.note(entity, object_id, counter, caught[-1] if caught and counter == "failed" else None)
        return counter

    def settled(self, entity: str, object_id: str, counter: str, error: Exception | None = None) -> str:
        self.note(entity, object_id, counter, error)
        return counter

    def note(self, entity: str, object_id: str, counter: str, error: Exception | None = None) -> None:
        phase = {"Customer": CUSTOMERS, "Contact": CONTACTS, "Activity": TIME}.get(entity, TRANSACTIONS)
        row = RecordRow(phase, entity, object_id, action_of(entity, counter), self.names.get((entity, object_id)))
        if error is not None:
            failure = describe(error)
            row.reason, row.error, row.error_code, row.intuit_tid = (failure.reason, failure.error, failure.code,
                                                                     failure.intuit_tid)
        self.detail(row)
        self.pending.append(row)

    def detail(self, row: RecordRow) -> None:
        """Fill in the partner and candidates of one record as it is noted (the preview's predictions)."""

    def complete(self, rows: list[RecordRow]) -> None:
        """Fill in the partners and candidates of a finished page's records (the run's, from the links)."""

    def held_time(self) -> None:
        self.enter(TIME)
        super().held_time()  # type: ignore[misc]

    def time_page(self, outcomes: Sequence[tuple[str, str]]) -> None:
        for activity_id, outcome in outcomes:
            self.note("Activity", activity_id, TIME_COUNTERS.get(outcome, "skipped"))
        super().time_page(outcomes)  # type: ignore[misc]

    def count_page(self, phase: str) -> None:
        super().count_page(phase)  # type: ignore[misc]
        self.complete(self.pending)
        self.advance(phase)
        self.sink.page(phase, self.pending, self.checkpoint)
        self.pending = []

    def advance(self, phase: str) -> None:
        """Move the checkpoint past the page just finished."""
        # Rows, not pages: a resumed run may page differently. A short page is a walk's last.
        if phase == CUSTOMERS:
            self.checkpoint["customers"] += self.page_size
        elif phase == TRANSACTIONS and self.qbo_walk.current:
            done = self.checkpoint["txn"]
            done[self.qbo_walk.current] = done.get(self.qbo_walk.current, 0) + self.page_size
        elif phase == CONTACTS:
            self.checkpoint["contacts_cursor"] = self.crm_walk.next_cursor
            self.checkpoint["contacts_done"] = self.crm_walk.next_cursor is None


class RecordedRun(_Recording, _Run):
    """The first sync (``dates`` None) or a history import, writing, recorded page by page."""

    # Pages read on this thread (the resumable walk sees each once); contacts created in batches, as the backfill
    # does, every batch of a page linked and noted before the page is recorded, so records and checkpoints stay
    # exact. The batches' contacts join the match index, so a later customer with the same email waits for review
    # as the preview announced (the one-by-one creates this replaced left them out: a duplicate contact).
    read_ahead = False

    def link_created(self, wait: bool) -> None:
        super().link_created(wait=True)

    def complete(self, rows: list[RecordRow]) -> None:
        customers = {r.object_id: r for r in rows if r.entity == "Customer" and r.action != "failed"}
        contacts = {r.object_id: r for r in rows if r.entity == "Contact" and r.action != "failed"}
        for link in _links(self.ctx.connection_id, ContactLink.qbo_customer_id, list(customers)):
            _fill(customers[str(link.qbo_customer_id)], link.crm_contact_id, link)
        for link in _links(self.ctx.connection_id, ContactLink.crm_contact_id, list(contacts)):
            _fill(contacts[str(link.crm_contact_id)], link.qbo_customer_id, link)

    def mirror_page(self, entity: str, page: list[dict[str, Any]]) -> None:
        for txn in page:
            self.names[(entity, str(txn.get("Id")))] = _txn_name(entity, txn)
        super().mirror_page(entity, page)  # each transaction noted with its own error

    def execute(self) -> None:
        if self.dates is None:
            super().execute()
            return
        with self.services.connection_lock(self.ctx.connection_id) as still_held:
            self.still_held = still_held
            self.transactions()


def _links(connection_id: int, column: Any, ids: Sequence[str]) -> list[LinkRecord]:
    if not ids:
        return []
    rows = db.session.scalars(select(ContactLink).where(ContactLink.connection_id == connection_id,
                                                        column.in_(list(ids)))).all()
    found = [LinkRecord.of(row) for row in rows]
    db.session.rollback()
    return found


def _fill(row: RecordRow, partner: str | None, link: LinkRecord) -> None:
    row.partner_id = partner
    name = (link.base or {}).get("display_name") or (link.base or {}).get("company")
    row.partner_name = str(name) if name else None
    if row.action == "review":
        row.candidates = [{"id": str(c)} for c in link.review_candidates or []]
        row.reason = link.review_reason


class RecordedPreview(_Recording, _DryRun):
    """The preview: the backfill's dry run (or a history import's transaction walk), every prediction kept."""

    stage = "preview"

    def setup(self, sink: Sink, checkpoint: dict[str, Any], dates: DateRange | None) -> None:
        super().setup(sink, checkpoint, dates)
        self.contact_of: dict[str, str | None] = {}  # customer -> the contact it will have (None: none)
        # (invoice id, customer id, name, due date, balance) of invoices a rule would fire for
        self.overdue: list[tuple[str, str, str, date, Decimal]] = []
        self.today = utcnow().date()
        self.rule_days: tuple[int, ...] = ()
        self.taken: set[str] = set()  # customers the contact phase would link
        self.reviewing: set[str] = set()  # customers that would wait for review (a new match joins the review)

    def follow_up_rules(self, today: date, rule_days: Sequence[int]) -> None:
        """Predict follow-ups as a scan on ``today`` would, with these rules (none: follow-ups are off)."""
        self.today, self.rule_days = today, tuple(rule_days)

    def execute(self) -> None:
        if self.dates is None:
            super().execute()
        else:
            self.transactions()

    def advance(self, phase: str) -> None:
        """A preview starts again from the beginning if it is stopped: nothing to move."""

    def contact(self, contact: Contact, link: LinkRecord | None) -> str:
        """As the dry run predicts, except that a customer already taken (linked to a contact by the customer
        phase or by an earlier contact) cannot be linked again, and one waiting for review is not linked at all:
        the real run sends such a contact to review."""
        counter = super().contact(contact, link)
        if counter != "linked":
            return counter
        found = self.qbo_index.lookup(canonical_from_crm(contact_json(contact)))
        outcome = match(canonical_from_crm(contact_json(contact)), found[0] or found[1])
        taken = outcome.linked_id is not None and (bool(self.contact_of.get(outcome.linked_id))
                                                   or outcome.linked_id in self.taken | self.reviewing)
        if taken:
            return "review"
        self.taken.add(str(outcome.linked_id))
        return counter

    def detail(self, row: RecordRow) -> None:
        if row.entity == "Customer":
            self._customer_detail(row)
        elif row.entity == "Contact":
            self._contact_detail(row)

    def _customer_detail(self, row: RecordRow) -> None:
        customer, index = self.current
        link = self.links.get(row.object_id)
        by_email, by_name = index.lookup(canonical_from_qbo(customer)) if row.action in ("link", "review") \
            else ([], [])
        if row.action == "link":
            row.partner_id = self.seen.get(row.object_id, (None, None))[1]
            row.partner_name = _name_of(row.partner_id, by_email + by_name)
        elif row.action == "review":
            self.reviewing.add(row.object_id)
            row.candidates = _candidate_json(by_email or by_name)
            row.reason = link.review_reason if link is not None else NO_CERTAIN_MATCH.format("CRM contacts")
        contact = row.partner_id if row.action == "link" else None
        if row.action == "create_in_crm":
            contact = f"new:{row.object_id}"
        elif row.action in ("unchanged", "update") and link is not None:
            contact = link.crm_contact_id
        self.contact_of[row.object_id] = contact

    def _contact_detail(self, row: RecordRow) -> None:
        if row.action not in ("link", "review"):
            return
        by_email, by_name = self.qbo_index.lookup(canonical_from_crm(contact_json(self.current_contact)))
        found = by_email or by_name
        if row.action == "link":
            outcome = match(canonical_from_crm(contact_json(self.current_contact)), found)
            row.partner_id = outcome.linked_id
            row.partner_name = _name_of(outcome.linked_id, found)
        else:
            row.candidates = _candidate_json(found)
            row.reason = NO_CERTAIN_MATCH.format("QuickBooks customers")

    def mirror_page(self, entity: str, page: list[dict[str, Any]]) -> None:
        super().mirror_page(entity, page)
        stored = _folder_tokens(self.ctx.connection_id, entity, [str(t["Id"]) for t in page])
        for txn in page:
            txn_id = str(txn.get("Id"))
            self.names[(entity, txn_id)] = _txn_name(entity, txn)
            self.note(entity, txn_id, _predict_txn(txn, stored))
            if registry.get(entity).followed_up:
                self._maybe_overdue(txn, txn_id, entity)

    def _maybe_overdue(self, txn: Mapping[str, Any], txn_id: str, entity: str) -> None:
        customer = str((txn.get("CustomerRef") or {}).get("value") or "")
        due = txn.get("DueDate")
        if not customer or not due or not self.rule_days or is_voided(txn):
            return
        balance, due_date = Decimal(str(txn.get("Balance") or 0)), date.fromisoformat(str(due)[:10])
        if rule_to_fire(due_date, balance, self.today, self.rule_days, None) is not None:
            self.overdue.append((txn_id, customer, _txn_name(entity, txn), due_date, balance))

    def contact_for(self, customer_id: str) -> str | None:
        """The contact a customer's follow-ups would go to: its own, else its nearest ancestor's."""
        seen: set[str] = set()
        current: str | None = customer_id
        while current and current not in seen:
            seen.add(current)
            if self.contact_of.get(current):
                return self.contact_of[current]
            current = self.parent_ids.get(current)  # every customer's parent, kept by the dry run
        return None


def recorded(services: SyncServices, ctx: SyncContext, *, preview: bool, sink: Sink, checkpoint: dict[str, Any],
             dates: DateRange | None, page_size: int) -> RecordedRun | RecordedPreview:
    """A recorded preview or run over ``ctx``, ready to ``execute()``."""
    report = BackfillReport(ctx.connection_id, preview, utcnow())
    cls = RecordedPreview if preview else RecordedRun
    run = cls(services, ctx, report, None, page_size)
    run.setup(sink, checkpoint, dates)
    return run
