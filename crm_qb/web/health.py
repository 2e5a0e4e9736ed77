"""Health: a public liveness answer, and the details behind a credential.

- ``GET /healthz`` (public, for load balancers and uptime checks): ``{"status", "checks": {"database": {"ok"},
  "redis": {"ok"}}}``. ``status`` is ``ok``; ``degraded`` when a tenant has a problem the service itself does
  not (a connection needs reconnecting, QBO or a CRM is not answering for a connection, events failed for good,
  or records a sync could not apply wait to be retried or dismissed), still 200 so nobody restarts the service for
  it; ``unavailable`` with 503 when the database or Redis is down. It names no connection and no reason.
- ``GET /healthz/details`` with ``Authorization: Bearer <CRM_QB_OPERATOR_TOKEN>``: the same plus the queues
  (workers, depth, failed jobs), the inbound events (pending, the oldest pending's age, failed, rejected), the
  failed records (audit entries with outcome ``failed``, and records a finished first sync or history import
  failed, crm_qb.sync.failures: neither retried nor dismissed), and
  the failing connections with their reasons and counts. Without the setting the details are off (401 saying so).
- ``GET /api/v1/connections/<id>/health`` with the connection's API key: that connection's own status, for the
  CRM that embeds it.
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request
from redis.exceptions import RedisError
from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from crm_qb.db import db, utcnow
from crm_qb.models import CRM_NEEDS_RECONNECT, AuditEntry, Connection, EventSource, EventStatus, InboundEvent, QboStatus
from crm_qb.runtime import runtime
from crm_qb.sync.failures import FAILED_RECORD, sync_record_counts
from crm_qb.web.errors import json_error

bp = Blueprint("health", __name__)

COUNTED = (EventStatus.PENDING, EventStatus.FAILED, EventStatus.REJECTED)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Liveness: ok, degraded (200) or unavailable (503), with no tenant's details."""
    checks = {"database": _database(), "redis": _redis()}
    public = {name: {"ok": check["ok"], **({"error": check["error"]} if "error" in check else {})}
              for name, check in checks.items()}
    status = _status(checks, _tenant_problems() if checks["database"]["ok"] else None)
    return jsonify({"status": status, "checks": public}), 503 if status == "unavailable" else 200


@bp.get("/healthz/details")
def details() -> tuple[Response, int]:
    """Everything an operator needs to see, for the holder of CRM_QB_OPERATOR_TOKEN."""
    expected = runtime().settings.operator_token
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), expected):
        response, code = json_error(401, "unauthorized", "send Authorization: Bearer <CRM_QB_OPERATOR_TOKEN>"
                                    + ("" if expected else " (the setting is not set, so details are off)"))
        response.headers["WWW-Authenticate"] = 'Bearer realm="crm-qb operator"'
        return response, code
    checks: dict[str, Any] = {"database": _database(), "redis": _redis()}
    if checks["redis"]["ok"]:
        checks["queues"] = _queues()
    problems = None
    if checks["database"]["ok"]:
        checks["events"] = _event_counts(None)
        problems = _problems()
        checks["records"] = {"failed": problems["failed_records"]}
        checks["connections"] = _connections(problems)
    status = _status(checks, problems)
    return jsonify({"status": status, "checks": checks}), 503 if status == "unavailable" else 200


def connection_report(connection: Connection) -> dict[str, Any]:
    """One connection's health (``GET /api/v1/connections/<id>/health``): its QBO status, events, failed records."""
    events = _event_counts(_events_of(connection))
    records = _failed_records(AuditEntry.connection_id == connection.id)
    records += sync_record_counts(connection.id).get(connection.id, 0)
    db.session.rollback()
    needs = connection.qbo_status == QboStatus.NEEDS_RECONNECT or connection.crm_status == CRM_NEEDS_RECONNECT
    return {
        "status": "degraded" if needs or events["failed"] or records or connection.outage_side else "ok",
        "qbo": {"status": connection.qbo_status.value, "reason": connection.qbo_status_reason},
        "outage": _outage(connection.outage_side, connection.outage_since, connection.outage_reason),
        "crm": {"kind": connection.crm_kind, "status": connection.crm_status, "reason": connection.crm_status_reason},
        "events": events, "failed_records": records, "last_sync_at": _iso(connection.last_sync_at),
    }


def _failed_records(where: ColumnElement[bool] | None = None) -> int:
    """Records a sync could not apply and nobody retried or dismissed yet (all, or those matching ``where``)."""
    query = select(func.count()).select_from(AuditEntry).where(AuditEntry.outcome == FAILED_RECORD)
    return int(db.session.scalar(query.where(where) if where is not None else query) or 0)


def _outage(side: str | None, since: datetime | None, reason: str | None) -> dict[str, Any] | None:
    """A side that is not answering for a connection (crm_qb.sync.pipeline.outage), or None."""
    return {"side": side, "since": _iso(since), "reason": reason} if side else None


def _status(checks: dict[str, Any], problems: dict[str, Any] | None) -> str:
    if not (checks["database"]["ok"] and checks["redis"]["ok"]):
        return "unavailable"
    return "degraded" if problems and (problems["needs_reconnect"] or problems["failed"]
                                       or problems["outage"]) else "ok"


def _database() -> dict[str, Any]:
    try:
        db.session.execute(text("SELECT 1"))
        return {"ok": True, "backend": db.engine.dialect.name}
    except SQLAlchemyError as exc:
        db.session.rollback()
        return {"ok": False, "error": type(exc).__name__}


def _redis() -> dict[str, Any]:
    try:
        runtime().redis.ping()
        return {"ok": True}
    except RedisError as exc:
        return {"ok": False, "error": type(exc).__name__}


def _queues() -> dict[str, Any]:
    stats = runtime().jobs.stats()
    return {"ok": stats.workers > 0, "workers": stats.workers, "depth": stats.depth, "failed": stats.failed}


def _tenant_problems() -> dict[str, Any]:
    """Whether any connection needs reconnecting or is in an outage, or any event or record failed (EXISTS each)."""
    needs = db.session.scalar(select(select(Connection.id).where(
        (Connection.qbo_status == QboStatus.NEEDS_RECONNECT) | (Connection.crm_status == CRM_NEEDS_RECONNECT))
        .exists()))
    outage = db.session.scalar(select(select(Connection.id).where(Connection.outage_side.is_not(None)).exists()))
    failed = db.session.scalar(select(select(InboundEvent.id).where(
        InboundEvent.status == EventStatus.FAILED).exists()))
    failed = failed or db.session.scalar(select(select(AuditEntry.id).where(
        AuditEntry.outcome == FAILED_RECORD).exists()))
    failed = failed or bool(sync_record_counts())
    db.session.rollback()
    return {"needs_reconnect": bool(needs), "outage": bool(outage), "failed": bool(failed)}


def _problems() -> dict[str, Any]:
    """Connections that need reconnecting (id, reason), failed events and failed records per connection."""
    rows = db.session.execute(select(Connection.id, Connection.qbo_realm_id, Connection.qbo_status,
                                     Connection.qbo_status_reason, Connection.outage_side, Connection.outage_since,
                                     Connection.outage_reason, Connection.crm_status,
                                     Connection.crm_status_reason).order_by(Connection.id)).all()
    failed = db.session.execute(
        select(InboundEvent.source, InboundEvent.connection_id, InboundEvent.realm_id, func.count())
        .where(InboundEvent.status == EventStatus.FAILED)
        .group_by(InboundEvent.source, InboundEvent.connection_id, InboundEvent.realm_id)).all()
    records = db.session.execute(select(AuditEntry.connection_id, func.count()).where(
        AuditEntry.outcome == FAILED_RECORD).group_by(AuditEntry.connection_id)).all()
    records_by_connection = {int(cid): int(count) for cid, count in records if cid is not None}
    for cid, count in sync_record_counts().items():
        records_by_connection[cid] = records_by_connection.get(cid, 0) + count
    db.session.rollback()
    by_connection: dict[int, int] = {}
    for source, connection_id, realm_id, count in failed:
        # A QBO event names its realm until a drain settles it for a connection; it concerns the realm's ones.
        owners: list[int] = [connection_id] if connection_id is not None else \
            [row.id for row in rows if source == EventSource.QBO and realm_id and row.qbo_realm_id == realm_id]
        for owner in owners:
            by_connection[owner] = by_connection.get(owner, 0) + int(count)
    return {"total": len(rows), "failed": sum(int(row[3]) for row in failed) + sum(records_by_connection.values()),
            "failed_by_connection": by_connection, "failed_records": sum(records_by_connection.values()),
            "records_by_connection": records_by_connection,
            "needs_reconnect": [{"id": row.id, "reason": _reconnect_reason(row)} for row in rows
                                if row.qbo_status == QboStatus.NEEDS_RECONNECT
                                or row.crm_status == CRM_NEEDS_RECONNECT],
            "outage": {row.id: _outage(row.outage_side, row.outage_since, row.outage_reason) for row in rows
                       if row.outage_side}}


def _reconnect_reason(row: Any) -> str | None:
    """Why a connection must be reconnected: QuickBooks' reason, or its CRM's (HubSpot's OAuth grant)."""
    if row.qbo_status == QboStatus.NEEDS_RECONNECT:
        return row.qbo_status_reason  # type: ignore[no-any-return]
    return f"the CRM: {row.crm_status_reason or 'the authorization was lost'}"


def _connections(problems: dict[str, Any]) -> dict[str, Any]:
    failing = sorted({item["id"] for item in problems["needs_reconnect"]} | set(problems["failed_by_connection"])
                     | set(problems["records_by_connection"]) | set(problems["outage"]))
    reasons = {item["id"]: item["reason"] for item in problems["needs_reconnect"]}
    return {
        "ok": not failing, "total": problems["total"], "needs_reconnect": problems["needs_reconnect"],
        "failing": [{"id": cid, "needs_reconnect": cid in reasons, "reason": reasons.get(cid),
                     "outage": problems["outage"].get(cid),
                     "failed_events": problems["failed_by_connection"].get(cid, 0),
                     "failed_records": problems["records_by_connection"].get(cid, 0)} for cid in failing],
    }


def _events_of(connection: Connection) -> ColumnElement[bool]:
    own = InboundEvent.connection_id == connection.id
    if not connection.qbo_realm_id:
        return own
    # A QBO event concerns the connection once routed to it (its own delivery), or while its realm's event waits
    # to be routed; the deliveries of other connections of the same company are theirs.
    return own | ((InboundEvent.source == EventSource.QBO) & (InboundEvent.realm_id == connection.qbo_realm_id)
                  & InboundEvent.connection_id.is_(None))


def _event_counts(where: ColumnElement[bool] | None) -> dict[str, Any]:
    """Pending, failed and rejected events (all, or those matching ``where``) and the oldest pending's age."""
    query = select(InboundEvent.status, func.count(), func.min(InboundEvent.received_at)) \
        .where(InboundEvent.status.in_(COUNTED)).group_by(InboundEvent.status)
    rows = db.session.execute(query.where(where) if where is not None else query).all()
    db.session.rollback()
    counts = {status.value: 0 for status in COUNTED}
    oldest: datetime | None = None
    for status, count, first in rows:
        counts[status.value] = int(count)
        oldest = first if status == EventStatus.PENDING else oldest
    age = (utcnow() - _aware(oldest)).total_seconds() if oldest else None
    return {**counts, "oldest_pending_seconds": round(age, 1) if age is not None else None}


def _aware(value: datetime) -> datetime:
    """A timestamp read through ``min()`` with its UTC zone (SQLite may hand it back naive)."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
