"""Fault injection for the /v3 API: a 5xx rate, added latency, and Faults inside HTTP 200 answers."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class FaultRule:
    """What to inject: ``error_rate`` and ``fault_in_200_rate`` are probabilities in [0, 1]."""

    error_rate: float = 0.0
    error_status: int = 503
    latency_ms: int = 0
    fault_in_200_rate: float = 0.0


@dataclass(frozen=True)
class Decision:
    """What happens to one request."""

    latency_seconds: float
    error_status: int | None
    fault_in_200: bool


class FaultInjector:
    """Per-realm (or global, realm None) rules and a seeded random source; thread-safe."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: dict[str | None, FaultRule] = {}
        self._random = random.Random(seed)

    def configure(self, realm_id: str | None = None, seed: int | None = None, **changes: object) -> FaultRule:
        """Change the rule for ``realm_id`` (None: every realm without its own); ValueError when invalid."""
        with self._lock:
            rule = replace(self._rules.get(realm_id, FaultRule()), **changes)
            _check(rule)
            self._rules[realm_id] = rule
            if seed is not None:
                self._random.seed(seed)
            return rule

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()

    def rules(self) -> dict[str, dict]:
        """The current rules, keyed by realm id ("*" for the global one)."""
        with self._lock:
            return {key or "*": vars(rule) for key, rule in self._rules.items()}

    def decide(self, realm_id: str) -> Decision:
        """Draw what happens to the next request of ``realm_id``."""
        with self._lock:
            rule = self._rules.get(realm_id) or self._rules.get(None) or FaultRule()
            error = rule.error_rate > 0 and self._random.random() < rule.error_rate
            fault_200 = rule.fault_in_200_rate > 0 and self._random.random() < rule.fault_in_200_rate
        return Decision(rule.latency_ms / 1000, rule.error_status if error else None, fault_200)


def _check(rule: FaultRule) -> None:
    for name in ("error_rate", "fault_in_200_rate"):
        value = getattr(rule, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")
    if rule.error_status not in (500, 502, 503, 504):
        raise ValueError(f"error_status must be 500, 502, 503 or 504, got {rule.error_status!r}")
    if isinstance(rule.latency_ms, bool) or not isinstance(rule.latency_ms, int) or not 0 <= rule.latency_ms <= 120000:
        raise ValueError(f"latency_ms must be an integer between 0 and 120000, got {rule.latency_ms!r}")
