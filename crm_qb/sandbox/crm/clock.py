"""The reference CRM's notion of "now", which tests move to exercise time-dependent sync.

Moving the clock changes the times the CRM stamps (``updated_at``, ``occurred_at`` of hooks, task times); it
does not change what must stay real: hook signatures (the receiver checks them against its own clock) and the
rate limit's window. ``updated_at`` stays strictly increasing when the clock moves back (see ``Stamps``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# Far enough for any test (about 300 years), near enough that every shifted time stays a valid datetime.
MAX_OFFSET_SECONDS = 1e10


def stamp(moment: datetime) -> str:
    """Format an aware time as fixed-width UTC ISO 8601 (``...T12:00:00.000000Z``), which sorts as text."""
    return moment.astimezone(UTC).strftime(STAMP_FORMAT)


def parse_stamp(text: str) -> datetime:
    """Parse a time written by ``stamp``."""
    return datetime.strptime(text, STAMP_FORMAT).replace(tzinfo=UTC)


class MovableClock:
    """Real UTC time plus an offset that the control API sets or advances."""

    def __init__(self, source: Callable[[], datetime] | None = None) -> None:
        self._source = source or (lambda: datetime.now(UTC))
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """Return the CRM's current time, tz-aware UTC."""
        with self._lock:
            offset = self._offset
        return self._source() + timedelta(seconds=offset)

    @property
    def offset_seconds(self) -> float:
        """How far the clock runs ahead of real time (negative: behind)."""
        with self._lock:
            return self._offset

    def move(self, *, offset_seconds: float | None = None, advance_seconds: float | None = None) -> None:
        """Set the offset, then advance it; raise ValueError (changing nothing) when the result is out of range."""
        with self._lock:
            offset = self._offset if offset_seconds is None else float(offset_seconds)
            offset += 0.0 if advance_seconds is None else float(advance_seconds)
            if not math.isfinite(offset) or abs(offset) > MAX_OFFSET_SECONDS:
                raise ValueError(f"the clock offset must stay within ±{MAX_OFFSET_SECONDS:.0e} seconds")
            self._offset = offset

    def snapshot(self) -> dict[str, str | float]:
        """Return ``{"now", "offset_seconds"}`` as JSON-safe data."""
        return {"now": stamp(self.now()), "offset_seconds": self.offset_seconds}


class Stamps:
    """Hands out change times from a clock, each later than every earlier one, even when the clock goes back."""

    def __init__(self, clock: Callable[[], datetime], latest: datetime | None = None) -> None:
        self._clock = clock
        self._last = latest
        self._lock = threading.Lock()

    def next(self) -> str:
        """Return the next change time as a stamp (a microsecond after the previous one when the clock lags)."""
        with self._lock:
            moment = self._clock().astimezone(UTC)
            if self._last is not None and moment <= self._last:
                moment = self._last + timedelta(microseconds=1)
            self._last = moment
            return stamp(moment)

    def now(self) -> str:
        """Return the clock's current time as a stamp, without reserving it as a change time."""
        return stamp(self._clock())
