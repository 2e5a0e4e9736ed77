"""The reference CRM's request limit: at most N API requests per rolling window per token.

The default, 100 requests per 10 seconds, is HubSpot's burst limit for private apps (API.md, "Rate limit"),
so a sync that is fast against this CRM is fast against a real one, and a backfill meets a real bound. The
window counts accepted requests only (a refused one costs nothing, so a client that waits the ``Retry-After``
it was given always gets through). It runs on a monotonic clock: moving the CRM's clock does not refill it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_REQUESTS = 100
DEFAULT_WINDOW_SECONDS = 10.0


@dataclass(frozen=True)
class Admission:
    """The answer for one request: admitted or not, what remains, and when to retry when refused."""

    admitted: bool
    limit: int
    remaining: int
    window_seconds: float
    retry_after: int = 0


def check_requests(requests: object) -> int | None:
    """Return ``requests`` when it is a positive integer or None (off), else raise ValueError."""
    if requests is not None and (isinstance(requests, bool) or not isinstance(requests, int) or requests < 1):
        raise ValueError(f"must be a positive integer, or null to turn the limit off; got {requests!r}")
    return requests


def check_window(window_seconds: object) -> float:
    """Return ``window_seconds`` as a float when it is in (0, 3600], else raise ValueError."""
    if (isinstance(window_seconds, bool) or not isinstance(window_seconds, int | float)
            or not 0 < window_seconds <= 3600):
        raise ValueError(f"must be a number of seconds above 0 and at most 3600; got {window_seconds!r}")
    return float(window_seconds)


class RateLimiter:
    """A rolling-window counter per key (the API token); ``requests=None`` turns the limit off."""

    def __init__(self, requests: int | None = DEFAULT_REQUESTS, window_seconds: float = DEFAULT_WINDOW_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._requests, self._window = check_requests(requests), check_window(window_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self._accepted: dict[str, deque[float]] = {}

    def configure(self, requests: int | None, window_seconds: float) -> None:
        """Change the limit from now on (requests None: off); raise ValueError, changing nothing, when invalid."""
        checked = check_requests(requests), check_window(window_seconds)
        with self._lock:
            self._requests, self._window = checked

    def settings(self) -> dict[str, int | float | None]:
        """Return ``{"requests", "window_seconds"}`` (requests null when off)."""
        with self._lock:
            return {"requests": self._requests, "window_seconds": self._window}

    def admit(self, key: str) -> Admission | None:
        """Count one request for ``key`` if the window has room; None when the limit is off."""
        with self._lock:
            if self._requests is None:
                return None
            now = self._clock()
            accepted = self._accepted.setdefault(key, deque())
            while accepted and accepted[0] <= now - self._window:
                accepted.popleft()
            if len(accepted) >= self._requests:
                wait = accepted[0] + self._window - now
                return Admission(False, self._requests, 0, self._window, max(1, math.ceil(wait)))
            accepted.append(now)
            return Admission(True, self._requests, self._requests - len(accepted), self._window)

    def reset(self) -> None:
        """Forget every counted request."""
        with self._lock:
            self._accepted.clear()
