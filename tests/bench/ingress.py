"""Benchmark: signed QBO webhooks per second and p50/p99 latency through gunicorn on 127.0.0.1.

Runs crm-qb's ``POST /webhooks/qbo`` and a bare Flask endpoint in the SAME gunicorn server in the same run, so
the ratio compares like with like. Every webhook is a distinct CloudEvent (its own id, so it is really stored and
enqueued, not deduplicated) signed with the verifier token. Targets (README, Benchmarks): at least 50% of the
bare endpoint's throughput, p99 <= 50 ms.

    .venv/bin/python -m tests.bench.ingress [--requests 4000] [--concurrency 8] [--workers N] [--threads 8]
                                            [--rounds 5] [--database-url URL]

On a shared machine absolute figures drift with the other load, so the two endpoints are measured back to back,
``--rounds`` times (bare, then crm-qb, alternating), and the median of the per-round ratios is reported beside
each round. ``--workers`` and ``--threads`` default to ``crm-qb web``'s (gthread workers; ``--threads 0``: sync). Beside
throughput, each run reports the gunicorn workers' CPU per request (``server_cpu_ms_per_request``) and its ratio
(``cpu_ratio``: bare over crm-qb), which the other load of a shared machine moves much less than throughput, and
where the rest of a request's cost goes: the workers' voluntary context switches per request (every thread), the
load generator's own CPU per request (``client_cpu_ms_per_request``: it shares the cores) and, on PostgreSQL, the
CPU of the database's backends serving the workers (``db_backend_cpu_ms_per_request``, from ``/proc``).

It uses Redis database 14 (``CRM_QB_BENCH_REDIS_URL`` overrides it; flushed before and after) and, by default, a
fresh SQLite file; only 127.0.0.1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
from cryptography.fernet import Fernet
from redis import Redis
from sqlalchemy.engine import make_url

from crm_qb.cli import web_processes
from crm_qb.procstat import read_process
from crm_qb.signatures import sign_qbo
from tests.support import ROOT, free_port

TOKEN = "bench-verifier-token"
REALM = "9130350000000000"
REDIS_URL = os.environ.get("CRM_QB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def _bodies(count: int) -> list[tuple[bytes, str]]:
    bodies = []
    for i in range(count):
        event = [{"specversion": "1.0", "id": str(uuid.uuid4()), "source": "intuit.bench",
                  "type": "qbo.customer.updated.v1", "datacontenttype": "application/json",
                  "time": "2026-11-21T10:00:00.123Z", "intuitentityid": str(i + 1), "intuitaccountid": REALM,
                  "data": {}}]
        body = json.dumps(event).encode()
        bodies.append((body, sign_qbo(body, TOKEN)))
    return bodies


def _client(args: tuple[int, str, list[tuple[bytes, str]]]) -> list[float]:
    port, path, bodies = args
    latencies = []
    for body, signature in bodies:
        started = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json",
                                                        "intuit-signature": signature})
        response = conn.getresponse()
        response.read()
        conn.close()
        if response.status != 200:
            raise RuntimeError(f"{path} answered {response.status}")
        latencies.append(time.perf_counter() - started)
    return latencies


def _run(port: int, path: str, bodies: list[tuple[bytes, str]], concurrency: int,
         server: int | None = None, database: str | None = None) -> dict[str, float]:
    chunks = [bodies[i::concurrency] for i in range(concurrency)]
    clients_before = _children_cpu()
    with ProcessPoolExecutor(concurrency) as pool:
        cpu_before, switches_before = _workers_cpu(server), _workers_switches(server)
        backends_before = _backends_cpu(database)
        started = time.perf_counter()
        results = list(pool.map(_client, [(port, path, chunk) for chunk in chunks]))
        elapsed = time.perf_counter() - started
        cpu, switches = _workers_cpu(server) - cpu_before, _workers_switches(server) - switches_before
        backends = _backends_cpu(database)
    clients = _children_cpu() - clients_before  # the pool's processes, once they have exited
    latencies = sorted(x for chunk in results for x in chunk)
    count = len(latencies)
    figures = {
        "requests": count, "seconds": round(elapsed, 3), "per_second": round(count / elapsed, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 2),
        "p99_ms": round(latencies[int(count * 0.99) - 1] * 1000, 2),
        "server_cpu_ms_per_request": round(cpu / count * 1000, 3),
        "server_switches_per_request": round(switches / count, 2),
        "client_cpu_ms_per_request": round(clients / count * 1000, 3),
    }
    if database:
        used = sum(seconds - backends_before.get(pid, 0.0) for pid, seconds in backends.items())
        figures["db_backend_cpu_ms_per_request"] = round(used / count * 1000, 3)
    return figures


def _children_cpu() -> float:
    """CPU seconds (user + system) of this process's children that have exited (the load generator's)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _proc_cpu(pid: str) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (Linux /proc); OSError when it cannot be read."""
    stat = read_process(int(pid))
    if stat is None:
        raise OSError(f"no process {pid} to read")
    return stat.cpu_seconds


def _workers(master: int | None) -> list[str]:
    """The pids of the gunicorn workers of ``master`` (none off Linux)."""
    if master is None:
        return []
    try:
        return Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        return []


def _workers_switches(master: int | None) -> int:
    """Voluntary context switches of every thread of ``master``'s workers so far (0 off Linux)."""
    total = 0
    for pid in _workers(master):
        for status in Path(f"/proc/{pid}/task").glob("*/status"):
            try:
                line = next(x for x in status.read_text().splitlines() if x.startswith("voluntary_ctxt_switches"))
            except (OSError, StopIteration):
                continue
            total += int(line.split()[1])
    return total


def _backends_cpu(database_url: str | None) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend connected to ``database_url``'s database (this host's server).

    The benchmark's own connection is left out; so is every other database's (other work on a shared server).
    """
    if not database_url:
        return {}
    url = make_url(database_url)
    with psycopg.connect(host=url.host, port=url.port, user=url.username, password=url.password,
                         dbname=url.database, autocommit=True) as conn:
        pids = [row[0] for row in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend'")]
    cpu = {}
    for pid in pids:
        try:
            cpu[pid] = _proc_cpu(str(pid))
        except OSError:
            continue
    return cpu


def _workers_cpu(master: int | None) -> float:
    """CPU seconds (user + system) the gunicorn workers of ``master`` have used so far (Linux /proc; 0 elsewhere).

    Throughput on a shared machine follows the other load; the server's own CPU per request does much less, so
    it is reported beside it (Redis's and PostgreSQL's CPU are not in it).
    """
    try:
        return sum(_proc_cpu(pid) for pid in _workers(master))
    except OSError:
        return 0.0


def _ratio(bare_cpu: float, ours_cpu: float) -> float:
    """Bare CPU per request over crm-qb's: the throughput ratio a CPU-bound server would reach."""
    return round(bare_cpu / ours_cpu, 3) if ours_cpu else 0.0


def _environment(tmp: Path, database_url: str | None) -> dict[str, str]:
    env = {**os.environ, "CRM_QB_INSTANCE_PATH": str(tmp), "CRM_QB_REDIS_URL": REDIS_URL,
           "CRM_QB_SECRET_KEY": "bench", "CRM_QB_ENCRYPTION_KEY": Fernet.generate_key().decode(),
           "CRM_QB_QBO_WEBHOOK_VERIFIER_TOKEN": TOKEN, "CRM_QB_QUEUE_PREFIX": "crm_qb_bench"}
    if database_url:
        env["CRM_QB_DATABASE_URL"] = database_url
    return env


def _prepare(env: dict[str, str]) -> None:
    cli = [sys.executable, "-m", "crm_qb.cli"]
    subprocess.run([*cli, "db", "upgrade"], env=env, check=True, capture_output=True)
    created = subprocess.run([*cli, "connection", "add", "--crm-url", "http://127.0.0.1:9", "--crm-token", "x"],
                             env=env, check=True, capture_output=True, text=True)
    connection_id = json.loads(created.stdout)["id"]
    code = ("from crm_qb.app import create_app; from crm_qb.db import db; from crm_qb.models import *;"
            "app = create_app(); ctx = app.app_context(); ctx.push();"
            f"c = db.session.get(Connection, {connection_id}); c.qbo_realm_id = '{REALM}';"
            "c.qbo_status = QboStatus.CONNECTED; db.session.commit()")
    subprocess.run([sys.executable, "-c", code], env=env, check=True)


def _wait_up(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("gunicorn did not come up")


def main() -> None:
    """Run the benchmark and print one JSON object with both endpoints' figures and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=web_processes(), help="default: as crm-qb web")
    parser.add_argument("--threads", type=int, default=8, help="gthread threads per worker (0: sync workers)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    redis = Redis.from_url(REDIS_URL)
    redis.flushdb()
    rounds: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = _environment(Path(tmp), args.database_url)
        _prepare(env)
        port = free_port()
        threads = ["--worker-class", "gthread", "--threads", str(args.threads)] if args.threads else []
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers),
             *threads, "tests.bench.bench_app:create_bench_app()"], env=env, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_up(port)
            _run(port, "/bench/bare", _bodies(200), args.concurrency)  # warm-up
            _run(port, "/webhooks/qbo", _bodies(200), args.concurrency)
            for _ in range(args.rounds):
                bare = _run(port, "/bench/bare", _bodies(args.requests), args.concurrency, server.pid)
                ours = _run(port, "/webhooks/qbo", _bodies(args.requests), args.concurrency, server.pid,
                            args.database_url)
                rounds.append({"bare_flask": bare, "webhooks_qbo": ours,
                               "ratio": round(ours["per_second"] / bare["per_second"], 3),
                               "cpu_ratio": _ratio(bare["server_cpu_ms_per_request"],
                                                   ours["server_cpu_ms_per_request"])})
        finally:
            server.terminate()
            server.wait(15)
    redis.flushdb()
    print(json.dumps({
        "database": args.database_url or "sqlite", "workers": args.workers, "threads": args.threads,
        "concurrency": args.concurrency, "requests_per_round": args.requests,
        "median_ratio": statistics.median(r["ratio"] for r in rounds),
        "median_cpu_ratio": statistics.median(r["cpu_ratio"] for r in rounds),
        "median_server_cpu_ms_per_request": {
            "bare_flask": statistics.median(r["bare_flask"]["server_cpu_ms_per_request"] for r in rounds),
            "webhooks_qbo": statistics.median(r["webhooks_qbo"]["server_cpu_ms_per_request"] for r in rounds)},
        "median_server_switches_per_request": {
            "bare_flask": statistics.median(r["bare_flask"]["server_switches_per_request"] for r in rounds),
            "webhooks_qbo": statistics.median(r["webhooks_qbo"]["server_switches_per_request"] for r in rounds)},
        "median_client_cpu_ms_per_request": {
            "bare_flask": statistics.median(r["bare_flask"]["client_cpu_ms_per_request"] for r in rounds),
            "webhooks_qbo": statistics.median(r["webhooks_qbo"]["client_cpu_ms_per_request"] for r in rounds)},
        **({"median_db_backend_cpu_ms_per_request": statistics.median(
            r["webhooks_qbo"]["db_backend_cpu_ms_per_request"] for r in rounds)} if args.database_url else {}),
        "median_p99_ms": statistics.median(r["webhooks_qbo"]["p99_ms"] for r in rounds),
        "max_p99_ms": max(r["webhooks_qbo"]["p99_ms"] for r in rounds),
        "median_per_second": {"bare_flask": statistics.median(r["bare_flask"]["per_second"] for r in rounds),
                              "webhooks_qbo": statistics.median(r["webhooks_qbo"]["per_second"] for r in rounds)},
        "load_average": [round(x, 2) for x in os.getloadavg()], "rounds": rounds}, indent=2))


if __name__ == "__main__":
    main()
