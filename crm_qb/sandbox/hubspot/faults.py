"""Fault injection and request counting for the local HubSpot's API.

A fault plan fails the next ``count`` calls and/or a random ``error_rate`` share of calls with ``status``
(429, 477 with ``Retry-After``, or a 5xx), and delays every call by ``latency_ms``. Counts are kept per
endpoint rule (``GET /crm/v3/objects/<object_type>/<object_id>``).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from crm_qb.sandbox.hubspot.errors import error_body
from crm_qb.sandbox.hubspot.limits import rate_limit_body

FAULT_STATUSES = (429, 477, 500, 502, 503, 504)


@dataclass
class FaultPlan:
    """What to inject: the next ``count`` calls fail, plus a random ``error_rate`` share; every call waits."""

    count: int = 0
    error_rate: float = 0.0
    status: int = 503
    retry_after: int | None = None
    latency_ms: int = 0
    seed: int | None = None


def fault_body(status: int) -> dict[str, Any]:
    """Return the body HubSpot sends with an injected status."""
    if status == 429:
        return rate_limit_body("You have reached your ten_secondly_rolling limit.", "TEN_SECONDLY_ROLLING")
    if status == 477:
        return error_body("Migration in progress; retry after the time in Retry-After.", "MIGRATION_IN_PROGRESS")
    return error_body("internal error", "INTERNAL_ERROR" if status == 500 else "SERVICE_UNAVAILABLE")


class Faults:
    """The current plan and per-endpoint counts; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._plan = FaultPlan()
        self._rng = random.Random()
        self._counts: Counter[str] = Counter()

    def set_plan(self, plan: FaultPlan) -> None:
        """Replace the plan."""
        if plan.status not in FAULT_STATUSES:
            raise ValueError(f"status must be one of {FAULT_STATUSES}, got {plan.status!r}")
        if not 0 <= plan.error_rate <= 1:
            raise ValueError(f"error_rate must be between 0 and 1, got {plan.error_rate!r}")
        with self._lock:
            self._plan = plan
            self._rng = random.Random(plan.seed)

    def plan(self) -> dict[str, Any]:
        """Return the plan as JSON-safe data."""
        with self._lock:
            return asdict(self._plan)

    def record(self, endpoint: str) -> tuple[int | None, int | None, int]:
        """Count a call; return (status to fail with or None, Retry-After or None, latency in ms)."""
        with self._lock:
            self._counts[endpoint] += 1
            plan = self._plan
            fail = plan.count > 0 or (plan.error_rate > 0 and self._rng.random() < plan.error_rate)
            if plan.count > 0:
                plan.count -= 1
            return (plan.status if fail else None), plan.retry_after, plan.latency_ms

    def counts(self) -> dict[str, Any]:
        """Return calls by endpoint and in total."""
        with self._lock:
            return {"by_endpoint": dict(self._counts), "total": sum(self._counts.values())}

    def reset(self) -> None:
        """Clear counts and the plan."""
        with self._lock:
            self._counts.clear()
            self._plan = FaultPlan()
