"""The REST connector (CRM kind ``rest``): ``CrmConnector`` over the HTTP contract of docs/architecture.md §5.

Retries happen here, within one call, for failures that are over quickly (5xx, 429, lost connections, timeouts),
with exponential backoff and jitter, honouring Retry-After. A Retry-After longer than ``max_retry_after`` (30 s
unless the caller asks less) is not slept on: the call raises at once so the job can be rescheduled instead of
holding a worker. POST is not idempotent, so it is retried only when the CRM cannot have acted on it (no connection
made, 429, 503). Logs name the method and path, never the query string (it may hold an email) or the token.

A CRM that states its rolling-window limit (``X-RateLimit-Max``, ``-Remaining``, ``-Interval-Milliseconds``, as
the reference CRM and, named ``X-HubSpot-RateLimit-*``, HubSpot do) is paced: when its window is full of this
connector's own requests, the next one waits until the oldest of them leaves the window instead of being refused
and sleeping a whole-second ``Retry-After`` (``_Pacer``).
"""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote

import requests
from urllib3.exceptions import NewConnectionError

from crm_qb.answer_times import AnswerTimes
from crm_qb.crm.batch import one_by_one
from crm_qb.crm.environment import MAX_RETRIES, CrmEnvironment
from crm_qb.crm.errors import (
    ActivityNotFoundError,
    ContactNotFoundError,
    CrmAnswerTimeoutError,
    CrmAuthError,
    CrmError,
    CrmNotFoundError,
    CrmPermanentError,
    CrmProtocolError,
    CrmRateLimitedError,
    CrmTransientError,
    CrmUnavailableError,
    CrmValidationError,
    TaskNotFoundError,
    VersionConflictError,
)
from crm_qb.crm.protocol import Activity, ActivityPage, Contact, ContactPage, CrmUser, NewTask, Task
from crm_qb.models import Connection

log = logging.getLogger(__name__)

T = TypeVar("T")  # the record a batch creates: a Contact or a Task
Item = TypeVar("Item")  # what one batch item is made from: a contact body, a (contact id, task) pair

KIND = "rest"

CONNECT_TIMEOUT, READ_TIMEOUT = 3.05, 15.0  # seconds to make a connection, and to wait for an answer
MAX_RETRY_AFTER = 30.0  # the longest Retry-After slept within a call (a caller may ask less: CrmEnvironment)
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
UNSENT_SAFE_STATUSES = (429, 503)
EMAIL_PAGE_SIZE = 100
BATCH_MAX_ITEMS = 100  # DESIGN.md section 6: POST /contacts/batch (and our POST /tasks/batch) take at most 100 items
ABSENT_STATUSES = (404, 405)  # a CRM without an optional call (a batch, the task read) answers one of these
ABSENT = object()  # what ``_optional_call`` answers for a call the CRM does not have (None is a 204's body)
TASK_READ = "/tasks/batch/read"  # our extension (the reference CRM's API.md): tasks by id, whatever their contacts


def connector_for(connection: Connection, environment: CrmEnvironment) -> RestConnector:
    """The REST connector of a connection of kind ``rest``: its CRM URL and its decrypted token."""
    return RestConnector(connection.crm_base_url, environment.secrets.decrypt(connection.crm_token_encrypted),
                         timeout=(CONNECT_TIMEOUT, environment.within(READ_TIMEOUT)),
                         max_retries=environment.max_retries, retry_timeouts=environment.retry_timeouts,
                         max_retry_after=environment.within(MAX_RETRY_AFTER))


class RestConnector:
    """Talks to one CRM account at ``base_url`` with its bearer ``token``."""

    def __init__(self, base_url: str, token: str, session: requests.Session | None = None,
                 timeout: float | tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
                 max_retries: int = MAX_RETRIES,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 retry_timeouts: bool = True, max_retry_after: float = MAX_RETRY_AFTER) -> None:
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be a non-negative integer, got {max_retries!r}")
        self._base = base_url.rstrip("/")
        self._token = token
        self._session = session if session is not None else requests.Session()
        self._timeout, self._max_retries, self._sleep = timeout, max_retries, sleep
        self._retry_timeouts = retry_timeouts  # False: a call that got no answer in time is not sent again
        self._max_retry_after = max_retry_after  # a longer Retry-After is raised, not slept
        self.answer_times = AnswerTimes()  # read by the drains to tell a CRM that answers slowly
        self._absent: set[str] = set()  # the optional calls this CRM answered 404 or 405 to (``_optional_call``)
        self._pacer = _Pacer(sleep, clock)

    def __repr__(self) -> str:
        return f"RestConnector({self._base!r})"

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    # -- contacts -------------------------------------------------------------------------------------

    def get_contact(self, contact_id: str) -> Contact:
        """Return the contact, or raise ContactNotFoundError."""
        return Contact.from_json(self._call("GET", f"/contacts/{_q(contact_id)}", not_found=ContactNotFoundError))

    def list_contacts_updated_since(self, since: datetime | None, *, cursor: str | None = None,
                                    page_size: int = 100) -> Iterator[ContactPage]:
        """Yield pages of contacts changed at or after ``since``, fetching each page only when asked for."""
        params: dict[str, Any] = {"limit": page_size}
        if since is not None:
            params["updated_since"] = _iso(since)
        return self._pages(params, cursor)

    def find_contacts_by_email(self, email: str) -> list[Contact]:
        """Return every contact whose email equals ``email`` ignoring case."""
        pages = self._pages({"email": email, "limit": EMAIL_PAGE_SIZE}, None)
        return [contact for page in pages for contact in page.contacts]

    def create_contact(self, fields: Mapping[str, Any]) -> Contact:
        """Create a contact and return it."""
        return Contact.from_json(self._call("POST", "/contacts", json=dict(fields)))

    def create_contacts(self, bodies: Sequence[Mapping[str, Any]]) -> list[Contact | CrmPermanentError]:
        """Create contacts, at most 100 per ``POST /contacts/batch``; one result per body, in order.

        An item the CRM refused is its CrmPermanentError (the others are kept); a CRM without the batch endpoint
        (404 or 405, remembered for this connector) gets one ``POST /contacts`` per body instead. Transient
        failures of the whole request raise, as single calls do.
        """
        return self._create_batched("/contacts/batch", "contact", bodies, dict, self.create_contact,
                                    Contact.from_json)

    def update_contact(self, contact_id: str, version: int, changes: Mapping[str, Any]) -> Contact:
        """Apply ``changes`` at ``version``; VersionConflictError when the contact changed meanwhile."""
        data = self._call("PATCH", f"/contacts/{_q(contact_id)}", json=dict(changes),
                          headers={"If-Match": str(version)}, not_found=ContactNotFoundError)
        return Contact.from_json(data)

    def merge_contacts(self, contact_id: str, into: str) -> Contact:
        """Merge ``contact_id`` into ``into`` (optional ``POST /contacts/{id}/merge``); the survivor.

        Not part of the required contract: a CRM without it answers 404, raised as CrmNotFoundError.
        """
        return Contact.from_json(self._call("POST", f"/contacts/{_q(contact_id)}/merge", json={"into": into}))

    def put_quickbooks_summary(self, contact_id: str, summary: Mapping[str, Any]) -> None:
        """Store the billing summary on the contact."""
        self._call("PUT", f"/contacts/{_q(contact_id)}/quickbooks", json=dict(summary),
                   not_found=ContactNotFoundError)

    # -- tasks ----------------------------------------------------------------------------------------

    def list_tasks(self, contact_id: str) -> list[Task]:
        """Return the contact's tasks."""
        data = self._call("GET", f"/contacts/{_q(contact_id)}/tasks", not_found=ContactNotFoundError)
        return [Task.from_json(item) for item in _field(data, "tasks", list)]

    def create_task(self, contact_id: str, task: NewTask) -> Task:
        """Create a task on the contact and return it."""
        data = self._call("POST", f"/contacts/{_q(contact_id)}/tasks", json=task.to_json(),
                          not_found=ContactNotFoundError)
        return Task.from_json(data)

    def create_tasks(self, tasks: Sequence[tuple[str, NewTask]]) -> list[Task | CrmPermanentError]:
        """Create ``(contact id, task)`` pairs, at most 100 per ``POST /tasks/batch``; one result per pair, in order.

        The batch is our extension of section 6 (the reference CRM's API.md), so a CRM without it (404 or 405,
        remembered for this connector) gets one ``POST /contacts/{id}/tasks`` per task instead. An item the CRM
        refused is its CrmPermanentError (ContactNotFoundError for a contact that is gone); transient failures of
        the whole request raise, as single calls do.
        """
        return self._create_batched("/tasks/batch", "task", tasks, _task_item, self._create_pair, Task.from_json,
                                    ContactNotFoundError)

    def read_tasks(self, task_ids: Sequence[str]) -> list[Task] | None:
        """The tasks of ``task_ids`` that exist, 100 per ``POST /tasks/batch/read`` (our extension, API.md): a task
        left out was deleted. None when the CRM has no such call (404 or 405, remembered): read each contact's."""
        found: list[Task] = []
        for start in range(0, len(task_ids), BATCH_MAX_ITEMS):
            data = self._optional_call(TASK_READ, {"ids": list(task_ids[start:start + BATCH_MAX_ITEMS])})
            if data is ABSENT:
                return None
            found += [Task.from_json(item) for item in _field(data, "tasks", list)]
        return found

    def _create_pair(self, pair: tuple[str, NewTask]) -> Task:
        """``create_task`` of one ``(contact id, task)`` pair, for ``one_by_one``."""
        return self.create_task(*pair)

    def _create_batched(self, path: str, key: str, items: Sequence[Item], wire: Callable[[Item], Any],
                        single: Callable[[Item], T], parse: Callable[[Any], T],
                        not_found: type[CrmPermanentError] = CrmPermanentError) -> list[T | CrmPermanentError]:
        """Create ``items`` 100 per ``POST path`` (``{"create": [wire(item)]}``, results under ``key``), or each by
        ``single`` once the CRM has answered 404 or 405 to that path (``_optional_call``)."""
        results: list[T | CrmPermanentError] = []
        for start in range(0, len(items), BATCH_MAX_ITEMS):
            chunk = items[start:start + BATCH_MAX_ITEMS]
            data = self._optional_call(path, {"create": [wire(item) for item in chunk]})
            results += one_by_one(single, chunk) if data is ABSENT else _batch_results(data, len(chunk), key, parse,
                                                                                        not_found)
        return results

    def _optional_call(self, path: str, body: Any) -> Any:
        """The answer to ``POST path``, an optional call (a batch); ``ABSENT``, remembered for this connector, once
        the CRM has answered 404 or 405 to it. Any other refusal is the CRM's answer and raises."""
        if path in self._absent:
            return ABSENT
        try:
            return self._call("POST", path, json=body)
        except CrmPermanentError as exc:
            if exc.status not in ABSENT_STATUSES:
                raise
            log.info("CRM %s has no POST %s (%s): doing without it", self._base, path, exc.status)
            self._absent.add(path)
            return ABSENT

    def update_task(self, task_id: str, changes: Mapping[str, Any]) -> Task:
        """Apply ``changes`` to a task and return it; TaskNotFoundError when it was deleted."""
        body = {key: value.isoformat() if hasattr(value, "isoformat") else value for key, value in changes.items()}
        return Task.from_json(self._call("PATCH", f"/tasks/{_q(task_id)}", json=body, not_found=TaskNotFoundError))

    # -- users and activities (DESIGN §6, optional: a CRM without them answers 404) -----------------------

    def list_users(self) -> list[CrmUser]:
        """Every CRM user (``GET /users``)."""
        return [CrmUser.from_json(item) for item in _field(self._call("GET", "/users"), "users", list)]

    def get_activity(self, activity_id: str) -> Activity:
        """The activity (``GET /activities/{id}``); ActivityNotFoundError when it was deleted."""
        return Activity.from_json(self._call("GET", f"/activities/{_q(activity_id)}",
                                             not_found=ActivityNotFoundError))

    def list_activities(self, *, since: datetime | None = None, contact_id: str | None = None,
                        cursor: str | None = None, page_size: int = 100) -> Iterator[ActivityPage]:
        """Yield pages of ``GET /activities`` changed at or after ``since``, optionally of one contact."""
        params: dict[str, Any] = {"limit": page_size}
        if since is not None:
            params["updated_since"] = _iso(since)
        if contact_id is not None:
            params["contact_id"] = contact_id
        return self._activity_pages(params, cursor)

    def _activity_pages(self, params: dict[str, Any], cursor: str | None) -> Iterator[ActivityPage]:
        """Follow ``next_cursor`` over ``/activities`` until the CRM says there is no next page."""
        for items, next_cursor in self._cursor_walk("/activities", "activities", params, cursor):
            yield ActivityPage(tuple(Activity.from_json(item) for item in items), next_cursor)

    # -- HTTP -----------------------------------------------------------------------------------------

    def _pages(self, params: dict[str, Any], cursor: str | None) -> Iterator[ContactPage]:
        """Follow ``next_cursor`` over ``/contacts`` from ``cursor`` until the CRM says there is no next page."""
        for items, next_cursor in self._cursor_walk("/contacts", "contacts", params, cursor):
            yield ContactPage(tuple(Contact.from_json(item) for item in items), next_cursor)

    def _cursor_walk(self, path: str, key: str, params: dict[str, Any],
                     cursor: str | None) -> Iterator[tuple[list[Any], str | None]]:
        """The raw pages of a cursor-paged list (section 6): each page's ``key`` items and its ``next_cursor``."""
        while True:
            data = self._call("GET", path, params={**params, **({"cursor": cursor} if cursor else {})})
            items = _field(data, key, list)
            next_cursor = _field(data, "next_cursor", (str, type(None)))
            yield items, next_cursor
            if next_cursor is None:
                return
            if next_cursor == cursor:
                raise CrmProtocolError("the CRM returned the same next_cursor twice; paging would never end")
            cursor = next_cursor

    def _call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
              headers: Mapping[str, str] | None = None,
              not_found: type[CrmNotFoundError] = CrmNotFoundError) -> Any:
        """Send one request, retrying what is safe to retry; return the JSON body (None for 204)."""
        for attempt in range(self._max_retries + 1):
            outcome = self._attempt(method, path, params, json, headers, not_found)
            if not isinstance(outcome, CallFailure):
                return outcome
            delay = next_wait(outcome, attempt, self._max_retry_after, self.answer_times)
            if attempt == self._max_retries or delay is None:
                raise outcome.error
            log.warning("CRM %s %s failed (%s, status %s); retry %d of %d in %.2fs", method, path,
                        type(outcome.error).__name__, outcome.error.status, attempt + 1, self._max_retries, delay)
            self._sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _attempt(self, method: str, path: str, params: Mapping[str, Any] | None, json: Any,
                 headers: Mapping[str, str] | None, not_found: type[CrmNotFoundError]) -> Any:
        """Make one attempt; return the JSON body, or a CallFailure saying whether a retry is safe."""
        all_headers = {"Authorization": f"Bearer {self._token}", "Accept": "application/json", **(headers or {})}
        self._pacer.wait()
        try:
            with self.answer_times.waiting():
                response = self._session.request(method, self._base + path, params=params, json=json,
                                                 headers=all_headers, timeout=self._timeout)
        except requests.RequestException as exc:
            return _transport_failure(exc, method, path, self._base, self._retry_timeouts)
        self._pacer.observe(response)
        if response.ok:
            return _json_body(response, method, path)
        error = error_for(response, method, path, not_found)
        retryable = isinstance(error, CrmTransientError) and not isinstance(error, VersionConflictError) and (
            method != "POST" or response.status_code in UNSENT_SAFE_STATUSES)
        return CallFailure(error, retryable)


def _task_item(pair: tuple[str, NewTask]) -> dict[str, Any]:
    """One ``POST /tasks/batch`` item: the task's body with the contact it is for."""
    contact_id, task = pair
    return {"contact_id": contact_id, **task.to_json()}


def _batch_results(data: Any, expected: int, key: str, parse: Callable[[Any], T],
                   not_found: type[CrmPermanentError] = CrmPermanentError) -> list[T | CrmPermanentError]:
    """The per-item results of a batch answer, in request order (each record under ``key``, read by ``parse``; an
    item's 404 answered as ``not_found``); CrmProtocolError when the answer is malformed."""
    items = _field(data, "results", list)
    if len(items) != expected or any(not isinstance(item, dict) for item in items):
        raise CrmProtocolError(f"the CRM's batch answer has {len(items)} results for {expected} items")
    ordered = sorted(items, key=lambda item: item.get("index", -1))
    if [item.get("index") for item in ordered] != list(range(expected)):
        raise CrmProtocolError("the CRM's batch answer does not index every item once")
    return [_batch_item(item, key, parse, not_found) for item in ordered]


def _batch_item(item: dict[str, Any], key: str, parse: Callable[[Any], T],
                not_found: type[CrmPermanentError]) -> T | CrmPermanentError:
    """One batch result: its record (2xx), else the permanent error the CRM gave for that item."""
    status = item.get("status")
    if isinstance(status, int) and 200 <= status < 300:
        return parse(item.get(key))
    raw = item.get("error")
    error: dict[str, Any] = raw if isinstance(raw, dict) else {}
    code = str(error["code"]) if error.get("code") else None
    text = f"CRM batch item {item.get('index')} answered {status}" + (f" {code}" if code else "")
    text += f": {error.get('message') or 'no error details'}"
    if status in (400, 422):
        field = error.get("field")
        return CrmValidationError(text, status=status, code=code, field=field if isinstance(field, str) else None)
    if status == 404:
        return not_found(text, status=status, code=code)
    return CrmPermanentError(text, status=status if isinstance(status, int) else None, code=code)


_LIMIT_HEADERS = (("X-RateLimit-Max", "X-RateLimit-Remaining", "X-RateLimit-Interval-Milliseconds"),
                  ("X-HubSpot-RateLimit-Max", "X-HubSpot-RateLimit-Remaining",
                   "X-HubSpot-RateLimit-Interval-Milliseconds"))
PACE_MARGIN = 0.02  # seconds past the estimated moment a window has room again


class _Pacer:
    """Waits before a request that a CRM's stated rolling window would refuse, when that is knowable.

    The CRM counts the requests it accepted in the last ``window`` seconds (a 429 is not counted). After each
    answer this keeps the moment it arrived (later than the CRM counted it, so never early) for the last ``limit``
    accepted ones. When an answer says nothing remains and all ``limit`` requests in the window were this
    connector's, the next request waits until the oldest of them leaves it. Requests of other clients of the same
    token make the estimate unknowable: then nothing waits here and a 429's ``Retry-After`` decides, as before.
    """

    def __init__(self, sleep: Callable[[float], None], clock: Callable[[], float] = time.monotonic) -> None:
        self._sleep, self._clock = sleep, clock
        self._answers: deque[float] = deque()
        self._limit: int | None = None
        self._window = 0.0
        self._full = False

    def wait(self) -> None:
        """Sleep until the window has room for one more request, when it is known to be full."""
        if not self._full or self._limit is None or len(self._answers) < self._limit:
            return
        delay = self._answers[-self._limit] + self._window + PACE_MARGIN - self._clock()
        if delay > 0:
            self._sleep(min(delay, self._window))

    def observe(self, response: requests.Response) -> None:
        """Note an answer: its limit headers and, unless it was refused (429), that it was counted."""
        stated = _stated_limit(response.headers)
        if stated is None:
            self._limit, self._full = None, False
            self._answers.clear()
            return
        if response.status_code == 429:
            return
        limit, remaining, window = stated
        now = self._clock()
        self._limit, self._window, self._full = limit, window, remaining <= 0
        self._answers.append(now)
        while len(self._answers) > limit or (self._answers and self._answers[0] <= now - window):
            self._answers.popleft()


def _stated_limit(headers: Mapping[str, str]) -> tuple[int, int, float] | None:
    """(limit, remaining, window seconds) from an answer's rate-limit headers; None without (valid) ones."""
    for names in _LIMIT_HEADERS:
        values = [headers.get(name) for name in names]
        if all(value is not None and value.strip().isdigit() for value in values):
            limit, remaining, millis = (int(str(value)) for value in values)
            if limit > 0 and millis > 0:
                return limit, remaining, millis / 1000
    return None


@dataclass(frozen=True)
class CallFailure:
    """A failed attempt and whether repeating it is safe."""

    error: CrmError
    retryable: bool

    @property
    def asked_wait(self) -> float | None:
        """The wait the CRM asked for (Retry-After), if any."""
        return self.error.retry_after if isinstance(self.error, CrmTransientError) else None


def retry_delay(failure: CallFailure, attempt: int, max_retry_after: float = MAX_RETRY_AFTER) -> float | None:
    """Seconds to wait before retrying, or None to give up now (not retryable, or a Retry-After longer than
    ``max_retry_after``)."""
    if not failure.retryable:
        return None
    hint = failure.asked_wait
    if hint is not None:
        return hint if hint <= max_retry_after else None
    return backoff_delay(attempt)


def next_wait(failure: CallFailure, attempt: int, max_retry_after: float, times: AnswerTimes) -> float | None:
    """``retry_delay``, after counting a wait the CRM asked for as a wait for its answer (pipeline/slowlane.py)."""
    if failure.asked_wait is not None:
        times.asked_to_wait(failure.asked_wait)
    return retry_delay(failure, attempt, max_retry_after)


def backoff_delay(attempt: int) -> float:
    """Exponential backoff (0.5 s doubling, capped at 8 s) with jitter over the upper half, so clients spread."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** attempt)
    return ceiling * (0.5 + random.random() / 2)


def _transport_failure(exc: requests.RequestException, method: str, path: str, base: str,
                       retry_timeouts: bool = True) -> CallFailure:
    """Classify a failure to get any answer: network trouble is transient, a malformed URL is not; a timeout is
    not retried when the caller said so (``retry_timeouts``)."""
    if not isinstance(exc, requests.ConnectionError | requests.Timeout):
        error: CrmError = CrmPermanentError(f"CRM {method} {path}: cannot send to {base!r}: {type(exc).__name__}")
        retryable = False
    else:
        error = unanswered_error(exc)(f"CRM {method} {path}: {type(exc).__name__} reaching {base}")
        # A POST that may have reached the CRM must not be repeated: it could create a duplicate.
        retryable = (method != "POST" or _never_sent(exc)) and (
            retry_timeouts or not isinstance(exc, requests.Timeout))
    error.__cause__ = exc
    return CallFailure(error, retryable)


def unanswered_error(exc: requests.RequestException) -> type[CrmUnavailableError]:
    """The error for a call that got no answer: a read timeout was sent and may have been applied (the CRM is slow,
    or down: the caller's bound decides, ``sync.pipeline.failures``); anything else never reached an answer."""
    return CrmAnswerTimeoutError if isinstance(exc, requests.ReadTimeout) else CrmUnavailableError


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request provably never reached the server (no connection could be made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    # requests wraps "connection refused" as MaxRetryError(reason=NewConnectionError).
    wrapped = exc.args[0] if exc.args else None
    return isinstance(wrapped, NewConnectionError) or isinstance(getattr(wrapped, "reason", None),
                                                                 NewConnectionError)


def error_for(response: requests.Response, method: str, path: str,
              not_found: type[CrmNotFoundError] = CrmNotFoundError) -> CrmError:
    """Turn a non-2xx response into the typed error, carrying the CRM's error code and message."""
    status = response.status_code
    code, message, field = crm_error(response)
    text = f"CRM {method} {path} answered {status}" + (f" {code}" if code else "") + f": {message}"
    if status in (401, 403):
        return CrmAuthError(f"{text} (the CRM refused the connection's API token; check or replace it)",
                            status=status, code=code)
    if status == 404:
        return not_found(text, status=status, code=code)
    if status == 412:
        return VersionConflictError(text, status=status, code=code)
    if status in (400, 422):
        return CrmValidationError(text, status=status, code=code, field=field)
    retry_after = parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC))
    if status == 429:
        return CrmRateLimitedError(text, status=status, code=code, retry_after=retry_after)
    if status >= 500:
        return CrmUnavailableError(text, status=status, code=code, retry_after=retry_after)
    return CrmPermanentError(text, status=status, code=code)


def crm_error(response: requests.Response) -> tuple[str | None, str, str | None]:
    """Return (code, message, field) from a ``{"error": {...}}`` body, falling back to the HTTP reason."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if not isinstance(error, dict):
        return None, response.reason or "no error details", None
    field = error.get("field")
    return (str(error["code"]) if error.get("code") else None, str(error.get("message") or response.reason),
            field if isinstance(field, str) else None)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Parse Retry-After (seconds or an HTTP date) into seconds from ``now``; None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, (moment - now).total_seconds())


def _json_body(response: requests.Response, method: str, path: str) -> Any:
    """Return the parsed JSON body (None when empty), else raise CrmProtocolError."""
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise CrmProtocolError(f"CRM {method} {path} answered {response.status_code} without JSON",
                               status=response.status_code) from None


def _field(data: Any, name: str, kind: type | tuple[type, ...]) -> Any:
    """Return ``data[name]`` when data is an object and the value has the expected type."""
    if not isinstance(data, dict) or not isinstance(data.get(name), kind):
        raise CrmProtocolError(f"the CRM's answer lacks {name!r} of the expected type")
    return data.get(name)


def _q(object_id: str) -> str:
    """Quote an id for use as one path segment."""
    return quote(object_id, safe="")


def _iso(moment: datetime) -> str:
    """Format an aware time as ISO 8601 UTC; naive times are refused."""
    if moment.tzinfo is None:
        raise ValueError(f"since must be timezone-aware, got {moment!r}")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
