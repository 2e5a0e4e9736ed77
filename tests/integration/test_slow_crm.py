"""A CRM that answers slowly syncs on the bulk lane, as a slow company does (issue 16; pipeline/slowlane.py).

Against the reference CRM slowed by its fault injection (``latency_ms``, every API call), with the slow-answer
threshold lowered so the test takes seconds: a live drain waits that long for the CRM, once, and the connection
goes to the slow lane; its next QBO changes are handed from the live queue to the ``backfill`` queue without a
call to the CRM on the live worker; both catch-up polls are queued there; the bulk drains wait for the slow
answers and sync every change once; a CRM that answers quickly again takes the connection out of the lane.
"""

from __future__ import annotations

import time
from functools import partial

import pytest
import requests

from crm_qb.runtime import runtime
from crm_qb.sync.pipeline import slowlane
from tests.integration.test_retry_outage import _connection, _crm_requests, _event_of, _linked_contacts
from tests.integration.test_slow_company import (
    LATENCY_MS,
    THRESHOLD,
    _backoff_over,
    _in_lane,
    _live_work,
    _polls_go_to_the_lane,
    _queued,
    _slow_answers_move_it_to_the_lane,
)
from tests.support import sync as support
from tests.support.sync import Harness
from workers.queues import BACKFILL, SYNC

qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness


def _latency(h: Harness, ms: int) -> None:
    requests.post(f"{h.crm.url}/_sandbox/faults", json={"count": 0, "latency_ms": ms}, timeout=10).raise_for_status()


def _qbo_edit(h: Harness, customer_id: str, notes: str) -> None:
    """A bookkeeper's edit in QuickBooks and its webhook."""
    h.qbo.edit_customer(customer_id, Notes=notes)
    h.qbo_hooks([h.qbo_event(customer_id)])


def _notes(h: Harness, contact_id: str) -> str | None:
    """The contact's notes, read through the reference CRM's control API (not slowed)."""
    return h.crm_user("GET", f"/contacts/{contact_id}").get("notes")  # type: ignore[no-any-return]


def test_a_slow_crm_syncs_on_the_bulk_lane_until_it_answers_quickly(harness: Harness,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness
    monkeypatch.setattr(slowlane, "SLOW_ANSWER_SECONDS", THRESHOLD)
    monkeypatch.setattr(slowlane, "SLOW_CRM_ANSWER_SECONDS", THRESHOLD)
    (first, first_customer), (second, second_customer) = _linked_contacts(h, 2)
    assert _in_lane(h) == (False, False)

    _latency(h, LATENCY_MS)
    _slow_answers_move_it_to_the_lane(h, partial(_qbo_edit, h), partial(_crm_requests, h), first_customer,
                                      second_customer)

    _polls_go_to_the_lane(h)

    _backoff_over(h)  # the first change's retry is due (a slow side is not an outage: nothing releases it early)
    h.work()  # the bulk lane waits for the slow answers: both edits reach the CRM, once each
    assert _notes(h, first) == "first, slowly" and _notes(h, second) == "second, on the bulk lane"
    assert _event_of(h, first_customer).status.value == "processed"
    assert _event_of(h, second_customer).status.value == "processed"
    assert _in_lane(h) == (True, True)  # still slow there: it stays in the lane

    _latency(h, 0)
    _qbo_edit(h, first_customer, "first, quick again")
    _live_work(h)  # handed over once more: the lane does not know yet
    h.work()  # quick answers on the bulk lane take it out of the lane
    assert _notes(h, first) == "first, quick again"
    assert _in_lane(h) == (False, False)

    _qbo_edit(h, second_customer, "second, live again")
    _live_work(h)
    assert _notes(h, second) == "second, live again"
    assert not _queued(h, BACKFILL)


def test_a_live_timeout_is_a_slow_crm_not_an_outage_and_the_rest_of_the_batch_waits_for_the_lane(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two changes in one live drain: the first gets no CRM answer within the live bound, so the second is not
    tried on the live worker (it would wait as long); it waits uncounted for the bulk lane, and no outage begins
    (health stays ok: the CRM answers, slowly). The lane syncs both, once."""
    h = harness
    monkeypatch.setattr(slowlane, "SLOW_CRM_ANSWER_SECONDS", THRESHOLD)
    (first, first_customer), (second, second_customer) = _linked_contacts(h, 2)
    _latency(h, LATENCY_MS)
    called = _crm_requests(h)
    h.qbo.edit_customer(first_customer, Notes="first of the batch")
    h.qbo.edit_customer(second_customer, Notes="second of the batch")
    h.qbo_hooks([h.qbo_event(first_customer), h.qbo_event(second_customer)])
    started = time.monotonic()
    _live_work(h)
    assert time.monotonic() - started < LATENCY_MS / 1000 + 2.0
    assert _crm_requests(h) - called == 1  # one call, not sent again, and none for the second change
    timed_out, waiting = sorted((_event_of(h, first_customer), _event_of(h, second_customer)),
                                key=lambda event: event.attempts, reverse=True)
    assert timed_out.attempts == 1 and "CrmAnswerTimeoutError" in (timed_out.status_reason or "")
    assert waiting.attempts == 0 and waiting.status_reason == "waiting: the CRM answers slowly; synced as bulk work"
    assert waiting.status.value == timed_out.status.value == "pending"
    assert _connection(h).outage_side is None and _in_lane(h) == (True, True)
    assert h.client.get("/healthz").get_json()["status"] == "ok"

    assert _backoff_over(h) == 1  # their waits are over
    _live_work(h)  # the live drain hands over to the lane
    h.work()
    assert _notes(h, first) == "first of the batch" and _notes(h, second) == "second of the batch"
    assert {_event_of(h, c).status.value for c in (first_customer, second_customer)} == {"processed"}


def test_a_crm_that_asks_for_long_waits_moves_to_the_lane_and_its_waits_are_slept_there(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A rate-limited CRM (429 with a Retry-After longer than live work waits) is slow, not failing: the live drain
    sends its call once and does not sleep; the connection moves to the lane, where the connector sleeps the wait
    and the change lands once."""
    h = harness
    monkeypatch.setattr(slowlane, "SLOW_ANSWER_SECONDS", THRESHOLD)
    monkeypatch.setattr(slowlane, "SLOW_CRM_ANSWER_SECONDS", THRESHOLD)
    [(contact, customer)] = _linked_contacts(h, 1)
    requests.post(f"{h.crm.url}/_sandbox/faults", json={"count": 2, "status": 429, "retry_after": 3},
                  timeout=10).raise_for_status()
    called = _crm_requests(h)
    _qbo_edit(h, customer, "while rate-limited")
    started = time.monotonic()
    _live_work(h)
    # the 3 s Retry-After (past the 0.4 s bound) is not slept; the margin is the burst worker's own start and stop,
    # 1.2 s on a loaded CI host
    assert time.monotonic() - started < 2.5
    assert _crm_requests(h) - called == 1 and _event_of(h, customer).status.value == "pending"
    assert _in_lane(h) == (True, True)
    assert _backoff_over(h) == 1  # its backoff is over
    h.work()  # on the lane: the second 429's 3 s are slept, then the change lands, once
    assert _notes(h, contact) == "while rate-limited"
    assert _event_of(h, customer).status.value == "processed"
    assert _in_lane(h) == (True, True)  # a wait of 3 s is a slow answer (threshold 0.4 s): still in the lane


def test_the_crm_work_a_drain_queues_follows_its_connection_to_the_lane(harness: Harness) -> None:
    """Follow-up checks and summary pushes call the CRM: while the connection is in the slow lane they are queued
    on the bulk lane, otherwise on the live ``sync`` queue (one Redis question, only when there is work)."""
    h = harness
    with h.app.app_context():
        rt = runtime()
        assert rt.jobs.check_followups(h.connection_id, ["101"]) == 1
        assert rt.jobs.push_summaries(h.connection_id, ["7"]) == 1
        assert len(_queued(h, SYNC)) == 2 and not _queued(h, BACKFILL)
        slowlane.mark(rt.redis, rt.keys, slowlane.Observed(h.connection_id, h.qbo.realm_id, {"crm": 9.0},
                                                           {"crm": 1}))
        assert rt.jobs.check_followups(h.connection_id, ["102"]) == 1
        assert rt.jobs.push_summaries(h.connection_id, ["8"]) == 1
        assert rt.jobs.check_followups(h.connection_id, []) == 0
        assert len(_queued(h, SYNC)) == 2 and len(_queued(h, BACKFILL)) == 2
