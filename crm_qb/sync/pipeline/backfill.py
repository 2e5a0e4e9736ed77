"""The backfill: bring a newly connected company in line in full, not just what CDC's look-back can see.

The CDC poll looks back at most 30 days (its first run only 1 hour), so a company's older customers and
transactions are never seen by it. ``backfill`` pages through everything instead, under the connection's sync
lock, one page (1,000 rows, QBO's cap) in memory at a time:

1. customers: every QBO customer, active or not, through the same unit as webhooks and the poll
   (``qbo_side.sync_customer``: match / link / create by the connection's direction). A linked customer whose
   SyncToken and QBO-owned facts equal what the link stored is skipped without a write (the echo rule, without
   the per-customer commit); a link waiting for review or unlinked on purpose is left alone.
2. transactions: every transaction of every mirrored type, applied to the folder (``apply_transaction``),
   committed once per page.
3. contacts: every CRM contact not linked yet goes through the CRM → QBO unit (``crm_side.link_new_contact``),
   when the direction lets QBO customers be created.
4. time: every CRM activity, paged, once; the billable time of linked contacts becomes QBO TimeActivity (batches
   of 30; ``sync/time/earlier.py``), so time logged before the connection is not lost; then held time is sent.
5. the CDC cursor is set to the backfill's start: everything changed after it is the poll's.

Name matching needs the CRM's contacts (the CRM contract has no name search). Instead of the webhook path's
in-memory pool, scanned linearly per customer, the contacts are walked once into an index keyed by normalised
email and name (``candidates``: a Redis hash for the run, deleted at the end), so the worker's memory stays flat
in the number of contacts. Each unlinked customer is handed to the unit with its
index candidates as ``ctx.crm_pool``: ``matching.match`` over those gives the same outcome as over all contacts.

A failure of one object that retrying cannot fix (a rejected write, malformed data) is counted as ``failed``,
logged with the object's id and the error's type, and the backfill goes on; transient failures and lost
authorisation stop it (the job retries; re-running skips what is already done).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import partial
from itertools import islice
from typing import IO, Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from crm_qb.crm.batch import Created, adopt
from crm_qb.crm.errors import CrmAuthError, CrmNotFoundError, CrmPermanentError
from crm_qb.crm.protocol import Contact
from crm_qb.db import db, utcnow
from crm_qb.errors import PermanentError, TransientError
from crm_qb.gcpolicy import bulk_collection
from crm_qb.models import Connection, ContactLink, FolderItem, LinkState, QboStatus, TimeState
from crm_qb.qbo.client import QUERY_MAX_RESULTS
from crm_qb.qbo.faults import AuthenticationError, AuthorizationError, CompanyInactiveError
from crm_qb.qbo.tokens import NeedsReconnectError, NotConnectedError
from crm_qb.sync.context import SyncContext, build_context
from crm_qb.sync.customers import hierarchy, links
from crm_qb.sync.customers.crm_side import link_new_contact
from crm_qb.sync.customers.hierarchy import parent_of
from crm_qb.sync.customers.links import LinkRecord, Record
from crm_qb.sync.customers.qbo_side import NewContact, first_link, link_created, plan_new_customer, sync_customer
from crm_qb.sync.customers.reconcile import contact_json
from crm_qb.sync.pacing import no_pace
from crm_qb.sync.pipeline.candidates import (
    CandidateIndex,
    DictStore,
    RedisStore,
    contact_entry,
    crm_keys,
    load_crm_index,
    qbo_keys,
)
from crm_qb.sync.pipeline.mirrorproc import Answers, MirrorChild, Task, decode_error, encode_error, write
from crm_qb.sync.pipeline.overlap import ContactCreator, HeldParents, QboPager, jobs_parents, second_connector
from crm_qb.sync.rules.mapping import canonical_from_crm, canonical_from_qbo, canonical_memo, qbo_owned_fields
from crm_qb.sync.rules.matching import AMBIGUOUS, LINKED, NONE, candidate, has_own_email, match, match_exact_name
from crm_qb.sync.services import ConnectionGoneError, SyncServices
from crm_qb.sync.settings import sync_settings_of
from crm_qb.sync.time import apply as time_apply
from crm_qb.sync.time import earlier as time_earlier
from crm_qb.sync.time import store as time_store
from crm_qb.sync.transactions import registry
from crm_qb.sync.transactions.mirror import FolderChange, mirror, mirror_many

log = logging.getLogger(__name__)

CUSTOMERS, TRANSACTIONS, CONTACTS, TIME = "customers", "transactions", "contacts", "time"
PHASES = (CUSTOMERS, TRANSACTIONS, CONTACTS, TIME)
# What an activity's time outcome (sync/time/apply.py) counts as in the time phase; anything else is ``skipped``.
TIME_COUNTERS = {"created": "created", "updated": "updated", "unchanged": "unchanged", "stale": "unchanged"}
ALL_CUSTOMERS = "Active IN (true, false)"
# Errors that make every further call fail as well: stop instead of counting each object as failed.
_FATAL = (AuthenticationError, AuthorizationError, CompanyInactiveError, NeedsReconnectError, NotConnectedError,
          CrmAuthError)
T = TypeVar("T")
PENDING = "pending"  # a customer whose contact is being created; counted when it is linked


@dataclass
class PhaseCounts:
    """What one phase did so far; ``by_type`` counts transactions seen per QBO entity."""

    pages: int = 0
    seen: int = 0
    linked: int = 0
    created: int = 0
    updated: int = 0
    review: int = 0
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    by_type: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: str) -> None:
        """Count one object's outcome (one of the counter names)."""
        self.seen += 1
        setattr(self, outcome, getattr(self, outcome) + 1)


@dataclass
class BackfillReport:
    """The outcome of a backfill: counts per phase and the CDC cursor it set (None in a dry run)."""

    connection_id: int
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None = None
    cdc_cursor: datetime | None = None
    phases: dict[str, PhaseCounts] = field(default_factory=lambda: {p: PhaseCounts() for p in PHASES})

    def to_json(self) -> dict[str, Any]:
        """The report as JSON-safe values."""
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {"connection_id": self.connection_id, "dry_run": self.dry_run, "started_at": iso(self.started_at),
                "finished_at": iso(self.finished_at), "cdc_cursor": iso(self.cdc_cursor),
                "phases": {name: asdict(counts) for name, counts in self.phases.items()}}


Progress = Callable[[str, PhaseCounts], None]


class BackfillRefusedError(PermanentError):
    """The connection cannot be backfilled now (sync is turned off for it)."""


def run_backfill(services: SyncServices, connection_id: int, *, dry_run: bool = False,
                 progress: Progress | None = None, job_id: str | None = None,
                 page_size: int = QUERY_MAX_RESULTS) -> BackfillReport:
    """Check the connection can be backfilled (typed errors otherwise), then backfill it; call in an app context."""
    check_backfillable(connection_id)
    ctx = build_context(services, connection_id, job_id)
    try:
        return backfill(services, ctx, dry_run=dry_run, progress=progress, page_size=page_size)
    finally:
        ctx.close()


def check_backfillable(connection_id: int) -> None:
    """Raise ConnectionGoneError, NotConnectedError, NeedsReconnectError or BackfillRefusedError, else nothing."""
    connection = db.session.get(Connection, connection_id)
    status = connection.qbo_status if connection is not None else None
    realm, reason = (connection.qbo_realm_id, connection.qbo_status_reason) if connection else (None, None)
    enabled = connection is not None and sync_settings_of(connection.settings).enabled
    db.session.rollback()
    if connection is None:
        raise ConnectionGoneError(f"connection {connection_id} does not exist")
    if status in (QboStatus.NEEDS_RECONNECT, QboStatus.DISCONNECTED):
        raise NeedsReconnectError(str(connection_id), reason or "the QuickBooks grant is gone")
    if not realm or status != QboStatus.CONNECTED:
        raise NotConnectedError(f"connection {connection_id} is not connected to QuickBooks")
    if not enabled:
        raise BackfillRefusedError(f"sync is turned off for connection {connection_id}")


def backfill(services: SyncServices, ctx: SyncContext, *, dry_run: bool = False, progress: Progress | None = None,
             page_size: int = QUERY_MAX_RESULTS) -> BackfillReport:
    """Sync every QBO customer and transaction and every unlinked CRM contact, page by page; set the CDC cursor.

    Runs under the connection's sync lock (``SyncServices.connection_lock``, renewed while held; ConnectionBusyError
    when another worker keeps it for 30 s), in an app context. ``progress(phase, counts)`` is called after every
    page. Safe to run again: what is in step is counted ``unchanged`` and not written; objects counted ``failed``
    (a write the other side refused) are tried again.

    ``dry_run=True`` writes nothing anywhere (QBO, CRM, database, Redis) and takes no lock: it reads every page
    and predicts with the pure matching rules what the real run would do (``linked``: would link by email or
    name, ``created``: would create, ``review``: ambiguous; transactions: ``created``/``updated``/``unchanged``
    per folder item, ``by_type`` counts per type). It cannot predict: fields the first link would write (the
    merge needs both records), CRM email look-ups that differ from the walked contacts (changes made meanwhile),
    6240 name clashes on customers it would create in QBO, writes the other side would refuse (e.g. a name
    longer than the CRM accepts: predicted as a create, counted failed by the real run), status-only folder
    updates (days overdue), and transactions that fail to apply. Its memory grows with the data (the candidates
    of both sides are held in memory).
    """
    report = BackfillReport(ctx.connection_id, dry_run, utcnow())
    run = (_DryRun(services, ctx, report, progress, page_size) if dry_run
           else _Run(services, ctx, report, progress, page_size))
    with bulk_collection():  # millions of short-lived objects: collect cycles less often (gcpolicy)
        run.execute()
    report.finished_at = utcnow()
    log.info("backfill connection=%s dry_run=%s job=%s %s", ctx.connection_id, dry_run, ctx.job_id,
             json.dumps({name: {"seen": c.seen, "failed": c.failed} for name, c in report.phases.items()}))
    return report


# -- paging -------------------------------------------------------------------------------------------------


def pages(rows: Iterable[T], size: int) -> Iterator[list[T]]:
    """``rows`` in lists of ``size`` (the last may be shorter), pulling no row before it is needed."""
    iterator = iter(rows)
    while page := list(islice(iterator, size)):
        yield page


def _links_by(column: Any, connection_id: int, ids: Sequence[str]) -> dict[str, LinkRecord]:
    """The links whose ``column`` is one of ``ids``, by that id; ends the read transaction."""
    rows = db.session.scalars(select(ContactLink).where(ContactLink.connection_id == connection_id,
                                                        column.in_(list(ids)))).all()
    found = {str(getattr(row, column.key)): LinkRecord.of(row) for row in rows}
    db.session.rollback()
    return found


def _link_states(connection_id: int, contact_ids: Sequence[str]) -> dict[str, LinkRecord]:
    """The links of these CRM contacts, by contact id, with their ids and state only (``base`` and the other JSON
    columns are not read: the contact phase needs the state); ends the read transaction."""
    rows = db.session.execute(select(ContactLink.id, ContactLink.crm_contact_id, ContactLink.qbo_customer_id,
                                     ContactLink.state).where(ContactLink.connection_id == connection_id,
                                                              ContactLink.crm_contact_id.in_(list(contact_ids)))).all()
    db.session.rollback()
    return {str(contact): LinkRecord(connection_id, str(contact), customer, state, id=link_id)
            for link_id, contact, customer, state in rows}


def _folder_tokens(connection_id: int, txn_type: str, ids: Sequence[str]) -> dict[str, str | None]:
    """The stored SyncToken of each folder item of ``txn_type`` among ``ids``; ends the read transaction."""
    rows = db.session.execute(select(FolderItem.qbo_id, FolderItem.qbo_sync_token).where(
        FolderItem.connection_id == connection_id, FolderItem.txn_type == txn_type,
        FolderItem.qbo_id.in_(list(ids)))).all()
    db.session.rollback()
    return {str(qbo_id): token for qbo_id, token in rows}


# -- the real run -------------------------------------------------------------------------------------------


class _Run:
    """One backfill that writes: the phases over a shared context and report."""

    def __init__(self, services: SyncServices, ctx: SyncContext, report: BackfillReport, progress: Progress | None,
                 page_size: int):
        self.services, self.ctx, self.report, self.progress, self.page_size = services, ctx, report, progress, page_size

    creator: ContactCreator | None = None
    pager: QboPager | None = None
    index: CandidateIndex | None = None
    # The transaction walk, started before its phase when overlapping, and whether waits may take pages of it.
    txn_walk: Iterator[tuple[str, list[dict[str, Any]]]] | None = None
    txn_idle = False
    txn_error: Exception | None = None  # what stopped the walk taken early; raised when its phase comes
    # The transaction walk in a process of its own (``SyncServices.mirror_process``): its pages are counted here
    # as they are committed there (``child_pages``).
    txn_child: MirrorChild | None = None
    # Batched CRM creates and QBO read-ahead on their own threads (pipeline/overlap.py). A run that records every
    # object's outcome and resumes from a checkpoint (the console's first sync, sync/firstsync) keeps the batched
    # creates, settling each page's before the page is recorded, and reads its pages on this thread: its
    # resumable walk must see each page once.
    read_ahead: bool = True
    # The sync lock's check (SyncServices.connection_lock); a history import's walk sets its own.
    still_held: Callable[[], None] = staticmethod(lambda: None)

    def execute(self) -> None:
        store = RedisStore(self.services.redis, self.services.keys.backfill_index(self.ctx.connection_id))
        with self.services.connection_lock(self.ctx.connection_id) as still_held:
            self.still_held = still_held
            self.creator = ContactCreator(second_connector(self.services, self.ctx.connection_id))
            if self.read_ahead:
                self.pager = QboPager(self.services, self.ctx)
            try:
                self.start_child()  # first: it starts up while the CRM's contacts are indexed
                store.drop()
                self.index = CandidateIndex(store, crm_keys)
                load_crm_index(self.ctx.crm, self.index, self.page_size)
                if self.read_ahead and self.txn_child is None:  # its pages fill the customer phase's waits for
                    self.txn_walk, self.txn_idle = self.transaction_pages(), True  # the CRM (``idle``)
                self.customers(self.index)
                self.transactions()  # the rest, while the CRM creates the last customers' contacts
                self.link_created(wait=True)
            finally:
                if self.txn_child is not None:
                    self.txn_child.stop()
                if self.creator is not None:
                    self.creator.close()
                if self.pager is not None:
                    self.pager.close()
                store.drop()
            self.contacts()
            self.held_time()
            self.report.cdc_cursor = _set_cursor(self.ctx.connection_id, self.report.started_at)

    def start_child(self) -> None:
        """Start the transaction walk's process when the services can (a plain backfill reading ahead)."""
        if not self.read_ahead or self.services.mirror_process is None:
            return
        task = Task(self.ctx.connection_id, self.ctx.job_id, self.page_size, self.services.pace is not no_pace,
                    logging.getLevelName(logging.getLogger("crm_qb").getEffectiveLevel()))
        self.txn_child = self.services.mirror_process(task)
        self.txn_child.check = self.lock_held

    def lock_held(self) -> bool:
        """Whether the sync lock is still held (the child's pages are answered only then)."""
        try:
            self.still_held()
        except Exception:  # lost: this thread's next page_done raises it
            return False
        return True

    def child_pages(self, block: bool) -> int:
        """Count the pages the transaction process committed since the last call (waiting for one when
        ``block``); its error is kept for the transaction phase. How many pages were counted."""
        assert self.txn_child is not None
        taken = 0
        while (message := self.txn_child.take(block and taken == 0)) is not None:
            if "page" in message:
                self.absorb(message["page"])
                taken += 1
            elif "error" in message and self.txn_error is None:
                self.txn_error = decode_error(message["error"])
        return taken

    def absorb(self, page: Mapping[str, Any]) -> None:
        """Add one page the transaction process committed to the phase's counts, as ``mirror_page`` counts."""
        counts, added = self.report.phases[TRANSACTIONS], page["counts"]
        for name in ("seen", "linked", "created", "updated", "review", "unchanged", "skipped", "failed"):
            setattr(counts, name, getattr(counts, name) + int(added.get(name, 0)))
        for entity, seen in added.get("by_type", {}).items():
            counts.by_type[entity] = counts.by_type.get(entity, 0) + int(seen)
        self.page_done(TRANSACTIONS)

    def held_time(self) -> None:
        """Send the billable time of activities logged before this run linked their contacts, and the time held
        for them (DESIGN §9: a contact linked later gets its earlier billable activities)."""
        try:
            time_apply.walk_earlier(self.ctx, self.time_page)
            outcome = time_apply.release(self.ctx)
        except (PermanentError, TransientError) as exc:  # the links stay unwalked: the drains catch them up
            db.session.rollback()
            log.warning("backfill connection=%s: earlier or held time not sent yet (%s) job=%s",
                        self.ctx.connection_id, type(exc).__name__, self.ctx.job_id)
            return
        log.info("backfill connection=%s: %s job=%s", self.ctx.connection_id, outcome, self.ctx.job_id)

    def time_page(self, outcomes: Sequence[tuple[str, str]]) -> None:
        """Count a page of the activity walk's outcomes in the time phase."""
        counts = self.report.phases[TIME]
        for _activity, outcome in outcomes:
            counts.add(TIME_COUNTERS.get(outcome, "skipped"))
        self.page_done(TIME)

    def page_done(self, phase: str) -> None:
        """Count the page (and record it, in a recorded run); then stop if the sync lock was lost meanwhile: the
        page's writes are kept and counted, the next page is not started (a recorded run resumes after it)."""
        self.count_page(phase)
        self.still_held()

    def count_page(self, phase: str) -> None:
        self.services.pace()  # a page's writes done: live work first, if any is under way
        self.save_deferred()
        if self.pager is not None:
            # A plain backfill (``run_backfill``) asks for no follow-ups or summaries afterwards (its context is
            # dropped): what changed is not kept, so memory stays flat (the first sync, not overlapping, keeps it).
            self.ctx.invoices_changed.clear()
            self.ctx.customers_changed.clear()
        counts = self.report.phases[phase]
        counts.pages += 1
        if self.progress:
            self.progress(phase, counts)

    def save_deferred(self) -> None:
        """Save the outcomes the units left to save together (reviews, skips' audit records): one commit."""
        if self.ctx.deferred:
            links.save_new(self.ctx.deferred, job_id=self.ctx.job_id, connection_id=self.ctx.connection_id)
            self.ctx.deferred.clear()

    def customers(self, index: CandidateIndex) -> None:
        self.ctx.deferred = []  # saved with each page (page_done); a failed run's last page is walked again
        try:
            self.customer_pages(index)
        finally:
            self.ctx.deferred = None

    def customer_pages(self, index: CandidateIndex) -> None:
        counts = self.report.phases[CUSTOMERS]
        previous: list[dict[str, Any]] = []
        for page, parents in self.customer_walk():
            self.remember(page)
            # This page and the last one (where a job's parent usually is), so a job's check reads no parent.
            self.ctx.qbo_customers_held = self.held(previous + page, parents)
            previous = page
            found = _links_by(ContactLink.qbo_customer_id, self.ctx.connection_id, [str(c["Id"]) for c in page])
            with canonical_memo():  # the index, matching, the create body and the merge fold each customer once
                index.prefetch(canonical_from_qbo(c) for c in page if str(c["Id"]) not in found)
                for customer in page:
                    customer_id = str(customer["Id"])
                    outcome = self.guarded("Customer", customer_id,
                                           partial(self.customer, customer, found.get(customer_id), index))
                    if outcome != PENDING:
                        counts.add(outcome)
                self.link_created(wait=False)
            self.page_done(CUSTOMERS)
            if self.txn_child is not None:
                self.child_pages(block=False)
        self.ctx.qbo_customers_held = {}

    def customer_walk(self) -> Iterator[tuple[list[dict[str, Any]], HeldParents]]:
        """The pages of customers, with their jobs' parents when the pager has read them ahead (else None)."""
        if self.pager is not None:
            return self.pager.customer_pages(ALL_CUSTOMERS, self.page_size)
        return ((page, None) for page in self.query_pages("Customer", ALL_CUSTOMERS))

    def held(self, customers: list[dict[str, Any]], parents: HeldParents = None) -> dict[str, dict[str, Any]]:
        """These customers by id, with the parents of their jobs (``parents`` when already read, else read in one
        query: not one read per job)."""
        held = {str(c["Id"]): c for c in customers if c.get("Id") is not None}
        held.update(jobs_parents(self.ctx.qbo, customers) if parents is None else parents)
        return held

    def query_pages(self, entity: str, where: str = "") -> Iterator[list[dict[str, Any]]]:
        """The pages of a query: read one ahead on the pager's thread when there is one."""
        if self.pager is not None:
            return self.pager.pages(entity, where, self.page_size)
        return pages(self.ctx.qbo.query_all(entity, where, page_size=self.page_size), self.page_size)

    def remember(self, page: list[dict[str, Any]]) -> None:
        """Keep the page's customer hierarchy (sub-customers' parents), linked customers' included."""
        hierarchy.remember(self.ctx.connection_id, page)

    def customer(self, customer: dict[str, Any], link: LinkRecord | None, index: CandidateIndex) -> str:
        if link is not None and link.state != LinkState.LINKED:
            return "review" if link.state == LinkState.REVIEW else "skipped"
        if link is not None and in_step(self.ctx, link, customer):
            return "unchanged"
        if link is not None:
            return outcome_counter(sync_customer(self.ctx, customer, []))
        return self.new_customer(customer, index)

    def new_customer(self, customer: dict[str, Any], index: CandidateIndex) -> str:
        """Match an unlinked customer from the index; a contact to create joins the next batch (PENDING)."""
        record = canonical_from_qbo(customer)
        keys = crm_keys(candidate("record", record))
        if self.creator is not None and self.creator.blocks(keys, self.ctx.connection_id, parent_of(customer),
                                                            self.ctx.qbo_customers_held):
            self.link_created(wait=True)  # it could match a contact still being created: create that first
        by_email, by_name = index.lookup(record)
        self.ctx.crm_pool, self.ctx.crm_email_matches = list(by_name), list(by_email)
        try:
            planned = plan_new_customer(self.ctx, customer, [])
        finally:
            self.ctx.crm_pool = self.ctx.crm_email_matches = None
        if isinstance(planned, str):
            return outcome_counter(planned)
        assert self.creator is not None  # set up by ``execute``
        self.creator.add(planned, keys)
        return PENDING

    def link_created(self, wait: bool) -> None:
        """Link the customers whose contacts the CRM has created (all of them, waiting, when ``wait``)."""
        if self.creator is None:
            return
        for batch in self.creator.finished(wait, self.idle):
            self.link_batch(batch)

    def idle(self) -> bool:
        """Mirror one page of transactions while the CRM is still creating contacts (the folder does not depend
        on links); False when there is none (not overlapping, the walk is done, or it failed: its error is raised
        when the transaction phase comes, not here inside a customer's unit, which would count it as failed).
        With the walk in its own process: count the pages it committed meanwhile, if any."""
        if self.txn_child is not None:
            return self.child_pages(block=False) > 0
        if not self.txn_idle or self.txn_walk is None:
            return False
        try:
            taken = next(self.txn_walk, None)
            if taken is not None:
                self.mirror_page(*taken)
        except Exception as exc:
            self.txn_idle, self.txn_error = False, exc
            return False
        if taken is None:
            self.txn_idle = False
            return False
        self.page_done(TRANSACTIONS)
        return True

    def link_batch(self, batch: list[tuple[NewContact, Created]]) -> None:
        """First-link a batch of customers to their new contacts and save them in one transaction."""
        counts = self.report.phases[CUSTOMERS]
        made = [(planned, result) for planned, result in batch if isinstance(result, Contact)]
        if self.index is not None:
            self.index.add_many(contact_entry(contact) for _planned, contact in made)
        adopt(self.ctx.crm, [contact for _planned, contact in made])  # created on the creator's connector
        units: list[tuple[LinkRecord, Record]] = []
        for planned, result in batch:
            outcome = self.guarded("Customer", str(planned.customer["Id"]), partial(self.first_link, planned, result,
                                                                                     units))
            if outcome != PENDING:
                counts.add(outcome)
        try:
            links.save_many(units, job_id=self.ctx.job_id, connection_id=self.ctx.connection_id)
        except IntegrityError:  # linked meanwhile after all: the single path decides each (review, or link)
            pairs = {contact.id: (planned.customer, contact) for planned, contact in made}
            for link, _audit in units:
                customer, contact = pairs[str(link.crm_contact_id)]
                counts.add(self.guarded("Customer", str(customer["Id"]), partial(self.linked, customer, contact)))
            return
        for link, _record in units:
            counts.add(self.settled("Customer", str(link.qbo_customer_id), "created"))
        log.info("backfill connection=%s: linked %d customers to new CRM contacts job=%s", self.ctx.connection_id,
                 len(units), self.ctx.job_id)

    def first_link(self, planned: NewContact, result: Created, units: list[tuple[LinkRecord, Record]]) -> str:
        """The first link of one created contact, kept in ``units`` to save (PENDING); a refused create fails."""
        if isinstance(result, CrmPermanentError):
            raise result
        link = LinkRecord(self.ctx.connection_id)
        units.append((link, first_link(self.ctx, link, planned.customer, result, "link.created_in_crm")))
        return PENDING

    def linked(self, customer: dict[str, Any], contact: Contact) -> str:
        return outcome_counter(link_created(self.ctx, customer, contact, []))

    def transaction_pages(self) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """Every page of every mirrored transaction type, with its type."""
        for entity in registry.NAMES:
            for page in self.query_pages(entity):
                yield entity, page

    def transactions(self) -> None:
        """Mirror every transaction page (those the customer phase has not mirrored already)."""
        self.txn_idle = False
        if self.txn_child is not None:
            while not self.txn_child.finished:
                if self.child_pages(block=True):
                    self.link_created(wait=False)
        if self.txn_error is not None:
            raise self.txn_error
        if self.txn_child is not None:
            return
        for entity, page in self.txn_walk or self.transaction_pages():
            self.mirror_page(entity, page)
            self.page_done(TRANSACTIONS)
            self.link_created(wait=False)

    def mirror_page(self, entity: str, page: list[dict[str, Any]]) -> None:
        """Mirror one page into the folder and commit it: in bulk, or one by one if the bulk flush is refused."""
        counts = self.report.phases[TRANSACTIONS]
        counts.by_type[entity] = counts.by_type.get(entity, 0) + len(page)
        try:
            results = mirror_many(self.ctx, entity, page)
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            results = None
        except Exception:
            db.session.rollback()
            raise
        if results is None:
            self.mirror_each(entity, page)
            return
        for txn, result in zip(page, results, strict=True):
            counter = _counted(self.ctx, entity, str(txn.get("Id")), result)
            counts.add(self.settled(entity, str(txn.get("Id")), counter,
                                    result if isinstance(result, Exception) else None))

    def mirror_each(self, entity: str, page: list[dict[str, Any]]) -> None:
        counts = self.report.phases[TRANSACTIONS]
        try:
            for txn in page:
                unit = partial(_mirror_one, self.ctx, entity, txn)
                counts.add(self.guarded(entity, str(txn.get("Id")), unit, rollback=False))
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise

    def contacts(self) -> None:
        if not self.ctx.settings.to_qbo:
            return
        counts = self.report.phases[CONTACTS]
        for page in self.ctx.crm.list_contacts_updated_since(None, page_size=self.page_size):
            found = _link_states(self.ctx.connection_id, [c.id for c in page.contacts])
            for contact in page.contacts:
                unit = partial(self.contact, contact, found.get(contact.id))
                counts.add(self.guarded("Contact", contact.id, unit))
            self.page_done(CONTACTS)

    def contact(self, contact: Contact, link: LinkRecord | None) -> str:
        if link is not None:
            return {LinkState.LINKED: "unchanged", LinkState.REVIEW: "review"}.get(link.state, "skipped")
        return outcome_counter(link_new_contact(self.ctx, contact, []))

    def settled(self, entity: str, object_id: str, counter: str, error: Exception | None = None) -> str:
        """The counter of an object settled outside ``guarded`` (a bulk page, a batch of first links); a
        recorded run notes it here."""
        return counter

    def guarded(self, entity: str, object_id: str, unit: Callable[[], str], rollback: bool = True) -> str:
        """Run one object's unit; a permanent failure of that object is counted, anything else propagates.
        Before it, bulk work gives way to live work under way (``SyncServices.pace``)."""
        self.services.pace()
        try:
            return unit()
        except _FATAL:
            raise
        except (PermanentError, ValueError) as exc:
            if rollback:
                db.session.rollback()
            log.warning("backfill connection=%s: %s %s failed (%s) job=%s", self.ctx.connection_id, entity,
                        object_id, type(exc).__name__, self.ctx.job_id)
            return "failed"


def serve_transactions(services: SyncServices, task: Task, inp: IO[str], out: IO[str]) -> None:
    """The transaction process's walk (``mirrorproc``): every page mirrored and committed as the one-process run
    does (``_Run.mirror_page``), each reported to the parent on ``out`` after its commit, at most WINDOW pages
    ahead of the parent's answers on ``inp``; then "done", or the error that stopped it. Call in an app
    context, in the child process, while the parent holds the connection's sync lock."""
    answers, run = Answers(inp), None
    try:
        ctx = build_context(services, task.connection_id, task.job_id)
        run = _Run(services, ctx, BackfillReport(task.connection_id, False, utcnow()), None, task.page_size)
        run.pager = QboPager(services, ctx)
        for entity, page in run.transaction_pages():
            if not answers.wait_turn():
                return  # the parent stopped answering: it lost its lock, failed or is gone
            run.report.phases[TRANSACTIONS] = counts = PhaseCounts()
            run.mirror_page(entity, page)
            ctx.invoices_changed.clear()  # a plain backfill keeps no changes (``count_page``)
            ctx.customers_changed.clear()
            write(out, {"page": {"entity": entity, "counts": asdict(counts)}})
            answers.sent += 1
            services.pace()  # a page's writes done: live work first, if any is under way
        write(out, {"done": True})
    except Exception as exc:  # the parent raises it when its transaction phase comes
        db.session.rollback()
        write(out, encode_error(exc))
    finally:
        if run is not None:
            if run.pager is not None:
                run.pager.close()
            run.ctx.close()


def _counted(ctx: SyncContext, entity: str, txn_id: str, result: FolderChange | Exception) -> str:
    """The report counter of one transaction of a bulk-mirrored page (a failure logged as ``guarded`` does)."""
    if isinstance(result, Exception):
        log.warning("backfill connection=%s: %s %s failed (%s) job=%s", ctx.connection_id, entity, txn_id,
                    type(result).__name__, ctx.job_id)
        return "failed"
    return result.action if result.action in ("created", "updated") else "unchanged"


def _mirror_one(ctx: SyncContext, entity: str, txn: dict[str, Any]) -> str:
    action = mirror(ctx, entity, str(txn["Id"]), txn).action
    return action if action in ("created", "updated") else "unchanged"


def in_step(ctx: SyncContext, link: LinkRecord, customer: Mapping[str, Any]) -> bool:
    """Whether a linked customer is as the link last saw it (SyncToken, Active, QBO-owned facts)."""
    if link.qbo_sync_token != str(customer.get("SyncToken")) or link.base is None:
        return False
    if link.qbo_active != bool(customer.get("Active", True)):
        return False
    owned = qbo_owned_fields(customer, ctx.term_names, ctx.payment_method_names, home_currency=ctx.home_currency)
    return link.qbo_owned == {**vars(owned), "balance": str(owned.balance)}


def outcome_counter(outcome: str) -> str:
    """The report counter of a sync unit's outcome string."""
    if outcome.startswith("link.matched"):
        return "linked"
    if outcome.startswith("link.created"):
        return "created"
    return {"synced": "updated", "unchanged": "unchanged", "review": "review", "link moved": "linked"}.get(
        outcome, "skipped")


def _set_cursor(connection_id: int, moment: datetime) -> datetime:
    connection = db.session.get(Connection, connection_id)
    if connection is None:
        db.session.rollback()
        raise ConnectionGoneError(f"connection {connection_id} does not exist")
    connection.cdc_cursor = moment
    connection.crm_cursor = connection.crm_cursor or moment  # the CRM poll (crm_poll) starts where this began
    connection.last_sync_at = utcnow()
    db.session.commit()
    return moment


# -- the dry run ----------------------------------------------------------------------------------------------


class _DryRun(_Run):
    """A backfill that only reads and predicts (see ``backfill``)."""

    def __init__(self, services: SyncServices, ctx: SyncContext, report: BackfillReport, progress: Progress | None,
                 page_size: int):
        super().__init__(services, ctx, report, progress, page_size)
        self.claimed: set[str] = set()  # CRM contacts this run would link
        # customer -> (email, contact it would link or be created as); every customer walked, so a job finds its
        # parent's email and its ancestors' contacts as the run does (``qbo_side._match_job``)
        self.seen: dict[str, tuple[str | None, str | None]] = {}
        self.parent_ids: dict[str, str | None] = {}
        self.qbo_index = CandidateIndex(DictStore(), qbo_keys)

    def execute(self) -> None:
        index = CandidateIndex(DictStore(), crm_keys)
        load_crm_index(self.ctx.crm, index, self.page_size)
        self.customers(index)
        self.transactions()
        self.contacts()
        self.held_time()

    def guarded(self, entity: str, object_id: str, unit: Callable[[], str], rollback: bool = True) -> str:
        counter = super().guarded(entity, object_id, unit, rollback)
        if entity == "Contact" and counter in ("linked", "created"):
            self.claimed.add(object_id)  # linked after the run: its time counts in the time phase
        return counter

    def held_time(self) -> None:
        """Predict the time walk (``sync/time/earlier.py``): the billable time of every contact linked after the
        run would be created, unless QBO already has it; nothing is sent. Time of a CRM user with no QBO person
        would wait held instead: the prediction cannot know that before users are matched."""
        if not time_apply.enabled(self.ctx.connection_id):
            return
        try:
            for page in self.ctx.crm.list_activities(page_size=time_earlier.WALK_PAGE):
                contacts = [str(a.contact_id) for a in page.activities if a.contact_id]
                linked = self.claimed | set(time_store.linked_customers(self.ctx.connection_id, contacts))
                known = time_store.entries(self.ctx.connection_id, [a.id for a in page.activities])
                self.time_page([(a.id, _predict_time(known.get(a.id)))
                                for a in time_earlier.wanted(page.activities, linked, set())])
        except CrmNotFoundError:
            return  # a CRM without activities

    def remember(self, page: list[dict[str, Any]]) -> None:
        """A dry run writes nothing."""

    def customer(self, customer: dict[str, Any], link: LinkRecord | None, index: CandidateIndex) -> str:
        record = canonical_from_qbo(customer)
        customer_id, parent_id = str(customer["Id"]), parent_of(customer)
        self.parent_ids[customer_id] = parent_id
        if bool(customer.get("Active", True)):
            self.qbo_index.add_many([(candidate(str(customer["Id"]), record), True)])
        raw_email = record.get("email")
        email = raw_email if isinstance(raw_email, str) else None
        if link is not None:
            self.seen[customer_id] = (email, link.crm_contact_id)
            if link.state != LinkState.LINKED:
                return "review" if link.state == LinkState.REVIEW else "skipped"
            return "unchanged" if in_step(self.ctx, link, customer) else "updated"
        if not customer.get("Active", True):
            self.seen[customer_id] = (email, None)
            return "skipped"
        by_email, by_name = index.lookup(record)
        parent = self.seen.get(parent_id) if parent_id else None
        if parent is not None:  # a job (crm_qb/sync/customers/qbo_side.py): never an ancestor's contact
            ancestors = self.ancestors_contacts(str(parent_id))
            by_email, by_name = ([c for c in found if c.id not in ancestors] for found in (by_email, by_name))
        outcome = match(record, by_email or by_name)
        if parent is not None and not has_own_email(record, parent[0]):
            outcome = match_exact_name(record, by_name)
            if outcome.kind == NONE:
                self.seen[customer_id] = (email, None)
                return "skipped"  # shown under its parent's contact
        self.seen[customer_id] = (email, outcome.linked_id)
        if outcome.kind == LINKED:
            return self.would_link(str(outcome.linked_id))
        if outcome.kind == AMBIGUOUS:
            return "review"
        if not self.ctx.settings.to_crm:
            return "skipped"
        created = f"new:{customer['Id']}"
        index.add_many([(candidate(created, record), True)])
        self.claimed.add(created)
        self.seen[customer_id] = (email, created)  # its jobs never match it, as in the run
        return "created"

    def ancestors_contacts(self, parent_id: str) -> set[str]:
        """The contacts the customer ``parent_id`` and its ancestors would have (links, or ``new:`` ones)."""
        contacts: set[str] = set()
        walked: set[str] = set()
        current: str | None = parent_id
        while current is not None and current in self.seen and current not in walked:
            walked.add(current)
            contact = self.seen[current][1]
            if contact:
                contacts.add(contact)
            current = self.parent_ids.get(current)
        return contacts

    def would_link(self, contact_id: str) -> str:
        if contact_id in self.claimed or _links_by(ContactLink.crm_contact_id, self.ctx.connection_id, [contact_id]):
            return "review"  # the real run finds the contact linked to another customer
        self.claimed.add(contact_id)
        return "linked"

    def mirror_page(self, entity: str, page: list[dict[str, Any]]) -> None:
        counts = self.report.phases[TRANSACTIONS]
        counts.by_type[entity] = counts.by_type.get(entity, 0) + len(page)
        stored = _folder_tokens(self.ctx.connection_id, entity, [str(t["Id"]) for t in page])
        for txn in page:
            counts.add(_predict_txn(txn, stored))

    def contact(self, contact: Contact, link: LinkRecord | None) -> str:
        if link is not None or contact.id in self.claimed:
            state = link.state if link is not None else LinkState.LINKED
            return {LinkState.LINKED: "unchanged", LinkState.REVIEW: "review"}.get(state, "skipped")
        if not contact.active:
            return "skipped"
        record = canonical_from_crm(contact_json(contact))
        by_email, by_name = self.qbo_index.lookup(record)
        outcome = match(record, by_email or by_name)
        if outcome.kind == LINKED:
            return "linked"
        return "review" if outcome.kind == AMBIGUOUS else "created"


def _predict_time(entry: time_store.EntryRecord | None) -> str:
    """What the walk would do with a billable activity: nothing when QBO has its time already, else create it."""
    return "unchanged" if entry is not None and entry.state in (TimeState.SYNCED, TimeState.BILLED) else "created"


def _predict_txn(txn: Mapping[str, Any], stored: Mapping[str, str | None]) -> str:
    if not (txn.get("CustomerRef") or {}).get("value"):
        return "failed"
    qbo_id = str(txn["Id"])
    if qbo_id not in stored:
        return "created"
    return "unchanged" if stored[qbo_id] == str(txn.get("SyncToken")) else "updated"
