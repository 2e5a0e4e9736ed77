"""A company that answers slowly syncs on the bulk lane, not on the live workers other tenants need (issue 16).

Against the real QBO sandbox, slowed by its fault injection (``latency_ms``), with the slow-answer threshold
lowered so the test takes seconds: a live drain waits that long for QBO, once, and the connection goes to the
slow lane; its next changes are handed from the live queue to the ``backfill`` queue without a call to QBO on the
live worker; its catch-up poll is queued there too; the bulk drains wait for the slow answers and sync every
change once; a company that answers quickly again is taken out of the lane, and its next change is live work.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial

import pytest
import requests
from rq import Queue
from sqlalchemy import select, update

from crm_qb.db import db, utcnow
from crm_qb.models import EventStatus, InboundEvent
from crm_qb.runtime import runtime
from crm_qb.sync.pipeline import slowlane
from tests.integration.test_retry_outage import (
    _as_if_polled,
    _connection,
    _crm_edit,
    _event_of,
    _linked_contacts,
    _qbo_requests,
)
from tests.support import sync as support
from tests.support.sync import Harness
from workers import jobs
from workers.queues import BACKFILL, INBOUND, LIVE_QUEUE_NAMES, SYNC
from workers.sync_jobs import schedule_cdc_polls
from workers.worker import build_worker

qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness

THRESHOLD = 0.4  # seconds: the slow-answer threshold in this test
LATENCY_MS = 600  # the sandbox's answers when slow


def _latency(h: Harness, ms: int) -> None:
    body = {"realm": h.qbo.realm_id, "error_rate": 0.0, "latency_ms": ms}
    requests.post(f"{h.qbo.url}/_sandbox/faults", json=body, timeout=10).raise_for_status()


def _in_lane(h: Harness) -> tuple[bool, bool]:
    """Whether the realm's QBO drains and the connection's CRM drains are in the slow lane."""
    with h.app.app_context():
        rt = runtime()
        return (bool(rt.redis.exists(rt.keys.slow_lane("qbo", h.qbo.realm_id))),
                bool(rt.redis.exists(rt.keys.slow_lane("crm", str(h.connection_id)))))


def _backoff_over(h: Harness) -> int:
    """Let every pending event's wait end now and run the sweep (as the retry RQ holds would, when due); how many
    drains the sweep woke."""
    with h.app.app_context():
        db.session.execute(update(InboundEvent).values(next_attempt_at=utcnow()))
        db.session.commit()
        return jobs.sweep_inbound_events()


def _queued(h: Harness, name: str) -> list[str]:
    with h.app.app_context():
        rt = runtime()
        return Queue(rt.keys.queue(name), connection=rt.redis).job_ids


def _live_work(h: Harness) -> None:
    """Run what waits on the live queues with a live-only worker (the ``backfill`` queue stays untouched)."""
    build_worker(h.app, queues=LIVE_QUEUE_NAMES).work(burst=True)


def _slow_answers_move_it_to_the_lane(h: Harness, edit: Callable[[str, str], None], calls: Callable[[], int],
                                      first: str, second: str) -> None:
    """The slow side's first change (``edit`` of record ``first``) costs a live worker THRESHOLD, one call not sent
    again, and puts the connection in the lane, not in an outage (the side is slow, not down); the next
    (``second``) is handed to the bulk lane without a call (``calls``: the slow side's request count)."""
    called = calls()
    edit(first, "first, slowly")
    started = time.monotonic()
    _live_work(h)  # the live drain waits THRESHOLD for the slow side's answer, once, and gives its worker back
    assert time.monotonic() - started < LATENCY_MS / 1000 + 2.0
    assert calls() - called == 1  # a call that got no answer in time is not sent again on a live worker
    waiting = _event_of(h, first)
    assert waiting.status.value == "pending" and waiting.attempts == 1
    assert _in_lane(h) == (True, True)
    assert _connection(h).outage_side is None and "AnswerTimeoutError" in (waiting.status_reason or "")

    called = calls()
    edit(second, "second, on the bulk lane")
    assert _queued(h, INBOUND)  # the hook or webhook wakes a live drain, as always
    _live_work(h)  # which hands over to the bulk lane without calling the slow side
    assert calls() == called
    assert _event_of(h, second).status.value == "pending" and _event_of(h, second).attempts == 0
    assert len(_queued(h, BACKFILL)) == 1 and not _queued(h, INBOUND)


def _polls_go_to_the_lane(h: Harness) -> None:
    """Both catch-up polls, when due, are queued on the bulk lane (``backfill``), not on ``sync``."""
    _as_if_polled(h, timedelta(hours=1))
    with h.app.app_context():
        assert schedule_cdc_polls() == 2
    for poll in (f"cdc-poll-{h.connection_id}-", f"crm-poll-{h.connection_id}-"):
        assert [job_id for job_id in _queued(h, BACKFILL) if job_id.startswith(poll)]
        assert not [job_id for job_id in _queued(h, SYNC) if job_id.startswith(poll)]


def test_a_slow_company_syncs_on_the_bulk_lane_until_it_answers_quickly(harness: Harness,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness
    monkeypatch.setattr(slowlane, "SLOW_ANSWER_SECONDS", THRESHOLD)
    monkeypatch.setattr(slowlane, "SLOW_CRM_ANSWER_SECONDS", THRESHOLD)
    (first, first_customer), (second, second_customer) = _linked_contacts(h, 2)
    assert _in_lane(h) == (False, False)  # quick answers: live work

    _latency(h, LATENCY_MS)
    _slow_answers_move_it_to_the_lane(h, partial(_crm_edit, h), partial(_qbo_requests, h), first, second)
    assert len(_queued(h, BACKFILL)) == 1 and not _queued(h, INBOUND)

    _polls_go_to_the_lane(h)

    _backoff_over(h)  # the first change's retry is due (a slow side is not an outage: nothing releases it early)
    h.work()  # the bulk lane waits for the slow answers: both edits reach QBO, once each
    assert h.qbo.customer(first_customer).get("Notes") == "first, slowly"
    assert h.qbo.customer(second_customer).get("Notes") == "second, on the bulk lane"
    assert _event_of(h, first).status.value == "processed" and _event_of(h, second).status.value == "processed"
    assert _in_lane(h) == (True, True)  # still slow there: it stays in the lane

    _latency(h, 0)
    _crm_edit(h, first, "first, quick again")
    _live_work(h)  # handed over once more: the lane does not know yet
    h.work()  # quick answers on the bulk lane take it out of the lane
    assert h.qbo.customer(first_customer).get("Notes") == "first, quick again"
    assert _in_lane(h) == (False, False)

    _crm_edit(h, second, "second, live again")
    _live_work(h)
    assert h.qbo.customer(second_customer).get("Notes") == "second, live again"
    assert not _queued(h, BACKFILL)


def test_a_drain_notes_its_slowest_answer_and_the_lane_follows_it(harness: Harness,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The mark is set by a slow answer on either drain (here a QBO webhook's), covers both of the connection's
    drain keys, expires on its own, and a drain that made no call leaves the lane as it is."""
    h = harness
    monkeypatch.setattr(slowlane, "SLOW_ANSWER_SECONDS", THRESHOLD)
    monkeypatch.setattr(slowlane, "SLOW_CRM_ANSWER_SECONDS", THRESHOLD)
    [(_contact, customer)] = _linked_contacts(h, 1)
    _latency(h, LATENCY_MS)
    h.qbo_hooks([h.qbo_event(customer)])
    _live_work(h)
    assert _in_lane(h) == (True, True)
    with h.app.app_context():
        rt = runtime()
        assert 0 < rt.redis.ttl(rt.keys.slow_lane("crm", str(h.connection_id))) <= slowlane.SLOW_LANE_SECONDS
        assert slowlane.in_lane(rt.redis, rt.keys, h.connection_id)
        def seen(qbo: tuple[float, int], crm: tuple[float, int]) -> slowlane.Observed:
            return slowlane.Observed(h.connection_id, h.qbo.realm_id, {"qbo": qbo[0], "crm": crm[0]},
                                     {"qbo": qbo[1], "crm": crm[1]})

        slowlane.record(rt.redis, rt.keys, [seen((0.0, 0), (0.0, 0))], in_lane=True)  # no answer says nothing
        assert slowlane.in_lane(rt.redis, rt.keys, h.connection_id)
        slowlane.record(rt.redis, rt.keys, [seen((0.01, 3), (0.0, 0))], in_lane=False)  # a live job's: left as is
        assert slowlane.in_lane(rt.redis, rt.keys, h.connection_id)
        slowlane.record(rt.redis, rt.keys, [seen((0.0, 0), (0.01, 2))], in_lane=True)  # the CRM's quick answers
        assert slowlane.in_lane(rt.redis, rt.keys, h.connection_id)  # say nothing of QuickBooks, the slow side
    # the live drain gave up (its retry waits in RQ's delayed set): when it is due, its event's backoff is over
    assert _backoff_over(h) == 1
    h.work()  # the drain hands over to the bulk lane, which waits for the slow answer: the change is settled, once
    with h.app.app_context():
        assert not db.session.scalars(select(InboundEvent).where(InboundEvent.status != EventStatus.PROCESSED)).all()
        db.session.rollback()
