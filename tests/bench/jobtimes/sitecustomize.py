"""Where a worker's job time goes (docs/benchmarks-history.md, session 5): not loaded by crm-qb itself.

Put this directory on PYTHONPATH and set CRM_QB_JOBTIMES_DIR for a benchmark (the processes it starts inherit
both); only ``crm-qb worker`` processes act on it. For each RQ job one JSON line in ``<dir>/jobs-<pid>.jsonl``: wall
time, the main thread's CPU and run-queue wait (``/proc/thread-self/schedstat``), and the wall time inside HTTP
calls (QBO's API, the CRM's), PostgreSQL statements (psycopg ``execute``), commits and rollbacks, Redis
commands (RQ's own included) and waits for a Redis lock (``lock_wait``: ``Lock.acquire``). ``report.py``
summarises a directory. PostgreSQL only (psycopg).

    CRM_QB_JOBTIMES_DIR=/tmp/jobtimes PYTHONPATH=tests/bench/jobtimes CRM_QB_BENCH_REDIS_URL=... \
        .venv/bin/python -m tests.bench.scale ...
    python tests/bench/jobtimes/report.py /tmp/jobtimes
"""

import json
import os
import sys
import threading
import time

_OUT = os.environ.get("CRM_QB_JOBTIMES_DIR")


def _schedstat():
    try:
        with open("/proc/thread-self/schedstat") as f:
            cpu, wait, _ = f.read().split()
        return int(cpu), int(wait)
    except OSError:
        return 0, 0


def _install():
    import psycopg
    import redis.client
    import requests
    import rq.worker

    main = threading.main_thread()
    acc = {"on": False}

    def add(key, dt):
        if acc["on"] and threading.current_thread() is main:
            acc[key] = acc.get(key, 0.0) + dt
            acc["n_" + key] = acc.get("n_" + key, 0) + 1

    orig_send = requests.Session.send

    def send(self, request, **kw):
        t = time.perf_counter()
        try:
            return orig_send(self, request, **kw)
        finally:
            url = request.url or ""
            add("http_qbo" if "/v3/company/" in url or "oauth" in url else "http_crm", time.perf_counter() - t)

    requests.Session.send = send

    def timed(owner, name, key):
        """Replace ``owner.name`` with a version whose wall time (on the main thread) adds to ``key``."""
        original = getattr(owner, name)

        def wrapper(*a, **kw):
            t = time.perf_counter()
            try:
                return original(*a, **kw)
            finally:
                add(key, time.perf_counter() - t)

        setattr(owner, name, wrapper)

    import redis.lock

    for owner, name, key in ((psycopg.Cursor, "execute", "db"), (psycopg.Cursor, "executemany", "db"),
                             (psycopg.Connection, "commit", "db_commit"),
                             (psycopg.Connection, "rollback", "db_commit"),
                             (redis.client.Redis, "execute_command", "redis"),
                             (redis.client.Pipeline, "execute", "redis"),
                             # the wait for a lock another job holds (its Redis commands are in "redis" too)
                             (redis.lock.Lock, "acquire", "lock_wait")):
        timed(owner, name, key)

    os.makedirs(_OUT, exist_ok=True)
    path = os.path.join(_OUT, f"jobs-{os.getpid()}.jsonl")
    out = open(path, "a", buffering=1)  # noqa: SIM115 - open for the process's life
    import rq.worker.base
    orig_perform = rq.worker.base.BaseWorker.perform_job

    def perform_job(self, job, queue):
        acc.clear()
        acc["on"] = True
        c0, w0 = _schedstat()
        t0 = time.perf_counter()
        wall0 = time.time()
        try:
            return orig_perform(self, job, queue)
        finally:
            acc["on"] = False
            c1, w1 = _schedstat()
            rec = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in acc.items() if k != "on"}
            rec.update(id=job.id, origin=job.origin, func=job.func_name.rsplit(".", 1)[-1],
                       args=[str(a) for a in job.args], worker=self.name, pid=os.getpid(),
                       nice=os.getpriority(os.PRIO_PROCESS, 0),
                       enqueued=job.enqueued_at.timestamp() if job.enqueued_at else None,
                       start=wall0, wall=round(time.perf_counter() - t0, 5), cpu=round((c1 - c0) / 1e9, 5),
                       runq=round((w1 - w0) / 1e9, 5))
            out.write(json.dumps(rec) + "\n")

    rq.worker.base.BaseWorker.perform_job = perform_job


if (_OUT and len(sys.argv) > 1 and sys.argv[1] == "worker" and sys.argv[0] in ("-m",)) or (
        _OUT and sys.argv[0].endswith("crm-qb") and sys.argv[1:2] == ["worker"]):
    try:
        _install()
    except Exception as exc:  # diagnostics must never stop a worker
        print("jobtimes not installed:", exc, file=sys.stderr)
