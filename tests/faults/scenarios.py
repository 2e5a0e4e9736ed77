"""The faults, one function each, and the table of scenarios that pairs a fault with its burst.

A fault function runs in the main thread once the first half of the burst has been sent; it injects the fault,
keeps it for its duration while the second half of the burst is sent, ends it, and returns. What it observed
goes into ``ctx.notes``. Faults that kill or flush Redis act on the rig's own ``redis-server`` only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from redis import Redis
from rq.job import Job
from rq.worker import Worker

from tests.faults.relay import Relay
from tests.faults.rig import Rig, bounded
from tests.faults.workload import Sizes

STORM_SECONDS = 30.0
WEB_DOWN_SECONDS = 20.0
REDIS_DOWN_SECONDS = 5.0
DEFAULT_OUTAGE_SECONDS = 420.0


@dataclass
class Options:
    """Run-wide settings a fault reads."""

    outage_seconds: float = DEFAULT_OUTAGE_SECONDS
    storm_seconds: float = STORM_SECONDS
    web_down_seconds: float = WEB_DOWN_SECONDS


@dataclass
class Context:
    """What a fault acts on, and where it writes what it saw."""

    rig: Rig
    options: Options
    relay: Relay | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Scenario:
    """A named fault, how long it lasts (the second half of the burst is spread over it), and its needs."""

    name: str
    summary: str
    fault: Callable[[Context], None]
    seconds: Callable[[Options], float] = lambda _options: 0.0
    own_redis: bool = False
    relay: str | None = None  # "scramble" or "poison": the senders post through a Relay in that mode
    poison: bool = False
    passes: int = 1
    qbo_webhook_format: str = "cloudevents"
    check_cdc: bool = False  # afterwards, poll QBO's CDC every 60 s and check that the poll still advances

    def sizes(self, base: Sizes) -> Sizes:
        """The burst for this scenario: ``base`` with this scenario's passes per record."""
        return Sizes(base.qbo_edits, base.crm_edits, base.invoices, self.passes, base.burst_seconds)


# -- the faults ---------------------------------------------------------------------------------------------------


def no_fault(ctx: Context) -> None:
    """Nothing: the control row."""


def kill_busy_worker(ctx: Context) -> None:
    """SIGKILL a worker while it runs a job that has been running for a moment; another worker stays alive.

    The CRM answers every call 200 ms late until the kill, so that drains last long enough to be caught.
    """
    ctx.rig.crm_faults(0, latency_ms=200)
    try:
        victim = busy_worker(ctx.rig, min_running=0.5, within=20.0)
        if victim is None:
            victim = ctx.rig.workers[0]
            ctx.notes.append("no worker was busy within 20 s: killed an idle one")
        ctx.rig.kill_worker(victim)
    finally:
        ctx.rig.crm_faults(0)


def busy_worker(rig: Rig, min_running: float, within: float) -> subprocess.Popen[bytes] | None:
    """A worker process that has run its current job for at least ``min_running`` s (None if none in time)."""
    redis = Redis.from_url(rig.redis_url)
    try:
        for _ in bounded(within):
            by_pid = {p.pid: p for p in rig.workers if p.poll() is None}
            for worker in Worker.all(connection=redis):
                process = by_pid.get(worker.pid or -1)
                job_id = worker.get_current_job_id()
                if process is None or not job_id:
                    continue
                job = Job.fetch(job_id, connection=redis)
                if job.started_at and time.time() - job.started_at.timestamp() >= min_running:
                    return process
            time.sleep(0.05)
        return None
    finally:
        redis.close()


def restart_redis_empty(ctx: Context) -> None:
    """SIGKILL the rig's Redis while a worker runs a drain, keep it down a few seconds, start it again empty.

    As for worker-kill, the CRM answers 200 ms late until then, so that a drain is running when Redis dies.
    """
    assert ctx.rig.own_redis is not None
    ctx.rig.crm_faults(0, latency_ms=200)
    if busy_worker(ctx.rig, min_running=0.5, within=20.0) is None:
        ctx.notes.append("no worker was busy within 20 s when Redis was killed")
    ctx.rig.own_redis.kill()
    ctx.rig.crm_faults(0)
    time.sleep(REDIS_DOWN_SECONDS)
    ctx.rig.own_redis.start()


def flush_redis(ctx: Context) -> None:
    """FLUSHALL on the rig's own Redis."""
    assert ctx.rig.own_redis is not None
    ctx.rig.own_redis.flushall()


def kill_web(ctx: Context) -> None:
    """SIGKILL crm-qb web (gunicorn), leave it down, start it again on the same port."""
    ctx.rig.kill_web()
    time.sleep(ctx.options.web_down_seconds)
    ctx.rig.start_web()


def qbo_throttle_storm(ctx: Context) -> None:
    """QBO answers 429 (fault 3001) to every request of the realm for the storm."""
    ctx.rig.qbo_throttle(ctx.options.storm_seconds)
    time.sleep(ctx.options.storm_seconds)


def qbo_5xx_storm(ctx: Context) -> None:
    """QBO answers 60 % of requests with 500 for half the storm, then with 503 for the other half."""
    half = ctx.options.storm_seconds / 2
    try:
        ctx.rig.qbo_faults(error_rate=0.6, error_status=500)
        time.sleep(half)
        ctx.rig.qbo_faults(error_rate=0.6, error_status=503)
        time.sleep(half)
    finally:
        ctx.rig.qbo_faults(error_rate=0.0)


def qbo_slow(ctx: Context) -> None:
    """QBO answers every request, but after 8 s (past a live drain's 5 s wait), for the storm's length: live calls
    give up before the answer while QBO still does what they asked; the slow lane then waits for the answers."""
    try:
        ctx.rig.qbo_faults(error_rate=0.0, latency_ms=8000)
        time.sleep(ctx.options.storm_seconds)
    finally:
        ctx.rig.qbo_faults(error_rate=0.0, latency_ms=0)


def crm_slow(ctx: Context) -> None:
    """The CRM answers every API call, but after 8 s (past a live drain's 5 s wait, inside the REST connector's
    15 s), for the storm's length: live calls give up before the answer while the CRM still applies what they
    sent; the slow lane then waits for the answers."""
    try:
        ctx.rig.crm_faults(0, latency_ms=8000)
        time.sleep(ctx.options.storm_seconds)
    finally:
        ctx.rig.crm_faults(0)


def crm_storm(ctx: Context) -> None:
    """The CRM answers every API call with 429 (Retry-After: 1) for half the storm, then with 503."""
    half = ctx.options.storm_seconds / 2
    try:
        ctx.rig.crm_faults(1_000_000, 429, retry_after=1)
        time.sleep(half)
        ctx.rig.crm_faults(1_000_000, 503)
        time.sleep(half)
    finally:
        ctx.rig.crm_faults(0)


def qbo_outage(ctx: Context) -> None:
    """QBO answers every request of the realm with 503 for ``--outage-seconds``."""
    try:
        ctx.rig.qbo_faults(error_rate=1.0, error_status=503)
        time.sleep(ctx.options.outage_seconds)
    finally:
        ctx.rig.qbo_faults(error_rate=0.0)


def nul_values(ctx: Context) -> None:
    """Nothing more: the NUL values travel in the burst itself, sent halfway (see workload.make_plan)."""


def long_ids(ctx: Context) -> None:
    """300-character ids and names added to the next delivery of each sender (and to its retries)."""
    assert ctx.relay is not None
    ctx.relay.arm_poison()


def scramble(ctx: Context) -> None:
    """For the storm, every delivery of both senders arrives twice, out of order (see tests.faults.relay)."""
    assert ctx.relay is not None
    ctx.relay.mode = "scramble"
    time.sleep(ctx.options.storm_seconds)
    ctx.relay.mode = "pass"


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("baseline", "no fault (the control row)", no_fault),
    Scenario("worker-kill", "SIGKILL a worker while it runs a drain (the CRM 200 ms slow until then); another "
             "worker stays", kill_busy_worker),
    Scenario("redis-restart", "Redis SIGKILLed while a drain runs, restarted empty 5 s later", restart_redis_empty,
             own_redis=True,
             seconds=lambda _o: REDIS_DOWN_SECONDS),
    Scenario("redis-flush", "FLUSHALL", flush_redis, own_redis=True),
    Scenario("web-kill", "crm-qb web SIGKILLed, restarted 20 s later", kill_web,
             seconds=lambda o: o.web_down_seconds),
    Scenario("qbo-429", "QBO throttles every call (429) for 30 s", qbo_throttle_storm,
             seconds=lambda o: o.storm_seconds),
    Scenario("qbo-5xx", "QBO fails 60 % of calls, 500 then 503, for 30 s", qbo_5xx_storm,
             seconds=lambda o: o.storm_seconds),
    Scenario("qbo-slow", "QBO answers every call after 8 s, for 30 s", qbo_slow,
             seconds=lambda o: o.storm_seconds),
    Scenario("crm-slow", "the CRM answers every call after 8 s, for 30 s", crm_slow,
             seconds=lambda o: o.storm_seconds),
    Scenario("crm-storm", "the CRM answers every call 429 then 503, for 30 s", crm_storm,
             seconds=lambda o: o.storm_seconds),
    Scenario("duplicates", "every webhook and hook delivered twice, out of order, for 30 s; two edits per record",
             scramble, seconds=lambda o: o.storm_seconds, relay="scramble", passes=2),
    Scenario("qbo-outage", "QBO answers 503 to everything for --outage-seconds", qbo_outage,
             seconds=lambda o: o.outage_seconds),
    Scenario("poison-nul", "a NUL character in one contact's notes and in one customer's Notes, mid-burst",
             nul_values, poison=True, check_cdc=True),
    Scenario("poison-long", "300-character ids, realm, entity and operation names added to one delivery of each "
             "sender", long_ids, relay="poison"),
)}


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGSTOP) -> None:
    """Send ``sig`` to a process the rig started (SIGSTOP freezes it, SIGCONT resumes)."""
    os.kill(process.pid, sig)
