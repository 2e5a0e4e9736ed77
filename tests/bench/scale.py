"""Benchmark: sustained changes across many tenants with 1, 2 and 4 workers; one tenant throttled, failing or slow;
a big backfill.

    .venv/bin/python -m tests.bench.scale [--tenants 20] [--customers 20] [--rate 20] [--seconds 60]
        [--workers 1,2,4] [--scenarios scale,throttled,failing,slow,backfill] [--backfill-customers 3000]
        [--deployment plain|mixed|split] [--bulk-nice 10]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/DB] [--logs DIR]

Everything runs as its own process on 127.0.0.1, as on a production host: the QBO sandbox (one realm per
tenant), one reference CRM per tenant (each tenant is one connection: its own CRM account and company),
``crm-qb web --workers 2`` (two web processes), ``crm-qb scheduler`` and N ``crm-qb worker`` processes, on
PostgreSQL (``--database-url``, an empty database; SQLite is refused: it is a one-host store) and Redis
(``CRM_QB_BENCH_REDIS_URL``, default database 11, flushed before and after). Each tenant is wired with
``crm-qb connection demo`` (OAuth, CRM hooks, the backfill that links its customers) before any load.

The load: ``--rate`` changes a second for ``--seconds``, half QBO edits (a bookkeeper sets a customer's Notes
through the sandbox's control API; QBO sends the webhook at once) and half CRM edits (a user sets a contact's
notes; the CRM sends its hook), spread evenly over the tenants' linked records. Every change also makes an echo
on the other side (the write crm-qb makes comes back as a webhook or hook, and is a no-op). Measured from
crm-qb's own table (``inbound_events``): per side, the latency from the webhook's receipt to the event settled
(its unit committed after writing the other side), p50/p95, events settled per second while the load lasted,
the backlog when the load stopped and the time to drain it; and the CPU seconds each kind of process used
(``/proc``), which shows what saturates. A run whose settled rate stays under the offered rate and whose backlog
grows is saturated.

Scenarios, each with every ``--workers`` count:
- ``scale``: the load as above.
- ``throttled``: the same load while tenant 0's company answers every QBO call 429 (the sandbox's throttle,
  renewed through the run): the other tenants' p95 per side against ``scale``'s (target: within 20 %).
- ``failing``: the same load while tenant 0's company answers every QBO call 503 (the sandbox's fault injection,
  cleared when the load stops); ``slow``: while every call of it takes 20 s to answer. The other tenants' p95 per
  side against ``scale``'s (target: within 20 %, as for a throttled company).
- ``backfill``: the same load while one extra tenant's first sync (``--backfill-customers`` customers, three
  transactions each) runs, the load starting once it made its first links: the live tenants' p95 against
  ``scale``'s (live edits must not queue behind it, nor behind its 1,000 echoes). The first sync takes the path a
  user's does: ``crm-qb connection demo`` opens it with auto-start, so a worker computes its preview and runs it
  from the ``backfill`` queue (crm_qb/sync/firstsync, workers/firstsync_jobs.py), as the console's or the API's
  *Start* does. Its figures add ``while_bulk`` (the live p95 over the events received until the first sync and its
  backlog were done: what a first sync can delay, whether it ends early or late in the load) and the bulk work's
  timeline.

Workers (``--deployment``, alias ``--backfill-deployment``), the same for every scenario of a run, so that a
``backfill`` run and the ``scale`` run it is compared with give live work the same workers: ``plain``, the N
workers of every queue (default unless ``backfill`` is among the scenarios); ``mixed`` (default with it), as README
recommends for hosts that run first syncs, the N workers of every queue and one more live-only (``--queues
inbound,sync,scheduled``); ``split``, the N workers live-only and one bulk worker for first syncs and their backlog
(``--queues backfill --nice``, ``--bulk-nice``, default 10; its CPU is reported as ``bulk``). ``--bulk-nice`` is
also what the workers of every queue pass as their own ``--bulk-nice`` (the niceness of their bulk jobs' thread;
0 runs bulk jobs like live ones, as every worker did before 2026-12-02).

``--interleave SECONDS`` runs a troubled-tenant scenario (throttled, failing, slow, crm-*) as one load of
``--seconds`` in blocks of SECONDS, clean and troubled in turn (clean first and last), and compares the other
tenants' p95 between the two kinds of block (``interleaved``, ``p95_trouble_vs_clean``): the blocks share the
host's drift, which two runs minutes apart do not. A trouble block lasts until the troubled tenant's changes made
in it are settled, and an event that lived through any part of one counts against the trouble. With ``backfill``
it wires ``--interleave-first-syncs`` big tenants before the load and starts their first syncs one at a time, each
after a clean block of SECONDS (and one more clean block after the last): a trouble block lasts from the start
until the first sync and its backlog of echoes are done. ``--warmup SECONDS`` runs the load that long before the
first block, unmeasured (a run's first seconds are slower, whatever the blocks hold); an interleaved first-sync
run also reports each kind of process's CPU per second in either kind of block (``cpu_per_s``).

A scenario may be named more than once (``--scenarios scale,backfill,scale,backfill``): each run is compared with
the latest ``scale`` run of its worker count before it, so back-to-back pairs share the host's load of the moment.

Prints one JSON object. Not run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import requests
from redis import Redis
from rq import Queue, Worker
from rq.job import Job
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine

from crm_qb.models import ContactLink, EventSource, EventStatus, InboundEvent, LinkState, SyncRun
from crm_qb.procstat import read_process
from tests.bench.sync_support import CLI, Processes, environment, wait_until
from tests.support import ROOT, free_port

REDIS_URL = os.environ.get("CRM_QB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")
LIVE_QUEUES = "inbound,sync,scheduled"  # the documented live-only worker (README: Running on several hosts)


class Rig:
    """The wired system: sandboxes, tenants (connection, realm, CRM, linked pairs) and crm-qb's database."""

    def __init__(self, processes: Processes, tmp: Path, database_url: str) -> None:
        self.processes, self.tmp, self.database_url = processes, tmp, database_url
        self.http = requests.Session()
        self.qbo_info = processes.start_sandbox("qbo-sandbox", [*CLI, "sandbox", "qbo", "--port", str(free_port())])
        self.qbo = str(self.qbo_info["api_base"]).rstrip("/")
        self.web = f"http://127.0.0.1:{free_port()}"
        self.env = {**environment(tmp, database_url, self.qbo_info, self.web), "CRM_QB_REDIS_URL": REDIS_URL,
                    "CRM_QB_QUEUE_PREFIX": "crm_qb_bench_scale", "CRM_QB_LOG_LEVEL": "WARNING"}
        self.engine: Engine = create_engine(database_url)
        self.database = database_url.rsplit("/", 1)[1].split("?")[0]  # its name, for the server's CPU seconds
        self.tenants: list[dict[str, Any]] = []
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_web(self) -> None:
        subprocess.run([*CLI, "db", "upgrade"], env=self.env, cwd=ROOT, check=True, capture_output=True)
        port = self.web.rsplit(":", 1)[1]
        self.processes.start("web", [*CLI, "web", "--port", port, "--workers", "2"], self.env)
        self.processes.start("scheduler", [*CLI, "scheduler"], self.env)
        wait_until(lambda: _healthy(self.web), 60, "crm-qb web to answer /healthz")

    def add_tenant(self, customers: int, transactions: int = 0, seed: int = 1, kind: str = "crm",
                   first_sync: bool = True) -> dict[str, Any]:
        """Seed a realm, start its CRM (its CPU figures under ``kind``), wire a connection (its first sync started
        unless not ``first_sync``: then ``preview_first_sync`` and ``start_first_sync`` do it); return the
        tenant."""
        n = len(self.tenants)
        crm = self.processes.start_sandbox(f"{kind}-{n}", [*CLI, "sandbox", "crm", "--port", str(free_port())])
        crm_url = str(crm["api_base"]).rstrip("/")
        self.http.post(f"{crm_url}/_sandbox/limits", json={"requests": None}, timeout=10).raise_for_status()
        seeded = self.http.post(f"{self.qbo}/_sandbox/realms", timeout=600, json={
            "customers": customers, "transactions": transactions, "seed": seed + n})
        seeded.raise_for_status()
        realm = str(seeded.json()["realm_id"])
        wired = subprocess.run([*CLI, "connection", "demo", "--crm-url", crm_url, "--crm-token", str(crm["token"]),
                                "--realm", realm, "--web-url", self.web,
                                "--backfill" if first_sync else "--no-backfill"],
                               env=self.env, cwd=ROOT, check=True, capture_output=True, text=True)
        connection_id = int(json.loads(wired.stdout.strip().splitlines()[-1])["id"])
        self.http.post(f"{self.qbo}/_sandbox/webhooks", json={"url": f"{self.web}/webhooks/qbo",
                                                                "format": "cloudevents", "delay_ms": 0,
                                                                "realm": realm}, timeout=10).raise_for_status()
        tenant = {"n": n, "connection_id": connection_id, "realm": realm, "crm": crm_url, "pairs": [],
                  "crm_token": str(crm["token"])}
        self.tenants.append(tenant)
        return tenant

    def preview_first_sync(self, tenant: dict[str, Any]) -> None:
        """Open the first sync of a tenant wired without one and compute its preview (``crm-qb sync preview``), as
        a user's connection has it waiting for *Start*."""
        subprocess.run([*CLI, "sync", "preview", str(tenant["connection_id"])],
                       env=self.env, cwd=ROOT, check=True, capture_output=True, text=True)

    def start_first_sync(self, tenant: dict[str, Any]) -> None:
        """*Start* a previewed first sync (``crm-qb sync start``, as the console's button): a worker runs it from
        the ``backfill`` queue."""
        subprocess.run([*CLI, "sync", "start", str(tenant["connection_id"])],
                       env=self.env, cwd=ROOT, check=True, capture_output=True, text=True)

    def linked_pairs(self, connection_id: int) -> list[tuple[str, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(ContactLink.qbo_customer_id, ContactLink.crm_contact_id).where(
                ContactLink.connection_id == connection_id, ContactLink.state == LinkState.LINKED)).all()
        return [(str(q), str(c)) for q, c in rows if q and c]

    def start_workers(self, count: int, live_only: int = 0, bulk: int = 0, nice: int = 0) -> None:
        """Start ``count`` workers of every queue (``--bulk-nice NICE``: their bulk jobs run at that niceness),
        ``live_only`` workers that never take a first sync (``--queues inbound,sync,scheduled``) and ``bulk`` workers
        of first syncs and their backlog only (``--queues backfill --nice NICE``), and wait until every one listens
        (seconds on a busy host)."""
        commands = ([("worker", [*CLI, "worker", "--bulk-nice", str(nice)])] * count
                    + [("worker", [*CLI, "worker", "--queues", LIVE_QUEUES])] * live_only
                    + [("bulk", [*CLI, "worker", "--queues", "backfill", "--nice", str(nice), "--idle"])] * bulk)
        for n, (kind, command) in enumerate(commands):  # kind: the CPU figures' key ("bulk": the bulk workers)
            self.workers.append(self.processes.start(f"{kind}-{len(self.workers)}-{n}", command, self.env))
        redis = Redis.from_url(REDIS_URL)
        # A worker of every queue is two RQ workers: itself (the live queues) and its bulk child
        # (workers/bulk_process.py), which starts once the worker's app is up: no load while the children import.
        total = 2 * count + live_only + bulk
        wait_until(lambda: len(Worker.all(connection=redis)) >= total, 300, f"{total} workers to listen")

    def stop_workers(self) -> None:
        for process in self.workers:
            process.terminate()
        for process in self.workers:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.started = [(name, p) for name, p in self.processes.started if p not in self.workers]
        self.workers = []

    def pending(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(InboundEvent).where(
                InboundEvent.status == EventStatus.PENDING)).scalar() or 0)

    def last_event_id(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.max(InboundEvent.id))).scalar() or 0)

    def settled(self, after_id: int, tenant: dict[str, Any]) -> tuple[int, float | None]:
        """How many of ``tenant``'s events stored after ``after_id`` are not yet settled, and when the last one
        was: one aggregate query, as the first syncs' alternator asks every second while the load is measured
        (reading every event of the run each time cost the host a tenth of a core, on the measured side)."""
        with self.engine.connect() as conn:
            unsettled, last = conn.execute(select(
                func.count().filter(InboundEvent.processed_at.is_(None)), func.max(InboundEvent.processed_at))
                .where(InboundEvent.id > after_id, (InboundEvent.connection_id == tenant["connection_id"])
                       | (InboundEvent.realm_id == str(tenant["realm"])))).one()
        return int(unsettled or 0), last.timestamp() if last is not None else None

    def events(self, after_id: int) -> list[tuple[str, int | None, float, float | None, str]]:
        """(source, connection id, received, processed, status) of the events stored after ``after_id``."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(InboundEvent.source, InboundEvent.connection_id, InboundEvent.realm_id,
                                       InboundEvent.received_at, InboundEvent.processed_at, InboundEvent.status)
                                .where(InboundEvent.id > after_id)).all()
        by_realm = {t["realm"]: t["connection_id"] for t in self.tenants}
        return [(source.value, connection_id or by_realm.get(str(realm)), received.timestamp(),
                 processed.timestamp() if processed else None, status.value)
                for source, connection_id, realm, received, processed, status in rows]


def _linked_enough(rig: Rig, connection_id: int, wanted: int) -> bool:
    return len(rig.linked_pairs(connection_id)) >= wanted


def _healthy(web: str) -> bool:
    try:
        return requests.get(f"{web}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _cpu_seconds(processes: Processes, database: str = "") -> dict[str, float]:
    """CPU seconds (user + system) used so far by each kind of process we started, from /proc; with ``database``,
    also the PostgreSQL server processes serving that database on this host (``postgres``: approximate, a
    backend that ended between two readings takes its seconds with it). Beside each kind, ``<kind>_wait``: the
    seconds its threads spent runnable but waiting for a CPU (``/proc/<pid>/task/*/schedstat``), i.e. what CPU
    contention cost it (a thread that ended takes its seconds with it)."""
    used: dict[str, float] = {}

    def add(kind: str, pid: int | str) -> None:
        stat = read_process(int(pid))
        if stat is None:
            return
        used[kind] = used.get(kind, 0.0) + stat.cpu_seconds
        used[f"{kind}_wait"] = used.get(f"{kind}_wait", 0.0) + _run_queue_wait(pid)

    if database:
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                if f" {database} ".encode() not in cmdline.read_bytes() + b" ":
                    continue
            except OSError:
                continue
            add("postgres", cmdline.parent.name)
    for name, process in processes.started:
        kind = name.split("-")[0]
        add(kind, process.pid)
        for pid in _descendants(process.pid):  # a worker's bulk child (and its mirror child): its own figure
            add("bulk" if kind == "worker" and _is_bulk(pid) else kind, pid)
    add("bench", os.getpid())  # the load generator, on the same cores
    return used


def _run_queue_wait(pid: int | str) -> float:
    """Seconds the threads of ``pid`` spent waiting for a CPU while runnable (schedstat's second field)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
        try:
            total += int(task.read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total / 1e9


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started, from any of its threads (a worker starts its bulk child from a thread of
    its own, which ``task/<pid>/children`` alone does not list)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found.extend(int(p) for p in task.read_text().split())
        except OSError:
            continue
    return found


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (a worker's bulk child, the mirror child a backfill of that child starts)."""
    found = _children(pid)
    for child in list(found):
        found.extend(_descendants(child))
    return found


def _is_bulk(pid: int) -> bool:
    """Whether ``pid`` is bulk work: a worker's child serving only the ``backfill`` queue, or a mirror child."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"workers.mirror_child" in argv or (b"--queues" in argv and argv[argv.index(b"--queues") + 1:][:1]
                                               == [b"backfill"])


def _load(rig: Rig, tenants: list[dict[str, Any]], rate: float, seconds: float, tag: str,
          stop: threading.Event | None = None) -> int:
    """Make ``rate`` changes a second for ``seconds`` or until ``stop`` (alternating QBO and CRM), round-robin over
    tenants."""
    rng = random.Random(tag)
    made = 0
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        while (elapsed := time.monotonic() - started) < seconds and not (stop is not None and stop.is_set()):
            due = int(elapsed * rate) + 1
            while made < due:
                tenant = tenants[made % len(tenants)]
                customer_id, contact_id = rng.choice(tenant["pairs"])
                marker = f"{tag} {made}"
                if made % 2 == 0:
                    url = f"{rig.qbo}/_sandbox/realms/{tenant['realm']}/entities/Customer/{customer_id}"
                    pool.submit(rig.http.patch, url, json={"Notes": marker}, timeout=30)
                else:
                    pool.submit(rig.http.patch, f"{tenant['crm']}/_sandbox/contacts/{contact_id}",
                                json={"notes": marker}, timeout=30)
                made += 1
            time.sleep(0.01)
    return made


def _percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50_s": None, "p95_s": None}
    ordered = sorted(values)
    return {"n": len(ordered), "p50_s": round(statistics.median(ordered), 3),
            "p95_s": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 3)}


def _measure(rig: Rig, after: int, began: float, ended: float, drained: float | None,
             live: set[int], bulk_until: float | None = None) -> dict[str, Any]:
    """The live tenants' figures: latency per side over every event of the run; with ``bulk_until``, also over the
    events received while the bulk work ran (from the load's start until the first sync and its backlog were
    done), the ones a first sync can delay (``while_bulk``)."""
    events = [e for e in rig.events(after) if e[1] in live]
    result: dict[str, Any] = {}
    if bulk_until is not None:
        during = [e for e in events if began <= e[2] <= bulk_until and e[3] is not None]
        result["while_bulk"] = {source: _percentiles([e[3] - e[2] for e in during if e[0] == source
                                                      and e[3] is not None])
                                for source in (EventSource.QBO.value, EventSource.CRM.value)}
    for source in (EventSource.QBO.value, EventSource.CRM.value):
        mine = [e for e in events if e[0] == source]
        settled = [e for e in mine if e[3] is not None]
        in_load = [e for e in settled if e[3] is not None and e[3] <= ended]
        result[source] = {**_percentiles([e[3] - e[2] for e in settled if e[3] is not None]),
                          "received": len(mine), "settled": len(settled),
                          "settled_per_s_during_load": round(len(in_load) / (ended - began), 1)}
    result["events_per_s_during_load"] = round(sum(result[s]["settled_per_s_during_load"]
                                                   for s in ("qbo", "crm")), 1)
    result["drain_after_load_s"] = round(drained - ended, 1) if drained is not None else None
    return result


def _job_stages(rig: Rig, since: float, live: set[str], big: set[str]) -> dict[str, Any]:
    """From RQ's records of the drain jobs that finished since ``since``: the live tenants' drains' time queued
    (enqueued to started) and running (started to ended), p50/p95, so a delay can be told apart as queueing behind
    other jobs or as a slower job; and the big tenant's jobs (count and seconds of work per queue)."""
    redis = Redis.from_url(REDIS_URL)
    prefix = rig.env["CRM_QB_QUEUE_PREFIX"]
    queued: list[float] = []
    running: list[float] = []
    bulk: dict[str, dict[str, float]] = {}
    for name in ("inbound", "sync", "scheduled", "backfill"):
        ids = Queue(f"{prefix}.{name}", connection=redis).finished_job_registry.get_job_ids()
        for job in Job.fetch_many(ids, connection=redis):
            if job is None or job.enqueued_at is None or job.started_at is None or job.ended_at is None:
                continue
            enqueued = job.enqueued_at.replace(tzinfo=UTC).timestamp()
            started = job.started_at.replace(tzinfo=UTC).timestamp()
            ended = job.ended_at.replace(tzinfo=UTC).timestamp()
            if enqueued < since:
                continue
            key = str(job.args[0]) if job.args else ""
            function = (job.func_name or "").rsplit(".", 1)[-1]
            if key in big:
                mine = bulk.setdefault(f"{name}:{function}", {"jobs": 0, "seconds": 0.0})
                mine["jobs"] += 1
                mine["seconds"] = round(mine["seconds"] + ended - started, 1)
            elif key in live and function.startswith("drain_"):
                queued.append(started - enqueued)
                running.append(ended - started)
    return {"live_drains": {"queued": _percentiles(queued), "running": _percentiles(running)},
            "big_tenant_jobs": bulk}


def _bulk_window(rig: Rig, big: dict[str, Any], after: int) -> dict[str, float | None]:
    """When the big tenant's first sync started and finished, and when the last of its events (the backlog it
    left: its creates' echoes) was settled, as epoch seconds (None: not yet)."""
    with rig.engine.connect() as conn:
        run = conn.execute(select(SyncRun.started_at, SyncRun.finished_at).where(
            SyncRun.connection_id == big["connection_id"]).order_by(SyncRun.id.desc()).limit(1)).first()
    unsettled, last = rig.settled(after, big)
    return {"run_started": run[0].timestamp() if run and run[0] else None,
            "run_finished": run[1].timestamp() if run and run[1] else None,
            "backlog_settled": None if unsettled else last}


def start_deployment(rig: Rig, workers: int, deployment: str, bulk_nice: int) -> None:
    """Start the workers of ``deployment`` with ``workers`` as N (README, Benchmarks): ``plain``, N workers of every
    queue; ``mixed``, N of every queue and one live-only; ``split``, N live-only and one bulk worker
    (``--queues backfill --nice``). Every scenario of a session runs on the same deployment, so the ``scale`` run
    a ``backfill`` run is compared with had the same workers for live work."""
    if deployment == "split":
        rig.start_workers(0, live_only=workers, bulk=1, nice=bulk_nice)
    elif deployment == "mixed":
        rig.start_workers(workers, live_only=1, nice=bulk_nice)
    else:
        rig.start_workers(workers, nice=bulk_nice)


def run_scenario(rig: Rig, scenario: str, workers: int, args: argparse.Namespace) -> dict[str, Any]:
    """One scenario with ``workers`` worker processes; the figures of the live tenants."""
    live = rig.tenants[:args.tenants]
    start_deployment(rig, workers, args.deployment, args.bulk_nice)
    stop = threading.Event()
    extra: dict[str, Any] = {}
    big: dict[str, Any] | None = None
    try:
        wait_until(lambda: rig.pending() == 0, 600, "the queue to be empty before the load")
        after, cpu_before = rig.last_event_id(), _cpu_seconds(rig.processes, rig.database)
        since = time.time()
        interleaved = bool(args.interleave) and scenario in (*ISOLATED, "backfill")
        windows: list[list[float]] = []  # interleaved faults: [fault on, fault off] per trouble block
        spans: list[dict[str, float]] = []  # interleaved first syncs: started, finished, its backlog settled
        bigs: list[dict[str, Any]] = []
        block_cpu: list[tuple[float, dict[str, float]]] = []  # interleaved first syncs: CPU at each block's edge
        load_stop = threading.Event()
        if scenario == "throttled" and not interleaved:
            throttler = threading.Thread(target=_throttle, args=(rig, live[0], stop), daemon=True)
            throttler.start()
        elif scenario in ISOLATED and not interleaved:
            _trouble(rig, scenario, live[0], True, args.seconds)
        if scenario == "backfill" and interleaved:
            # Wired now, each first sync started in its own block of the load (the seeding's CPU stays out of it)
            bigs = [rig.add_tenant(args.backfill_customers, args.backfill_customers * 3, seed=99 + k, kind="bigcrm",
                                   first_sync=False) for k in range(args.interleave_first_syncs)]
            for other in bigs:
                rig.preview_first_sync(other)
            extra["backfill_tenant"] = {"customers": args.backfill_customers, "first_syncs": len(bigs),
                                        "transactions": args.backfill_customers * 3}
            wait_until(lambda: rig.pending() == 0, 600, "the wiring's events to settle")
        elif scenario == "backfill":
            big = rig.add_tenant(args.backfill_customers, args.backfill_customers * 3, seed=99, kind="bigcrm")
            extra["backfill_tenant"] = {"customers": args.backfill_customers,
                                        "transactions": args.backfill_customers * 3}
            # The load starts once the first sync is under way (its first links made): queued behind live work on
            # a saturated host, it would otherwise start only after the load and measure nothing.
            wait_until(partial(_linked_enough, rig, big["connection_id"], 1), 300, "the big first sync to start")
        began = time.time()
        cpu_at_load = _cpu_seconds(rig.processes, rig.database)
        warmup = args.warmup if interleaved else 0.0  # load not measured: the blocks begin after it
        if interleaved and bigs:
            alternator = threading.Thread(target=_alternate_first_syncs, daemon=True, args=(
                rig, bigs, args.interleave, after, spans, load_stop, block_cpu, warmup))
            alternator.start()
        elif interleaved:
            alternator = threading.Thread(target=_alternate, daemon=True, args=(
                rig, scenario, live[0], args.interleave, _blocks(args), time.monotonic() + warmup, windows, stop))
            alternator.start()
        made = _load(rig, live, args.rate, float("inf") if bigs else warmup + args.seconds,
                     f"{scenario}-{workers}", load_stop)
        ended = time.time()
        cpu_at_end = _cpu_seconds(rig.processes, rig.database)
        stop.set()
        if interleaved:
            alternator.join()  # it ends the last trouble block, if one was still on
        elif scenario in ISOLATED:  # the side answers again: its outage's next turn or probe finds it, then they sync
            _trouble(rig, scenario, live[0], False, 0)
        backlog = rig.pending()
        try:
            wait_until(lambda: rig.pending() == 0, args.drain_timeout, "the backlog to drain")
            drained: float | None = time.time()
        except AssertionError:  # wait_until: a backlog that does not drain in time is a result, not a crash
            drained = None
        measured = live[1:] if scenario in ISOLATED else live
        bulk_until = None
        if big is not None:
            window = _bulk_window(rig, big, after)
            done = [t for t in (window["run_finished"], window["backlog_settled"]) if t is not None]
            bulk_until = max(done) if len(done) == 2 else ended
            extra["bulk_work_s_after_load_start"] = {
                name: round(value - began, 1) if value is not None else None for name, value in window.items()}
            extra["bulk_work_covered_load"] = round(min(1.0, max(0.0, (bulk_until - began) / (ended - began))), 2)
        result = _measure(rig, after, began, ended, drained, {t["connection_id"] for t in measured}, bulk_until)
        if interleaved:
            if not bigs:
                spans = _fault_spans(rig.events(after), windows, live[0]["connection_id"], drained)
            extra["interleaved"] = _interleaved(rig, after, began + warmup, spans,
                                                {t["connection_id"] for t in measured})
            extra["interleaved"]["warmup_s"] = warmup
            if block_cpu:
                extra["interleaved"]["cpu_per_s"] = _cpu_per_block(block_cpu)
        stages = _job_stages(rig, since, {str(t["realm"]) for t in measured} | {str(t["connection_id"])
                                                                                 for t in measured},
                             {str(t[key]) for t in ([big] if big is not None else bigs)
                              for key in ("realm", "connection_id")})
        for other in bigs:
            rig.tenants.remove(other)
        if big is not None:
            extra["backfill_links_at_end"] = len(rig.linked_pairs(big["connection_id"]))
            rig.tenants.remove(big)
        cpu_after = _cpu_seconds(rig.processes, rig.database)
        cpu = {kind: round(cpu_after.get(kind, 0.0) - cpu_before.get(kind, 0.0), 1) for kind in cpu_after}
        cpu_load = {kind: round(cpu_at_end.get(kind, 0.0) - cpu_at_load.get(kind, 0.0), 1) for kind in cpu_at_end}
        return {"scenario": scenario, "workers": workers, "deployment": args.deployment, "changes_made": made,
                "offered_changes_per_s": args.rate, "backlog_when_load_stopped": backlog, **result,
                "cpu_seconds": cpu, "cpu_seconds_during_load": cpu_load, **stages,
                "load_average": [round(x, 1) for x in os.getloadavg()], **extra}
    finally:
        stop.set()
        rig.stop_workers()


# A company that fails for the whole load: every QBO call of tenant 0 answers 503 (``failing``), or every call
# takes 20 s to answer (``slow``: a company QuickBooks serves at the edge of the client's 30 s timeout).
FAULTS: dict[str, dict[str, Any]] = {"failing": {"error_rate": 1.0, "error_status": 503},
                                     "slow": {"latency_ms": 20000}}
# The same on the other side (the reference CRM's fault injection): tenant 0's CRM answers every API call 503
# (``crm-failing``), answers every one after 8 s (``crm-slow``: inside the REST connector's 15 s read timeout,
# so slow, not failing), or answers every one 429 with ``Retry-After: 10`` (``crm-throttled``: a CRM whose rate
# limit other apps use up).
CRM_FAULTS: dict[str, dict[str, Any]] = {"crm-failing": {"count": 1_000_000, "status": 503},
                                         "crm-slow": {"latency_ms": 8000},
                                         "crm-throttled": {"count": 1_000_000, "status": 429, "retry_after": 10}}
ISOLATED = ("throttled", *FAULTS, *CRM_FAULTS)  # scenarios where tenant 0 is in trouble and the others are measured


def _throttle(rig: Rig, tenant: dict[str, Any], stop: threading.Event) -> None:
    """Keep ``tenant``'s company answering 429 until ``stop`` (the sandbox's throttle, renewed every 20 s)."""
    while not stop.is_set():
        _trouble(rig, "throttled", tenant, True, 30)
        stop.wait(20)


def _trouble(rig: Rig, scenario: str, tenant: dict[str, Any], on: bool, seconds: float) -> None:
    """Put ``tenant`` in ``scenario``'s trouble (``on``) for about ``seconds``, or take it out of it. A throttle
    is set for ``seconds`` and ends by itself (the sandbox never shortens one); a fault stays until cleared."""
    if scenario == "throttled":
        if on:
            rig.http.post(f"{rig.qbo}/_sandbox/throttle", json={"realm": str(tenant["realm"]), "seconds": seconds},
                          timeout=10).raise_for_status()
    elif scenario in FAULTS:  # off: the company answers again; its outage's next turn or probe finds it
        if on:
            rig.http.post(f"{rig.qbo}/_sandbox/faults", json={"realm": str(tenant["realm"]), **FAULTS[scenario]},
                          timeout=10).raise_for_status()
        else:
            rig.http.delete(f"{rig.qbo}/_sandbox/faults", timeout=10).raise_for_status()
    elif scenario in CRM_FAULTS:  # off: a plan of no failures ends the storm
        rig.http.post(f"{tenant['crm']}/_sandbox/faults", json=CRM_FAULTS[scenario] if on else {"count": 0},
                      timeout=10).raise_for_status()


def _blocks(args: argparse.Namespace) -> int:
    """How many blocks ``--seconds`` holds with ``--interleave`` seconds each (odd: clean ones at both ends)."""
    return max(3, round(float(args.seconds) / float(args.interleave)))


def _alternate(rig: Rig, scenario: str, tenant: dict[str, Any], block: float, blocks: int, started: float,
               windows: list[list[float]], stop: threading.Event) -> None:
    """Clean and trouble blocks of ``block`` seconds in turn, clean first and last, recording each trouble block
    as [on, off] (epoch seconds) in ``windows``; a trouble block still on when ``stop`` is set is ended."""
    try:
        for k in range(blocks):
            if stop.wait(max(0.0, started + k * block - time.monotonic())):
                break
            if k % 2 == 1:
                _trouble(rig, scenario, tenant, True, block)
                windows.append([time.time(), 0.0])
            elif k > 0:
                _trouble(rig, scenario, tenant, False, 0)
                windows[-1][1] = time.time()
    finally:
        if windows and not windows[-1][1]:
            _trouble(rig, scenario, tenant, False, 0)
            windows[-1][1] = time.time()


def _fault_spans(events: list[tuple[str, int | None, float, float | None, str]], windows: list[list[float]],
                 troubled: int, drained: float | None) -> list[dict[str, float]]:
    """Each trouble block of a fault: on, off, and ``until``, when the troubled tenant's changes received while
    it was on were all settled (its backlog drains into the next block: that is still its trouble)."""
    end_of_run = drained if drained is not None else float("inf")
    spans: list[dict[str, float]] = []
    for on, off in windows:
        mine = [e[3] for e in events if e[1] == troubled and on <= e[2] <= off]
        settled = end_of_run if any(t is None for t in mine) else max([t for t in mine if t is not None],
                                                                      default=off)
        spans.append({"on": on, "off": off, "until": max(off, settled)})
    return spans


def _alternate_first_syncs(rig: Rig, bigs: list[dict[str, Any]], block: float, after: int,
                           spans: list[dict[str, float]], load_stop: threading.Event,
                           cpu: list[tuple[float, dict[str, float]]], warmup: float = 0.0) -> None:
    """A clean block of ``block`` seconds, then one big tenant's first sync until it and its backlog are done,
    and so on, a clean block last; then stop the load. Each first sync is recorded in ``spans`` as on (started),
    off (its run finished) and until (its backlog of echoes settled); ``cpu`` gets the processes' CPU seconds at
    every block's edge (``_cpu_per_block``). The first block begins after ``warmup`` seconds of load."""
    def sample() -> None:
        cpu.append((time.time(), _cpu_seconds(rig.processes, rig.database)))

    try:
        time.sleep(warmup)
        sample()
        for big in bigs:
            time.sleep(block)
            sample()
            on = time.time()
            rig.start_first_sync(big)
            deadline = time.monotonic() + 900
            while time.monotonic() < deadline:
                window = _bulk_window(rig, big, after)
                if window["run_finished"] is not None and window["backlog_settled"] is not None:
                    spans.append({"on": on, "off": window["run_finished"], "until": window["backlog_settled"]})
                    sample()
                    break
                time.sleep(1)
            else:
                spans.append({"on": on, "off": float("inf"), "until": float("inf")})
                return
        time.sleep(block)
        sample()
    finally:
        load_stop.set()


def _cpu_per_block(cpu: list[tuple[float, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """CPU seconds per second of each kind of process, in the clean blocks and in the trouble blocks: ``cpu`` is
    sampled at every edge, clean block first, so the k-th interval is a trouble block when k is odd. What a first
    sync adds to each process (its CRM, the QBO sandbox, PostgreSQL, crm-qb's web, the workers) and to each one's
    wait for a core (``<kind>_wait``)."""
    used: dict[str, dict[str, float]] = {"clean": {}, "trouble": {}}
    spent = {"clean": 0.0, "trouble": 0.0}
    for k in range(len(cpu) - 1):
        (start, before), (end, after) = cpu[k], cpu[k + 1]
        kind = "trouble" if k % 2 else "clean"
        spent[kind] += end - start
        for name in after:
            used[kind][name] = used[kind].get(name, 0.0) + after[name] - before.get(name, 0.0)
    return {kind: {name: round(seconds / spent[kind], 3) for name, seconds in sorted(used[kind].items())}
            for kind in used if spent[kind]}


def _interleaved(rig: Rig, after: int, began: float, spans: list[dict[str, float]],
                 measured: set[int]) -> dict[str, Any]:
    """The measured tenants' latency in the clean blocks against the trouble blocks of one interleaved run.

    Alternating blocks within one load share the host's drift (on the shared 2-core host two 120 s ``scale`` runs
    minutes apart differ by as much as the 20 % judged), so this compares what a run of each cannot. A trouble
    block lasts from the fault (or the first sync's start) until the troubled tenant's changes made during it are
    all settled, and an event counts as clean only when its whole life, received to settled, lies outside every
    trouble block: whatever the trouble may have delayed is counted against it."""
    events = [e for e in rig.events(after) if e[2] >= began]  # ``began``: the first block's start, after warm-up
    clean: dict[str, list[float]] = {"qbo": [], "crm": []}
    trouble: dict[str, list[float]] = {"qbo": [], "crm": []}
    per_block: list[dict[str, Any]] = []
    for e in events:
        if e[1] not in measured or e[3] is None:
            continue
        hit = any(e[2] < span["until"] and e[3] > span["on"] for span in spans)
        (trouble if hit else clean)[e[0]].append(e[3] - e[2])
    edges = [began, *[x for span in spans for x in (span["on"], span["until"])], float("inf")]
    for k in range(len(edges) - 1):  # each block's own p95, by receipt, for the eye (a block's sample is small)
        inside = [(e[0], e[3] - e[2]) for e in events
                  if e[1] in measured and e[3] is not None and edges[k] <= e[2] < edges[k + 1]]
        per_block.append({"block": "trouble" if k % 2 else "clean",
                          **{side: _percentiles([took for source, took in inside if source == side])
                             for side in clean}})
    figures = {side: {"clean": _percentiles(clean[side]), "trouble": _percentiles(trouble[side])} for side in clean}
    ratios: dict[str, float | None] = {}
    for side in clean:
        worse, calm = figures[side]["trouble"]["p95_s"], figures[side]["clean"]["p95_s"]
        ratios[side] = round(worse / calm, 2) if worse and calm else None
    return {"trouble_blocks": [{"s_after_load_start": round(span["on"] - began, 1),
                                "trouble_s": round(span["off"] - span["on"], 1),
                                "settled_s_after_it": round(span["until"] - span["off"], 1)} for span in spans],
            **figures,
            "p95_trouble_vs_clean": ratios,
            "blocks": per_block}


def main() -> None:
    """Set up the tenants once, run every scenario with every worker count, print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tenants", type=int, default=20)
    parser.add_argument("--customers", type=int, default=20)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--scenarios", default="scale,throttled,backfill")
    parser.add_argument("--backfill-customers", type=int, default=3000)
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--deployment", "--backfill-deployment", dest="deployment",
                        choices=("plain", "split", "mixed"), default=None,
                        help="every scenario's workers: plain = N of every queue; mixed = N of every queue + 1 "
                             "live-only; split = N live-only + 1 bulk (--queues backfill --nice). Default: mixed "
                             "when the scenarios include backfill, else plain")
    parser.add_argument("--bulk-nice", type=int, default=10,
                        help="the bulk worker's --nice (split) and the other workers' --bulk-nice")
    parser.add_argument("--database-url", required=True, help="an empty PostgreSQL database")
    parser.add_argument("--logs", default=None)
    parser.add_argument("--interleave", type=float, default=0.0, metavar="SECONDS",
                        help="for a scenario with a troubled tenant: one load of --seconds in blocks of SECONDS, "
                             "clean and troubled in turn (clean first and last), the others' p95 compared between "
                             "them (p95_trouble_vs_clean); 0, the default: the whole load troubled. For backfill: "
                             "clean blocks of SECONDS between --interleave-first-syncs first syncs, each its own "
                             "trouble block (the load lasts until the last clean block ends)")
    parser.add_argument("--warmup", type=float, default=0.0, metavar="SECONDS",
                        help="with --interleave: SECONDS of load before the first block, not measured (a run's "
                             "first seconds are slower: workers, pools and caches warming up)")
    parser.add_argument("--interleave-first-syncs", type=int, default=3,
                        help="with --interleave and backfill: how many big tenants' first syncs, one after another")
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    unknown = set(scenarios) - {"scale", "backfill", *ISOLATED}
    if unknown:  # an unknown name would run as plain `scale` and measure the wrong thing
        parser.error(f"unknown scenario(s) {sorted(unknown)}: use scale, throttled, failing, slow or backfill")
    if args.deployment is None:
        args.deployment = "mixed" if "backfill" in scenarios else "plain"
    if not args.database_url.startswith("postgresql"):
        raise SystemExit("--database-url must be PostgreSQL: several hosts share it (SQLite is a one-host store)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: still stop every process it started
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        logs = Path(args.logs or tmp)
        logs.mkdir(parents=True, exist_ok=True)
        processes = Processes(logs)
        try:
            rig = Rig(processes, Path(tmp), args.database_url)
            rig.start_web()
            setup_started = time.monotonic()
            for _ in range(args.tenants):
                rig.add_tenant(args.customers)
            rig.start_workers(2)
            for tenant in rig.tenants:
                connection_id = int(tenant["connection_id"])
                wait_until(partial(_linked_enough, rig, connection_id, max(1, args.customers // 2)), 600,
                           f"tenant {tenant['n']}'s first sync")
                tenant["pairs"] = rig.linked_pairs(connection_id)
            wait_until(lambda: rig.pending() == 0, 600, "the first syncs' echoes to settle")
            rig.stop_workers()
            setup = round(time.monotonic() - setup_started, 1)
            for scenario in scenarios:
                for workers in (int(w) for w in args.workers.split(",")):
                    results.append(run_scenario(rig, scenario, workers, args))
                    print(json.dumps(results[-1]), file=sys.stderr, flush=True)
        except Exception:
            print(processes.tails(), file=sys.stderr)
            raise
        finally:
            processes.stop()
            redis.flushdb()
    baseline: dict[int, dict[str, Any]] = {}  # the latest `scale` run of each worker count before a run
    for r in results:
        if r["scenario"] == "scale":
            baseline[r["workers"]] = r
        base = baseline.get(r["workers"])
        if r["scenario"] != "scale" and base is not None:
            r["p95_vs_scale"] = {s: round(r[s]["p95_s"] / base[s]["p95_s"], 2) if r[s]["p95_s"] and base[s]["p95_s"]
                                 else None for s in ("qbo", "crm")}
    print(json.dumps({"started": datetime.now(UTC).isoformat(), "tenants": args.tenants,
                      "customers_per_tenant": args.customers, "offered_changes_per_s": args.rate,
                      "seconds": args.seconds, "setup_s": setup, "results": results}, indent=2))


if __name__ == "__main__":
    main()
