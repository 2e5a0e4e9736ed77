"""A round of catch-up polls is spread over the scheduler's minute, not queued at once (workers/sync_jobs.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from redis import Redis
from rq.registry import ScheduledJobRegistry

from crm_qb.db import db, utcnow
from crm_qb.keys import JobIds
from crm_qb.models import Connection
from crm_qb.runtime import runtime
from crm_qb.sync.pipeline import outage
from crm_qb.sync.pipeline.failures import QBO
from tests.support.connections import add_connection
from workers import sync_jobs
from workers.queues import SYNC, queue
from workers.sync_jobs import POLL_SPREAD_SECONDS, poll_delays, schedule_cdc_polls


def test_each_connection_starts_its_polls_in_turn_the_first_at_once() -> None:
    assert poll_delays([], 40.0) == {}
    assert poll_delays([7], 40.0) == {7: 0.0}
    # both polls of a connection go together; the order is the round's
    assert poll_delays([3, 3, 1, 9, 1], 30.0) == {3: 0.0, 1: 10.0, 9: 20.0}
    delays = poll_delays(list(range(1000)), POLL_SPREAD_SECONDS)
    assert max(delays.values()) < POLL_SPREAD_SECONDS < 60  # queued before the scheduler's next look


def _wire(app: Flask, realm: str, outage_side: str | None = None) -> int:
    made = add_connection(app, realm_id=realm)
    with app.app_context():
        row = db.session.get(Connection, made.id)
        assert row is not None
        row.cdc_cursor = row.crm_polled_at = utcnow() - timedelta(hours=1)  # both polls long due
        row.outage_side = outage_side
        db.session.commit()
    return made.id


def _due_in(registry: ScheduledJobRegistry, job_id: str) -> float:
    at = registry.get_scheduled_time(job_id)
    return (at.replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds()


def test_a_round_of_polls_is_spread_and_an_outage_probe_is_not_delayed(app: Flask, redis_client: Redis,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    first, second, down = _wire(app, "9001"), _wire(app, "9002"), _wire(app, "9003", outage_side=QBO)
    rt = runtime(app)
    moment = utcnow()
    monkeypatch.setattr(sync_jobs, "utcnow", lambda: moment)  # the polling periods in the job ids, known here
    now = moment.timestamp()
    with app.app_context():
        assert schedule_cdc_polls() == 6
        assert schedule_cdc_polls() == 0  # a second look in the round queues none again: delayed ones hold their ids
    live = queue(rt.redis, SYNC, rt.keys)
    delayed = ScheduledJobRegistry(queue=live)
    period, probe_period = int(now // 300), int(now // outage.PROBE_EVERY_SECONDS)
    # the first connection's polls and the probe of the company that is down: queued at once
    assert {JobIds.cdc_poll(first, period), JobIds.crm_poll(first, period),
            JobIds.cdc_poll(down, probe_period)} == set(live.job_ids)
    # the others a third and two thirds of the spread later (three connections have regular polls)
    step = POLL_SPREAD_SECONDS / 3
    for job_id, after in ((JobIds.cdc_poll(second, period), step), (JobIds.crm_poll(second, period), step),
                          (JobIds.crm_poll(down, period), 2 * step)):
        assert after - 3 < _due_in(delayed, job_id) <= after
