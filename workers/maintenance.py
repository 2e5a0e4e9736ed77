"""Operator actions on the inbox (replaying events that failed or are stuck) and its retention job."""

from __future__ import annotations

from crm_qb.models import EventStatus
from crm_qb.retention import prune_event_payloads
from crm_qb.runtime import runtime
from crm_qb.sync.pipeline import events
from workers.queues import SCHEDULED, job

PRUNE_EVERY_SECONDS = 3600


@job(SCHEDULED, timeout=1800)
def prune_inbound_payloads() -> int:
    """Empty settled events' payloads older than CRM_QB_EVENT_RETENTION_DAYS (crm_qb.retention); return how many."""
    return prune_event_payloads(runtime().settings.event_retention_days)


def replay_events(status: str, connection_id: int | None = None) -> int:
    """Put events of ``status`` (failed or pending) back to pending and make sure each has a queued job.

    Returns how many events are now waiting to be processed (an event whose job is already queued counts).
    """
    return events.replay(EventStatus(status), connection_id, runtime().jobs)
