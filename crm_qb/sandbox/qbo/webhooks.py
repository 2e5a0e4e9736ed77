"""The sandbox's webhook emitter, delivering change events the way Intuit's system does (FACTS.md section 8).

Events are queued per realm by ``emit`` and sent by one background thread: the events of a realm are
batched over the subscription's aggregation delay, each delivery carries one realm in order (legacy
``eventNotifications`` or a CloudEvents array), is signed with ``intuit-signature``, and a delivery that is
not answered with HTTP 200 is retried on a backoff schedule while the realm's later events wait behind it
("You may not receive subsequent events ... until you correctly acknowledge the first event").
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType

import requests

from crm_qb.signatures import sign_qbo

logger = logging.getLogger(__name__)

FORMATS = ("legacy", "cloudevents")
OPERATIONS = ("Create", "Update", "Delete", "Merge", "Void", "Emailed")
# The operation word in a CloudEvents ``type``. Intuit publishes created/updated/merged; deleted, voided and
# emailed follow the same past-tense pattern (FACTS.md 8.2 marks void/emailed UNCONFIRMED).
CLOUDEVENTS_VERBS = MappingProxyType({
    "Create": "created", "Update": "updated", "Delete": "deleted",
    "Merge": "merged", "Void": "voided", "Emailed": "emailed",
})
JSON_CONTENT_TYPE = "application/json"
CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"
# Intuit's retry intervals after a failed delivery, in seconds; the last one repeats forever (FACTS.md 8.4).
INTUIT_RETRY_SECONDS = (10.0, 20.0, 30.0, 300.0, 1200.0, 7200.0, 14400.0, 21600.0)
# "Up to 100 events can be batched in a single webhook notification" (FACTS.md 8.0).
MAX_EVENTS_PER_DELIVERY = 100
# Intuit expects an answer within 3 seconds (FACTS.md 8.4); a slower endpoint counts as failed.
DELIVERY_TIMEOUT_SECONDS = 3.0
# Intuit's ``source`` is ``intuit.`` and an opaque base64 value; ours is fixed so payloads are reproducible.
CLOUDEVENTS_SOURCE = "intuit." + base64.b64encode(hashlib.sha256(b"crm-qb sandbox").digest()).decode("ascii")
# The delivery thread re-checks at least this often, so an injected clock that is not wall time advances.
_MAX_IDLE_WAIT_SECONDS = 0.5

Post = Callable[[str, bytes, Mapping[str, str]], int]


@dataclass(frozen=True)
class Event:
    """One entity change as Intuit reports it; ``id`` is the CloudEvents id, stable across retries."""

    realm_id: str
    entity_name: str
    entity_id: str
    operation: str
    last_updated: datetime
    deleted_id: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass(frozen=True)
class Subscription:
    """Where and how a realm's events are delivered."""

    url: str
    fmt: str
    delay_ms: int
    content_type: str


@dataclass
class _Delivery:
    """A batch taken from a realm's queue, resent unchanged until it is acknowledged."""

    events: list[Event]
    failures: int = 0
    next_attempt_at: float = 0.0


@dataclass
class _RealmQueue:
    """A realm's waiting events (with the clock time each was queued) and the batch in flight, if any."""

    waiting: deque[tuple[float, Event]] = field(default_factory=deque)
    in_flight: _Delivery | None = None


def utc_timestamp(moment: datetime) -> str:
    """Format an aware datetime as Intuit's 2025 webhooks do: UTC, milliseconds, ``Z``."""
    utc = moment.astimezone(UTC)
    return f"{utc:%Y-%m-%dT%H:%M:%S}.{utc.microsecond // 1000:03d}Z"


def legacy_entity(event: Event) -> dict:
    """The ``dataChangeEvent.entities[]`` item for ``event``; a Merge also carries ``deletedId``."""
    entity = {"name": event.entity_name, "id": event.entity_id, "operation": event.operation,
              "lastUpdated": utc_timestamp(event.last_updated)}
    if event.deleted_id is not None:
        # Only a third-party DTO documents this field for legacy merges (FACTS.md 8.1, UNCONFIRMED).
        entity["deletedId"] = event.deleted_id
    return entity


def legacy_body(realm_events: Mapping[str, Sequence[Event]]) -> dict:
    """The legacy ``eventNotifications`` payload: one notification per realm, entities in the given order."""
    return {"eventNotifications": [
        {"realmId": realm_id, "dataChangeEvent": {"entities": [legacy_entity(e) for e in events]}}
        for realm_id, events in realm_events.items()
    ]}


def cloudevents_type(entity_name: str, operation: str) -> str:
    """The CloudEvents ``type`` for an entity and operation, e.g. ``qbo.customer.merged.v1``."""
    return f"qbo.{entity_name.lower()}.{CLOUDEVENTS_VERBS[operation]}.v1"


def cloudevent(event: Event, source: str = CLOUDEVENTS_SOURCE) -> dict:
    """One CloudEvents item for ``event``; ``data`` is ``{}`` except ``{"deletedid": ...}`` for a merge."""
    data = {} if event.deleted_id is None else {"deletedid": event.deleted_id}
    return {
        "specversion": "1.0",
        "id": event.id,
        "source": source,
        "type": cloudevents_type(event.entity_name, event.operation),
        "datacontenttype": JSON_CONTENT_TYPE,
        "time": utc_timestamp(event.last_updated),
        "intuitentityid": event.entity_id,
        "intuitaccountid": event.realm_id,
        "data": data,
    }


def cloudevents_body(events: Iterable[Event], source: str = CLOUDEVENTS_SOURCE) -> list[dict]:
    """The CloudEvents payload: a JSON array with one item per event, in order."""
    return [cloudevent(event, source) for event in events]


def render(subscription: Subscription, realm_id: str, events: Sequence[Event]) -> bytes:
    """The exact body bytes of one delivery of ``events`` of ``realm_id`` in the subscription's format."""
    if subscription.fmt == "legacy":
        payload: dict | list = legacy_body({realm_id: events})
    else:
        payload = cloudevents_body(events)
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def post_with_requests(url: str, body: bytes, headers: Mapping[str, str]) -> int:
    """POST ``body`` and return the HTTP status, or 0 when the endpoint is unreachable or too slow."""
    try:
        response = requests.post(url, data=body, headers=dict(headers), timeout=DELIVERY_TIMEOUT_SECONDS,
                                 allow_redirects=False)
    except requests.RequestException as exc:
        logger.warning("webhook delivery to %s failed: %s", url, type(exc).__name__)
        return 0
    response.close()
    return response.status_code


def _check_subscription(fmt: str, delay_ms: int, content_type: str) -> None:
    """Raise ValueError unless the format, delay and content type make a valid subscription."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be 'legacy' or 'cloudevents', got {fmt!r}")
    if isinstance(delay_ms, bool) or not isinstance(delay_ms, int) or delay_ms < 0:
        raise ValueError(f"delay_ms must be a non-negative integer, got {delay_ms!r}")
    allowed = (JSON_CONTENT_TYPE, CLOUDEVENTS_CONTENT_TYPE) if fmt == "cloudevents" else (JSON_CONTENT_TYPE,)
    if content_type not in allowed:
        raise ValueError(f"content_type for {fmt} must be one of {allowed}, got {content_type!r}")


def _check_event(operation: str, last_updated: datetime, deleted_id: str | None) -> None:
    """Raise ValueError unless the operation, timestamp and deleted id describe a valid event."""
    if operation not in OPERATIONS:
        raise ValueError(f"operation must be one of {OPERATIONS}, got {operation!r}")
    if last_updated.tzinfo is None or last_updated.utcoffset() is None:
        raise ValueError(f"last_updated must be timezone-aware, got {last_updated!r}")
    if (operation == "Merge") != (deleted_id is not None):
        raise ValueError(f"deleted_id is required for Merge and only for Merge (operation {operation!r})")


class WebhookDispatcher:
    """Queues change events and delivers them, batched, signed and retried, from one background thread.

    Thread-safe: ``emit`` and ``register`` may be called from any thread. Delivery happens in ``start``'s
    thread, or synchronously through ``deliver_due`` when no thread runs (tests with an injected clock).
    """

    def __init__(self, verifier_token: str, clock: Callable[[], float] = time.monotonic,
                 post: Post | None = None, retry_schedule: Sequence[float] = INTUIT_RETRY_SECONDS,
                 max_events: int = MAX_EVENTS_PER_DELIVERY) -> None:
        if not verifier_token:
            raise ValueError("verifier_token must be a non-empty string")
        if not retry_schedule or any(delay < 0 for delay in retry_schedule):
            raise ValueError(f"retry_schedule must be non-empty and non-negative, got {retry_schedule!r}")
        if max_events < 1:
            raise ValueError(f"max_events must be a positive integer, got {max_events!r}")
        self._token = verifier_token
        self._clock = clock
        self._post = post or post_with_requests
        self._retry_schedule = tuple(retry_schedule)
        self._max_events = max_events
        self._wake = threading.Condition()
        self._subscriptions: dict[str | None, Subscription] = {}
        self._realms: dict[str, _RealmQueue] = {}
        self._delivered = 0
        self._thread: threading.Thread | None = None
        self._stopping = False

    def register(self, url: str, fmt: str, delay_ms: int, realm: str | None = None,
                 content_type: str = JSON_CONTENT_TYPE) -> None:
        """Send events of ``realm`` (None: every realm without its own subscription) to ``url``; replaces."""
        _check_subscription(fmt, delay_ms, content_type)
        with self._wake:
            self._subscriptions[realm] = Subscription(url, fmt, delay_ms, content_type)
            # A new endpoint gets the batch stuck in backoff at once rather than after the next interval.
            for realm_id, queue in self._realms.items():
                if queue.in_flight is not None and realm in (None, realm_id):
                    queue.in_flight.next_attempt_at = min(queue.in_flight.next_attempt_at, self._clock())
            self._wake.notify_all()

    def subscription(self, realm_id: str) -> Subscription | None:
        """The subscription that applies to ``realm_id``: its own, else the all-realms one, else None."""
        with self._wake:
            return self._subscription_for(realm_id)

    def emit(self, realm_id: str, entity_name: str, entity_id: str, operation: str, last_updated: datetime,
             deleted_id: str | None = None) -> bool:
        """Queue one change event without blocking; False (dropped) when no subscription covers the realm."""
        _check_event(operation, last_updated, deleted_id)
        event = Event(realm_id, entity_name, entity_id, operation, last_updated, deleted_id)
        with self._wake:
            if self._subscription_for(realm_id) is None:
                # Intuit only notifies subscribed apps; nothing is kept for a later subscription.
                return False
            queue = self._realms.setdefault(realm_id, _RealmQueue())
            queue.waiting.append((self._clock(), event))
            self._wake.notify_all()
        return True

    def pending(self) -> int:
        """Number of events queued or in flight, not yet acknowledged."""
        with self._wake:
            return sum(len(q.waiting) + (len(q.in_flight.events) if q.in_flight else 0)
                       for q in self._realms.values())

    def delivered(self) -> int:
        """Number of events whose delivery was acknowledged with HTTP 200."""
        with self._wake:
            return self._delivered

    def start(self) -> None:
        """Start the delivery thread; RuntimeError if it is already running."""
        with self._wake:
            if self._thread is not None and self._thread.is_alive():
                raise RuntimeError("webhook dispatcher already started")
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="qbo-sandbox-webhooks", daemon=True)
            self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the delivery thread and join it (after any POST in progress ends).

        Events not yet acknowledged stay queued and are only sent if ``start`` is called again; a process
        that exits after ``stop`` drops them.
        """
        with self._wake:
            self._stopping = True
            thread = self._thread
            self._wake.notify_all()
        if thread is not None:
            thread.join(timeout)

    def deliver_due(self) -> int:
        """Make every delivery attempt that is due now, one per realm; return the number of attempts made."""
        attempts = 0
        for realm_id in self._due_realms():
            prepared = self._prepare(realm_id)
            if prepared is None:
                continue
            url, body, headers = prepared
            status = self._post(url, body, headers)
            self._settle(realm_id, status)
            attempts += 1
        return attempts

    def _run(self) -> None:
        """Delivery thread body: sleep until something is due (or a change wakes it), then deliver."""
        while True:
            with self._wake:
                if self._stopping:
                    return
                wait = self._seconds_until_due()
                if wait > 0:
                    self._wake.wait(min(wait, _MAX_IDLE_WAIT_SECONDS))
                    continue
            self.deliver_due()

    def _subscription_for(self, realm_id: str) -> Subscription | None:
        return self._subscriptions.get(realm_id) or self._subscriptions.get(None)

    def _due_at(self, realm_id: str, queue: _RealmQueue) -> float | None:
        """Clock time of the realm's next attempt, or None when it has nothing to send."""
        if queue.in_flight is not None:
            return queue.in_flight.next_attempt_at
        subscription = self._subscription_for(realm_id)
        if not queue.waiting or subscription is None:
            return None
        # Aggregation: the batch closes ``delay_ms`` after its oldest event was queued.
        return queue.waiting[0][0] + subscription.delay_ms / 1000.0

    def _seconds_until_due(self) -> float:
        due = [at for realm_id, q in self._realms.items() if (at := self._due_at(realm_id, q)) is not None]
        return min(due) - self._clock() if due else float("inf")

    def _due_realms(self) -> list[str]:
        with self._wake:
            now = self._clock()
            return [realm_id for realm_id, queue in self._realms.items()
                    if (at := self._due_at(realm_id, queue)) is not None and at <= now]

    def _prepare(self, realm_id: str) -> tuple[str, bytes, dict[str, str]] | None:
        """Take the realm's next batch (or reuse the one being retried) and render it for its subscription."""
        with self._wake:
            queue = self._realms[realm_id]
            subscription = self._subscription_for(realm_id)
            if subscription is None:
                return None
            if queue.in_flight is None:
                count = min(len(queue.waiting), self._max_events)
                queue.in_flight = _Delivery([queue.waiting.popleft()[1] for _ in range(count)])
            body = render(subscription, realm_id, queue.in_flight.events)
            headers = {"Content-Type": subscription.content_type,
                       "intuit-signature": sign_qbo(body, self._token)}
            return subscription.url, body, headers

    def _settle(self, realm_id: str, status: int) -> None:
        """Record the outcome of the realm's attempt: acknowledge the batch, or schedule its retry."""
        with self._wake:
            queue = self._realms[realm_id]
            delivery = queue.in_flight
            if delivery is None:
                return
            if status == 200:
                self._delivered += len(delivery.events)
                queue.in_flight = None
                logger.info("webhook delivered realm=%s events=%d", realm_id, len(delivery.events))
                return
            delivery.failures += 1
            backoff = self._retry_schedule[min(delivery.failures, len(self._retry_schedule)) - 1]
            delivery.next_attempt_at = self._clock() + backoff
            logger.warning("webhook not acknowledged realm=%s status=%s failures=%d retry_in=%.3fs",
                           realm_id, status, delivery.failures, backoff)
