"""Benchmark: billable CRM activity → QBO TimeActivity latency, and the QBO calls of a burst of activities.

    .venv/bin/python -m tests.bench.time [--samples 30] [--burst 500] [--customers 40] [--database-url URL]

Everything runs as real processes on 127.0.0.1, as in tests/bench/sync.py (whose harness it uses): the QBO
sandbox with a seeded realm (its employees Emily Platt and John Johnson match the reference CRM's users u1 and
u2 by name; its service items include Design), the reference CRM sending its change hooks to crm-qb, crm-qb web,
two workers and the scheduler. After the first link of ``--customers`` customers:

1. Latency, ``--samples`` times, one at a time on a quiet system: a CRM user logs a billable 45-minute call on a
   linked contact (the CRM's control API, which sends the ``activity.created`` hook); measured from the hook's
   receipt (``inbound_events.received_at``) to crm-qb storing QBO's answer to the create (the entry's
   ``updated_at`` when it became ``synced``: the TimeActivity exists in QBO by then), and to a poll of crm-qb's
   database seeing it. Target p95 <= 2 s (DESIGN §8).
2. A burst: the realm's request counts are reset, ``--burst`` billable activities are logged as fast as 8
   threads can (spread over the linked contacts and both users, half naming the Design item), and once every
   one is ``synced``, the realm's API calls are read. Target: far below one call per activity beyond the creates
   themselves, which go 30 to a batch request (``ceil(burst / 30)`` is the floor).

Uses Redis database 12 (flushed before and after; ``CRM_QB_BENCH_REDIS_URL`` or ``--redis-url`` for another), a
fresh SQLite file unless ``--database-url`` names an empty database. Prints one JSON object. Not run in CI.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from redis import Redis
from sqlalchemy import func, select

from crm_qb.models import InboundEvent, TimeEntry, TimeState
from tests.bench import sync_support
from tests.bench.sync import _percentiles, _touch_all
from tests.bench.sync_support import Processes, System, start_system, wait_until

STARTED_AT = "2026-11-30T15:00:00Z"
SAMPLE_TIMEOUT = 30.0


def _log(system: System, contact_id: str, n: int, *, owner: str = "u2", service: str | None = "Design") -> str:
    body = {"contact_id": contact_id, "owner_id": owner, "type": "call", "subject": f"bench call {n}",
            "started_at": STARTED_AT, "duration_minutes": 45, "billable": True, "service": service}
    answer = system.http.post(f"{system.crm}/_sandbox/activities", json=body, timeout=10)
    answer.raise_for_status()
    return str(answer.json()["id"])


def _entry(system: System, activity_id: str) -> Any:
    with system.engine.connect() as conn:
        return conn.execute(select(TimeEntry.state, TimeEntry.updated_at).where(
            TimeEntry.crm_activity_id == activity_id)).first()


def _received(system: System, activity_id: str) -> float | None:
    with system.engine.connect() as conn:
        value = conn.execute(select(func.min(InboundEvent.received_at)).where(
            InboundEvent.entity == "Activity", InboundEvent.entity_id == activity_id)).scalar()
    return value.timestamp() if value is not None else None


def _synced_count(system: System, activity_ids: set[str]) -> int:
    with system.engine.connect() as conn:
        rows = conn.execute(select(TimeEntry.crm_activity_id).where(TimeEntry.state == TimeState.SYNCED)).all()
    return len({row[0] for row in rows} & activity_ids)


def _latency(system: System, contacts: list[str], samples: int) -> dict[str, Any]:
    to_stored, to_seen, missing = [], [], []
    for n in range(samples):
        system.wait_quiet(60)
        activity_id = _log(system, contacts[n % len(contacts)], n)
        row = wait_until(lambda a=activity_id: (lambda r: r if r and r.state == TimeState.SYNCED else None)(
            _entry(system, a)), SAMPLE_TIMEOUT, f"activity {activity_id} to become time", interval=0.01)
        seen = time.time()
        received = _received(system, activity_id)
        if received is None:
            missing.append(activity_id)
            continue
        to_stored.append(row.updated_at.timestamp() - received)
        to_seen.append(seen - received)
    return {"from_hook_receipt_to_time_in_qbo": _percentiles(to_stored),
            "from_hook_receipt_to_poll_saw_it": _percentiles(to_seen),
            "activities_without_a_stored_hook": missing, "target_p95_s": 2.0}


def _burst(system: System, contacts: list[str], size: int) -> dict[str, Any]:
    system.wait_quiet(120)
    system.reset_qbo_requests()
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(lambda n: _log(system, contacts[n % len(contacts)], 10_000 + n,
                                          owner="u1" if n % 2 else "u2", service="Design" if n % 2 else None),
                           range(size)))
    logged = time.monotonic() - started
    wait_until(lambda: _synced_count(system, ids) == size, 600, f"{size} activities to become time", interval=0.5)
    synced = time.monotonic() - started
    system.wait_quiet(120, settle=2.0)
    counts = system.qbo_requests()
    floor = math.ceil(size / 30)
    return {"activities": size, "log_seconds": round(logged, 1), "seconds_until_all_time": round(synced, 1),
            "qbo_api_calls": counts["total"], "qbo_api_calls_by_endpoint": counts["by_endpoint"],
            "qbo_throttled": counts["throttled"], "batch_requests_floor": floor,
            "calls_beyond_the_creates": counts["total"] - counts["by_endpoint"].get("POST /batch", 0),
            "one_create_per_activity_would_cost": size}


def main() -> None:
    """Run the benchmark and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--samples", type=int, default=30, help="latency samples")
    parser.add_argument("--burst", type=int, default=500, help="activities logged in the burst")
    parser.add_argument("--customers", type=int, default=40, help="customers in the seeded realm")
    parser.add_argument("--database-url", default=None, help="an empty database (default: a fresh SQLite file)")
    parser.add_argument("--redis-url", default=os.environ.get("CRM_QB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12"),
                        help="a Redis database to flush")
    parser.add_argument("--logs", default=None, help="keep the processes' logs in this folder")
    args = parser.parse_args()
    sync_support.REDIS_URL = args.redis_url
    sync_support.QUEUE_PREFIX = f"crm_qb_bench_time_{uuid.uuid4().hex[:6]}"
    redis = Redis.from_url(args.redis_url)
    redis.flushdb()
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(args.logs or tmp)
        logs.mkdir(parents=True, exist_ok=True)
        database_url = args.database_url or f"sqlite:///{Path(tmp) / 'bench-time.sqlite3'}"
        processes = Processes(logs)
        try:
            started = time.monotonic()
            system = start_system(processes, Path(tmp), database_url, args.customers, _touch_all, True)
            wait_until(lambda: len(system.linked_pairs()) >= args.customers // 2, 300, "the first link")
            system.wait_quiet(300)
            contacts = [contact for _customer, contact in system.linked_pairs()]
            requests.post(f"{system.crm}/_sandbox/limits", json={"requests": 1_000_000}, timeout=10)
            latency = _latency(system, contacts, args.samples)
            burst = _burst(system, contacts, args.burst)
            system.engine.dispose()
        except BaseException:
            print(processes.tails(), flush=True)
            raise
        finally:
            processes.stop()
            redis.flushdb()
    print(json.dumps({"database": "postgresql" if database_url.startswith("postgresql") else "sqlite",
                      "linked_contacts": len(contacts), "activity_to_time": latency, "burst": burst,
                      "total_seconds": round(time.monotonic() - started, 1)}, indent=2))


if __name__ == "__main__":
    main()
