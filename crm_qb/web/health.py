"""``GET /healthz``: database, Redis and queue state; 200 when healthy, 503 otherwise."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from redis.exceptions import RedisError
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from crm_qb.db import db
from crm_qb.models import Connection, QboStatus
from crm_qb.runtime import runtime

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Report each dependency's state; any failing dependency makes the answer 503."""
    checks = {"database": _database(), "redis": _redis()}
    if checks["redis"]["ok"]:
        checks["queues"] = _queues()
    if checks["database"]["ok"]:
        checks["connections"] = _connections()
    healthy = checks["database"]["ok"] and checks["redis"]["ok"]
    return jsonify({"status": "ok" if healthy else "unavailable", "checks": checks}), 200 if healthy else 503


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
    return {"ok": True, "workers": stats.workers, "depth": stats.depth, "failed": stats.failed}


def _connections() -> dict[str, Any]:
    rows = db.session.execute(
        select(Connection.id, Connection.qbo_status, Connection.qbo_status_reason)
    ).all()
    needs = [{"id": r.id, "reason": r.qbo_status_reason} for r in rows if r.qbo_status == QboStatus.NEEDS_RECONNECT]
    return {"ok": not needs, "total": len(rows), "needs_reconnect": needs}
