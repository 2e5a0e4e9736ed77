"""Syncing a connection on demand or on its schedule, whatever its mode (DESIGN §11 "Settings").

In ``realtime`` mode webhooks and hooks are synced as they arrive. In ``scheduled`` and ``manual`` mode the
drains leave a connection's events pending, uncounted (``Drain.scheduled_for``); they are synced here: by the
scheduled CDC poll (scheduled mode) or by "Sync now" (any mode): one CDC poll, then every waiting event.
"""

from __future__ import annotations

from sqlalchemy import select

from crm_qb.db import db
from crm_qb.models import Connection
from crm_qb.sync.context import build_context
from crm_qb.sync.pipeline.drain import Drain
from crm_qb.sync.pipeline.poll import poll_changes
from crm_qb.sync.services import SyncServices


def sync_now(services: SyncServices, connection_id: int, job_id: str | None = None) -> int:
    """A CDC poll and every change waiting for the connection; how many objects and events it handled."""
    ctx = build_context(services, connection_id, job_id)
    try:
        if not ctx.settings.enabled:
            return 0
        with services.connection_lock(connection_id):
            seen = poll_changes(ctx)
    finally:
        ctx.close()
        services.jobs.check_followups(connection_id, ctx.invoices_changed)
        services.jobs.push_summaries(connection_id, ctx.summaries_to_push())
    return seen + drain_waiting(services, connection_id, job_id)


def drain_waiting(services: SyncServices, connection_id: int, job_id: str | None = None) -> int:
    """Sync the connection's waiting CRM and QBO events now (its mode kept them pending); how many settled."""
    drain = Drain(services, job_id, scheduled_for=connection_id)
    realm = db.session.scalar(select(Connection.qbo_realm_id).where(Connection.id == connection_id))
    db.session.rollback()
    settled = drain.crm_connection(connection_id)
    return settled + (drain.qbo_realm(realm) if realm else 0)
