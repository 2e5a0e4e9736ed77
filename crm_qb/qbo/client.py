"""The QuickBooks Online Accounting API client for one company (realm).

Every call sends ``minorversion``, asks for JSON, goes through the realm's shared rate budget, logs Intuit's
``intuit_tid`` and turns faults into typed errors (``faults.py``). Writes carry a ``requestid`` that stays the
same across the retries of one logical write, so QuickBooks answers a repeated write with the first result
instead of performing it twice (docs/qbo/facts.md §2.4). Transient failures are retried with exponential backoff and
full jitter; a throttled call waits the 60 s Intuit asks for; a 401 refreshes the token once.

A throttle holds the whole realm off in the shared budget (every process waits, nobody hammers QuickBooks). A
client made with ``defer_throttling`` (the drains and the CDC poll) does not wait at all: a throttle, a hold-off or
a slot that does not come within ``slot_timeout`` raises ``RealmThrottledError`` with the seconds to wait, so the
job gives its worker back and comes back from RQ's delayed set, and other companies' work goes on meanwhile.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any, Protocol
from urllib.parse import quote

import requests

from crm_qb.answer_times import AnswerTimes
from crm_qb.errors import PermanentError, TransientError
from crm_qb.qbo import exactjson
from crm_qb.qbo.faults import (
    THROTTLE_WAIT_SECONDS,
    AnswerTimeoutError,
    AuthenticationError,
    NetworkError,
    QboFault,
    ServerError,
    ThrottledError,
    fault_from_json,
    header,
    parse_response,
)
from crm_qb.qbo.ratebudget import RateBudget, RateBudgetTimeout, RealmThrottledError

log = logging.getLogger(__name__)

MINOR_VERSION = 75
QUERY_MAX_RESULTS = 1000  # Intuit's cap per query page
CDC_MAX_OBJECTS = 1000  # Intuit's cap per CDC answer
BATCH_MAX_ITEMS = 30  # Intuit's limit per batch request
BATCH_ID_MAX_LENGTH = 10  # bId limit when the batch carries a requestid
REQUEST_ID_MAX_LENGTH = 50  # Intuit's limit on requestid (fault 2130 beyond)
CDC_OVERLAP = timedelta(seconds=1)  # re-read the boundary second: QBO times have one-second resolution
READ_MANY_CHUNK = 200  # ids per Id IN (...) query: a drain batch's ids of one type in one query

_ENTITY_NAME = re.compile(r"^[A-Za-z]+$")
_VOID_BY_OPERATION = frozenset({"invoice", "salesreceipt"})
_VOID_BY_UPDATE = frozenset({"payment", "billpayment"})
_NAME_LISTS = frozenset({"customer", "vendor", "employee", "item", "account"})


class ConnectionTokens(Protocol):
    """What the client needs from a TokenManager."""

    def access_token(self, connection_id: str) -> str:
        """A valid access token for the connection."""

    def force_refresh(self, connection_id: str, stale_access_token: str) -> str:
        """A new access token after ``stale_access_token`` was refused."""


class CdcWindowTooDenseError(PermanentError):
    """More than CDC's 1,000-object cap changed within one second; fall back to a query sync."""


def escape(value: str) -> str:
    """``value`` escaped for a single-quoted literal in a QBO query (backslash first, then apostrophe)."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


@dataclass(frozen=True)
class BatchResult:
    """One batch item's outcome: the entity (or QueryResponse) it returned, or its typed fault."""

    bid: str
    entity: str | None
    data: dict[str, Any] | None
    error: QboFault | None

    @property
    def ok(self) -> bool:
        """Whether the item succeeded."""
        return self.error is None

    @classmethod
    def from_item(cls, item: Mapping[str, Any], intuit_tid: str | None) -> BatchResult:
        """Parse one ``BatchItemResponse`` entry."""
        bid = str(item.get("bId", ""))
        rest = {key: value for key, value in item.items() if key != "bId"}
        fault = next((value for key, value in rest.items() if key.lower() == "fault"), None)
        if isinstance(fault, Mapping):
            return cls(bid, None, None, fault_from_json(fault, http_status=200, intuit_tid=intuit_tid))
        for key, value in rest.items():
            if isinstance(value, dict):
                return cls(bid, key, value, None)
        return cls(bid, None, None, ServerError(message="batch item answer holds no entity",
                                                intuit_tid=intuit_tid, http_status=200))


class QboClient:
    """The Accounting API of one realm, with retries, the shared rate budget and token refresh on 401."""

    escape = staticmethod(escape)

    def __init__(
        self,
        api_base: str,
        realm_id: str,
        tokens: Callable[[], str],
        on_unauthorized: Callable[[str], str],
        budget: RateBudget | None,
        session: requests.Session | None = None,
        minorversion: int = MINOR_VERSION,
        max_retries: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 30,
        *,
        rng: random.Random | None = None,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
        slot_timeout: float | None = None,
        defer_throttling: bool = False,
        retry_timeouts: bool = True,
    ) -> None:
        if max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {max_retries!r}")
        self.api_base = api_base.rstrip("/")
        self.realm_id = realm_id
        self._tokens = tokens
        self._on_unauthorized = on_unauthorized
        self._budget = budget
        self._owns_session = session is None
        self._session = session or requests.Session()
        self.minorversion = minorversion
        self.max_retries = max_retries
        self._sleep = sleep
        self.timeout = timeout
        self._rng = rng or random.Random()
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._slot_timeout = slot_timeout
        self._defer_throttling = defer_throttling
        # False: a call that got no answer within ``timeout`` is not sent again (a live drain's short timeout
        # already says the company is slow; waiting as long once more would only hold the worker twice as long).
        self._retry_timeouts = retry_timeouts
        # The longest wait for one answer, and how many answers came (``_send``): a drain reads them after its
        # work to tell a company that answers slowly (crm_qb.sync.pipeline.slowlane).
        self.answer_times = AnswerTimes()

    @classmethod
    def for_connection(cls, connection_id: str, realm_id: str, api_base: str, tokens: ConnectionTokens,
                       budget: RateBudget | None, **options: Any) -> QboClient:
        """A client whose access tokens come from ``tokens`` (a TokenManager) for ``connection_id``."""
        return cls(api_base, realm_id, partial(tokens.access_token, connection_id),
                   partial(tokens.force_refresh, connection_id), budget, **options)

    def close(self) -> None:
        """Close the HTTP session if this client created it."""
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> QboClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- entities --------------------------------------------------------------------------------------

    def read(self, entity: str, id: str) -> dict[str, Any]:
        """The entity with this Id."""
        return _entity(self._call("GET", f"{_segment(entity)}/{quote(id, safe='')}"), entity)

    def create(self, entity: str, body: Mapping[str, Any], *, request_id: str | None = None) -> dict[str, Any]:
        """Create the entity; returns it as QuickBooks stored it.

        ``request_id`` (at most 50 characters) replaces the per-call one when the caller keeps it across jobs: a
        create repeated after a crash with the same id gets QBO's first answer instead of a second object.
        """
        return _entity(self._call("POST", _segment(entity), body=body, write=True, request_id=request_id), entity)

    def sparse_update(self, entity: str, id: str, sync_token: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Change only ``fields`` of the entity (a sparse update); StaleObjectError when ``sync_token`` is old."""
        body = {**fields, "Id": id, "SyncToken": sync_token, "sparse": True}
        return _entity(self._call("POST", _segment(entity), body=body, write=True), entity)

    def delete(self, entity: str, id: str, sync_token: str) -> dict[str, Any]:
        """Delete a transaction; answers ``{"status": "Deleted", "Id": ...}``."""
        segment = _segment(entity)
        if segment in _NAME_LISTS:
            raise ValueError(f"QuickBooks cannot delete a {entity}: make it inactive (Active: false) instead")
        body = {"Id": id, "SyncToken": sync_token}
        return _entity(self._call("POST", segment, params={"operation": "delete"}, body=body, write=True), entity)

    def void(self, entity: str, id: str, sync_token: str) -> dict[str, Any]:
        """Void a transaction by its entity's rule (docs/qbo/facts.md §9.3-9.6): amounts zeroed, transaction kept."""
        segment = _segment(entity)
        body: dict[str, Any]
        if segment in _VOID_BY_OPERATION:
            params, body = {"operation": "void"}, {"Id": id, "SyncToken": sync_token}
        elif segment in _VOID_BY_UPDATE:
            params = {"operation": "update", "include": "void"}
            body = {"Id": id, "SyncToken": sync_token, "sparse": True}
        else:
            raise ValueError(f"QuickBooks has no void operation for {entity}")
        return _entity(self._call("POST", segment, params=params, body=body, write=True), entity)

    # -- queries ---------------------------------------------------------------------------------------

    def query(self, sql: str) -> dict[str, Any]:
        """Run one query statement; returns the whole answer (``QueryResponse`` and ``time``)."""
        return self._call("GET", "query", params={"query": sql})

    def query_all(self, entity: str, where: str = "", page_size: int = QUERY_MAX_RESULTS, *,
                  start: int = 1) -> Iterator[dict[str, Any]]:
        """Every ``entity`` matching ``where`` (a condition, no ORDERBY), page by page, one page in memory.

        ``start`` (1-based, in ``Id`` order) resumes a walk after its first ``start - 1`` rows.
        """
        _segment(entity)
        if not 1 <= page_size <= QUERY_MAX_RESULTS:
            raise ValueError(f"page_size must be between 1 and {QUERY_MAX_RESULTS}, got {page_size!r}")
        if start < 1:
            raise ValueError(f"start must be a positive integer, got {start!r}")
        while True:
            rows = self.query_page(entity, where, start, page_size)
            yield from rows
            if len(rows) < page_size:
                return
            start += page_size

    def query_page(self, entity: str, where: str, start: int, page_size: int) -> list[dict[str, Any]]:
        """One page of ``query_all``: the rows from position ``start`` (1-based), ordered by Id."""
        condition = f" WHERE {where}" if where else ""
        # A stable order keeps pages from overlapping or skipping rows while we page.
        sql = f"SELECT * FROM {entity}{condition} ORDERBY Id STARTPOSITION {start} MAXRESULTS {page_size}"
        return _rows(self.query(sql).get("QueryResponse"), entity)

    def read_many(self, entity: str, ids: Iterable[str], *, include_inactive: bool = False,
                  chunk: int = READ_MANY_CHUNK) -> dict[str, dict[str, Any]]:
        """The ``entity`` objects with these ids by id, one ``Id IN (...)`` query per ``chunk``; missing ids absent."""
        _segment(entity)
        wanted = sorted(set(ids))
        extra = " AND Active IN (true, false)" if include_inactive else ""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), chunk):
            quoted = ", ".join(f"'{escape(i)}'" for i in wanted[start:start + chunk])
            answer = self.query(f"SELECT * FROM {entity} WHERE Id IN ({quoted}){extra} MAXRESULTS 1000")
            found.update({str(row["Id"]): row for row in _rows(answer.get("QueryResponse"), entity)})
        return found

    # -- change data capture ---------------------------------------------------------------------------

    def cdc(self, entities: list[str], changed_since: datetime) -> dict[str, Any]:
        """One CDC call: the ``entities`` changed since ``changed_since`` (at most 1,000 objects, 30 days back)."""
        params = {"entities": ",".join(_segment(e) for e in entities), "changedSince": _iso(changed_since)}
        return self._call("GET", "cdc", params=params)

    def cdc_all(self, entities: list[str], since: datetime, until: datetime) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every (entity name, object) changed in [since, until], splitting calls that reach the cap."""
        seen: set[tuple[str, str, str, str]] = set()
        yield from self._cdc_window(list(entities), since, until, seen)

    def _cdc_window(self, entities: list[str], since: datetime, until: datetime,
                    seen: set[tuple[str, str, str, str]]) -> Iterator[tuple[str, dict[str, Any]]]:
        while True:
            groups = cdc_groups(self.cdc(entities, since))
            if sum(len(objects) for objects in groups.values()) < CDC_MAX_OBJECTS:
                yield from _unseen(groups, until, None, seen)
                return
            if len(entities) > 1:
                for entity in entities:  # first split: one entity per call
                    yield from self._cdc_window([entity], since, until, seen)
                return
            boundary = _cdc_boundary(groups, since, entities[0])
            yield from _unseen(groups, until, boundary, seen)
            if boundary > until:
                return
            since = boundary - CDC_OVERLAP  # then split the window in time: resume from the boundary

    # -- batch -----------------------------------------------------------------------------------------

    def batch(self, items: list[dict[str, Any]], *, request_id: str | None = None) -> list[BatchResult]:
        """Run batch items, 30 per request; item faults come back typed in the results, in input order.

        ``request_id`` (kept by the caller across jobs, as for ``create``) is allowed for at most 30 items: one
        request, so repeating it repeats exactly that request.
        """
        prepared = _with_batch_ids(items)
        if request_id is not None and len(prepared) > BATCH_MAX_ITEMS:
            raise ValueError(f"a batch with a caller's request id holds at most {BATCH_MAX_ITEMS} items")
        results: list[BatchResult] = []
        for start in range(0, len(prepared), BATCH_MAX_ITEMS):
            results.extend(self._batch_chunk(prepared[start:start + BATCH_MAX_ITEMS], request_id))
        return results

    def _batch_chunk(self, chunk: list[dict[str, Any]], request_id: str | None = None) -> list[BatchResult]:
        document, tid = self._request("POST", "batch", body={"BatchItemRequest": chunk}, write=True,
                                      cost=len(chunk), batch=True, request_id=request_id)
        answers = {str(item.get("bId")): item for item in document.get("BatchItemResponse") or []}
        missing = ServerError(message="QuickBooks returned no answer for this batch item", intuit_tid=tid,
                              http_status=200)
        return [BatchResult.from_item(answers[item["bId"]], tid) if item["bId"] in answers
                else BatchResult(item["bId"], None, None, missing) for item in chunk]

    # -- transport -------------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
              body: Mapping[str, Any] | None = None, write: bool = False,
              request_id: str | None = None) -> dict[str, Any]:
        return self._request(method, path, params=params, body=body, write=write, request_id=request_id)[0]

    def _request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                 body: Mapping[str, Any] | None = None, write: bool = False,
                 cost: int = 1, batch: bool = False,
                 request_id: str | None = None) -> tuple[dict[str, Any], str | None]:
        """One logical call with its retries (``cost`` budget entries; ``batch``: a batch request, which also
        counts against the batch endpoint's own cap); returns the parsed answer and its intuit_tid."""
        query = {**(params or {}), "minorversion": str(self.minorversion)}
        if write:
            if request_id is not None and not 0 < len(request_id) <= REQUEST_ID_MAX_LENGTH:
                raise ValueError(f"a requestid is 1 to {REQUEST_ID_MAX_LENGTH} characters, got {request_id!r}")
            query["requestid"] = request_id or str(uuid.uuid4())  # one id for every retry of this write
        data = None if body is None else dumps(body).encode("utf-8")
        token = self._tokens()
        refreshed = False
        attempt = 0
        while True:
            try:
                return self._send(method, path, query, data, token, cost, batch)
            except AuthenticationError:
                if refreshed:
                    raise
                refreshed = True
                log.info("QBO 401, refreshing the token once realm=%s", self.realm_id)
                token = self._on_unauthorized(token)
            except TransientError as exc:
                self._throttled(exc)
                attempt += 1
                if attempt > self.max_retries or (isinstance(exc, AnswerTimeoutError) and not self._retry_timeouts):
                    raise
                delay = self._delay(attempt, exc)
                log.warning("QBO %s %s failed (%s), retry %d/%d in %.1f s realm=%s", method, path,
                            type(exc).__name__, attempt, self.max_retries, delay, self.realm_id)
                self._sleep(delay)

    def _send(self, method: str, path: str, query: Mapping[str, str], data: bytes | None, token: str,
              cost: int, batch: bool = False) -> tuple[dict[str, Any], str | None]:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        url = f"{self.api_base}/v3/company/{quote(self.realm_id, safe='')}/{path}"
        with self._slot(cost, batch):
            try:
                with self.answer_times.waiting():
                    response = self._session.request(method, url, params=query, data=data, headers=headers,
                                                     timeout=self.timeout)
            except requests.Timeout as exc:
                raise AnswerTimeoutError(f"QuickBooks did not answer within {self.timeout:g} s: "
                                         f"{type(exc).__name__}") from exc
            except requests.RequestException as exc:
                raise NetworkError(f"QuickBooks unreachable: {type(exc).__name__}") from exc
        tid = header(response.headers, "intuit_tid")
        log.info("QBO %s %s realm=%s status=%s intuit_tid=%s", method, path, self.realm_id,
                 response.status_code, tid)
        fault, document = parse_response(response.status_code, response.headers, response.content)
        if fault is not None:
            log.warning("QBO fault %s code=%s realm=%s intuit_tid=%s", type(fault).__name__, fault.code,
                        self.realm_id, tid)
            raise fault
        if isinstance(document, dict):  # parsed once, by the fault check
            return document, tid
        return _json_object(response.content, tid, response.status_code), tid

    def _throttled(self, exc: TransientError) -> None:
        """Hold the realm off after a throttle; raise RealmThrottledError instead of waiting when deferring."""
        if isinstance(exc, ThrottledError) and self._budget is not None:
            self._budget.hold_off(self.realm_id, exc.retry_after or THROTTLE_WAIT_SECONDS)
        if self._defer_throttling and isinstance(exc, ThrottledError | RateBudgetTimeout):
            wait = min(max(exc.retry_after or THROTTLE_WAIT_SECONDS, 1.0), THROTTLE_WAIT_SECONDS)
            raise RealmThrottledError(f"QuickBooks realm {self.realm_id} is throttled ({type(exc).__name__}); "
                                      f"again in {wait:.0f} s", retry_after=wait) from exc

    def _slot(self, cost: int, batch: bool = False) -> AbstractContextManager[object]:
        if self._budget is None:
            return nullcontext()
        return self._budget.slot(self.realm_id, timeout=self._slot_timeout, cost=cost, batch=batch)

    def _delay(self, attempt: int, exc: TransientError) -> float:
        """Seconds before the next attempt: what the server asked for, else full-jitter backoff."""
        if exc.retry_after is not None:
            return exc.retry_after
        ceiling = min(self._backoff_cap, self._backoff_base * 2 ** (attempt - 1))
        return self._rng.uniform(0, ceiling)


def dumps(body: Any) -> str:
    """JSON text for a request body, writing Decimal amounts as exact JSON numbers (never via float)."""
    marker = f"__decimal_{uuid.uuid4().hex}__"
    text = json.dumps(_mark_decimals(body, marker), ensure_ascii=False)
    return re.sub(f'"{marker}([^"]*)"', r"\1", text)


def _mark_decimals(value: Any, marker: str) -> Any:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot send a non-finite amount to QuickBooks: {value!r}")
        return f"{marker}{value}"
    if isinstance(value, Mapping):
        return {key: _mark_decimals(item, marker) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_mark_decimals(item, marker) for item in value]
    return value


def cdc_groups(document: Mapping[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The objects of a CDC answer by entity name, in answer order."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for cdc_response in document.get("CDCResponse") or []:
        for query_response in cdc_response.get("QueryResponse") or []:
            for key, value in query_response.items():
                if isinstance(value, list):
                    groups.setdefault(key, []).extend(value)
    return groups


def last_updated(obj: Mapping[str, Any]) -> datetime | None:
    """An object's MetaData.LastUpdatedTime as aware UTC, or None."""
    value = (obj.get("MetaData") or {}).get("LastUpdatedTime")
    if not value:
        return None
    return datetime.fromisoformat(value).astimezone(UTC)


def _cdc_boundary(groups: dict[str, list[dict[str, Any]]], since: datetime, entity: str) -> datetime:
    """Where a capped single-entity CDC answer stops being complete.

    Intuit orders objects by last update within a type and puts deleted objects after active ones, so the
    last object of a capped answer marks the point up to which the answer is complete.
    """
    objects = [obj for group in groups.values() for obj in group]
    times = [t for t in (last_updated(obj) for obj in objects) if t is not None]
    boundary = last_updated(objects[-1]) or (max(times) if times else None)
    if boundary is None or boundary - CDC_OVERLAP <= since:
        raise CdcWindowTooDenseError(
            f"more than {CDC_MAX_OBJECTS} {entity} objects changed at {since.isoformat()}; use a query sync")
    if not any(obj.get("status") == "Deleted" for obj in objects):
        log.warning("QBO CDC answer for %s reached the cap without deletions; deletions before %s may be "
                    "missing until the next full reconcile", entity, boundary.isoformat())
    return boundary


def _unseen(groups: dict[str, list[dict[str, Any]]], until: datetime, boundary: datetime | None,
            seen: set[tuple[str, str, str, str]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Objects not yet yielded, changed no later than ``until`` and (if given) before ``boundary``."""
    for entity, objects in groups.items():
        for obj in objects:
            changed = last_updated(obj)
            if changed is not None and (changed > until or (boundary is not None and changed >= boundary)):
                continue
            key = (entity, str(obj.get("Id")), changed.isoformat() if changed else "", str(obj.get("status")))
            if key not in seen:
                seen.add(key)
                yield entity, obj


def _with_batch_ids(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copies of the items, each with a unique bId short enough to go with a requestid."""
    prepared = [{**item, "bId": str(item.get("bId") or f"b{index}")} for index, item in enumerate(items)]
    ids = [item["bId"] for item in prepared]
    if len(set(ids)) != len(ids):
        raise ValueError("batch item bIds must be unique")
    too_long = [bid for bid in ids if len(bid) > BATCH_ID_MAX_LENGTH]
    if too_long:
        raise ValueError(f"batch item bIds must be at most {BATCH_ID_MAX_LENGTH} characters: {too_long[:3]}")
    return prepared


def _segment(entity: str) -> str:
    """The URL segment of an entity name: Customer → customer, SalesReceipt → salesreceipt."""
    if not _ENTITY_NAME.match(entity):
        raise ValueError(f"not a QuickBooks entity name: {entity!r}")
    return entity.lower()


def _entity(document: Mapping[str, Any], entity: str) -> dict[str, Any]:
    """The entity object of a single-entity answer (key matched case-insensitively)."""
    wanted = entity.lower()
    for key, value in document.items():
        if key.lower() == wanted and isinstance(value, dict):
            return value
    raise ServerError(message=f"QuickBooks answer holds no {entity}", http_status=200)


def _rows(query_response: Any, entity: str) -> list[dict[str, Any]]:
    """The rows of a QueryResponse for ``entity`` (absent when nothing matched)."""
    if not isinstance(query_response, Mapping):
        return []
    wanted = entity.lower()
    return next((value for key, value in query_response.items() if key.lower() == wanted), [])


def _json_object(content: bytes, tid: str | None, status: int) -> dict[str, Any]:
    try:
        document = exactjson.loads(content)
    except (ValueError, ArithmeticError):  # ArithmeticError: a number Decimal cannot hold (decimal.InvalidOperation)
        document = None
    if not isinstance(document, dict):
        raise ServerError(message="QuickBooks answered with something other than a JSON object",
                          intuit_tid=tid, http_status=status)
    return document


def _iso(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError(f"changed_since must be timezone-aware, got {when!r}")
    return when.astimezone(UTC).isoformat(timespec="seconds")
