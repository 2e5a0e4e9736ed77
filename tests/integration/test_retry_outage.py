"""Outages and lost hooks lose nothing (issue 11 items 1 and 2, issue 10 item 9), against both real sandboxes.

- Waiting for the connection's lock is not an attempt, however often it happens.
- A one-hour QBO outage (the QBO sandbox answering 503 to everything), compressed: crm-qb's clock for the event
  state machine and the sweep is moved forward three minutes per step while a CRM user keeps editing; every edit
  reaches QBO once QBO answers again, none is failed, and health says degraded during the outage and ok after.
  The end of the outage is found by the scheduler's probe (the CDC poll every minute), not by a person.
- A company that answers 503 to everything is called once a turn (5 s, then as long as the outage has lasted, at
  most 15 s), not once per change: the drain that finds it down retries once, a turn's drain not at all, and
  the other changes wait uncounted until a turn or the probe's success releases them.
- A CRM edit whose hook never arrived is found by the CRM catch-up poll; one made while sync was off is applied
  when sync is turned on (with the CLI), as is a QBO edit made meanwhile.
- One QBO object that cannot be applied (whatever it raises) is a failed, replayable event, and the CDC poll
  completes and moves its cursor.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from redis import Redis
from rq import Queue
from sqlalchemy import select, update

from crm_qb.cli import main
from crm_qb.db import db, utcnow
from crm_qb.keys import JobIds, RedisKeys
from crm_qb.locks import RenewingLock
from crm_qb.models import Connection, EventStatus, InboundEvent
from crm_qb.qbo.client import QboClient
from crm_qb.qbo.faults import ServerError
from crm_qb.runtime import runtime
from crm_qb.sync import services as sync_services
from crm_qb.sync.pipeline import drain as drain_module
from crm_qb.sync.pipeline import outage
from tests.conftest import settings_env
from tests.support import sync as support
from tests.support.sync import Harness
from workers import jobs
from workers.sync_jobs import poll_crm_connection, poll_qbo_connection, schedule_cdc_polls

qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness


class Clock:
    """crm-qb's clock for the event state machine and the sweep, moved by the test."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    """A movable clock for next attempts, due events and the sweep; the QBO client retries without sleeping."""
    moved = Clock()
    monkeypatch.setattr("crm_qb.sync.pipeline.events.utcnow", moved)
    monkeypatch.setattr("crm_qb.sync.pipeline.outage.utcnow", moved)
    monkeypatch.setattr("workers.jobs.utcnow", moved)
    monkeypatch.setattr(QboClient, "_delay", lambda _self, _attempt, _exc: 0.0)
    yield moved


def _linked_contacts(h: Harness, count: int) -> list[tuple[str, str]]:
    """``count`` CRM contacts, each linked to the QBO customer the sync created for it: (contact, customer)."""
    made = []
    for index in range(count):
        contact = h.crm_user("POST", "/contacts", {"first_name": "Outage", "last_name": f"Person{index}",
                                                   "email": f"outage{index}@example.com"})
        h.crm_hook("created", contact)
        made.append(contact["id"])
    h.work()
    by_contact = {link.crm_contact_id: str(link.qbo_customer_id) for link in h.links()}
    return [(contact_id, by_contact[contact_id]) for contact_id in made]


def _crm_edit(h: Harness, contact_id: str, notes: str, *, hook: bool = True) -> None:
    edited = h.crm_user("PATCH", f"/contacts/{contact_id}", {"notes": notes})
    if hook:
        h.crm_hook("updated", edited)


def _qbo_outage(h: Harness, on: bool) -> None:
    body = {"realm": h.qbo.realm_id, "error_rate": 1.0 if on else 0.0, "error_status": 503}
    requests.post(f"{h.qbo.url}/_sandbox/faults", json=body, timeout=10).raise_for_status()


def _statuses(h: Harness) -> dict[str, int]:
    with h.app.app_context():
        rows = db.session.execute(select(InboundEvent.status, InboundEvent.attempts)).all()
        db.session.rollback()
    counts: dict[str, int] = {}
    for status, _attempts in rows:
        counts[status.value] = counts.get(status.value, 0) + 1
    return counts


def _connection(h: Harness) -> Connection:
    with h.app.app_context():
        row = db.session.get(Connection, h.connection_id)
        assert row is not None
        db.session.expunge(row)
        return row


def _advance(h: Harness, clock: Clock, by: timedelta) -> None:
    """Move crm-qb's clock; the wait for a connection's next turn in an outage (a Redis expiry) passes too."""
    clock.now += by
    with h.app.app_context():
        rt = runtime()
        rt.redis.delete(rt.keys.outage_turn(h.connection_id))


def _sweep_and_work(h: Harness) -> None:
    with h.app.app_context():
        jobs.sweep_inbound_events()
    h.work()


def _as_if_polled(h: Harness, ago: timedelta) -> None:
    """Give the connection both poll cursors, as a backfill and later polls would have."""
    with h.app.app_context():
        db.session.execute(update(Connection).values(cdc_cursor=utcnow() - ago, crm_cursor=utcnow() - ago,
                                                     crm_polled_at=utcnow() - ago))
        db.session.commit()


def test_waiting_for_the_connection_lock_is_not_an_attempt(harness: Harness, redis_client: Redis,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness
    [(contact_id, _customer)] = _linked_contacts(h, 1)
    _crm_edit(h, contact_id, "while locked")
    monkeypatch.setattr(sync_services, "LOCK_WAIT_SECONDS", 0.2)
    monkeypatch.setattr(drain_module, "DRAIN_LOCK_WAIT_SECONDS", 0.2)
    holder = RenewingLock(redis_client, runtime(h.app).keys.sync_lock(h.connection_id), wait=0)
    assert holder.acquire()
    try:
        with h.app.app_context():
            for _ in range(20):  # more drains than any retry schedule allows
                assert jobs.drain_crm_connection(str(h.connection_id)) == 0  # deferred: the worker is given back
            delayed = Queue(runtime().keys.queue("inbound"), connection=redis_client).scheduled_job_registry
            assert delayed.get_job_ids()  # each comes back from RQ's delayed set
    finally:
        holder.release()
    assert h.failed_events() == []  # no attempt counted on any event
    with h.app.app_context():
        jobs.drain_crm_connection(str(h.connection_id))  # the delayed drain, when it is due
    assert h.qbo.customer(_customer).get("Notes") == "while locked"


def test_a_throttled_company_is_waited_for_not_an_attempt(harness: Harness, clock: Clock) -> None:
    h = harness
    [(contact_id, customer_id)] = _linked_contacts(h, 1)
    requests.post(f"{h.qbo.url}/_sandbox/throttle", json={"realm": h.qbo.realm_id, "seconds": 600},
                  timeout=10).raise_for_status()
    _crm_edit(h, contact_id, "after the throttle")
    for _ in range(3):
        with h.app.app_context():
            assert jobs.drain_crm_connection(str(h.connection_id)) == 0  # deferred: the worker is given back
    assert h.failed_events() == [] and _connection(h).outage_side is None  # waiting: no attempt, no outage
    requests.post(f"{h.qbo.url}/_sandbox/clock", json={"offset_seconds": 900}, timeout=10).raise_for_status()
    with h.app.app_context():
        rt = runtime()
        rt.redis.delete(rt.keys.rate_budget(h.qbo.realm_id, "holdoff"))  # the hold-off's own minute has passed too
        jobs.drain_crm_connection(str(h.connection_id))
    assert h.qbo.customer(customer_id).get("Notes") == "after the throttle"


def test_a_company_throttled_while_its_changes_are_read_is_waited_for_not_an_attempt(harness: Harness) -> None:
    """A QBO change's drain reads the customer before it plans anything; a throttle met there ends the drain and
    it comes back from RQ's delayed set, with no attempt counted (it used to count one per drain and schedule the
    next by the failure backoff, so the drain that came back when the throttle ended found the event not due)."""
    h = harness
    [(_contact, customer_id)] = _linked_contacts(h, 1)
    h.qbo.edit_customer(customer_id, Notes="while throttled")
    requests.post(f"{h.qbo.url}/_sandbox/throttle", json={"realm": h.qbo.realm_id, "seconds": 600},
                  timeout=10).raise_for_status()
    h.qbo_hook(customer_id)
    with h.app.app_context():
        rt = runtime()
        delayed = Queue(rt.keys.queue("inbound"), connection=rt.redis).scheduled_job_registry
        for _ in range(3):
            assert jobs.drain_qbo_realm(h.qbo.realm_id) == 0  # deferred: the worker is given back
        assert delayed.get_job_ids()  # it comes back from RQ's delayed set
        attempts = db.session.scalars(select(InboundEvent.attempts).where(
            InboundEvent.status == EventStatus.PENDING)).all()
        db.session.rollback()
    assert attempts and set(attempts) == {0}  # waiting: no attempt
    assert h.failed_events() == [] and _connection(h).outage_side is None
    requests.post(f"{h.qbo.url}/_sandbox/clock", json={"offset_seconds": 900}, timeout=10).raise_for_status()
    with h.app.app_context():
        rt = runtime()
        rt.redis.delete(rt.keys.rate_budget(h.qbo.realm_id, "holdoff"))
        jobs.drain_qbo_realm(h.qbo.realm_id)  # the delayed drain, when it is due: the event is due too
    assert h.contact(_contact).get("notes") == "while throttled"


def test_nothing_is_lost_through_a_one_hour_qbo_outage(harness: Harness, clock: Clock) -> None:
    h = harness
    pairs = _linked_contacts(h, 5)
    _as_if_polled(h, timedelta(minutes=1))
    _qbo_outage(h, True)
    last: dict[str, str] = {}
    for step in range(20):  # one edit every three minutes for an hour
        contact_id, customer_id = pairs[step % len(pairs)]
        last[customer_id] = f"edit {step} during the outage"
        _crm_edit(h, contact_id, last[customer_id])
        _sweep_and_work(h)
        _advance(h, clock, timedelta(minutes=3))
        _sweep_and_work(h)
        if step == 0:
            assert h.client.get("/healthz").get_json()["status"] == "degraded"
            assert _connection(h).outage_side == "qbo"
    assert all(h.qbo.customer(c).get("Notes") != v for c, v in last.items())  # QBO really was down
    statuses = _statuses(h)
    assert "failed" not in statuses and statuses["pending"] >= len(last), statuses
    with h.app.app_context():
        attempts = db.session.scalar(select(InboundEvent.attempts).order_by(InboundEvent.attempts.desc()))
    assert attempts and attempts > 1  # retried during the hour (a turn every step), and still waiting

    _qbo_outage(h, False)
    with h.app.app_context():
        assert schedule_cdc_polls() >= 1  # the probe: the CDC poll of a connection in an outage is due every minute
    h.work()  # the poll answers: the outage ends and every waiting event resumes at once, without the sweep
    assert {c: h.qbo.customer(c).get("Notes") for c in last} == last
    assert _statuses(h).get("pending", 0) == 0 and "failed" not in _statuses(h)
    assert _connection(h).outage_side is None
    assert h.client.get("/healthz").get_json()["status"] == "ok"


def _qbo_requests(h: Harness) -> int:
    answer = requests.get(f"{h.qbo.url}/_sandbox/realms/{h.qbo.realm_id}/requests", timeout=10)
    answer.raise_for_status()
    return int(answer.json()["total"])


def _event_of(h: Harness, contact_id: str) -> InboundEvent:
    with h.app.app_context():
        row = db.session.scalars(select(InboundEvent).where(InboundEvent.entity_id == contact_id)
                                 .order_by(InboundEvent.id.desc()).limit(1)).one()
        db.session.expunge(row)
        return row


def test_a_failing_company_is_called_once_a_turn_not_once_per_change(harness: Harness, clock: Clock) -> None:
    """A company answering 503 to everything: the drain that finds it down gives up after one quick retry (two
    calls, not the client's default six); while the outage lasts one drain per turn calls QBO, once, and the
    others' changes wait for the next turn uncounted; the probe's success releases every one of them."""
    h = harness
    (first, first_customer), (second, second_customer) = _linked_contacts(h, 2)
    _as_if_polled(h, timedelta(minutes=1))
    _qbo_outage(h, True)
    before = _qbo_requests(h)
    _crm_edit(h, first, "first, during the outage")
    h.work()
    assert _qbo_requests(h) - before == 2  # one call and one retry, then the event backs off
    assert _event_of(h, first).attempts == 1 and _connection(h).outage_side == "qbo"

    called = _qbo_requests(h)
    _crm_edit(h, second, "second, change 0")
    h.work()  # the outage's first turn: one call, no retry
    assert _qbo_requests(h) - called == 1 and _event_of(h, second).attempts == 1

    called = _qbo_requests(h)
    _crm_edit(h, second, "second, change 1")
    h.work()  # before the next turn: nobody is called, the change waits for it, uncounted
    waiting = _event_of(h, second)
    assert waiting.attempts == 0 and waiting.status_reason == "waiting: qbo is not answering"
    with h.app.app_context():  # and its drain comes back by itself at the next turn, not at the sweep's
        rt = runtime()
        assert Queue(rt.keys.queue("inbound"), connection=rt.redis).scheduled_job_registry.get_job_ids()
    for step in range(2, 4):  # changes meanwhile add no drain: the delayed one will see them
        _crm_edit(h, second, f"second, change {step}")
        h.work()
        assert _event_of(h, second).attempts == 0
    assert _qbo_requests(h) == called

    _advance(h, clock, timedelta(minutes=2))
    with h.app.app_context(), pytest.raises(ServerError):  # the delayed drain, when it is due: the next turn,
        jobs.drain_crm_connection(str(h.connection_id))  # one call (the oldest change); the others wait uncounted
    assert _qbo_requests(h) - called == 1
    assert (_event_of(h, first).attempts, _event_of(h, second).attempts) == (2, 0)

    _qbo_outage(h, False)
    with h.app.app_context():
        assert schedule_cdc_polls() >= 1  # the probe
    h.work()
    assert h.qbo.customer(first_customer).get("Notes") == "first, during the outage"
    assert h.qbo.customer(second_customer).get("Notes") == "second, change 3"
    assert _statuses(h).get("pending", 0) == 0 and "failed" not in _statuses(h)
    assert _connection(h).outage_side is None


def _crm_faults(h: Harness, count: int) -> None:
    requests.post(f"{h.crm.url}/_sandbox/faults", json={"count": count, "status": 503}, timeout=10).raise_for_status()


def _crm_requests(h: Harness) -> int:
    answer = requests.get(f"{h.crm.url}/_sandbox/requests", timeout=10)
    answer.raise_for_status()
    return int(answer.json()["total"])


def test_a_failing_crm_is_called_once_a_turn_not_once_per_change(harness: Harness, clock: Clock) -> None:
    """The CRM side of the same rule: a CRM answering 503 to everything costs a drain one call and one quick
    retry (not the connector's default five calls, about 5.6 s asleep), then one call per turn; the other changes
    wait uncounted, and every one of them reaches the CRM once the CRM poll (its probe) finds it back."""
    h = harness
    [(contact, customer)] = _linked_contacts(h, 1)
    _as_if_polled(h, timedelta(minutes=1))
    _crm_faults(h, 1_000_000)
    before = _crm_requests(h)
    h.qbo.edit_customer(customer, Notes="from QBO, during the CRM outage")
    h.qbo_hooks([h.qbo_event(customer)])
    h.work()
    assert _crm_requests(h) - before == 2  # one call and one retry, then the event backs off
    assert _connection(h).outage_side == "crm"

    called = _crm_requests(h)
    h.qbo.edit_customer(customer, Notes="from QBO, change 1")
    h.qbo_hooks([h.qbo_event(customer)])
    h.work()  # the outage's first turn: one call, no retry
    assert _crm_requests(h) - called == 1

    called = _crm_requests(h)
    h.qbo.edit_customer(customer, Notes="from QBO, change 2")
    h.qbo_hooks([h.qbo_event(customer)])
    h.work()  # before the next turn: nobody is called, the change waits for it, uncounted
    assert _crm_requests(h) == called

    _crm_faults(h, 0)
    with h.app.app_context():
        assert schedule_cdc_polls() >= 1  # the CRM's probe
    h.work()  # its success releases the waiting changes and queues their drain now, not at the delayed one's turn
    assert h.contact(contact).get("notes") == "from QBO, change 2"
    assert _statuses(h).get("pending", 0) == 0 and "failed" not in _statuses(h)
    assert _connection(h).outage_side is None


def test_the_turns_of_an_outage_back_off_with_its_age(redis_client: Redis) -> None:
    keys, now = RedisKeys("turns-test"), utcnow()
    for age, step in ((0, 5.0), (3, 5.0), (8, 8.0), (12, 12.0), (20, 15.0), (86400, 15.0)):
        redis_client.delete(keys.outage_turn(7))
        assert outage.take_turn(redis_client, keys, 7, now - timedelta(seconds=age), now) is None  # taken
        wait = outage.take_turn(redis_client, keys, 7, now - timedelta(seconds=age), now)  # the next drain waits
        assert wait is not None and step - 1 < wait <= step, (age, wait)
    assert outage.take_turn(redis_client, keys, 8, None, now) is None  # no start recorded: the first step


def test_the_crm_poll_finds_an_edit_whose_hook_was_lost(harness: Harness) -> None:
    h = harness
    [(contact_id, customer_id), (other_id, other_customer)] = _linked_contacts(h, 2)
    _as_if_polled(h, timedelta(minutes=10))
    _crm_edit(h, contact_id, "no hook came", hook=False)
    with h.app.app_context():
        assert poll_crm_connection(h.connection_id) == 1  # only the changed contact: the other's version is known
        assert poll_crm_connection(h.connection_id) == 0  # the same version is stored once
    h.work()
    assert h.qbo.customer(customer_id).get("Notes") == "no hook came"
    assert h.qbo.customer(other_customer).get("Notes") is None
    assert other_id


def test_a_crm_poll_that_finds_many_changes_hands_them_to_the_bulk_lane(harness: Harness,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A live CRM poll reads at most a few pages (the first poll after a 3,000-customer first sync read every
    contact the run had made, up to 1.1 s of a live worker); one that finds more stores what it read, leaves its
    cursor, and hands the whole poll to the bulk lane, which reads every page."""
    h = harness
    linked = _linked_contacts(h, 3)
    _as_if_polled(h, timedelta(minutes=10))
    for contact_id, _customer in linked:
        _crm_edit(h, contact_id, "its hook was lost", hook=False)
    monkeypatch.setattr("crm_qb.sync.pipeline.crm_poll.PAGE_SIZE", 1)
    monkeypatch.setattr("workers.sync_jobs.LIVE_PAGES", 2)
    rt = runtime(h.app)
    with h.app.app_context():
        cursor = db.session.get(Connection, h.connection_id).crm_cursor  # type: ignore[union-attr]
        db.session.rollback()
        assert poll_crm_connection(h.connection_id) == 2  # two pages read live, then handed over
        assert db.session.get(Connection, h.connection_id).crm_cursor == cursor  # type: ignore[union-attr]
        db.session.rollback()
    assert Queue(rt.keys.queue("backfill"), connection=rt.redis).job_ids == [
        JobIds.bulk_crm_poll(h.connection_id)]
    h.work()
    assert [h.qbo.customer(customer).get("Notes") for _contact, customer in linked] == ["its hook was lost"] * 3


def test_turning_sync_on_catches_up_both_sides(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness
    [(contact_id, customer_id), (_other, other_customer)] = _linked_contacts(h, 2)
    _as_if_polled(h, timedelta(minutes=1))
    settings = h.app.extensions["crm_qb"].settings
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    assert runner.invoke(main, ["connection", "configure", str(h.connection_id), "--set",
                                "sync.enabled=false"]).exit_code == 0

    _crm_edit(h, contact_id, "made while sync was off")  # its hook arrives and is settled as skipped
    h.qbo.edit_customer(other_customer, Notes="QBO edit while off")
    h.qbo_hook(other_customer)
    h.work()
    assert h.qbo.customer(customer_id).get("Notes") is None

    result = runner.invoke(main, ["connection", "configure", str(h.connection_id), "--set", "sync.enabled=true"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["enabled"] is True
    h.work()  # the two catch-up polls the command queued, then the drain of what the CRM poll found
    assert h.qbo.customer(customer_id).get("Notes") == "made while sync was off"
    contact_of_other = next(lk.crm_contact_id for lk in h.links() if lk.qbo_customer_id == other_customer)
    assert h.contact(str(contact_of_other))["notes"] == "QBO edit while off"


def test_a_cursor_older_than_cdc_allows_is_caught_up_with_queries(harness: Harness) -> None:
    h = harness
    clock_url = f"{h.qbo.url}/_sandbox/clock"
    requests.post(clock_url, json={"offset_seconds": -36 * 86400}, timeout=10).raise_for_status()
    [(contact_id, customer_id)] = _linked_contacts(h, 1)
    _as_if_polled(h, timedelta(days=40))  # sync was off for 40 days: CDC looks back 30 at most
    requests.post(clock_url, json={"offset_seconds": -35 * 86400}, timeout=10).raise_for_status()
    h.qbo.edit_customer(customer_id, Notes="edited 35 days ago")  # stamped by QBO's clock, out of CDC's reach
    requests.post(clock_url, json={"offset_seconds": 0}, timeout=10).raise_for_status()
    assert h.qbo.customer(customer_id)["MetaData"]["LastUpdatedTime"] < (utcnow() - timedelta(days=34)).isoformat()
    with h.app.app_context():
        assert poll_qbo_connection(h.connection_id) >= 1
    assert h.contact(contact_id)["notes"] == "edited 35 days ago"
    cursor = _connection(h).cdc_cursor
    assert cursor is not None and utcnow() - cursor < timedelta(minutes=5)


def test_one_object_that_cannot_be_applied_never_stops_the_cdc_poll(harness: Harness,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from crm_qb.sync.pipeline import poll

    h = harness
    _as_if_polled(h, timedelta(minutes=1))
    bad = h.qbo.create_customer(DisplayName="Cannot Apply")
    good = h.qbo.create_customer(DisplayName="Applies Fine")
    real = poll.sync_customer

    def refuse_one(ctx: Any, customer: dict[str, Any], events: Any) -> str:
        if customer["Id"] == bad["Id"]:
            raise LookupError("a value no backend stores")  # neither transient nor one of crm-qb's own errors
        return real(ctx, customer, events)

    monkeypatch.setattr(poll, "sync_customer", refuse_one)
    before = _connection(h).cdc_cursor
    with h.app.app_context():
        assert poll_qbo_connection(h.connection_id) >= 2
    assert _connection(h).cdc_cursor not in (None, before)  # the poll completed and moved on
    assert h.link_of_customer(good["Id"]).crm_contact_id
    with h.app.app_context():
        failed = db.session.execute(select(InboundEvent.entity_id, InboundEvent.status_reason)
                                    .where(InboundEvent.status == EventStatus.FAILED)).all()
        db.session.rollback()
    assert [(row.entity_id, row.status_reason) for row in failed] == [
        (bad["Id"], "LookupError: a value no backend stores")]

    monkeypatch.undo()
    with h.app.app_context():
        from workers.maintenance import replay_events

        assert replay_events("failed") == 1
    h.work()
    assert h.link_of_customer(bad["Id"]).crm_contact_id  # replayed through the ordinary drain


def test_one_event_that_breaks_a_batchs_bulk_fetch_fails_alone(harness: Harness,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness
    first = h.qbo.create_customer(DisplayName="Batch First")
    second = h.qbo.create_customer(DisplayName="Batch Second")
    real = QboClient.read_many

    def refuse_bogus(self: QboClient, entity: str, ids: Any, **options: Any) -> Any:
        if "999999" in set(ids):
            raise LookupError("QuickBooks refused the query")  # neither transient nor a side down
        return real(self, entity, ids, **options)

    monkeypatch.setattr(QboClient, "read_many", refuse_bogus)
    for customer_id in (first["Id"], "999999", second["Id"]):
        h.qbo_hook(customer_id, "created")
    with h.app.app_context(), pytest.raises(LookupError):
        jobs.drain_qbo_realm(h.qbo.realm_id)
    assert h.link_of_customer(first["Id"]).crm_contact_id and h.link_of_customer(second["Id"]).crm_contact_id
    with h.app.app_context():
        rows = db.session.execute(select(InboundEvent.entity_id, InboundEvent.status, InboundEvent.attempts)
                                  .order_by(InboundEvent.id)).all()
        db.session.rollback()
    assert [(r.entity_id, r.status.value, r.attempts) for r in rows] == [
        (first["Id"], "processed", 0), ("999999", "pending", 1), (second["Id"], "processed", 0)]
