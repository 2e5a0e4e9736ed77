"""Follow-ups, as the jobs and the CLI call them: scan a connection or an invoice, close an invoice's tasks, and
read or change the connection's follow-up settings.

Each call takes the ``SyncServices`` of its caller (the CRM connector is built from the connection's kind unless
the caller passes one, as tests do); the rules are in ``crm_qb.sync.rules.followups``, the scan in ``scan``, the
SQL in ``store``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select

from crm_qb.crm.protocol import CrmConnector
from crm_qb.db import db
from crm_qb.models import Connection
from crm_qb.sync.followups import store
from crm_qb.sync.followups.scan import Scan, ScanResult
from crm_qb.sync.followups.settings import FollowupSettings, parse_settings, reset_settings, updated_settings
from crm_qb.sync.followups.store import UnknownConnectionError
from crm_qb.sync.rules.followups import CLOSE_REASONS
from crm_qb.sync.services import SyncServices
from crm_qb.sync.settings_changes import store_settings

log = logging.getLogger(__name__)


def scan_connection(services: SyncServices, connection_id: int, *, now: datetime | None = None,
                    crm: CrmConnector | None = None) -> ScanResult:
    """Create the tasks due at ``now``, complete those no longer due, and reconcile tags, for a connection."""
    with Scan(services, connection_id, now, crm) as scan:
        return scan.run(None)


def scan_invoice(services: SyncServices, connection_id: int, qbo_invoice_id: str, *, now: datetime | None = None,
                 crm: CrmConnector | None = None) -> ScanResult:
    """Like scan_connection for one invoice (call after it is synced); also reconciles its contacts' tag."""
    with Scan(services, connection_id, now, crm) as scan:
        return scan.run(str(qbo_invoice_id))


def close_followups(services: SyncServices, connection_id: int, qbo_invoice_id: str, reason: str, *,
                    now: datetime | None = None, crm: CrmConnector | None = None) -> ScanResult:
    """Complete the invoice's open tasks with ``reason`` (a CLOSE_REASONS key or a sentence); reconcile tags."""
    text = CLOSE_REASONS.get(reason, reason).strip()
    if not text:
        raise ValueError("close_followups needs a reason, e.g. 'paid', 'voided', 'deleted' or 'moved'")
    with Scan(services, connection_id, now, crm) as scan:
        return scan.close_invoice(str(qbo_invoice_id), text)


def followup_settings(connection_id: int) -> FollowupSettings:
    """Return the connection's follow-up settings (defaults where unset)."""
    settings = parse_settings(store.connection(connection_id).settings)
    db.session.rollback()
    return settings


def configure_followups(connection_id: int, changes: Mapping[str, Any], *, reset: bool = False,
                        who: str = "unknown") -> FollowupSettings:
    """Apply ``changes`` (after going back to the defaults when ``reset``), commit (audited as ``who``), and
    return the settings."""
    connection = db.session.scalars(
        select(Connection).where(Connection.id == connection_id).with_for_update()).one_or_none()
    if connection is None:
        db.session.rollback()
        raise UnknownConnectionError(f"no connection {connection_id}")
    try:
        stored = reset_settings(connection.settings) if reset else dict(connection.settings or {})
        store_settings(connection, updated_settings(stored, changes), who)  # commits, with its audit entry
    except Exception:
        db.session.rollback()
        raise
    log.info("connection %s follow-up settings changed: %s", connection_id, sorted(changes))
    return followup_settings(connection_id)
