"""Operator actions on the inbox: replaying events that failed or are stuck."""

from __future__ import annotations

from sqlalchemy import select, update

from crm_qb.db import db
from crm_qb.models import EventStatus, InboundEvent
from crm_qb.runtime import runtime
from workers import jobs
from workers.queues import enqueue


def replay_events(status: str, connection_id: int | None = None) -> int:
    """Put events of ``status`` (failed or pending) back to pending and make sure each has a queued job.

    Returns how many events are now waiting to be processed (an event whose job is already queued counts).
    """
    wanted = EventStatus(status)
    query = select(InboundEvent.id).where(InboundEvent.status == wanted)
    if connection_id is not None:
        query = query.where(InboundEvent.connection_id == connection_id)
    ids = list(db.session.scalars(query.order_by(InboundEvent.id)))
    if wanted == EventStatus.FAILED and ids:
        db.session.execute(
            update(InboundEvent).where(InboundEvent.id.in_(ids)).values(status=EventStatus.PENDING, attempts=0)
        )
    db.session.commit()
    rt = runtime()
    for event_id in ids:
        enqueue(rt.redis, rt.settings.queue_prefix, jobs.process_inbound_event, event_id,
                job_id=jobs.inbound_job_id(event_id))
    return len(ids)
