"""Benchmark: sync latency both ways and the QBO API calls of a 1,000-change burst, all real processes on 127.0.0.1.

    .venv/bin/python -m tests.bench.sync [--edits 50] [--burst 1000] [--database-url URL] [--no-scheduler]

Starts the QBO sandbox (``crm-qb sandbox qbo``), the reference CRM (``crm-qb sandbox crm``), crm-qb web
(``crm-qb web --workers 2``), two ``crm-qb worker`` processes and ``crm-qb scheduler`` (it promotes the
retries of failed jobs and runs the sweep and the 5-minute CDC polls, as in production; ``--no-scheduler`` leaves
it out), seeds a sandbox realm with ``--burst`` customers, wires one connection with
``crm-qb connection demo`` (OAuth against the sandbox, CRM change hooks registered, the backfill), points the
realm's webhooks at crm-qb with ``delay_ms`` 0 (no aggregation delay) and waits for the first link. Then it
measures (targets in the README, Benchmarks):

1. QBO edit -> CRM updated, for ``--edits`` linked customers, one at a time: a bookkeeper edits the customer's
   Notes through the sandbox control API; the CRM contact is polled until the value appears. Reported from the
   webhook's receipt (``inbound_events.received_at`` of the first QBO event for that customer after the edit) and
   from the edit, to the contact's own ``updated_at`` (the CRM's timestamp of the write) and to when the poll saw
   it. Target p95 <= 2 s from receipt.
2. CRM edit -> QBO updated, for ``--edits`` other linked contacts: a CRM user edits the notes (CRM control API);
   the QBO customer is polled (sandbox control read) until the value appears (QBO keeps whole seconds only, so
   the poll's time is used). From the CRM hook's receipt and from the edit. Target p95 <= 1 s.
3. A burst: the QBO request counts are reset, every seeded customer is edited once through the control API
   (which QBO does not count), and once every webhook is delivered, every event processed and every CRM echo
   settled, the realm's API calls are read. Beside them: the webhook events received, i.e. what one read per
   event would cost. Target <= 3 calls (issue 16; it was <= 10).

Setup: each seeded customer is edited once as a bookkeeper before crm-qb starts (at most 300 a second), which
gives every customer a fresh LastUpdatedTime; ``crm-qb connection demo`` then links them with the connection's
backfill. (This step dates from before the backfill existed, when the first link was a one-hour CDC poll, and
before the poll fell back to queries for windows too dense for CDC; it is kept so that results stay comparable.)
The realm's one 500-character DisplayName is shortened to 255 first (``renamed_customers``): the reference CRM
refuses longer names, and that record would only add a recorded failure (tests/bench/sync_support.py).

Each sample waits for the system to be quiet first (no webhook, hook or inbound event in flight), so samples do
not queue behind each other's echoes. Prints one JSON object. Uses Redis database 13 (flushed before and after),
a fresh SQLite file in a temporary folder unless ``--database-url`` names an empty database, and only
127.0.0.1. Process logs go to a temporary folder (``--logs DIR`` keeps them). Not run in CI.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from redis import Redis

from crm_qb.models import EventSource
from tests.bench.sync_support import REDIS_URL, Processes, System, seeded_customer_ids, start_system, wait_until

POLL_SECONDS = 0.01
SAMPLE_TIMEOUT = 30.0
TOUCH_PER_SECOND = 300


def _percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50_s": None, "p95_s": None, "max_s": None}
    ordered = sorted(values)
    p95 = ordered[max(0, -(-len(ordered) * 95 // 100) - 1)]  # nearest rank
    return {"n": len(ordered), "p50_s": round(statistics.median(ordered), 3), "p95_s": round(p95, 3),
            "max_s": round(ordered[-1], 3)}


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC).timestamp()


def _touch_all(edit: Callable[[str], None], ids: list[str]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(edit, ids))


def _touch_paced(edit: Callable[[str], None], ids: list[str]) -> None:
    """Edit every customer, at most TOUCH_PER_SECOND per second (see the module docstring)."""
    for start in range(0, len(ids), TOUCH_PER_SECOND):
        began = time.monotonic()
        _touch_all(edit, ids[start:start + TOUCH_PER_SECOND])
        time.sleep(max(0.0, 1.1 - (time.monotonic() - began)))


def _wait_for_first_link(system: System, expected: int) -> dict[str, Any]:
    started = time.monotonic()
    wait_until(system.cdc_polled, 300, "the first CDC poll to finish (see the worker logs)", interval=0.5)
    system.wait_quiet(600)
    return {"seconds": round(time.monotonic() - started, 1), "customers": expected, "links": system.link_states(),
            "qbo_api_calls": system.qbo_requests()}


def _qbo_to_crm(system: System, pairs: list[tuple[str, str]], tag: str) -> dict[str, Any]:
    from_receipt, from_edit, receipt_to_seen, missing = [], [], [], []
    for n, (customer_id, contact_id) in enumerate(pairs):
        system.wait_quiet(60)
        after = system.last_event_id()
        value = f"bench qbo->crm {tag} {n}"
        edited = time.time()
        system.edit_customer(customer_id, Notes=value)
        contact = wait_until(lambda cid=contact_id, v=value: _contact_with(system, cid, v), SAMPLE_TIMEOUT,
                             f"contact {contact_id} to show {value!r}", interval=POLL_SECONDS)
        seen = time.time()
        updated = _epoch(contact["updated_at"])
        event = system.first_event_after(EventSource.QBO, customer_id, after)
        from_edit.append(updated - edited)
        if event is None:
            missing.append(customer_id)
            continue
        from_receipt.append(updated - event.received_at)
        receipt_to_seen.append(seen - event.received_at)
    return {"from_webhook_receipt_to_crm_write": _percentiles(from_receipt),
            "from_edit_to_crm_write": _percentiles(from_edit),
            "from_webhook_receipt_to_poll_saw_it": _percentiles(receipt_to_seen),
            "edits_without_a_stored_webhook": missing, "target_p95_s": 2.0}


def _contact_with(system: System, contact_id: str, notes: str) -> dict[str, Any] | None:
    contact = system.contact(contact_id)
    return contact if contact.get("notes") == notes else None


def _crm_to_qbo(system: System, pairs: list[tuple[str, str]], tag: str) -> dict[str, Any]:
    from_receipt, from_edit, missing = [], [], []
    for n, (customer_id, contact_id) in enumerate(pairs):
        system.wait_quiet(60)
        after = system.last_event_id()
        value = f"bench crm->qbo {tag} {n}"
        edited = time.time()
        system.edit_contact(contact_id, notes=value)
        wait_until(lambda cid=customer_id, v=value: system.customer(cid).get("Notes") == v, SAMPLE_TIMEOUT,
                   f"customer {customer_id} to show {value!r}", interval=POLL_SECONDS)
        seen = time.time()
        event = system.first_event_after(EventSource.CRM, contact_id, after)
        from_edit.append(seen - edited)
        if event is None:
            missing.append(contact_id)
            continue
        from_receipt.append(seen - event.received_at)
    return {"from_hook_receipt_to_qbo_updated": _percentiles(from_receipt),
            "from_edit_to_qbo_updated": _percentiles(from_edit),
            "edits_without_a_stored_hook": missing, "target_p95_s": 1.0}


def _burst(system: System, customer_ids: list[str], linked: list[tuple[str, str]], tag: str) -> dict[str, Any]:
    # As settled as after the burst: the last CRM edit's echo (QBO's webhook of crm-qb's own update, and the read
    # that recognises it) was otherwise sometimes counted in the burst.
    system.wait_quiet(120, settle=2.0)
    system.reset_qbo_requests()
    after = system.last_event_id()
    delivered_before = system.qbo_webhooks()["delivered"]
    crm_calls_before = system.crm_requests()
    since = datetime.now(UTC).isoformat()
    marker = f"bench burst {tag}"
    started = time.monotonic()
    _touch_all(lambda cid: system.edit_customer(cid, Notes=f"{marker} {cid}"), customer_ids)
    edit_seconds = time.monotonic() - started
    system.wait_quiet(1800, settle=2.0)
    settled_seconds = time.monotonic() - started
    counts = system.qbo_requests()
    events = system.events_after(after)
    reflected = {c["id"] for c in system.contacts_updated_since(since)
                 if str(c.get("notes") or "").startswith(marker)}
    linked_contacts = {contact_id for _customer, contact_id in linked}
    qbo_events = sum(events["by_source"].get("qbo", {}).values())
    return {
        "customers_edited": len(customer_ids), "edit_seconds": round(edit_seconds, 1),
        "seconds_until_settled": round(settled_seconds, 1),
        "qbo_api_calls": counts["total"], "qbo_api_calls_by_endpoint": counts["by_endpoint"],
        "qbo_throttled": counts["throttled"],
        "webhook_events_received": qbo_events,
        "one_read_per_event_would_cost": qbo_events,
        "webhook_events_delivered_by_sandbox": system.qbo_webhooks()["delivered"] - delivered_before,
        "inbound_events": events,
        "linked_contacts": len(linked_contacts), "linked_contacts_showing_the_edit": len(reflected & linked_contacts),
        "crm_api_calls": system.crm_requests() - crm_calls_before,
        "target_qbo_api_calls": 3,
    }


def main() -> None:
    """Run the benchmark and print one JSON object with every figure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--edits", type=int, default=50, help="samples per direction")
    parser.add_argument("--burst", type=int, default=1000, help="customers in the realm, each edited in the burst")
    parser.add_argument("--database-url", default=None, help="an empty database (default: a fresh SQLite file)")
    parser.add_argument("--no-scheduler", dest="scheduler", action="store_false",
                        help="leave crm-qb scheduler out (no retries of failed jobs, no sweep, no CDC polls)")
    parser.add_argument("--logs", default=None, help="keep the processes' logs in this folder")
    args = parser.parse_args()
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    tag = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(args.logs or tmp)
        logs.mkdir(parents=True, exist_ok=True)
        database_url = args.database_url or f"sqlite:///{Path(tmp) / 'bench-sync.sqlite3'}"
        processes = Processes(logs)
        try:
            started = time.monotonic()
            system = start_system(processes, Path(tmp), database_url, args.burst, _touch_paced,
                                  args.scheduler)
            first_link = _wait_for_first_link(system, args.burst)
            renamed = system.renamed_customers
            pairs = system.linked_pairs()
            if len(pairs) < 2 * args.edits:
                raise RuntimeError(f"only {len(pairs)} linked pairs; need {2 * args.edits} for --edits")
            qbo_to_crm = _qbo_to_crm(system, pairs[:args.edits], tag)
            crm_to_qbo = _crm_to_qbo(system, pairs[args.edits:2 * args.edits], tag)
            burst = _burst(system, seeded_customer_ids(args.burst), pairs, tag)
            system.engine.dispose()
        except BaseException:
            print(processes.tails(), flush=True)
            raise
        finally:
            processes.stop()
            redis.flushdb()
    print(json.dumps({
        "database": "postgresql" if database_url.startswith("postgresql") else "sqlite",
        "edits": args.edits, "burst": args.burst, "scheduler": args.scheduler,
        "first_link": first_link, "renamed_customers": renamed,
        "qbo_edit_to_crm": qbo_to_crm, "crm_edit_to_qbo": crm_to_qbo, "burst_api_calls": burst,
        "total_seconds": round(time.monotonic() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
