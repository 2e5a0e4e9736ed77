"""The drain's fetch of changed QBO objects: one CDC call for a burst, its answer reused, stale answers never."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from redis import Redis

from crm_qb.keys import RedisKeys
from crm_qb.sync.pipeline.fetch import CDC_FROM_IDS, ChangeCache, current_objects

NOW = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


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
    found = current_objects(qbo, "Customer", _wanted(qbo.objects), ChangeCache(), now=NOW)  # type: ignore[arg-type]
    assert set(found) == {"0", "1", "2"} and [kind for kind, _ in qbo.calls] == ["query"]


def test_a_burst_is_one_cdc_call_and_later_batches_are_served_from_its_answer() -> None:
    objects = _burst(1000)
    qbo, cache = FakeQbo(objects), ChangeCache()
    for start in range(0, 1000, 200):  # five drain batches of one job
        batch = objects[start:start + 200]
        found = current_objects(qbo, "Customer", _wanted(batch), cache, now=NOW)  # type: ignore[arg-type]
        assert set(found) == {o["Id"] for o in batch}
    assert qbo.calls == [("cdc", NOW - timedelta(seconds=60) - timedelta(seconds=5))]


def test_an_event_newer_than_the_answer_is_read_again() -> None:
    objects = _burst(CDC_FROM_IDS)
    qbo, cache = FakeQbo(objects), ChangeCache()
    current_objects(qbo, "Customer", _wanted(objects), cache, now=NOW)  # type: ignore[arg-type]
    newer = _customer("0", NOW, Notes="later")
    qbo.objects = [newer, *objects[1:]]
    found = current_objects(qbo, "Customer", {"0": NOW, "1": None}, cache, now=NOW)  # type: ignore[arg-type]
    assert found["0"]["Notes"] == "later"
    assert qbo.calls[-1] == ("query", ["0", "1"])  # an event without a time is never served from a cached answer


def test_deleted_stubs_and_ids_missing_from_the_answer_fall_back_to_the_query() -> None:
    objects = _burst(CDC_FROM_IDS)
    stub = {"Id": "0", "status": "Deleted", "MetaData": objects[0]["MetaData"]}
    qbo = FakeQbo([stub, *objects[1:]])
    wanted = {**_wanted(objects), "absent": NOW - timedelta(seconds=30)}
    found = current_objects(qbo, "Customer", wanted, ChangeCache(), now=NOW)  # type: ignore[arg-type]
    assert set(found) == {o["Id"] for o in objects[1:]}
    assert [kind for kind, _ in qbo.calls] == ["cdc", "query"] and qbo.calls[1][1] == ["0", "absent"]


def test_changes_older_than_cdc_reaches_are_read_with_a_query() -> None:
    objects = [_customer(str(i), NOW - timedelta(days=31)) for i in range(CDC_FROM_IDS)]
    qbo = FakeQbo(objects)
    current_objects(qbo, "Customer", _wanted(objects), ChangeCache(), now=NOW)  # type: ignore[arg-type]
    assert [kind for kind, _ in qbo.calls] == ["query"]


def test_the_next_drain_job_is_served_from_the_realms_answer_in_redis(redis_client: Redis) -> None:
    objects = [_customer(str(i), NOW - timedelta(seconds=30), Balance=Decimal("12.30")) for i in range(400)]
    qbo, keys = FakeQbo(objects), RedisKeys("test_fetch")
    first = ChangeCache(redis_client, keys)
    current_objects(qbo, "Customer", _wanted(objects[:200]), first, now=NOW)  # type: ignore[arg-type]
    second = ChangeCache(redis_client, keys)  # another job, maybe on another host
    found = current_objects(qbo, "Customer", _wanted(objects[200:]), second, now=NOW)  # type: ignore[arg-type]
    assert [kind for kind, _ in qbo.calls] == ["cdc"]
    assert found["399"]["Balance"] == Decimal("12.30") and isinstance(found["399"]["Balance"], Decimal)
    assert 0 < redis_client.ttl(keys.cdc_answer(qbo.realm_id, "Customer")) <= 300


def test_a_drain_that_met_a_burst_reads_even_a_few_ids_with_cdc_and_its_answer_serves_the_rest() -> None:
    objects = _burst(200)
    qbo, cache = FakeQbo(objects), ChangeCache(burst=True)
    first = current_objects(qbo, "Customer", _wanted(objects[:3]), cache, now=NOW)  # type: ignore[arg-type]
    rest = current_objects(qbo, "Customer", _wanted(objects[3:]), cache, now=NOW)  # type: ignore[arg-type]
    assert set(first) == {"0", "1", "2"} and len(rest) == 197
    assert [kind for kind, _ in qbo.calls] == ["cdc"]


def test_a_burst_drain_still_queries_ids_without_a_change_time() -> None:
    qbo = FakeQbo(_burst(3))
    found = current_objects(qbo, "Customer", {"0": None}, ChangeCache(burst=True), now=NOW)  # type: ignore[arg-type]
    assert set(found) == {"0"} and [kind for kind, _ in qbo.calls] == ["query"]


def test_peek_finds_objects_of_other_drains_answers_however_old_and_never_calls_qbo(redis_client: Redis) -> None:
    """A job's parent is looked up without an event of its own: any state a recent CDC answer held will do."""
    objects = [_customer(str(i), NOW - timedelta(seconds=30), Balance=Decimal("1.50")) for i in range(30)]
    qbo, keys = FakeQbo(objects), RedisKeys("test_fetch_peek")
    current_objects(qbo, "Customer", _wanted(objects), ChangeCache(redis_client, keys), now=NOW)  # type: ignore[arg-type]
    other = ChangeCache(redis_client, keys)
    found = other.peek(qbo.realm_id, "Customer", ["7", "29", "404"])
    assert set(found) == {"7", "29"} and found["7"]["Balance"] == Decimal("1.50")
    assert other.peek(qbo.realm_id, "Customer", []) == {}
    assert [kind for kind, _ in qbo.calls] == ["cdc"]  # the one answer, no read for the peek
