"""The backfill's overlap of its three kinds of waiting: QBO reads, CRM writes and the database.

A backfill is bound by the slower side's rate limit only if neither side waits for the other: while the CRM
creates one batch of contacts, the next QBO page is read and the last batch's links are written. Two helpers do
it, each with one thread of its own and its own HTTP session (sessions are not shared between threads):

- ``ContactCreator`` sends batches of contacts to create (``crm.batch.create_many``: ``POST /contacts/batch``, 100
  a request) and hands back each finished batch, in order, to the caller's thread, which links them.
- ``QboPager`` reads the next page of a QBO query while the caller works on the current one.

Nothing on these threads touches the database: the pager's client takes its access token from the caller, who
reads (and refreshes) it before each page, and a page whose token ran out meanwhile is read again by the caller.
At most a few batches and one page wait at a time, so memory stays flat in the data size.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from crm_qb.crm.batch import Created, create_many
from crm_qb.crm.protocol import CrmConnector
from crm_qb.db import db
from crm_qb.errors import TransientError
from crm_qb.models import Connection
from crm_qb.qbo.client import QboClient
from crm_qb.sync.context import SyncContext
from crm_qb.sync.customers import hierarchy
from crm_qb.sync.customers.qbo_side import NewContact
from crm_qb.sync.services import ConnectionGoneError, SyncServices

log = logging.getLogger(__name__)

CREATE_BATCH = 100  # contacts per POST /contacts/batch (DESIGN.md section 6's cap; HubSpot's too)
MAX_BATCHES_IN_FLIGHT = 4  # created contacts waiting to be linked stay few: memory flat in the data size
READ_AHEAD = 3  # transaction pages read before they are taken (at most this many held): memory flat as well


class ContactCreator:
    """Creates CRM contacts in batches on one background thread, so QBO reads and database work go on meanwhile.

    Only the HTTP calls run on the thread (with a connector of its own); linking, which writes the database,
    stays on the caller's thread (``finished``). At most MAX_BATCHES_IN_FLIGHT batches wait at a time. ``blocks``
    tells whether a customer could match a contact still being created (same email or name key, or a job whose
    parent's contact is on its way), so the caller links those first and matching sees them, as one by one.
    """

    def __init__(self, crm: CrmConnector) -> None:
        self.crm = crm
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="backfill-crm")
        self.batch: list[tuple[NewContact, list[str]]] = []
        self.in_flight: deque[tuple[list[tuple[NewContact, list[str]]], Future[list[Created]]]] = deque()
        self.keys: Counter[str] = Counter()
        self.customers: set[str] = set()

    def add(self, planned: NewContact, keys: list[str]) -> None:
        """Queue one contact to create; a full batch is sent at once."""
        self.batch.append((planned, keys))
        self.keys.update(keys)
        self.customers.add(str(planned.customer["Id"]))
        if len(self.batch) >= CREATE_BATCH:
            self.send()

    def send(self) -> None:
        if self.batch:
            bodies = [planned.body for planned, _keys in self.batch]
            self.in_flight.append((self.batch, self.pool.submit(create_many, self.crm, bodies)))
            self.batch = []

    def blocks(self, keys: list[str], connection_id: int, parent_id: str | None,
               held: Mapping[str, Mapping[str, Any]] | None = None) -> bool:
        """Whether a customer with these index keys (and this parent) must wait for the pending creates.

        The parent's chain is followed through ``held`` (the customers at hand, by id) as far as they reach, and
        through the remembered hierarchy from there (a query per level).
        """
        if not self.customers:
            return False
        if any(self.keys[key] for key in keys):
            return True
        if parent_id is None:
            return False
        return any(customer_id in self.customers for customer_id in _chain(connection_id, parent_id, held or {}))

    def finished(self, wait: bool,
                 idle: Callable[[], bool] | None = None) -> Iterator[list[tuple[NewContact, Created]]]:
        """The batches done, each as its contacts created (or the CRM's error for each); all of them when ``wait``.

        Before waiting for a batch (``wait``, or more than MAX_BATCHES_IN_FLIGHT sent), ``idle()`` is called until
        the batch is done or it answers False (nothing left to do meanwhile): the caller's other work.
        """
        if wait:
            self.send()
        while self.in_flight and (wait or self.in_flight[0][1].done() or len(self.in_flight) > MAX_BATCHES_IN_FLIGHT):
            batch, future = self.in_flight[0]
            while idle is not None and not future.done() and idle():
                pass
            self.in_flight.popleft()
            results = future.result()
            for planned, keys in batch:
                self.keys.subtract(keys)
                self.customers.discard(str(planned.customer["Id"]))
            self.keys = +self.keys  # drop keys no pending contact holds any more
            yield [(planned, result) for (planned, _keys), result in zip(batch, results, strict=True)]

    def close(self) -> None:
        """Wait for the thread's last call (a failed run links those contacts when it is run again) and stop."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.crm.close()


def _chain(connection_id: int, parent_id: str, held: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """``parent_id`` and its ancestors, nearest first: from ``held`` while it has them, then from the database."""
    chain = [parent_id]
    while (customer := held.get(chain[-1])) is not None and len(chain) <= hierarchy.MAX_DEPTH:
        parent = hierarchy.parent_of(customer)
        if parent is None or parent in chain:
            return chain  # the top, or a cycle in the data
        chain.append(parent)
    return chain + [m.qbo_customer_id for m in hierarchy.ancestors(connection_id, chain[-1])]


def second_connector(services: SyncServices, connection_id: int) -> CrmConnector:
    """A CRM connector of the connection's own for the creating thread (HTTP sessions are not shared)."""
    crm = services.crm_for(_connection(connection_id))
    db.session.rollback()
    return crm


class TokenRanOutError(TransientError):
    """The pager's access token expired while it read a page: the caller reads that page itself."""


class _HandedToken:
    """The access token the caller last handed over; a 401 is not refreshed here (no database on this thread)."""

    def __init__(self, token: str) -> None:
        self.value = token

    def get(self) -> str:
        return self.value

    def refused(self, _stale: str) -> str:
        raise TokenRanOutError("the access token expired while a page was read ahead")


class QboPager:
    """Pages of QBO queries, each next page read on a thread of its own while the caller works on the current one."""

    def __init__(self, services: SyncServices, ctx: SyncContext) -> None:
        connection = _connection(ctx.connection_id)
        realm = str(connection.qbo_realm_id)
        db.session.rollback()
        self.ctx, self.services = ctx, services
        self.token = _HandedToken(self._fresh_token())
        self.client = QboClient(services.qbo.endpoints.api_base, realm, self.token.get, self.token.refused,
                                services.qbo.budget)
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="backfill-qbo")
        # The walks of ``pages`` (transactions) have a thread and HTTP session of their own, so their pages, read
        # further ahead, never make the customer walk's next page wait.
        self.walk_client = QboClient(services.qbo.endpoints.api_base, realm, self.token.get, self.token.refused,
                                     services.qbo.budget)
        self.walk_pool = ThreadPoolExecutor(1, thread_name_prefix="backfill-qbo-walk")

    def pages(self, entity: str, where: str, page_size: int) -> Iterator[list[dict[str, Any]]]:
        """Every page of ``SELECT * FROM entity WHERE where`` (like ``QboClient.query_all``), up to READ_AHEAD
        pages read before they are asked for (``_Walk``)."""
        return iter(_Walk(self, entity, where, page_size))

    def customer_pages(self, where: str, page_size: int) -> Iterator[tuple[list[dict[str, Any]], HeldParents]]:
        """Every page of customers (as ``pages``), each with the parents of its jobs that neither it nor the page
        before holds, read on the thread as well (``jobs_parents``); None when the caller has to read them."""
        start = 1
        self.token.value = self._fresh_token()
        ahead = self.pool.submit(self._customers_and_parents, where, start, page_size, [])
        while True:
            try:
                rows, parents = ahead.result()
            except TokenRanOutError:
                rows, parents = self.ctx.qbo.query_page("Customer", where, start, page_size), None
            if len(rows) == page_size:
                self.token.value = self._fresh_token()
                ahead = self.pool.submit(self._customers_and_parents, where, start + page_size, page_size, rows)
            if rows:
                yield rows, parents
            if len(rows) < page_size:
                return
            start += page_size

    def _customers_and_parents(self, where: str, start: int, size: int,
                               previous: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], HeldParents]:
        rows = self.client.query_page("Customer", where, start, size)
        if not rows:
            return rows, {}
        try:
            return rows, jobs_parents(self.client, previous + rows)
        except TokenRanOutError:
            return rows, None

    def _read_ahead(self, entity: str, where: str, start: int, size: int) -> Future[list[dict[str, Any]]]:
        self.token.value = self._fresh_token()
        return self.pool.submit(self.client.query_page, entity, where, start, size)

    def _rows(self, ahead: Future[list[dict[str, Any]]], entity: str, where: str, start: int,
              size: int) -> list[dict[str, Any]]:
        try:
            return ahead.result()
        except TokenRanOutError:
            return self.ctx.qbo.query_page(entity, where, start, size)

    def _fresh_token(self) -> str:
        token = self.services.qbo.tokens.access_token(str(self.ctx.connection_id))
        db.session.rollback()  # the token read ends its transaction
        return token

    def close(self) -> None:
        """Wait for the pages still being read and stop."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.walk_pool.shutdown(wait=True, cancel_futures=True)
        self.client.close()
        self.walk_client.close()


class _Walk:
    """The pages of one query, read on the pager's walk thread up to READ_AHEAD before the caller takes them.

    A page is asked for only once the page before it came back full, so no read goes past the end (no QBO call
    more than a one-by-one walk makes). A page whose token ran out on the thread is read by the caller.
    """

    def __init__(self, pager: QboPager, entity: str, where: str, size: int) -> None:
        self.pager, self.entity, self.where, self.size = pager, entity, where, size
        self.lock = threading.RLock()  # a read done at once runs its callback on the thread that asked for it
        self.reads: deque[tuple[int, Future[list[dict[str, Any]]]]] = deque()  # not taken yet, in page order
        self.last: Future[list[dict[str, Any]]] | None = None  # the latest read; None: it came back full
        self.next_start = 1
        self.stopped = False  # the end was reached, or a read failed (the caller goes on from there)
        with self.lock:
            self._extend()

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        while True:
            with self.lock:
                if not self.reads:
                    return
                start, future = self.reads.popleft()
            self.pager.token.value = self.pager._fresh_token()  # for the reads still to come
            try:
                rows = future.result()
            except TokenRanOutError:
                rows = self.pager.ctx.qbo.query_page(self.entity, self.where, start, self.size)
                with self.lock:
                    if self.last is future:  # it was the latest: go on from its answer
                        self.last, self.stopped = None, len(rows) < self.size
            full = len(rows) == self.size
            with self.lock:
                self._extend()
            if rows:
                yield rows
            if not full:
                return

    def _extend(self) -> None:
        """Ask for the next page when the latest came back full and fewer than READ_AHEAD wait (lock held)."""
        if self.stopped or len(self.reads) >= READ_AHEAD:
            return
        last = self.last
        if last is not None:
            if not last.done():
                return  # its callback comes back here
            if last.cancelled() or last.exception() is not None or len(last.result()) < self.size:
                self.stopped = True
                return
        future = self.pager.walk_pool.submit(self.pager.walk_client.query_page, self.entity, self.where,
                                             self.next_start, self.size)
        self.reads.append((self.next_start, future))
        self.last, self.next_start = future, self.next_start + self.size
        future.add_done_callback(self._done)

    def _done(self, _future: Future[list[dict[str, Any]]]) -> None:
        with self.lock:
            self._extend()


HeldParents = dict[str, dict[str, Any]] | None


def jobs_parents(qbo: QboClient, customers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The parents of the jobs among ``customers`` that are not among them, by id (one query, none if none)."""
    ids = {str(c["Id"]) for c in customers if c.get("Id") is not None}
    parents = {parent for c in customers if (parent := hierarchy.parent_of(c)) is not None and parent not in ids}
    return qbo.read_many("Customer", parents, include_inactive=True) if parents else {}


def _connection(connection_id: int) -> Connection:
    connection = db.session.get(Connection, connection_id)
    if connection is None:
        db.session.rollback()
        raise ConnectionGoneError(f"connection {connection_id} does not exist")
    return connection
