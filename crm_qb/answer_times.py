"""How long a client waited for its answers: the longest wait for one, and how many came.

The QBO client and both CRM connectors keep one each. A drain (or a catch-up poll) reads both of its connection's
after its work to tell a company or a CRM that answers slowly, and moves that connection's work to the bulk lane
(crm_qb.sync.pipeline.slowlane), so it does not hold the workers other tenants' live drains need.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class AnswerTimes:
    """The slowest wait for one answer (seconds) and how many answers came, over one client's requests."""

    slowest: float = 0.0
    count: int = 0

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Time one request. One that raised (no answer: a timeout, a lost connection) counts toward the slowest
        wait, not toward the answers."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.slowest = max(self.slowest, time.monotonic() - started)
        self.count += 1

    def asked_to_wait(self, seconds: float) -> None:
        """The server answered "come back in ``seconds``" (Retry-After): as slow as an answer that took that long,
        whether the caller sleeps through it or gives up."""
        self.slowest = max(self.slowest, seconds)
