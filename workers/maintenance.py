"""Operator actions on the inbox: replaying events that failed or are stuck."""

from __future__ import annotations

from sqlalchemy import select, update

from crm_qb.db import db
from crm_qb.models import EventSource, EventStatus, InboundEvent
from crm_qb.runtime import runtime
from workers import jobs


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
    rows = db.session.execute(
        select(InboundEvent.source, InboundEvent.realm_id, InboundEvent.connection_id)
        .where(InboundEvent.id.in_(ids)).distinct()
    ).all() if ids else []
    for row in rows:
        key = row.realm_id if row.source == EventSource.QBO else str(row.connection_id)
        if key:
            jobs.wake(rt.redis, rt.settings.queue_prefix, row.source, key)
    db.session.rollback()
    return len(ids)
