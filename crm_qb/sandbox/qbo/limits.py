"""The sandbox's throttle: QBO's per-realm request limits and the 429 body it answers with.

Limits per FACTS.md section 4: 500 requests per minute per realm (4.1) and 10 concurrent requests per realm
(4.2). The minute is a rolling window of accepted requests (60 s; tests may shorten it so that crossing several
windows takes seconds); refused requests are not counted, since QBO documents no penalty for them.

Batch: "API calls are throttled at 500 requests per minute per realmId, including batch requests" and "each
BatchItemRequest is metered like a normal call" (FACTS 4.2, 7), so a batch of N items takes N places in the
window (the request's own place plus N - 1), and the batch endpoint has its own cap of 40 requests per minute
per realm (FACTS 4.1). A batch the window has no room for is refused whole, before any item runs. The 800/min
combined limit is out of scope (the sandbox serves only the Accounting API).

The window reads the sandbox's clock (epoch seconds), so moving ``/_sandbox/clock`` forward also ages it.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

WINDOW_SECONDS = 60.0
BATCH_PER_MINUTE = 40

# payloads/fault_throttle_3001_429.xml verbatim (a captured real response), with only its time attribute
# made a placeholder. QBO sends it as XML even when JSON was asked for (FACTS.md section 2.5).
_THROTTLE_XML = """\
<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<IntuitResponse time="{time}" xmlns="http://schema.intuit.com/finance/v3">
  <Fault type="SERVICE">
    <Error code="3001">
      <Message>message=ThrottleExceeded; errorCode=003001; statusCode=429</Message>
      <Detail>The request limit was reached.  Try again later</Detail>
    </Error>
  </Fault>
</IntuitResponse>
"""


def throttle_xml(now: datetime | None = None) -> str:
    """Return QBO's 429 body (fault 3001) stamped with ``now`` (default: the current time, UTC)."""
    moment = now or datetime.now(UTC)
    return _THROTTLE_XML.format(time=moment.isoformat(timespec="milliseconds"))


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def _positive_seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ValueError(f"{name} must be a positive finite number of seconds, got {value!r}")
    return float(value)


@dataclass
class _RealmState:
    accepted: deque[float] = field(default_factory=deque)  # times of accepted requests, oldest first
    batches: deque[float] = field(default_factory=deque)  # times of accepted batch requests, oldest first
    in_flight: int = 0
    throttled_until: float = float("-inf")


class RealmLimiter:
    """Per-realm admission control: a rolling cap per ``window`` seconds, a concurrency cap, forced throttling."""

    def __init__(
        self, per_minute: int = 500, concurrent: int = 10, clock: Callable[[], float] = time.monotonic,
        window: float = WINDOW_SECONDS, batch_per_minute: int = BATCH_PER_MINUTE,
    ) -> None:
        self._per_minute = _positive_int("per_minute", per_minute)
        self._concurrent = _positive_int("concurrent", concurrent)
        self._window = _positive_seconds("window", window)
        self._batch_per_minute = _positive_int("batch_per_minute", batch_per_minute)
        self._clock = clock
        self._lock = threading.Lock()
        self._realms: dict[str, _RealmState] = {}

    def try_acquire(self, realm_id: str) -> bool:
        """Admit one request for the realm (record it, take an in-flight slot) or return False for a 429."""
        with self._lock:
            now = self._clock()
            state = self._realms.setdefault(realm_id, _RealmState())
            _forget_before(state.accepted, now - self._window)
            if now < state.throttled_until or state.in_flight >= self._concurrent:
                return False
            if len(state.accepted) >= self._per_minute:
                return False
            state.accepted.append(now)
            state.in_flight += 1
            return True

    def try_batch(self, realm_id: str, items: int) -> bool:
        """Meter an admitted batch request of ``items`` items: N - 1 more window places and one batch place.

        Call it while holding the request's slot from ``try_acquire``; False (nothing recorded) means 429.
        """
        with self._lock:
            now = self._clock()
            state = self._realms.setdefault(realm_id, _RealmState())
            _forget_before(state.accepted, now - self._window)
            _forget_before(state.batches, now - self._window)
            extra = max(items - 1, 0)
            if len(state.batches) >= self._batch_per_minute or len(state.accepted) + extra > self._per_minute:
                return False
            state.accepted.extend([now] * extra)
            state.batches.append(now)
            return True

    def release(self, realm_id: str) -> None:
        """Free one in-flight slot taken by a successful try_acquire; an extra release is ignored."""
        with self._lock:
            state = self._realms.get(realm_id)
            if state is not None and state.in_flight > 0:
                state.in_flight -= 1

    def configure(self, per_minute: int | None = None, concurrent: int | None = None,
                  window: float | None = None, batch_per_minute: int | None = None) -> None:
        """Change the limits for every realm from now on (None keeps one); an invalid value raises ValueError."""
        # Validate every value before changing any, so a bad call leaves the limiter as it was.
        new_per_minute = self._per_minute if per_minute is None else _positive_int("per_minute", per_minute)
        new_concurrent = self._concurrent if concurrent is None else _positive_int("concurrent", concurrent)
        new_window = self._window if window is None else _positive_seconds("window", window)
        new_batch = (self._batch_per_minute if batch_per_minute is None
                     else _positive_int("batch_per_minute", batch_per_minute))
        with self._lock:
            self._per_minute = new_per_minute
            self._concurrent = new_concurrent
            self._window = new_window
            self._batch_per_minute = new_batch

    def throttle_now(self, realm_id: str, seconds: float) -> None:
        """Refuse every request for the realm for the next ``seconds`` (fault injection); never shortens one."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 < seconds < float("inf"):
            raise ValueError(f"seconds must be a positive finite number, got {seconds!r}")
        with self._lock:
            state = self._realms.setdefault(realm_id, _RealmState())
            state.throttled_until = max(state.throttled_until, self._clock() + seconds)

    @property
    def limits(self) -> tuple[int, int]:
        """Return the current (per_minute, concurrent) limits."""
        with self._lock:
            return self._per_minute, self._concurrent

    @property
    def batch_per_minute(self) -> int:
        """Return how many batch requests a realm may make per window."""
        with self._lock:
            return self._batch_per_minute

    @property
    def window(self) -> float:
        """Return the length in seconds of the rolling window that ``per_minute`` counts over."""
        with self._lock:
            return self._window


def _forget_before(accepted: deque[float], cutoff: float) -> None:
    # A request made exactly one window ago has left it: the window is (now - window, now].
    while accepted and accepted[0] <= cutoff:
        accepted.popleft()
