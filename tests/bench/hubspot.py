"""Benchmark: a HubSpot connection's backfill against HubSpot's rate limit, and its sync latency both ways.

    .venv/bin/python -m tests.bench.hubspot [--customers 200] [--edits 20] [--quiet] [--redis-url URL]
        [--database-url URL] [--logs DIR]

Starts the QBO sandbox and the local HubSpot (``crm-qb sandbox qbo|hubspot``, HubSpot's default limits: 100
requests per 10 s), seeds a realm with ``--customers`` customers, and wires a HubSpot connection to it with
``crm-qb connection demo-hubspot`` (private-app token, QuickBooks properties created, webhooks pointed at crm-qb).

1. Backfill: ``crm-qb backfill <id>`` runs alone (no worker yet), creating a HubSpot contact per customer (and
   associating its company). Reported: wall time, HubSpot's API calls (the sandbox's request counts), the time
   HubSpot's burst limit allows for them (calls / 100 x 10 s), the ratio (DESIGN §8 target <= 1.2), 429s seen,
   and QBO's calls.
2. The backfill's echoes: crm-qb web and two workers start; HubSpot's webhooks for the created contacts (which
   failed while web was down) are sent again and settle. Reported: how long, the events, HubSpot calls spent.
3. Latency: ``--edits`` times, one at a time: a bookkeeper edits a linked customer's Notes (QBO control API)
   and HubSpot is polled until the contact's ``qb_notes`` shows it; then a HubSpot user edits another linked
   contact's ``qb_notes`` (HubSpot control API, a signed webhook follows) and QBO is polled until the customer's
   Notes shows it. Each direction: p50/p95/max from the edit, from crm-qb's receipt of the first webhook about
   the record (``inbound_events.received_at``), the edit -> receipt part (the sender's delivery) and receipt ->
   the event processed. Samples follow each other at once (the previous one's echo may still be in flight), or,
   with ``--quiet``, only once nothing is in flight. During this phase the sandbox's own limit is lifted (the
   harness's polling would otherwise eat the portal's budget); crm-qb still paces itself at 100 per 10 s.

Uses the Redis database of ``--redis-url`` (default 11; flushed before and after), a fresh SQLite file unless
``--database-url`` names an empty database, and only 127.0.0.1. Prints one JSON object. Not run in CI.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from redis import Redis
from sqlalchemy import Engine, create_engine, func, select

from crm_qb.models import ContactLink, EventSource, EventStatus, InboundEvent, LinkState
from tests.bench.sync_support import (
    CLI,
    InboundEventRow,
    Processes,
    _healthy,
    environment,
    first_event_after,
    last_event_id,
    wait_until,
)
from tests.support import ROOT, free_port

BURST, WINDOW = 100, 10.0


def main() -> None:
    """Run both phases and print the results."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--edits", type=int, default=20)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--logs", default=None, help="keep the processes' logs (INFO) in this folder")
    parser.add_argument("--quiet", action="store_true",
                        help="wait before each sample until no webhook or event is in flight (no echo queued)")
    args = parser.parse_args()
    Redis.from_url(args.redis_url).flushdb()
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        logs = Path(args.logs or tmp)
        logs.mkdir(parents=True, exist_ok=True)
        processes = Processes(logs)
        try:
            print(json.dumps(run(processes, tmp, args), indent=2))
        except Exception:
            print(processes.tails())
            raise
        finally:
            processes.stop()
            Redis.from_url(args.redis_url).flushdb()


def run(processes: Processes, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Start, wire, backfill, then measure latency."""
    qbo_info = processes.start_sandbox("qbo-sandbox", [*CLI, "sandbox", "qbo", "--port", str(free_port())])
    hs_info = processes.start_sandbox("hubspot-sandbox", [*CLI, "sandbox", "hubspot", "--port", str(free_port())])
    qbo, hs = str(qbo_info["api_base"]), str(hs_info["api_base"])
    realm = requests.post(f"{qbo}/_sandbox/realms", json={"customers": args.customers, "transactions": 0,
                                                          "seed": 21}, timeout=120).json()["realm_id"]
    web_port = free_port()
    web = f"http://127.0.0.1:{web_port}"
    env = {**environment(tmp, args.database_url or f"sqlite:///{tmp / 'bench.sqlite3'}", qbo_info, web),
           "CRM_QB_REDIS_URL": args.redis_url, "CRM_QB_QUEUE_PREFIX": "crm_qb_bench_hubspot",
           "CRM_QB_HUBSPOT_API_BASE": hs, "CRM_QB_HUBSPOT_APP_BASE": hs,
           "CRM_QB_HUBSPOT_CLIENT_ID": str(hs_info["client_id"]),
           "CRM_QB_HUBSPOT_CLIENT_SECRET": str(hs_info["client_secret"]),
           "CRM_QB_LOG_LEVEL": "INFO" if args.logs else "WARNING"}
    subprocess.run([*CLI, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
    wired = subprocess.run([*CLI, "connection", "demo-hubspot", "--api-base", hs, "--token", str(hs_info["token"]),
                            "--realm", realm, "--web-url", web, "--no-backfill"],
                           env=env, cwd=ROOT, check=True, capture_output=True, text=True)
    connection_id = int(json.loads(wired.stdout.strip().splitlines()[-1])["id"])
    backfill = _backfill(env, hs, qbo, realm, connection_id)
    processes.start("web", [*CLI, "web", "--port", str(web_port), "--workers", "2"], env)
    for n in range(2):
        processes.start(f"worker-{n}", [*CLI, "worker"], env)
    wait_until(lambda: _healthy(web), 60, "crm-qb web to answer /healthz")
    requests.post(f"{qbo}/_sandbox/webhooks", json={"url": f"{web}/webhooks/qbo", "format": "cloudevents",
                                                    "delay_ms": 0, "realm": realm}, timeout=10).raise_for_status()
    requests.post(f"{hs}/_sandbox/limits", json={"burst": 1_000_000, "search_per_second": 1_000_000},
                  timeout=10).raise_for_status()
    engine = create_engine(env["CRM_QB_DATABASE_URL"])
    try:
        echoes = _settle_backfill_echoes(hs, qbo, web, engine)
        pairs = _linked_pairs(engine, 2 * args.edits)
        latency = _latency(hs, str(hs_info["token"]), qbo, realm, pairs, engine, quiet=args.quiet)
    finally:
        engine.dispose()
    return {"customers": args.customers, "backfill": backfill, "backfill_echoes": echoes,
            "samples_wait_for_quiet": args.quiet, "latency": latency}


def _settle_backfill_echoes(hs: str, qbo: str, web: str, engine: Engine) -> dict[str, Any]:
    """Let the backfill's echoes in and settle: HubSpot's webhooks of the contacts it created failed while crm-qb
    web was down and wait for HubSpot's retries (minutes apart); naming the target again sends them at once."""
    before = requests.get(f"{hs}/_sandbox/requests", timeout=10).json()["total"]
    started = time.monotonic()
    requests.post(f"{hs}/_sandbox/webhooks", json={"url": f"{web}/webhooks/hubspot"}, timeout=10).raise_for_status()
    wait_until(lambda: _quiet(hs, qbo, engine), 300, "the backfill's echoes to settle", 0.1)
    with engine.connect() as conn:
        stored = conn.execute(select(func.count()).select_from(InboundEvent).where(
            InboundEvent.source == EventSource.CRM)).scalar()
    return {"seconds": round(time.monotonic() - started, 1), "crm_events_stored": stored,
            "hubspot_calls": requests.get(f"{hs}/_sandbox/requests", timeout=10).json()["total"] - before}


def _linked_pairs(engine: Engine, count: int) -> list[tuple[str, str]]:
    """(QBO customer, HubSpot contact) of ``count`` linked pairs, read from crm-qb's database."""
    with engine.connect() as conn:
        rows = conn.execute(select(ContactLink.qbo_customer_id, ContactLink.crm_contact_id).where(
            ContactLink.state == LinkState.LINKED).order_by(ContactLink.id).limit(count)).all()
    return [(str(q), str(c)) for q, c in rows]


def _backfill(env: dict[str, str], hs: str, qbo: str, realm: str, connection_id: int) -> dict[str, Any]:
    requests.delete(f"{hs}/_sandbox/requests", timeout=10).raise_for_status()
    requests.delete(f"{qbo}/_sandbox/realms/{realm}/requests", timeout=10)
    started = time.monotonic()
    subprocess.run([*CLI, "backfill", str(connection_id)], env=env, cwd=ROOT, check=True, capture_output=True)
    elapsed = time.monotonic() - started
    counts = requests.get(f"{hs}/_sandbox/requests", timeout=10).json()
    qbo_calls = requests.get(f"{qbo}/_sandbox/realms/{realm}/requests", timeout=10).json()
    allowed = counts["total"] / BURST * WINDOW
    return {"seconds": round(elapsed, 1), "hubspot_calls": counts["total"], "hubspot_429": counts["throttled"],
            "seconds_the_limit_allows": round(allowed, 1), "ratio": round(elapsed / allowed, 3) if allowed else None,
            "hubspot_calls_by_endpoint": counts["by_endpoint"], "qbo_calls": qbo_calls.get("total", qbo_calls)}


def _latency(hs: str, token: str, qbo: str, realm: str, pairs: list[tuple[str, str]], engine: Engine,
             *, quiet: bool) -> dict[str, Any]:
    """Alternate QBO and HubSpot edits on distinct pairs; times from the edit and from crm-qb's receipt."""
    auth = {"Authorization": f"Bearer {token}"}
    to_hubspot, to_qbo = _Direction(), _Direction()
    for n, (customer_id, contact_id) in enumerate(pairs):
        if quiet:
            wait_until(lambda: _quiet(hs, qbo, engine), 60, "the system to settle before a sample", 0.05)
        mark = f"bench {n} {time.time_ns()}"
        after = last_event_id(engine)
        edited = time.time()
        if n % 2 == 0:
            requests.patch(f"{qbo}/_sandbox/realms/{realm}/entities/Customer/{customer_id}", json={"Notes": mark},
                           timeout=10).raise_for_status()
            wait_until(lambda c=contact_id, m=mark: _notes_in_hubspot(hs, auth, c) == m, 30, "QBO -> HubSpot", 0.02)
            to_hubspot.add(edited, time.time(), first_event_after(engine, EventSource.QBO, customer_id, after))
        else:
            requests.patch(f"{hs}/_sandbox/objects/contacts/{contact_id}", json={"properties": {"qb_notes": mark}},
                           timeout=10).raise_for_status()
            wait_until(lambda c=customer_id, m=mark: _notes_in_qbo(qbo, realm, c) == m, 30, "HubSpot -> QBO", 0.02)
            to_qbo.add(edited, time.time(), first_event_after(engine, EventSource.CRM, contact_id, after))
    return {"qbo_to_hubspot": to_hubspot.report(), "hubspot_to_qbo": to_qbo.report()}


@dataclass
class _Direction:
    """One direction's samples: from the edit, from crm-qb's receipt of the webhook, and the receipt's delay."""

    from_edit: list[float] = field(default_factory=list)
    from_receipt: list[float] = field(default_factory=list)
    delivery: list[float] = field(default_factory=list)  # edit -> stored: the sender's delay and crm-qb's ingress
    to_settled: list[float] = field(default_factory=list)  # receipt -> the event marked processed by a drain
    missing: int = 0

    def add(self, edited: float, seen: float, event: InboundEventRow | None) -> None:
        """One sample: edit and poll times (epoch seconds) and the first event stored for it."""
        self.from_edit.append(seen - edited)
        if event is None:
            self.missing += 1
            return
        self.from_receipt.append(seen - event.received_at)
        self.delivery.append(event.received_at - edited)
        if event.processed_at is not None:
            self.to_settled.append(event.processed_at - event.received_at)

    def report(self) -> dict[str, Any]:
        """Percentiles of each measure."""
        return {"from_edit": _stats(self.from_edit), "from_receipt": _stats(self.from_receipt),
                "edit_to_receipt": _stats(self.delivery), "receipt_to_event_processed": _stats(self.to_settled),
                "edits_without_a_stored_webhook": self.missing}


def _quiet(hs: str, qbo: str, engine: Engine) -> bool:
    """Nothing in flight: no webhook waiting in either sandbox, no inbound event pending in crm-qb."""
    hooks = requests.get(f"{hs}/_sandbox/webhooks", timeout=10).json()
    if hooks["waiting"] or hooks["retrying"] or requests.get(f"{qbo}/_sandbox/webhooks", timeout=10).json()["pending"]:
        return False
    with engine.connect() as conn:
        return not conn.execute(select(func.count()).select_from(InboundEvent).where(
            InboundEvent.status == EventStatus.PENDING)).scalar()


def _notes_in_hubspot(hs: str, auth: dict[str, str], contact_id: str) -> str | None:
    answer = requests.get(f"{hs}/crm/v3/objects/contacts/{contact_id}", params={"properties": "qb_notes"},
                          headers=auth, timeout=10)
    return answer.json()["properties"].get("qb_notes") if answer.status_code == 200 else None


def _notes_in_qbo(qbo: str, realm: str, customer_id: str) -> str | None:
    answer = requests.get(f"{qbo}/_sandbox/realms/{realm}/entities/Customer/{customer_id}", timeout=10)
    return (answer.json().get("Customer") or {}).get("Notes")


def _stats(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"n": len(samples), "p50": round(statistics.median(ordered), 3), "p95": round(p95, 3),
            "max": round(ordered[-1], 3)}


if __name__ == "__main__":
    main()
