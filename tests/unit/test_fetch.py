"""The drain's fetch of changed QBO objects: one CDC call for a burst, its answer reused, stale answers never."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from redis import Redis

from crm_qb.keys import RedisKeys
from crm_qb.sync.pipeline.fetch import CDC_FROM_IDS, ChangeCache, current_objects

NOW = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


class _ReceivedEarlier(Mapping[str, datetime]):
    """Every event received before the test's CDC calls (those start at the real time.time(), after NOW)."""

    def __getitem__(self, key: str) -> datetime:
        return NOW - timedelta(minutes=1)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


RECEIVED = _ReceivedEarlier()


def _json_copy(obj: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(obj, default=str), parse_float=Decimal) | {"Balance": obj.get("Balance", Decimal("0"))}


def _customer(cid: str, updated: datetime, **extra: Any) -> dict[str, Any]:
    return {"Id": cid, "MetaData": {"LastUpdatedTime": updated.isoformat()}, **extra}


class FakeQbo:
    """Answers CDC from a fixed list of objects and queries by id; records every call."""

    realm_id = "9130350000000001"

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects
        self.calls: list[tuple[str, Any]] = []

    def cdc(self, entities: list[str], since: datetime) -> dict[str, Any]:
        self.calls.append(("cdc", since))
        changed = [o for o in self.objects if datetime.fromisoformat(o["MetaData"]["LastUpdatedTime"]) >= since]
        return {"CDCResponse": [{"QueryResponse": [{entities[0]: [_json_copy(o) for o in changed]}]}]}

    def read_many(self, entity: str, ids: Any, *, include_inactive: bool = False) -> dict[str, dict[str, Any]]:
        wanted = set(ids)
        self.calls.append(("query", sorted(wanted)))
        return {o["Id"]: o for o in self.objects if o["Id"] in wanted and o.get("status") != "Deleted"}


def _burst(n: int) -> list[dict[str, Any]]:
    return [_customer(str(i), NOW - timedelta(seconds=60) + timedelta(milliseconds=i)) for i in range(n)]


def _wanted(objects: list[dict[str, Any]]) -> dict[str, datetime | None]:
    return {o["Id"]: datetime.fromisoformat(o["MetaData"]["LastUpdatedTime"]) for o in objects}


def test_a_few_ids_are_read_with_one_query() -> None:
    qbo = FakeQbo(_burst(3))
    found = current_objects(qbo, "Customer", _wanted(qbo.objects), ChangeCache(), now=NOW, received=RECEIVED)  # type: ignore[arg-type]
    assert set(found) == {"0", "1", "2"} and [kind for kind, _ in qbo.calls] == ["query"]


def test_a_burst_is_one_cdc_call_and_later_batches_are_served_from_its_answer() -> None:
    objects = _burst(1000)
    qbo, cache = FakeQbo(objects), ChangeCache()
    for start in range(0, 1000, 200):  # five drain batches of one job
        batch = objects[start:start + 200]
        found = current_objects(qbo, "Customer", _wanted(batch), cache, now=NOW, received=RECEIVED)  # type: ignore[arg-type]
        assert set(found) == {o["Id"] for o in batch}
    assert qbo.calls == [("cdc", NOW - timedelta(seconds=60) - timedelta(seconds=5))]


def test_an_event_newer_than_the_answer_is_read_again() -> None:
    objects = _burst(CDC_FROM_IDS)
    qbo, cache = FakeQbo(objects), ChangeCache()
    current_objects(qbo, "Customer", _wanted(objects), cache, now=NOW, received=RECEIVED)  # type: ignore[arg-type]
    newer = _customer("0", NOW, Notes="later")
    qbo.objects = [newer, *objects[1:]]
    found = current_objects(qbo, "Customer", {"0": NOW, "1": None}, cache, now=NOW, received=RECEIVED)  # type: ignore[arg-type]
    assert found["0"]["Notes"] == "later"
    assert qbo.calls[-1] == ("query", ["0", "1"])  # an event without a time is never served from a cached answer


def test_deleted_stubs_and_ids_missing_from_the_answer_fall_back_to_the_query() -> None:
    objects = _burst(CDC_FROM_IDS)
    stub = {"Id": "0", "status": "Deleted", "MetaData": objects[0]["MetaData"]}
    qbo = FakeQbo([stub, *objects[1:]])
    wanted = {**_wanted(objects), "absent": NOW - timedelta(seconds=30)}
    found = current_objects(qbo, "Customer", wanted, ChangeCache(), now=NOW, received=RECEIVED)  # type: ignore[arg-type]
    assert set(found) == {o["Id"] for o in objects[1:]}
    assert [kind for kind, _ in qbo.calls] == ["cdc", "query"] and qbo.calls[1][1] == ["0", "absent"]


def test_changes_older_than_cdc_reaches_are_read_with_a_query() -> None:
    objects = [_customer(str(i), NOW - timedelta(days=31)) for i in range(CDC_FROM_IDS)]
    qbo = FakeQbo(objects)
    current_objects(qbo, "Customer", _wanted(objects), ChangeCache(), now=NOW, received=RECEIVED)  # type: ignore[arg-type]
    assert [kind for kind, _ in qbo.calls] == ["query"]


def test_the_next_drain_job_is_served_from_the_realms_answer_in_redis(redis_client: Redis) -> None:
    objects = [_customer(str(i), NOW - timedelta(seconds=30), Balance=Decimal("12.30")) for i in range(400)]
    qbo, keys = FakeQbo(objects), RedisKeys("test_fetch")
    first = ChangeCache(redis_client, keys)
    current_objects(qbo, "Customer", _wanted(objects[:200]), first, now=NOW, received=RECEIVED)  # type: ignore[arg-type]
    second = ChangeCache(redis_client, keys)  # another job, maybe on another host
    found = current_objects(qbo, "Customer", _wanted(objects[200:]), second, now=NOW, received=RECEIVED)  # type: ignore[arg-type]
    assert [kind for kind, _ in qbo.calls] == ["cdc"]
    assert found["399"]["Balance"] == Decimal("12.30") and isinstance(found["399"]["Balance"], Decimal)
    assert 0 < redis_client.ttl(keys.cdc_answer(qbo.realm_id, "Customer")) <= 300


def test_a_drain_that_met_a_burst_reads_even_a_few_ids_with_cdc_and_its_answer_serves_the_rest() -> None:
    objects = _burst(200)
    qbo, cache = FakeQbo(objects), ChangeCache(burst=True)
    first = current_objects(qbo, "Customer", _wanted(objects[:3]), cache, now=NOW, received=RECEIVED)  # type: ignore[arg-type]
    rest = current_objects(qbo, "Customer", _wanted(objects[3:]), cache, now=NOW, received=RECEIVED)  # type: ignore[arg-type]
    assert set(first) == {"0", "1", "2"} and len(rest) == 197
    assert [kind for kind, _ in qbo.calls] == ["cdc"]


def test_a_burst_drain_still_queries_ids_without_a_change_time() -> None:
    qbo = FakeQbo(_burst(3))
    found = current_objects(qbo, "Customer", {"0": None}, ChangeCache(burst=True), now=NOW, received=RECEIVED)  # type: ignore[arg-type]
    assert set(found) == {"0"} and [kind for kind, _ in qbo.calls] == ["query"]


def test_peek_finds_objects_of_other_drains_answers_however_old_and_never_calls_qbo(redis_client: Redis) -> None:
    """A job's parent is looked up without an event of its own: any state a recent CDC answer held will do."""
    objects = [_customer(str(i), NOW - timedelta(seconds=30), Balance=Decimal("1.50")) for i in range(30)]
    qbo, keys = FakeQbo(objects), RedisKeys("test_fetch_peek")
    current_objects(qbo, "Customer", _wanted(objects), ChangeCache(redis_client, keys), now=NOW, received=RECEIVED)  # type: ignore[arg-type]
    other = ChangeCache(redis_client, keys)
    found = other.peek(qbo.realm_id, "Customer", ["7", "29", "404"])
    assert set(found) == {"7", "29"} and found["7"]["Balance"] == Decimal("1.50")
    assert other.peek(qbo.realm_id, "Customer", []) == {}
    assert [kind for kind, _ in qbo.calls] == ["cdc"]  # the one answer, no read for the peek


def test_an_answer_read_before_a_same_second_change_was_received_does_not_serve_it(redis_client: Redis) -> None:
    """QBO keeps whole seconds: an answer holding the customer as of second S, read before the webhook of a second
    change within S arrived, is the state *before* that change. Served, the change was settled as unchanged and lost
    until the customer's next change; it is read again instead (in this job and from Redis in the next one)."""
    first = _customer("7", NOW - timedelta(seconds=30), Notes="first")
    qbo, keys = FakeQbo([first]), RedisKeys("test_fetch_same_second")
    cache = ChangeCache(redis_client, keys, burst=True)
    current_objects(qbo, "Customer", _wanted([first]), cache, now=NOW, received=RECEIVED)  # type: ignore[arg-type]
    qbo.objects = [{**first, "Notes": "second"}]  # changed again within the same second, after that answer
    late = {"7": datetime.now(UTC)}  # its webhook received after the answer was read
    time.sleep(0.01)
    for reader in (cache, ChangeCache(redis_client, keys)):  # this job, then the next one (from Redis)
        found = current_objects(qbo, "Customer", _wanted([first]), reader, now=NOW, received=late)  # type: ignore[arg-type]
        assert found["7"]["Notes"] == "second"
    assert [kind for kind, _ in qbo.calls] == ["cdc", "cdc"]  # read again once; that answer then serves it


def test_an_object_of_a_later_second_serves_without_a_receipt_time() -> None:
    newer = _customer("3", NOW - timedelta(seconds=10))
    qbo, cache = FakeQbo([newer]), ChangeCache()
    cache.keep(qbo.realm_id, "Customer", [newer])  # no call time known (an entry from before this rule)
    found = current_objects(qbo, "Customer", {"3": NOW - timedelta(seconds=20)}, cache, now=NOW)  # type: ignore[arg-type]
    assert set(found) == {"3"} and qbo.calls == []
