"""Change-hook delivery for the reference CRM (DESIGN.md section 6): contact and activity events.

Events are queued by the request that made the change (O(1), never blocking it) and posted by one background
thread, in order, a batch of the oldest pending events per request. A batch is retried with exponential
backoff until the receiver answers 2xx; it is signed afresh on every attempt so that a retry is never refused
as a replay. Events raised while no hook URL is set are dropped, as a real CRM without a subscription would.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import requests

from crm_qb.signatures import sign_crm

log = logging.getLogger(__name__)

# Each event type and the fields its event carries besides id, type and occurred_at.
EVENT_FIELDS = MappingProxyType({
    "contact.created": ("contact",), "contact.updated": ("contact",), "contact.deleted": ("contact_id",),
    "contact.merged": ("contact_id", "merged_into"),
    "activity.created": ("activity",), "activity.updated": ("activity",), "activity.deleted": ("activity_id",),
})
EVENT_TYPES = tuple(EVENT_FIELDS)


def make_event(event_type: str, occurred_at: str, **fields: Any) -> dict[str, Any]:
    """Return one change event as sent in a hook body; ``fields`` are exactly those of its type."""
    if event_type not in EVENT_FIELDS:
        raise ValueError(f"event_type must be one of {EVENT_TYPES}, got {event_type!r}")
    if tuple(fields) != EVENT_FIELDS[event_type]:
        raise ValueError(f"a {event_type} event carries {EVENT_FIELDS[event_type]}, got {tuple(fields)}")
    return {"id": str(uuid.uuid4()), "type": event_type, "occurred_at": occurred_at, **fields}


class HookDispatcher:
    """Queues change events and posts them, signed and in order, from a background thread."""

    def __init__(self, *, backoff_base: float = 0.2, backoff_max: float = 30.0, timeout: float = 5.0,
                 max_batch: int = 100, log_size: int = 1000, clock: Callable[[], float] = time.time) -> None:
        self._backoff_base, self._backoff_max, self._timeout = backoff_base, backoff_max, timeout
        self._max_batch, self._clock = max_batch, clock
        self._cond = threading.Condition()
        self._pending: deque[dict[str, Any]] = deque()
        self._log: deque[dict[str, Any]] = deque(maxlen=log_size)
        self._url: str | None = None
        self._secret: str | None = None
        self._delivered = self._dropped = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._generation = 0

    def configure(self, url: str | None, secret: str | None) -> None:
        """Send future (and still pending) events to ``url``, signed with ``secret``; None disables hooks."""
        with self._cond:
            self._url, self._secret = url, secret
            self._generation += 1
            self._cond.notify_all()

    @property
    def url(self) -> str | None:
        """The hook URL events are sent to, or None."""
        return self._url

    def enqueue(self, event: dict[str, Any]) -> None:
        """Queue ``event`` for delivery; drop it when no hook URL is set."""
        with self._cond:
            if self._url is None:
                self._dropped += 1
                return
            self._pending.append(event)
            self._cond.notify_all()

    def start(self) -> None:
        """Start the delivery thread (idempotent)."""
        with self._cond:
            if self._thread is not None:
                return
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="crm-sandbox-hooks", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the delivery thread, leaving undelivered events pending."""
        with self._cond:
            thread, self._stopping = self._thread, True
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout)
        with self._cond:
            self._thread = None

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is pending; True when that happened within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def clear(self) -> None:
        """Forget pending events, counters and the delivery log."""
        with self._cond:
            self._pending.clear()
            self._log.clear()
            self._delivered = self._dropped = 0
            self._cond.notify_all()

    def snapshot(self) -> dict[str, Any]:
        """Return the hook URL, counters and the delivery log (oldest first) as JSON-safe data."""
        with self._cond:
            return {"url": self._url, "pending": len(self._pending), "delivered": self._delivered,
                    "dropped": self._dropped, "deliveries": list(self._log)}

    def _run(self) -> None:
        """Deliver batches until stopped."""
        with requests.Session() as session:
            # The receiver is reached directly; a proxy from the environment must not intercept hooks.
            session.trust_env = False
            attempt = 0
            while (job := self._next_batch()) is not None:
                batch, url, secret = job
                if self._deliver(session, batch, url, secret, attempt):
                    self._acknowledge(batch)
                    attempt = 0
                else:
                    attempt += 1
                    self._pause(min(self._backoff_max, self._backoff_base * 2 ** (attempt - 1)))

    def _next_batch(self) -> tuple[list[dict[str, Any]], str, str] | None:
        """Block until events and a URL are there; None when stopping."""
        with self._cond:
            while not self._stopping and not (self._pending and self._url and self._secret):
                self._cond.wait()
            if self._stopping:
                return None
            batch = [self._pending[index] for index in range(min(self._max_batch, len(self._pending)))]
            return batch, str(self._url), str(self._secret)

    def _deliver(self, session: requests.Session, batch: list[dict[str, Any]], url: str, secret: str,
                 attempt: int) -> bool:
        """Post one signed batch; True when the receiver answered 2xx."""
        body = json.dumps({"events": batch}, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", "X-CRM-Signature": sign_crm(body, secret, int(self._clock()))}
        status: int | None = None
        error: str | None = None
        try:
            status = session.post(url, data=body, headers=headers, timeout=self._timeout).status_code
        except requests.RequestException as exc:
            error = type(exc).__name__
        ok = status is not None and 200 <= status < 300
        self._record(url, batch, attempt, status, error)
        if not ok:
            log.warning("hook delivery of %d event(s) failed (attempt %d): %s", len(batch), attempt + 1,
                        status or error)
        return ok

    def _record(self, url: str, batch: list[dict[str, Any]], attempt: int, status: int | None,
                error: str | None) -> None:
        """Append one attempt to the delivery log."""
        entry = {"at": datetime.now(UTC).isoformat(), "url": url, "event_ids": [e["id"] for e in batch],
                 "types": [e["type"] for e in batch], "attempt": attempt + 1, "status": status, "error": error}
        with self._cond:
            self._log.append(entry)

    def _acknowledge(self, batch: list[dict[str, Any]]) -> None:
        """Drop the delivered events from the head of the queue (unless clear() removed them meanwhile)."""
        delivered = {event["id"] for event in batch}
        with self._cond:
            while self._pending and self._pending[0]["id"] in delivered:
                self._pending.popleft()
            self._delivered += len(batch)
            self._cond.notify_all()

    def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``; a stop or a new hook URL ends the pause early, new events do not."""
        deadline = time.monotonic() + seconds
        with self._cond:
            generation = self._generation
            while not self._stopping and generation == self._generation:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._cond.wait(remaining)
