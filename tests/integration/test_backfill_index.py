"""The backfill's candidate index in Redis: rows appended in place, read back as written, in memory the same."""

from __future__ import annotations

from redis import Redis

from crm_qb.sync.pipeline.candidates import INDEX_TTL_SECONDS, CandidateIndex, DictStore, RedisStore, crm_keys
from crm_qb.sync.rules.matching import Candidate


def test_appending_extends_each_key_and_matches_the_in_memory_store(redis_client: Redis) -> None:
    redis_store, memory = RedisStore(redis_client, "idx"), DictStore()
    batches = [{"e:a@x.com": [["1", "a@x.com", "Ann", None, True]], "n:ann": [["1", "a@x.com", "Ann", None, True]]},
               {"n:ann": [["2", None, "Ann", "Co", False], ["3", None, "Ann", None, True]]},
               {"e:a@x.com": [["4", "a@x.com", "Ann B", None, True]], "n:bob": [["5", None, "Bob", None, True]]}]
    for rows in batches:
        redis_store.append_many(rows)
        memory.append_many(rows)
    keys = ["e:a@x.com", "n:ann", "n:bob", "n:nobody"]
    assert redis_store.get_many(keys) == memory.get_many(keys)
    assert [len(rows) for rows in redis_store.get_many(keys)] == [2, 3, 1, 0]
    assert 0 < redis_client.ttl("idx") <= INDEX_TTL_SECONDS
    redis_store.drop()
    assert redis_store.get_many(keys) == [[], [], [], []]


def test_lookup_prefers_the_newest_row_of_a_candidate(redis_client: Redis) -> None:
    index = CandidateIndex(RedisStore(redis_client, "idx"), crm_keys)
    index.add_many([(Candidate("1", "a@x.com", "Ann", None), True)])
    index.add_many([(Candidate("1", "a@x.com", "Ann", None), False), (Candidate("2", None, "Ann", None), True)])
    by_email, by_name = index.lookup({"email": "a@x.com", "display_name": "Ann", "company": None})
    assert [c.id for c in by_email] == ["1"] and [c.id for c in by_name] == ["2"], "1 is inactive now"
