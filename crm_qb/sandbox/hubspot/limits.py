"""HubSpot's API rate limits for one portal, with its 429 bodies and ``X-HubSpot-RateLimit-*`` headers.

Per docs/hubspot/facts.md §9: a burst limit over a rolling 10-second window (100 by default: private apps on
Free/Starter, and public apps per installed account), a daily limit that resets at midnight in the account's
time zone (UTC here; 250,000 by default; OAuth calls are not counted against it and get no daily headers),
and the search endpoints' own per-second limit (5). Every caller of the portal shares the counts, whatever
token it uses. Refused requests are not counted. Time is the sandbox clock, so tests can move it.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

BURST_WINDOW_SECONDS = 10.0
SEARCH_WINDOW_SECONDS = 1.0


@dataclass(frozen=True)
class Limits:
    """The portal's limits."""

    burst: int = 100
    window_seconds: float = BURST_WINDOW_SECONDS
    daily: int = 250_000
    search_per_second: int = 5


@dataclass(frozen=True)
class Verdict:
    """Whether a request may go on, the headers to send, and the 429 body when it may not."""

    allowed: bool
    headers: dict[str, str]
    body: dict[str, Any] | None = None


def rate_limit_body(message: str, policy: str) -> dict[str, Any]:
    """Return HubSpot's 429 body (payloads/rate_limit_429.json) for ``policy``."""
    return {"status": "error", "message": message, "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()), "policyName": policy, "requestId": str(uuid.uuid4())}


class PortalLimiter:
    """Admission control for one portal's API calls; thread-safe."""

    def __init__(self, clock: Callable[[], datetime], limits: Limits | None = None) -> None:
        self._clock = clock
        self._limits = limits or Limits()
        self._lock = threading.Lock()
        self._burst: deque[float] = deque()
        self._search: deque[float] = deque()
        self._day: str | None = None
        self._daily_used = 0
        self.throttled = 0

    @property
    def limits(self) -> Limits:
        """The limits in force."""
        with self._lock:
            return self._limits

    def configure(self, limits: Limits) -> None:
        """Replace the limits (counts so far are kept)."""
        if min(limits.burst, limits.daily, limits.search_per_second) < 1 or limits.window_seconds <= 0:
            raise ValueError(f"limits must be positive, got {limits!r}")
        with self._lock:
            self._limits = limits

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self._burst.clear()
            self._search.clear()
            self._daily_used = 0
            self.throttled = 0

    def admit(self, search: bool, oauth: bool) -> Verdict:
        """Count one request, or refuse it with HubSpot's 429 (burst, daily or search policy)."""
        with self._lock:
            now = self._clock()
            seconds = now.timestamp()
            limits = self._limits
            _forget(self._burst, seconds - limits.window_seconds)
            _forget(self._search, seconds - SEARCH_WINDOW_SECONDS)
            today = now.date().isoformat()
            if today != self._day:
                self._day, self._daily_used = today, 0
            refusal = self._refusal(limits, oauth)
            if refusal is None and search and len(self._search) >= limits.search_per_second:
                refusal = rate_limit_body("You have reached your secondly limit.", "SECONDLY")
            if refusal is not None:
                self.throttled += 1
                return Verdict(False, self._headers(limits, oauth), refusal)
            self._burst.append(seconds)
            if search:
                self._search.append(seconds)
            if not oauth:
                self._daily_used += 1
            return Verdict(True, self._headers(limits, oauth))

    def _refusal(self, limits: Limits, oauth: bool) -> dict[str, Any] | None:
        if not oauth and self._daily_used >= limits.daily:
            return rate_limit_body("You have reached your daily limit.", "DAILY")
        if len(self._burst) >= limits.burst:
            return rate_limit_body("You have reached your ten_secondly_rolling limit.", "TEN_SECONDLY_ROLLING")
        return None

    def _headers(self, limits: Limits, oauth: bool) -> dict[str, str]:
        headers = {"X-HubSpot-RateLimit-Interval-Milliseconds": str(int(limits.window_seconds * 1000)),
                   "X-HubSpot-RateLimit-Max": str(limits.burst),
                   "X-HubSpot-RateLimit-Remaining": str(max(0, limits.burst - len(self._burst)))}
        if not oauth:
            headers["X-HubSpot-RateLimit-Daily"] = str(limits.daily)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(0, limits.daily - self._daily_used))
        return headers

    def usage(self) -> dict[str, Any]:
        """Return the counts in the current windows."""
        with self._lock:
            return {"burst_used": len(self._burst), "daily_used": self._daily_used, "throttled": self.throttled,
                    "limits": vars(self._limits).copy()}


def _forget(times: deque[float], cutoff: float) -> None:
    while times and times[0] <= cutoff:
        times.popleft()
