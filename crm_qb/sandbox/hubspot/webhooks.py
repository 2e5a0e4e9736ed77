"""Webhook delivery as HubSpot does it for an app (docs/hubspot/facts.md §8).

Every change in the store becomes zero or more events, one per matching subscription (by default the app is
subscribed to every contact and company event type, every property, and the generic ``object.*`` events of
tasks, calls, meetings and notes). Events are POSTed as a JSON array of at most 100, signed with the app's
client secret (v1 and v3 headers), from one background thread. A delivery that fails (no connection, a
timeout, or a status other than 2xx) is retried with the same events and ``attemptNumber`` increased, at most
10 times spread over 24 hours with exponentially growing, randomised delays (HubSpot's changelog of
2018-12-10); 400, 401, 403, 404 and 405 are not retried; a 429 is retried after its ``Retry-After``. A
``retry_scale`` multiplies every delay so tests can run the whole schedule in seconds. Deliveries are not
ordered: a batch waiting for a retry does not hold back later ones, as HubSpot guarantees no order.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from crm_qb.sandbox.hubspot.schema import OBJECT_TYPES, object_type
from crm_qb.sandbox.hubspot.signatures import webhook_headers

log = logging.getLogger(__name__)

MAX_EVENTS_PER_REQUEST = 100
MAX_RETRIES = 10
RETRY_WINDOW_SECONDS = 24 * 3600.0
NOT_RETRIED = frozenset({400, 401, 403, 404, 405})
TIMEOUT_SECONDS = 5.0
USER_AGENT = "HubSpot Connect 2.0 (http://dev.hubspot.com/) - WebhooksExecutorDaemon"
LEGACY_ACTIONS = ("creation", "deletion", "propertyChange", "merge", "associationChange", "restore")
CHANGE_FLAGS = {"creation": "NEW", "deletion": "DELETED"}

Post = Callable[[str, bytes, Mapping[str, str], float], tuple[int | None, Mapping[str, str]]]


def retry_ceilings(retries: int = MAX_RETRIES, window: float = RETRY_WINDOW_SECONDS) -> list[float]:
    """Return the largest delay before each retry: doubling, and adding up to ``window``."""
    unit = window / (2 ** retries - 1)
    return [unit * 2 ** index for index in range(retries)]


def retry_delay(attempt: int, rng: random.Random, ceilings: list[float]) -> float:
    """Return the delay before retry ``attempt`` (1-based): random between the previous ceiling and this one."""
    low = ceilings[attempt - 2] if attempt >= 2 else 0.0
    return rng.uniform(low, ceilings[attempt - 1])


def default_subscriptions() -> list[dict[str, Any]]:
    """Return the subscriptions the sandbox's app has unless told otherwise: every event it can send."""
    subscriptions: list[dict[str, Any]] = []
    for kind in OBJECT_TYPES:
        if kind.webhook_prefix:
            subscriptions += [{"subscriptionType": f"{kind.webhook_prefix}.{action}"} for action in LEGACY_ACTIONS]
        else:
            subscriptions += [{"subscriptionType": f"object.{action}", "objectTypeId": kind.type_id}
                              for action in ("creation", "deletion", "propertyChange", "associationChange")]
    return subscriptions


def check_subscriptions(given: Any) -> list[dict[str, Any]]:
    """Validate [{subscriptionType, propertyName?, objectTypeId?}]; raise ValueError naming the problem."""
    if not isinstance(given, list):
        raise ValueError("subscriptions must be an array")
    checked = []
    for item in given:
        kind = item.get("subscriptionType") if isinstance(item, dict) else None
        prefix, _, action = str(kind).partition(".")
        known = {t.webhook_prefix for t in OBJECT_TYPES if t.webhook_prefix} | {"object"}
        if prefix not in known or action not in LEGACY_ACTIONS:
            raise ValueError(f"unknown subscriptionType {kind!r}")
        if prefix == "object" and object_type(str(item.get("objectTypeId", ""))) is None:
            raise ValueError("object.* subscriptions need an objectTypeId such as 0-27")
        checked.append({k: item[k] for k in ("subscriptionType", "propertyName", "objectTypeId") if k in item})
    return checked


def events_for(change: dict[str, Any], subscriptions: list[dict[str, Any]], portal_id: int, app_id: int,
               next_event_id: Callable[[], int]) -> list[dict[str, Any]]:
    """Return the events one store change produces for the matching subscriptions (attemptNumber 0)."""
    kind = object_type(change["objectType"])
    assert kind is not None
    action = change["action"]
    found = []
    for index, subscription in enumerate(subscriptions):
        wanted = subscription["subscriptionType"]
        generic = wanted == f"object.{action}" and object_type(str(subscription.get("objectTypeId"))) is kind
        legacy = kind.webhook_prefix is not None and wanted == f"{kind.webhook_prefix}.{action}"
        if not (generic or legacy):
            continue
        if action == "propertyChange" and subscription.get("propertyName") not in (None, "*",
                                                                                 change["propertyName"]):
            continue
        found.append(_event(change, wanted, 1000 + index, portal_id, app_id, next_event_id(),
                            kind.type_id if generic else None))
    return found


def _event(change: dict[str, Any], subscription_type: str, subscription_id: int, portal_id: int, app_id: int,
           event_id: int, type_id: str | None) -> dict[str, Any]:
    """Return one event body in HubSpot's field order."""
    event: dict[str, Any] = {"eventId": event_id, "subscriptionId": subscription_id, "portalId": portal_id,
                             "appId": app_id, "occurredAt": change["occurredAt"],
                             "subscriptionType": subscription_type, "attemptNumber": 0}
    if change["action"] != "associationChange":
        event["objectId"] = int(change["objectId"])
    if type_id:
        event["objectTypeId"] = type_id
    for name in ("propertyName", "propertyValue"):
        if name in change:
            event[name] = change[name]
    event["changeSource"] = change["changeSource"]
    if change.get("sourceId"):
        event["sourceId"] = change["sourceId"]
    if change["action"] in CHANGE_FLAGS:
        event["changeFlag"] = CHANGE_FLAGS[change["action"]]
    for name in ("primaryObjectId", "mergedObjectIds", "newObjectId", "numberOfPropertiesMoved",
                 "associationType", "fromObjectId", "toObjectId", "associationRemoved", "isPrimaryAssociation"):
        if name in change:
            event[name] = change[name]
    return event


def post_with_requests(url: str, body: bytes, headers: Mapping[str, str], timeout: float
                       ) -> tuple[int | None, Mapping[str, str]]:
    """POST a delivery; return (status, response headers), or (None, {}) when unreachable or too slow."""
    try:
        with requests.Session() as session:
            session.trust_env = False  # the receiver is reached directly, never through a proxy
            response = session.post(url, data=body, headers=dict(headers), timeout=timeout, allow_redirects=False)
    except requests.RequestException as exc:
        log.warning("webhook delivery to %s failed: %s", url, type(exc).__name__)
        return None, {}
    response.close()
    return response.status_code, dict(response.headers)


@dataclass(order=True)
class _Retry:
    due: float
    seq: int
    events: list[dict[str, Any]] = field(compare=False)
    attempt: int = field(compare=False)


class WebhookDispatcher:
    """Turns store changes into HubSpot events and delivers them, signed, batched and retried."""

    def __init__(self, client_secret: str, portal_id: int, app_id: int, clock_ms: Callable[[], int], *,
                 post: Post | None = None, retry_scale: float = 1.0, timeout: float = TIMEOUT_SECONDS,
                 seed: int | None = None) -> None:
        self._secret, self._portal_id, self._app_id = client_secret, portal_id, app_id
        self._clock_ms, self._post = clock_ms, post or post_with_requests
        self._retry_scale, self._timeout = retry_scale, timeout
        self._rng = random.Random(seed)
        self._ceilings = retry_ceilings()
        self._cond = threading.Condition()
        self._url: str | None = None
        self._subscriptions = default_subscriptions()
        self._delay = 0.0
        self._waiting: deque[tuple[float, dict[str, Any]]] = deque()
        self._retries: list[_Retry] = []
        self._seq = itertools.count()
        self._event_ids = itertools.count(1)
        self._log: deque[dict[str, Any]] = deque(maxlen=1000)
        self._counts = {"delivered": 0, "dropped": 0, "gave_up": 0, "refused": 0}
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._busy = False

    # -- settings -------------------------------------------------------------------------------------

    def configure(self, url: str | None, subscriptions: list[dict[str, Any]] | None = None,
                  delay_ms: int = 0) -> None:
        """Send events to ``url`` (None: stop sending) for these subscriptions, batched over ``delay_ms``."""
        with self._cond:
            self._url = url
            self._subscriptions = subscriptions if subscriptions is not None else default_subscriptions()
            self._delay = delay_ms / 1000.0
            for retry in self._retries:  # a new target gets waiting retries at once
                retry.due = min(retry.due, time.monotonic())
            heapq.heapify(self._retries)
            self._cond.notify_all()

    def set_retry_scale(self, scale: float) -> None:
        """Multiply every retry delay (and Retry-After) by ``scale`` from now on."""
        if not 0 < scale <= 1:
            raise ValueError(f"retry_scale must be in (0, 1], got {scale!r}")
        with self._cond:
            self._retry_scale = scale

    def settings(self) -> dict[str, Any]:
        """Return the target URL, subscriptions, aggregation delay and retry scale."""
        with self._cond:
            return {"url": self._url, "subscriptions": self._subscriptions, "delay_ms": int(self._delay * 1000),
                    "retry_scale": self._retry_scale, "timeout_seconds": self._timeout,
                    "retry_ceilings_seconds": [round(c, 3) for c in self._ceilings]}

    # -- intake ---------------------------------------------------------------------------------------

    def enqueue(self, change: dict[str, Any]) -> None:
        """Queue the events of one store change (dropped when no target URL is set)."""
        with self._cond:
            events = events_for(change, self._subscriptions, self._portal_id, self._app_id,
                                lambda: next(self._event_ids))
            if self._url is None:
                self._counts["dropped"] += len(events)
                return
            now = time.monotonic()
            self._waiting.extend((now, event) for event in events)
            if events:
                self._cond.notify_all()

    # -- thread ---------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the delivery thread (idempotent)."""
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="hubspot-sandbox-webhooks", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the delivery thread; undelivered events stay queued."""
        with self._cond:
            thread, self._stopping = self._thread, True
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout)
        with self._cond:
            self._thread = None

    def _run(self) -> None:
        while (job := self._next_job()) is not None:
            url, events, attempt = job
            status, headers = self._deliver(url, events, attempt)
            self._settle(events, attempt, status, headers)

    def _next_job(self) -> tuple[str, list[dict[str, Any]], int] | None:
        """Block until a batch is due; return (url, events, attempt) or None when stopping."""
        with self._cond:
            while True:
                self._busy = False
                if self._stopping:
                    return None
                now = time.monotonic()
                wait = 0.5
                if self._url and self._retries:
                    if self._retries[0].due <= now:
                        retry = heapq.heappop(self._retries)
                        self._busy = True
                        return self._url, retry.events, retry.attempt
                    wait = min(wait, self._retries[0].due - now)
                if self._url and self._waiting:
                    ready_at = self._waiting[0][0] + self._delay
                    if ready_at <= now:
                        count = min(MAX_EVENTS_PER_REQUEST, len(self._waiting))
                        events = [self._waiting.popleft()[1] for _ in range(count)]
                        self._busy = True
                        return self._url, events, 0
                    wait = min(wait, ready_at - now)
                self._cond.wait(max(wait, 0.001))

    def _deliver(self, url: str, events: list[dict[str, Any]], attempt: int
                 ) -> tuple[int | None, Mapping[str, str]]:
        """Sign and POST one batch with ``attemptNumber`` set for this attempt."""
        body = json.dumps([{**e, "attemptNumber": attempt} for e in events], separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   **webhook_headers(self._secret, "POST", url, body, self._clock_ms())}
        status, response_headers = self._post(url, body, headers, self._timeout)
        with self._cond:
            self._log.append({"at": datetime.now(UTC).isoformat(), "url": url, "attempt": attempt,
                              "events": len(events), "event_ids": [e["eventId"] for e in events],
                              "types": [e["subscriptionType"] for e in events], "status": status})
        return status, response_headers

    def _settle(self, events: list[dict[str, Any]], attempt: int, status: int | None,
                headers: Mapping[str, str]) -> None:
        """Count a success, drop a refusal, or schedule the batch's next attempt."""
        with self._cond:
            if status is not None and 200 <= status < 300:
                self._counts["delivered"] += len(events)
            elif status in NOT_RETRIED:
                self._counts["refused"] += len(events)
                log.warning("webhook batch refused with %s; HubSpot does not retry it", status)
            elif attempt >= MAX_RETRIES:
                self._counts["gave_up"] += len(events)
                log.warning("webhook batch failed %d times; giving up", attempt + 1)
            else:
                delay = self._next_delay(attempt + 1, status, headers)
                heapq.heappush(self._retries, _Retry(time.monotonic() + delay, next(self._seq), events,
                                                     attempt + 1))
            self._cond.notify_all()

    def _next_delay(self, attempt: int, status: int | None, headers: Mapping[str, str]) -> float:
        retry_after = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        if status == 429 and retry_after and retry_after.strip().isdigit():
            return int(retry_after) * self._retry_scale
        return retry_delay(attempt, self._rng, self._ceilings) * self._retry_scale

    # -- inspection -----------------------------------------------------------------------------------

    def pending(self) -> int:
        """Number of events waiting for a first attempt or a retry."""
        with self._cond:
            return len(self._waiting) + sum(len(r.events) for r in self._retries) + (1 if self._busy else 0)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is waiting or in flight; True when that happened within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._waiting or self._retries or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
            return True

    def snapshot(self) -> dict[str, Any]:
        """Return counters, what is pending and the delivery log (oldest first)."""
        with self._cond:
            return {**self._counts, "url": self._url, "waiting": len(self._waiting),
                    "retrying": sum(len(r.events) for r in self._retries), "deliveries": list(self._log)}

    def clear(self) -> None:
        """Forget waiting events, retries, counters and the log."""
        with self._cond:
            self._waiting.clear()
            self._retries.clear()
            self._log.clear()
            self._counts = dict.fromkeys(self._counts, 0)
            self._cond.notify_all()
