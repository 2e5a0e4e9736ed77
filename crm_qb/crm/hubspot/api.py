"""HTTP to HubSpot's API: bearer tokens, the shared rate limits, retries, and HubSpot's error shapes.

Every call takes a slot from the portal's limiter first (``limits``), so crm-qb stays under HubSpot's limits
instead of learning them from 429s. What HubSpot refuses is turned into the typed errors of ``crm_qb.crm.errors``,
with HubSpot's ``category`` as the code and its ``correlationId`` kept and logged (docs/hubspot/facts.md §10).
Retries follow the REST connector's rules: 5xx, 429, 477 and lost connections are retried with backoff within the
call when that is safe (a POST that creates only when HubSpot cannot have acted on it; searches and batch reads are
reads), and a wait longer than MAX_RETRY_AFTER (or what the caller asks) is handed to the job instead of slept. A
429 without Retry-After (HubSpot's API usually sends none) waits the policy's window. A 401 for an OAuth token is
refreshed once and repeated (HubSpot says a 401 alone is no proof of expiry, so the source refreshes only if the
token is still the one that failed).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import requests
from urllib3.exceptions import NewConnectionError

from crm_qb.answer_times import AnswerTimes
from crm_qb.crm.environment import MAX_RETRIES
from crm_qb.crm.errors import (
    CrmAuthError,
    CrmDuplicateError,
    CrmError,
    CrmNotFoundError,
    CrmPermanentError,
    CrmProtocolError,
    CrmRateLimitedError,
    CrmTransientError,
    CrmUnavailableError,
    CrmValidationError,
)
from crm_qb.crm.hubspot.limits import WAIT_SECONDS, HubSpotLimiter
from crm_qb.crm.rest import MAX_RETRY_AFTER, CallFailure, next_wait, parse_retry_after, unanswered_error

log = logging.getLogger(__name__)

UNSENT_SAFE_STATUSES = (429, 503)
POLICY_WAITS = {"TEN_SECONDLY_ROLLING": 10.0, "SECONDLY": 1.0}
EXISTING_ID = "Existing ID:"
CONNECT_TIMEOUT, READ_TIMEOUT = 3.05, 20.0  # seconds to make a connection, and to wait for an answer


class TokenSource(Protocol):
    """Where the bearer token comes from: a private-app token, or an OAuth grant that is refreshed."""

    def token(self) -> str:
        """A token to call HubSpot with now."""
        ...

    def after_unauthorized(self, used: str) -> str | None:
        """A new token after ``used`` was refused with 401, or None when there is nothing to refresh."""
        ...


@dataclass(frozen=True)
class StaticToken:
    """A private-app token: it never expires, so a 401 is final."""

    value: str

    def token(self) -> str:
        """The token."""
        return self.value

    def after_unauthorized(self, used: str) -> str | None:
        """Nothing to refresh."""
        return None


class HubSpotApi:
    """Calls one HubSpot portal's API at ``base_url``."""

    def __init__(self, base_url: str, tokens: TokenSource, limiter: HubSpotLimiter | None = None, *,
                 session: requests.Session | None = None,
                 timeout: float | tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
                 max_retries: int = MAX_RETRIES, sleep: Callable[[float], None] = time.sleep,
                 retry_timeouts: bool = True, max_retry_after: float = MAX_RETRY_AFTER,
                 slot_wait: float = WAIT_SECONDS) -> None:
        if not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be a non-negative integer, got {max_retries!r}")
        self.base = base_url.rstrip("/")
        self._tokens, self._limiter = tokens, limiter
        self._session = session if session is not None else requests.Session()
        self._timeout, self._max_retries, self._sleep = timeout, max_retries, sleep
        self._retry_timeouts = retry_timeouts  # False: a call that got no answer in time is not sent again
        self._max_retry_after = max_retry_after  # a longer Retry-After is raised, not slept
        self._slot_wait = slot_wait  # the longest wait for a slot of the portal's limits
        self.answer_times = AnswerTimes()  # read by the drains to tell a portal that answers slowly

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    def call(self, method: str, path: str, *, params: Mapping[str, Any] | None = None, json: Any = None,
             not_found: type[CrmNotFoundError] = CrmNotFoundError, read: bool = False,
             search: bool = False) -> Any:
        """Send one request (``read``: a POST that changes nothing); return the JSON body (None for 204)."""
        safe = method != "POST" or read or search
        for attempt in range(self._max_retries + 1):
            outcome = self._attempt(method, path, params, json, not_found, safe, search)
            if not isinstance(outcome, CallFailure):
                return outcome
            delay = next_wait(outcome, attempt, self._max_retry_after, self.answer_times)
            if attempt == self._max_retries or delay is None:
                raise outcome.error
            log.warning("HubSpot %s %s failed (%s, status %s, correlationId %s); retry %d of %d in %.2fs",
                        method, path, type(outcome.error).__name__, outcome.error.status,
                        outcome.error.correlation_id, attempt + 1, self._max_retries, delay)
            self._sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _attempt(self, method: str, path: str, params: Mapping[str, Any] | None, json: Any,
                 not_found: type[CrmNotFoundError], safe: bool, search: bool) -> Any:
        token = self._tokens.token()
        response = self._send(method, path, params, json, token, search)
        if isinstance(response, CallFailure):
            return response
        if response.status_code == 401:
            fresh = self._tokens.after_unauthorized(token)
            if fresh is not None:
                response = self._send(method, path, params, json, fresh, search)
                if isinstance(response, CallFailure):
                    return response
        if response.ok:
            return _json_body(response, method, path)
        error = error_for(response, method, path, not_found)
        retryable = isinstance(error, CrmTransientError) and (safe or response.status_code in UNSENT_SAFE_STATUSES)
        return CallFailure(error, retryable)

    def _send(self, method: str, path: str, params: Mapping[str, Any] | None, json: Any, token: str,
              search: bool) -> requests.Response | CallFailure:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        pace = (self._limiter.slot(search=search, timeout=self._slot_wait) if self._limiter is not None
                else nullcontext())
        try:
            with pace, self.answer_times.waiting():  # the wait for a slot is ours, not HubSpot's: not timed
                return self._session.request(method, self.base + path, params=params, json=json, headers=headers,
                                             timeout=self._timeout)
        except CrmRateLimitedError as exc:  # our own pacing gave up waiting: HubSpot was not asked
            return CallFailure(exc, exc.retry_after is not None)
        except requests.RequestException as exc:
            return _transport_failure(exc, method, path, self.base, method != "POST", self._retry_timeouts)


def _transport_failure(exc: requests.RequestException, method: str, path: str, base: str,
                       safe: bool, retry_timeouts: bool = True) -> CallFailure:
    if not isinstance(exc, requests.ConnectionError | requests.Timeout):
        error: CrmError = CrmPermanentError(f"HubSpot {method} {path}: cannot send to {base!r}: "
                                            f"{type(exc).__name__}")
        return CallFailure(error, False)
    error = unanswered_error(exc)(f"HubSpot {method} {path}: {type(exc).__name__} reaching {base}")
    error.__cause__ = exc
    wrapped = exc.args[0] if exc.args else None
    never_sent = isinstance(exc, requests.ConnectTimeout) or isinstance(wrapped, NewConnectionError) or isinstance(
        getattr(wrapped, "reason", None), NewConnectionError)
    return CallFailure(error, (safe or never_sent) and (retry_timeouts or not isinstance(exc, requests.Timeout)))


@dataclass(frozen=True)
class HubSpotErrorBody:
    """The fields of HubSpot's error JSON crm-qb uses (every one optional, docs/hubspot/facts.md §10)."""

    message: str
    category: str | None
    correlation_id: str | None
    policy: str | None
    field: str | None


def parse_error(response: requests.Response) -> HubSpotErrorBody:
    """HubSpot's error body, or the HTTP reason when the body is not HubSpot's JSON."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return HubSpotErrorBody(response.reason or "no error details", None, None, None, None)
    category = body.get("category") or body.get("errorType") or (
        body.get("status") if body.get("status") not in (None, "error") else None)
    return HubSpotErrorBody(str(body.get("message") or response.reason or "no error details"),
                            str(category) if category else None, _text(body.get("correlationId")),
                            _text(body.get("policyName")), _first_property(body))


def error_for(response: requests.Response, method: str, path: str,
              not_found: type[CrmNotFoundError] = CrmNotFoundError) -> CrmError:
    """Turn a HubSpot error answer into the typed error, with its category, message and correlationId."""
    status, body = response.status_code, parse_error(response)
    text = (f"HubSpot {method} {path} answered {status}" + (f" {body.category}" if body.category else "")
            + f": {body.message}" + (f" (correlationId {body.correlation_id})" if body.correlation_id else ""))
    common: dict[str, Any] = {"status": status, "code": body.category, "correlation_id": body.correlation_id}
    if status >= 500 or status in (429, 477):
        log.warning("HubSpot %s %s answered %s %s correlationId=%s", method, path, status, body.category,
                    body.correlation_id)
    if status in (401, 403):
        return CrmAuthError(f"{text} (HubSpot refused the connection's token or it lacks a scope)", **common)
    if status == 404:
        return not_found(text, **common)
    if status == 409:
        return CrmDuplicateError(text, existing_id=existing_id(body.message), **common)
    if status in (400, 422):
        return CrmValidationError(text, field=body.field, **common)
    retry_after = parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC))
    if status == 429:
        return CrmRateLimitedError(text, retry_after=retry_after if retry_after is not None else _policy_wait(
            body.policy, response), **common)
    if status >= 500 or status == 477:  # 477: "Migration in Progress", with Retry-After
        return CrmUnavailableError(text, retry_after=retry_after, **common)
    return CrmPermanentError(text, **common)


def _policy_wait(policy: str | None, response: requests.Response) -> float | None:
    """How long a 429 without Retry-After should wait: the burst window, a second, or until tomorrow (DAILY)."""
    if policy == "DAILY":
        now = datetime.now(UTC)
        return 86400.0 - (now.hour * 3600 + now.minute * 60 + now.second)
    interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", "")
    if interval.isdigit():
        return int(interval) / 1000
    return POLICY_WAITS.get(policy or "", 10.0)


def existing_id(message: str) -> str | None:
    """The id in HubSpot's "Contact already exists. Existing ID: 123" (docs/hubspot/facts.md §3.5)."""
    _, found, rest = message.partition(EXISTING_ID)
    digits = rest.strip().split(" ")[0].strip(".") if found else ""
    return digits if digits.isdigit() else None


def _first_property(body: Mapping[str, Any]) -> str | None:
    errors = body.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        context = errors[0].get("context")
        names = context.get("propertyName") if isinstance(context, dict) else None
        if isinstance(names, list) and names:
            return str(names[0])
    return None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _json_body(response: requests.Response, method: str, path: str) -> Any:
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise CrmProtocolError(f"HubSpot {method} {path} answered {response.status_code} without JSON",
                               status=response.status_code) from None
