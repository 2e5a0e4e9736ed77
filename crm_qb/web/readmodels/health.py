"""The health panel of one connection (DESIGN §11 "Health"): where it stands, what arrived last, what waits.

- status: the QuickBooks grant and the failures (``web/health.connection_report``), and the sync mode;
- last webhook per side (the newest stored inbound event of each source) and the last poll per side: QBO's CDC
  cursor (the start time of the last CDC poll that completed) and the CRM catch-up poll's run time
  (``sync/pipeline/crm_poll.py``);
- the oldest pending event and its age;
- events and failures per hour over the last 48 hours (events by the hour they arrived; failures by the hour
  they happened: from the audit log, events that failed for good, ``event.failed``, and records a sync could
  not apply, whether since retried or dismissed or not; and the records a first sync or history import failed,
  ``sync_run_records``, by their last try, dismissed or not, so a run's failures show in the hours it made them
  (a record whose retry succeeded is no longer a failure: the run rewrites its outcome), drawn as a small inline
  SVG;
- seconds spent waiting for a QBO request slot (the shared rate budget, ``qbo/ratebudget.py``) over 48 hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from crm_qb.db import db, utcnow
from crm_qb.models import AuditEntry, Connection, EventSource, EventStatus, InboundEvent
from crm_qb.qbo.ratebudget import RateBudget
from crm_qb.sync.failures import count_failures, events_of
from crm_qb.sync.firstsync import store as runs
from crm_qb.sync.settings import sync_settings_of

HOURS = 48


@dataclass(frozen=True)
class Hour:
    """One hour of the chart: its start, the events that arrived and the failures."""

    start: datetime
    events: int
    failures: int


@dataclass(frozen=True)
class HealthDetails:
    """What the health panel shows beyond ``connection_report``."""

    mode: str
    enabled: bool
    last_webhook: dict[str, datetime | None]
    last_poll: dict[str, datetime | None]
    oldest_pending: datetime | None
    oldest_pending_entity: str | None
    hours: list[Hour]
    failures: int
    rate_limit_wait_seconds: float
    rate_limit_wait_last_hour: float

    def as_json(self) -> dict[str, Any]:
        """The keys added to ``GET /api/v1/connections/<id>/health``."""
        iso = _iso
        return {
            "mode": self.mode, "enabled": self.enabled, "failures": self.failures,
            "last_webhook": {side: iso(value) for side, value in self.last_webhook.items()},
            "last_poll": {side: iso(value) for side, value in self.last_poll.items()},
            "oldest_pending": {"received_at": iso(self.oldest_pending), "entity": self.oldest_pending_entity},
            "hourly": [{"hour": iso(h.start), "events": h.events, "failures": h.failures} for h in self.hours],
            "rate_limit_wait_seconds": {"last_48h": round(self.rate_limit_wait_seconds, 1),
                                        "last_hour": round(self.rate_limit_wait_last_hour, 1)},
        }


def health_details(connection: Connection, waited: list[float], now: datetime | None = None) -> HealthDetails:
    """The panel's facts for ``connection``; ``waited``: seconds of rate-limit waits per hour (oldest first)."""
    now = now or utcnow()
    settings = sync_settings_of(connection.settings)
    mine = events_of(connection)
    last = {source: _aware(db.session.scalar(select(func.max(InboundEvent.received_at))
                                             .where(mine, InboundEvent.source == source)))
            for source in (EventSource.QBO, EventSource.CRM)}
    oldest = db.session.execute(select(InboundEvent.received_at, InboundEvent.entity).where(
        mine, InboundEvent.status == EventStatus.PENDING).order_by(InboundEvent.id).limit(1)).first()
    hours = _hours(connection, now)
    failures = count_failures(connection)
    return HealthDetails(settings.mode, settings.enabled, {"qbo": last[EventSource.QBO], "crm": last[EventSource.CRM]},
                         {"qbo": connection.cdc_cursor, "crm": connection.crm_polled_at},
                         _aware(oldest[0]) if oldest else None,
                         oldest[1] if oldest else None, hours, failures, sum(waited),
                         waited[-1] if waited else 0.0)


def waited_seconds(rt: Any, connection: Connection) -> list[float]:
    """Seconds the connection's realm waited for QBO request slots, per hour over 48 hours (``rt``: the runtime)."""
    if not connection.qbo_realm_id:
        return []
    return RateBudget(rt.redis, keys=rt.keys).waited(connection.qbo_realm_id, HOURS)


def _hours(connection: Connection, now: datetime) -> list[Hour]:
    first = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)
    received = db.session.scalars(select(InboundEvent.received_at).where(
        events_of(connection), InboundEvent.received_at >= first)).all()
    failed_records = list(db.session.scalars(select(AuditEntry.created_at).where(
        AuditEntry.connection_id == connection.id, AuditEntry.outcome.like("failed%"),
        AuditEntry.created_at >= first)))
    failed_records += runs.failure_times(connection.id, first)
    db.session.rollback()
    events, failures = [0] * HOURS, [0] * HOURS
    for at in received:
        index = _index(first, _aware(at))
        if index is not None:
            events[index] += 1
    for at in failed_records:
        index = _index(first, _aware(at))
        if index is not None:
            failures[index] += 1
    return [Hour(first + timedelta(hours=i), events[i], failures[i]) for i in range(HOURS)]


def _index(first: datetime, at: datetime | None) -> int | None:
    if at is None:
        return None
    index = int((at - first).total_seconds() // 3600)
    return index if 0 <= index < HOURS else None


def chart_bars(hours: list[Hour], width: int = 480, height: int = 96) -> dict[str, Any]:
    """Bar geometry for the inline SVG: one slot per hour, events and failures scaled to the busiest hour."""
    peak = max([h.events for h in hours] + [h.failures for h in hours] + [1])
    slot = width / max(len(hours), 1)
    bars = []
    for i, hour in enumerate(hours):
        bars.append({"x": round(i * slot, 2), "w": round(max(slot - 1, 1), 2), "hour": hour,
                     "eh": round(hour.events / peak * height, 2), "fh": round(hour.failures / peak * height, 2)})
    return {"width": width, "height": height, "peak": peak, "bars": bars}


def _aware(value: datetime | None) -> datetime | None:
    """A timestamp with its UTC zone (SQLite may hand aggregates back naive)."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
