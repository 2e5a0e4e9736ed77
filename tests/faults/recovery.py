"""Recovery after a worker kill while another worker is alive (issue 11 item 4; target: within 10 s).

Measured from the outside: the time from the SIGKILL to the first CRM edit made after it that reaches QBO (the
far side), while a CRM user keeps editing (one edit every ``TRICKLE_SECONDS`` round-robin over a few records).
Two ways a worker dies:

- **taken job**: the worker has taken a drain job from the queue but not started it. Made deterministic by
  freezing the only worker (SIGSTOP) while it waits on the queue, so that the next drain job goes to it, then
  starting a second worker and killing the frozen one.
- **busy**: the worker is running a drain (the CRM answers slowly, 500 ms per call, so drains last) when it is
  killed; the CRM's delay ends at the kill.

The rig starts with one worker for this measurement; the busy kill runs first (with a second worker started for
it), since the taken-job kill leaves the connection without drains until the sweep.
"""

from __future__ import annotations

import signal
import time
import uuid
from dataclasses import dataclass, field

from redis import Redis
from rq.worker import Worker

from crm_qb.keys import RedisKeys
from tests.faults.rig import Pair, Rig, bounded
from tests.faults.scenarios import busy_worker, stop_process

TRICKLE_SECONDS = 1.0
RECORDS = 10


@dataclass
class Trickle:
    """CRM edits round-robin over ``pairs``; remembers each record's last value and when each edit was made."""

    rig: Rig
    pairs: list[Pair]
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:6])
    sent: int = 0
    last: dict[str, str] = field(default_factory=dict)  # customer id -> last value sent
    made_at: dict[str, float] = field(default_factory=dict)  # value -> monotonic time of the edit

    def edit(self) -> None:
        """Make the next edit."""
        pair = self.pairs[self.sent % len(self.pairs)]
        value = f"r-{self.tag}-{self.sent}"
        self.rig.edit_contact(pair.contact_id, notes=value)
        self.last[pair.customer_id] = value
        self.made_at[value] = time.monotonic()
        self.sent += 1

    def arrived_after(self, moment: float) -> bool:
        """Whether an edit made after ``moment`` has reached QBO (only the records' last values are looked at)."""
        for customer_id, value in self.last.items():
            if self.made_at[value] > moment and (self.rig.customer(customer_id) or {}).get("Notes") == value:
                return True
        return False

    def lost(self) -> int:
        """Records whose customer does not hold the last value sent."""
        return sum(1 for cid, value in self.last.items() if (self.rig.customer(cid) or {}).get("Notes") != value)


def time_to_first_change(trickle: Trickle, killed_at: float, deadline: float) -> float | None:
    """Keep editing until an edit made after ``killed_at`` reaches QBO; the seconds from the kill, or None."""
    next_edit = time.monotonic()
    for _ in bounded(deadline):
        if time.monotonic() >= next_edit:
            trickle.edit()
            next_edit += TRICKLE_SECONDS
        if trickle.arrived_after(killed_at):
            return time.monotonic() - killed_at
        time.sleep(0.1)
    return None


def taken_job_kill(rig: Rig, trickle: Trickle, deadline: float) -> float | None:
    """Kill a worker holding a drain job it has not started (see the module docstring); return the recovery."""
    if len(rig.workers) != 1:
        raise RuntimeError(f"the taken-job kill needs exactly one worker, the rig has {len(rig.workers)}")
    frozen = rig.workers[0]
    _wait_idle(rig, frozen.pid)
    stop_process(frozen, signal.SIGSTOP)
    # The frozen worker blocked on the queues first, so Redis hands it the next job ahead of the fresh worker.
    fresh = rig.start_worker()
    _wait_registered(rig, fresh.pid)
    trickle.edit()  # its hook wakes a drain job, which the frozen worker's blocking pop takes
    taken = trickle.sent - 1
    _wait_taken(rig)
    # Killed at once: crm-qb's watchdog would otherwise find the frozen worker's job (a worker frozen for good is
    # as lost as a dead one) and the measurement would start after the recovery.
    if trickle.arrived_after(trickle.made_at[f"r-{trickle.tag}-{taken}"] - 0.001):
        raise RuntimeError("the frozen worker did not take the drain job (the fresh worker ran it)")
    rig.kill_worker(frozen)
    return time_to_first_change(trickle, time.monotonic(), deadline)


def _wait_taken(rig: Rig) -> None:
    """Wait until the connection's CRM drain job was woken and has left the queue (a worker popped it)."""
    keys = RedisKeys(rig.env["CRM_QB_QUEUE_PREFIX"])
    redis = Redis.from_url(rig.redis_url)
    try:
        for _ in bounded(30):
            woken = redis.exists(keys.wake("crm", str(rig.connection_id)))
            if woken and redis.llen(f"rq:queue:{keys.queue('inbound')}") == 0:
                return
            time.sleep(0.02)
        raise RuntimeError("no drain job was woken and taken within 30 s of the edit")
    finally:
        redis.close()


def busy_kill(rig: Rig, trickle: Trickle, deadline: float) -> float | None:
    """Kill a worker in the middle of a drain while another one is alive; return the recovery."""
    if len(rig.workers) < 2:
        _wait_registered(rig, rig.start_worker().pid)
    rig.crm_faults(0, latency_ms=500)
    victim = None
    try:
        for _ in bounded(30):
            trickle.edit()
            victim = busy_worker(rig, min_running=0.3, within=TRICKLE_SECONDS)
            if victim is not None:
                break
    finally:
        if victim is not None:
            rig.kill_worker(victim)
        killed_at = time.monotonic()
        rig.crm_faults(0)
    if victim is None:
        raise RuntimeError("no worker was running a drain for 0.3 s within 30 s of edits: nothing to kill")
    return time_to_first_change(trickle, killed_at, deadline)


def _wait_idle(rig: Rig, pid: int, calm: float = 2.0) -> None:
    """Wait until the worker ``pid`` has been idle (waiting on the queues) for ``calm`` seconds."""
    redis = Redis.from_url(rig.redis_url)
    try:
        since = None
        for _ in bounded(120):
            worker = next((w for w in Worker.all(connection=redis) if w.pid == pid), None)
            idle = worker is not None and worker.get_state() == "idle" and not worker.get_current_job_id()
            since = (since or time.monotonic()) if idle else None
            if since is not None and time.monotonic() - since >= calm:
                return
            time.sleep(0.1)
        raise RuntimeError(f"worker {pid} did not become idle within 120 s")
    finally:
        redis.close()


def _wait_registered(rig: Rig, pid: int) -> None:
    redis = Redis.from_url(rig.redis_url)
    try:
        for _ in bounded(60):
            if any(w.pid == pid for w in Worker.all(connection=redis)):
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker {pid} did not register with Redis within 60 s")
    finally:
        redis.close()
