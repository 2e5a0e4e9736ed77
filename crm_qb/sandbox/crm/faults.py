"""Fault injection and request counting for the reference CRM's section 6 API."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

FAULT_STATUSES = (429, 500, 502, 503, 504)


@dataclass
class FaultPlan:
    """Fail the next ``count`` API calls with ``status`` (and ``Retry-After`` when set); delay every call."""

    count: int = 0
    status: int = 503
    retry_after: int | None = None
    latency_ms: int = 0


class Faults:
    """The current fault plan and per-endpoint call counts, safe to share between request threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plan = FaultPlan()
        self._counts: Counter[str] = Counter()

    def set_plan(self, plan: FaultPlan) -> None:
        """Replace the fault plan."""
        with self._lock:
            self._plan = plan

    def plan(self) -> dict[str, Any]:
        """Return the fault plan as JSON-safe data."""
        with self._lock:
            return asdict(self._plan)

    def record(self, endpoint: str) -> tuple[FaultPlan | None, int]:
        """Count a call to ``endpoint``; return the fault to answer with (or None) and the latency in ms."""
        with self._lock:
            self._counts[endpoint] += 1
            latency = self._plan.latency_ms
            if self._plan.count <= 0:
                return None, latency
            self._plan.count -= 1
            return FaultPlan(1, self._plan.status, self._plan.retry_after), latency

    def counts(self) -> dict[str, Any]:
        """Return call counts by endpoint and in total."""
        with self._lock:
            return {"endpoints": dict(self._counts), "total": sum(self._counts.values())}

    def reset(self) -> None:
        """Clear counts and the fault plan."""
        with self._lock:
            self._counts.clear()
            self._plan = FaultPlan()
