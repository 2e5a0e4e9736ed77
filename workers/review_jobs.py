"""Jobs behind the admin's review actions (flipping a conflict writes to QBO and the CRM, so a worker does it)."""

from __future__ import annotations

from rq import get_current_job

from crm_qb.runtime import runtime
from crm_qb.sync.customers.conflict_review import flip, plan_flip
from crm_qb.sync.customers.review import resolve
from workers.queues import SYNC, job


@job(SYNC, timeout=300, retry_intervals=(10, 60, 300))
def flip_conflict(connection_id: int, conflict_id: int) -> str:
    """Flip a conflict to the losing value on both sides (re-checked here: it may have changed since the click)."""
    plan = plan_flip(connection_id, conflict_id)
    current = get_current_job()
    flip(runtime().sync_services(), plan, current.id if current else None)
    return "flipped"


@job(SYNC, timeout=300, retry_intervals=(10, 60, 300))
def resolve_review(connection_id: int, link_id: int, action: str, candidate: str | None, who: str = "admin") -> str:
    """Take a person's action on a record waiting for review (checked again here: it may have changed)."""
    current = get_current_job()
    return resolve(runtime().sync_services(), connection_id, link_id, action, candidate,
                   current.id if current else None, who)
