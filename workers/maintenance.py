"""Operator actions on the inbox: replaying events that failed or are stuck."""

from __future__ import annotations

from crm_qb.models import EventStatus
from crm_qb.runtime import runtime
from crm_qb.sync.pipeline import events


def replay_events(status: str, connection_id: int | None = None) -> int:
    """Put events of ``status`` (failed or pending) back to pending and make sure each has a queued job.

    Returns how many events are now waiting to be processed (an event whose job is already queued counts).
    """
    return events.replay(EventStatus(status), connection_id, runtime().jobs)
