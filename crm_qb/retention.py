"""How long crm-qb keeps the personal data that arrives with every change: CRM_QB_EVENT_RETENTION_DAYS.

Each inbound event stores its payload (a whole CRM contact, or Intuit's notification) so that a drain can
apply it and an operator can replay it. Once the event is settled (processed, ignored or rejected) the payload
has done its job; after the retention period (default 30 days) it is emptied. What stays: the event's id, source,
realm, entity, entity id, operation, times, status and reason, and the audit log, so "what happened to this
change" can still be answered. Pending and failed events keep their payloads, because replaying them needs them
(``crm-qb replay``). ``CRM_QB_EVENT_RETENTION_DAYS=0`` keeps payloads forever.

The scheduler runs ``prune_event_payloads`` hourly (``workers/maintenance.py``); each run empties the due
payloads in batches, one short transaction each, so it never holds long locks on a busy table.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update

from crm_qb.db import db, utcnow
from crm_qb.models import EventStatus, InboundEvent

log = logging.getLogger(__name__)

SETTLED = (EventStatus.PROCESSED, EventStatus.IGNORED, EventStatus.REJECTED)
PRUNE_BATCH = 1000


def prune_event_payloads(retention_days: int, now: datetime | None = None, batch: int = PRUNE_BATCH) -> int:
    """Empty the payloads of events settled and received more than ``retention_days`` ago; return how many."""
    if retention_days <= 0:
        return 0
    now = now or utcnow()
    cutoff = now - timedelta(days=retention_days)
    pruned = 0
    while True:
        ids = list(db.session.scalars(
            select(InboundEvent.id).where(InboundEvent.status.in_(SETTLED), InboundEvent.received_at < cutoff,
                                          InboundEvent.payload_pruned_at.is_(None))
            .order_by(InboundEvent.id).limit(batch)))
        if ids:
            db.session.execute(update(InboundEvent).where(InboundEvent.id.in_(ids))
                               .values(payload={}, payload_pruned_at=now))
        db.session.commit()
        pruned += len(ids)
        if len(ids) < batch:
            break
    if pruned:
        log.info("emptied the payloads of %s inbound event(s) received before %s", pruned, cutoff.date())
    return pruned
