"""Benchmark: a full backfill of a seeded QBO sandbox realm against the rate limit, and its memory at two sizes.

    .venv/bin/python -m tests.bench.backfill [--sizes 2000:6000,20000:60000] [--full] [--database-url URL]
        [--first-sync [--share PERCENT]]

For each size (customers:transactions; ``--full`` is 100000:300000, the size of the README's backfill target) a
fresh child process starts the QBO sandbox and the reference CRM as their own processes (``crm-qb sandbox
qbo|crm`` on free 127.0.0.1 ports), seeds a realm (``POST /_sandbox/realms``, seed 1, single currency) with the
sandbox limit at 500 calls/min, connects a new connection to it (OAuth against the sandbox) with an empty CRM, and runs
``run_backfill`` in-process. Each child reports: wall time, the realm's QBO API calls (the sandbox's request
counts) and the CRM's (the reference CRM's, whose default limit is HubSpot's 100 requests per 10 s), the minimum
time each side's rate limit allows for them (QBO calls / 500 x 60 s, CRM calls / 100 x 10 s), the slower side's
minimum as the bound, the ratio of the wall time to it (target <= 1.2), the
objects per phase, the CPU seconds the backfill used (every thread of the child) and those the two sandboxes
used meanwhile (``sandbox_cpu_s``, from /proc: they run on the same cores, so on a small host their CPU is part of
the wall time), the host's 1-minute load average at the end, and the child's peak RSS (``resource.getrusage``,
which also covers the setup; the sandboxes run in other processes). Comparing the two sizes shows whether memory
grows with the data.

``--first-sync`` measures the console's first sync instead (``crm_qb/sync/firstsync``: the same backfill, every
object's outcome recorded and a checkpoint saved per page, pages read on one thread): its preview is computed
first (reported as ``preview_s``, not in the wall time), then the run is started and executed in-process, and
its phases are the run's counts.

``--share PERCENT`` (with ``--first-sync``) runs it with the bulk pacer of a worker (``workers.queues``: its
process's CPU and its local PostgreSQL backends' counted) at that share, as if live work were about all along but
never under way at a look, and reports how much of a core it used (``share``: the process's CPU and its backends'
over the wall time; the pacer's looks and rests). What a worker's bulk child would take from live work on its host
(docs/benchmarks-history.md, "The bulk share made to hold").

Uses Redis database 12 (``CRM_QB_BENCH_REDIS_URL`` overrides it; its keys, all under its prefix, are deleted
before and after, nothing else), a fresh SQLite file per size unless ``--database-url`` names an empty PostgreSQL
database, and only 127.0.0.1. Prints one JSON object. Not run in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from cryptography.fernet import Fernet
from redis import Redis

from crm_qb.procstat import read_process
from tests.support import ROOT, free_port

REDIS_URL = os.environ.get("CRM_QB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
CLI = [sys.executable, "-m", "crm_qb.cli"]
RATE_PER_MINUTE = 500
PREFIX = "crm_qb_bench_backfill"


def _start_sandbox(kind: str, logs: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start ``crm-qb sandbox <kind>`` on a free port; return the process and its ready line."""
    log = (logs / f"{kind}.log").open("wb")
    process = subprocess.Popen([*CLI, "sandbox", kind, "--port", str(free_port())], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=log)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        raise RuntimeError(f"{kind} sandbox exited before it was ready; see {logs / (kind + '.log')}")
    return process, json.loads(line)


def _settings(workdir: Path, database_url: str | None, qbo: dict[str, Any]) -> Any:
    from crm_qb.config import load_settings

    return load_settings({
        "CRM_QB_INSTANCE_PATH": str(workdir / "instance"), "CRM_QB_REDIS_URL": REDIS_URL,
        "CRM_QB_SECRET_KEY": "bench", "CRM_QB_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "CRM_QB_QUEUE_PREFIX": PREFIX,
        "CRM_QB_DATABASE_URL": database_url or f"sqlite:///{workdir / 'crm_qb.sqlite3'}",
        "CRM_QB_QBO_ENVIRONMENT": "local", "CRM_QB_QBO_CLIENT_ID": qbo["client_id"],
        "CRM_QB_QBO_CLIENT_SECRET": qbo["client_secret"], "CRM_QB_QBO_REDIRECT_URI": "http://127.0.0.1:5000/qbo/cb",
        "CRM_QB_QBO_DISCOVERY_URL": qbo["discovery_url"], "CRM_QB_QBO_API_BASE": qbo["api_base"],
        "CRM_QB_QBO_APP_BASE": qbo["app_base"],
        # 0: the transaction walk on the backfill's threads, as before the transaction process (README)
        "CRM_QB_BACKFILL_PROCESS": os.environ.get("CRM_QB_BACKFILL_PROCESS", "1"),
        "CRM_QB_QBO_WEBHOOK_VERIFIER_TOKEN": qbo["verifier_token"],
    })


def _connect(app: Any, crm: dict[str, Any], realm: str) -> int:
    """Create a connection to the CRM and connect it to ``realm`` (the sandbox consents at once)."""
    from crm_qb.app import upgrade_schema
    from crm_qb.connections import create_connection
    from crm_qb.runtime import runtime

    upgrade_schema(app)
    with app.app_context():
        made = create_connection(runtime(app).secrets, crm_url=crm["api_base"], crm_token=crm["token"], name="bench")
        services = runtime(app).qbo()
        consent = requests.get(services.oauth.authorization_url("bench") + f"&realm={realm}",
                               allow_redirects=False, timeout=10)
        code = parse_qs(urlsplit(consent.headers["Location"]).query)["code"][0]
        services.store.save(str(made.connection.id), services.oauth.exchange_code(code, realm))
        return int(made.connection.id)


def _forget(redis: Redis) -> None:
    """Delete this benchmark's keys (all carry its prefix), leaving the rest of the database alone."""
    for key in redis.scan_iter(match=f"{PREFIX}*"):
        redis.delete(key)


def _cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """CPU time (user + system) of this process so far, every thread included (``RUSAGE_CHILDREN``: of its
    children that ended, i.e. the backfill's transaction process; the sandboxes end after the measurement)."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _process_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of another process so far, from /proc (a sandbox's: it shares our cores)."""
    stat = read_process(pid)
    if stat is None:
        raise OSError(f"no process {pid} to read")
    return stat.cpu_seconds


def _sandboxes_cpu(started: list[tuple[subprocess.Popen[bytes], dict[str, Any]]]) -> dict[str, float]:
    return {kind: _process_cpu_seconds(process.pid) for kind, (process, _info) in zip(("qbo", "crm"), started,
                                                                                       strict=True)}


def run_one(customers: int, transactions: int, database_url: str | None,
            first_sync: bool = False, share: float | None = None) -> dict[str, Any]:
    """Set up one size, backfill it (or run its first sync), and return the measurements (in a child process)."""
    from crm_qb.app import create_app
    from crm_qb.runtime import runtime
    from crm_qb.sync.pipeline.backfill import run_backfill

    redis = Redis.from_url(REDIS_URL)
    _forget(redis)
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        workdir = Path(tmp)
        started = [_start_sandbox("qbo", workdir), _start_sandbox("crm", workdir)]
        try:
            qbo, crm = started[0][1], started[1][1]
            control = f"{qbo['api_base']}/_sandbox"
            requests.post(f"{control}/limits", json={"per_minute": RATE_PER_MINUTE}, timeout=10).raise_for_status()
            seeded = requests.post(f"{control}/realms", timeout=600, json={
                "customers": customers, "transactions": transactions, "multicurrency": False, "seed": 1})
            seeded.raise_for_status()
            realm = seeded.json()["realm_id"]
            app = create_app(_settings(workdir, database_url, qbo))
            connection_id = _connect(app, crm, realm)
            requests.delete(f"{control}/realms/{realm}/requests", timeout=10).raise_for_status()
            crm_control = crm["api_base"].rstrip("/") + "/_sandbox"
            crm_limit = requests.get(f"{crm_control}/limits", timeout=10).json()
            requests.post(f"{crm_control}/reset", timeout=10).raise_for_status()  # empty CRM; counts from zero
            preview_s, share_taken = None, None
            if first_sync:
                run_id, preview_s = _previewed_first_sync(app, connection_id)
                requests.delete(f"{control}/realms/{realm}/requests", timeout=10).raise_for_status()
            crm_before = requests.get(f"{crm_control}/requests", timeout=10).json()
            rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            cpu_before, sandboxes_before = _cpu_seconds(), _sandboxes_cpu(started)
            children_before = _cpu_seconds(resource.RUSAGE_CHILDREN)
            began = time.monotonic()
            with app.app_context():
                if first_sync:
                    phases = _first_sync(app, run_id, share)
                    share_taken = phases.pop("share", None)
                else:
                    phases = {name: {k: v for k, v in counts_.items() if v} for name, counts_ in
                              run_backfill(runtime(app).sync_services(), connection_id).to_json()["phases"].items()}
            wall = time.monotonic() - began
            cpu = _cpu_seconds() - cpu_before
            cpu_children = _cpu_seconds(resource.RUSAGE_CHILDREN) - children_before
            sandboxes_cpu = {kind: round(used - sandboxes_before[kind], 1)
                             for kind, used in _sandboxes_cpu(started).items()}
            load = os.getloadavg()[0]
            counts = requests.get(f"{control}/realms/{realm}/requests", timeout=10).json()
            crm_counts = _less(requests.get(f"{crm_control}/requests", timeout=10).json(), crm_before)
        finally:
            for process, _info in started:
                process.terminate()
                try:
                    process.wait(60)
                except subprocess.TimeoutExpired:  # a loaded host: the measurement is taken, stop it hard
                    process.kill()
                    process.wait()
            _forget(redis)
    calls, crm_calls = int(counts["total"]), int(crm_counts["total"])
    qbo_allowed = calls / RATE_PER_MINUTE * 60
    crm_allowed = crm_calls / crm_limit["requests"] * crm_limit["window_seconds"] if crm_limit["requests"] else 0.0
    allowed = max(qbo_allowed, crm_allowed)
    return {
        "customers": customers, "transactions": transactions, "wall_s": round(wall, 1),
        "cpu_s": round(cpu + cpu_children, 1), "cpu_main_s": round(cpu, 1),
        "cpu_txn_process_s": round(cpu_children, 1),
        "sandbox_cpu_s": sandboxes_cpu, "load_average_1m_at_end": round(load, 1),
        "qbo_calls": calls, "qbo_throttled": counts.get("throttled"),
        "qbo_calls_by_endpoint": counts.get("by_endpoint"), "qbo_rate_limit_min_s": round(qbo_allowed, 1),
        "crm_calls": crm_calls, "crm_calls_by_endpoint": crm_counts.get("endpoints"),
        "crm_rate_limit": crm_limit, "crm_rate_limit_min_s": round(crm_allowed, 1),
        "rate_limit_min_s": round(allowed, 1), "ratio": round(wall / allowed, 2) if allowed else None,
        "peak_rss_mb_before_backfill": round(rss_before / 1024, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "phases": phases, **({"first_sync": True, "preview_s": preview_s} if first_sync else {}),
        **({"share": share_taken} if share_taken else {}),
    }


def _previewed_first_sync(app: Any, connection_id: int) -> tuple[int, float]:
    """Open the connection's first sync and compute its preview here; the run id and the preview's seconds."""
    from crm_qb.runtime import runtime
    from crm_qb.sync.firstsync import service

    with app.app_context():
        rt = runtime(app)
        run_id = service.open_first_sync(None, connection_id).id
        began = time.monotonic()
        previewed = service.preview_here(rt.sync_services(), run_id, page_size=rt.settings.backfill_page_size)
        if previewed is None or previewed.state != "previewed":
            raise RuntimeError(f"the preview did not finish: {previewed.state if previewed else 'refused'}")
        return run_id, round(time.monotonic() - began, 1)


def _first_sync(app: Any, run_id: int, share: float | None = None) -> dict[str, Any]:
    """Start the previewed run and execute it here (as a worker would); its counts. With ``share``, paced as a
    worker's bulk job beside live work that is always about (``--share``), and how much of a core it took."""
    from dataclasses import replace
    from functools import partial

    from crm_qb.runtime import runtime
    from crm_qb.sync.firstsync import service
    from crm_qb.sync.pacing import LivePacer
    from workers.queues import bulk_cpu_seconds

    rt = runtime(app)
    service.start(rt.jobs, run_id)  # queues its job too; no worker runs here
    services, pacer = rt.sync_services(), None
    if share is not None:
        backends = rt.backend_cpu()
        pacer = LivePacer(lambda: False, share=share, live_memory=float("inf"), _live_seen=time.monotonic(),
                          cpu=partial(bulk_cpu_seconds, backends))
        services = replace(services, pace=pacer)
        began, own, database = time.monotonic(), time.process_time(), backends.seconds()
    run = service.execute(services, run_id, page_size=rt.settings.backfill_page_size)
    if run is None or run.state != "done":
        raise RuntimeError(f"the first sync did not finish: {run.state if run else 'gone'}")
    counts: dict[str, Any] = {"run": service.status_json(run)["counts"]}
    if pacer is not None:
        wall = time.monotonic() - began
        own, database = time.process_time() - own, backends.seconds() - database
        counts["share"] = {"asked": share, "wall_s": round(wall, 1), "process_cpu_s": round(own, 2),
                           "backends_cpu_s": round(database, 2), "process_of_a_core": round(own / wall, 3),
                           "with_backends_of_a_core": round((own + database) / wall, 3),
                           "looks": pacer.checks, "rested_s": round(pacer.paused_seconds, 1)}
    return counts


def _less(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """Request counts made between two readings of the reference CRM's ``/requests``."""
    endpoints = {name: n - before.get("endpoints", {}).get(name, 0) for name, n in after["endpoints"].items()}
    return {"total": int(after["total"]) - int(before["total"]),
            "endpoints": {name: n for name, n in endpoints.items() if n}}


def main() -> None:
    """Run every size in its own child process and print the results as one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000:6000,20000:60000", help="customers:transactions, comma-separated")
    parser.add_argument("--full", action="store_true", help="also the target size, 100000:300000")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--first-sync", action="store_true",
                        help="measure the console's first sync (preview, then the recorded run) instead")
    parser.add_argument("--share", type=float, default=None, metavar="PERCENT",
                        help="with --first-sync: pace it as a worker's bulk job at this share of a core, live work "
                             "about all along, and report the share it took")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.share is not None and not (args.first_sync and 0 < args.share <= 100):
        parser.error("--share needs --first-sync and a percentage above 0, at most 100")
    if args.one:
        customers, transactions = (int(n) for n in args.one.split(":"))
        print(json.dumps(run_one(customers, transactions, args.database_url, args.first_sync,
                                 args.share / 100 if args.share is not None else None)))
        return
    sizes = args.sizes.split(",") + (["100000:300000"] if args.full else [])
    results = []
    for size in sizes:
        argv = [sys.executable, "-m", "tests.bench.backfill", "--one", size]
        argv += ["--database-url", args.database_url] if args.database_url else []
        argv += ["--first-sync"] if args.first_sync else []
        argv += ["--share", str(args.share)] if args.share is not None else []
        child = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False,
                               env={**os.environ, "CRM_QB_LOG_LEVEL": "WARNING"})
        if child.returncode != 0:
            raise SystemExit(f"size {size} failed:\n{child.stderr[-4000:]}")
        results.append(json.loads(child.stdout.strip().splitlines()[-1]))
    print(json.dumps({"target_ratio": 1.2, "results": results}, indent=2))


if __name__ == "__main__":
    main()
