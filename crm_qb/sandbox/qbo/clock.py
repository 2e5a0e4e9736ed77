"""The sandbox's notion of "now", which tests may move, and QBO's time formats."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def utc_now() -> datetime:
    """Return the real current time, tz-aware in UTC."""
    return datetime.now(UTC)


class SandboxClock:
    """A clock that reads ``source`` and adds an adjustable offset (to move "today" in tests)."""

    def __init__(self, source: Callable[[], datetime] = utc_now) -> None:
        self._source = source
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """Return the sandbox's current time, tz-aware."""
        with self._lock:
            offset = self._offset
        return self._source() + offset

    def set_offset(self, seconds: float) -> None:
        """Make the sandbox's clock run ``seconds`` ahead of its source (negative: behind)."""
        with self._lock:
            self._offset = timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        """Move the sandbox's clock forward by ``seconds`` on top of any existing offset."""
        with self._lock:
            self._offset += timedelta(seconds=seconds)

    @property
    def offset_seconds(self) -> float:
        """The current offset from the source clock, in seconds."""
        with self._lock:
            return self._offset.total_seconds()


def company_zone(name: str) -> tzinfo:
    """Return the time zone called ``name``, or UTC when the system has no zone database entry for it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def meta_time(moment: datetime, zone: tzinfo) -> str:
    """Format ``moment`` like QBO's MetaData times: local seconds with a colon offset (2015-07-23T10:58:12-07:00)."""
    return moment.astimezone(zone).replace(microsecond=0).isoformat()


def response_time(moment: datetime, zone: tzinfo) -> str:
    """Format ``moment`` like the ``time`` of a QBO response: milliseconds and offset."""
    return moment.astimezone(zone).isoformat(timespec="milliseconds")


def local_date(moment: datetime, zone: tzinfo) -> date:
    """Return the company's calendar date at ``moment``."""
    return moment.astimezone(zone).date()


def parse_moment(text: str, zone: tzinfo) -> datetime:
    """Parse a QBO date-time or date (a bare date means local midnight); raise ValueError when malformed."""
    text = text.strip()
    if len(text) == 10:
        day = date.fromisoformat(text)
        return datetime(day.year, day.month, day.day, tzinfo=zone)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=zone)
