"""The fault suite's command: run scenarios against real processes and print one Markdown row per scenario and database.

    scripts/faults [--scenario NAME ...] [--db sqlite|postgresql|both] [--outage-seconds N] [--quick]
                   [--deadline-seconds N] [--env CRM_QB_NAME=VALUE ...] [--logs DIR] [--list]

Each scenario gets a fresh system (tests.faults.rig: its own redis-server, both sandboxes, crm-qb web, two
workers, the scheduler, a new SQLite file or a new PostgreSQL database that is dropped afterwards), sends the burst
(tests.faults.workload), injects its fault halfway through (tests.faults.scenarios), waits at most
``--deadline-seconds`` for both sides to hold every value sent, lets the system settle, reads both sides in full
and judges. Exit status: 0 when nothing was lost or duplicated, 1 otherwise, 2 when a scenario could not be run
or measured (the row says why). Only 127.0.0.1 is used; every wait is bounded.

``--env`` passes a setting to every crm-qb process (e.g. a shorter retry schedule once the product has one, to
compress a one-hour outage: ``--outage-seconds 360 --env CRM_QB_<SETTING>=...``); crm-qb ignores names it does
not know, so check its configuration table first.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import PG_ADMIN_URL
from tests.faults.recovery import RECORDS, Trickle, busy_kill, taken_job_kill
from tests.faults.relay import Relay
from tests.faults.rig import Pair, Rig, bounded, log_statuses, start_rig
from tests.faults.scenarios import SCENARIOS, Context, Options, Scenario
from tests.faults.workload import FULL, QUICK, Sender, Sizes, judge, make_plan, wait_for_convergence

RECOVERY = "worker-recovery"
RECOVERY_TARGET_SECONDS = 10.0
SETTLE_SECONDS = 90.0
CDC_CHECK_SECONDS = 150.0
CRM_HOOK_FAILURE = r"hook delivery of \d+ event\(s\) failed \(attempt \d+\): (\S+)"
QBO_WEBHOOK_FAILURE = r"webhook not acknowledged realm=\S+ status=(\S+)"


@dataclass
class Row:
    """One line of the table."""

    scenario: str
    database: str
    sent: Counter[str] = field(default_factory=Counter)
    lost: Counter[str] = field(default_factory=Counter)
    duplicated: Counter[str] = field(default_factory=Counter)
    converge: float | None = None
    deadline: float = 0.0
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def failed(self) -> bool:
        """Something was lost or duplicated."""
        return bool(sum(self.lost.values()) or sum(self.duplicated.values()))

    def markdown(self) -> str:
        """The row as Markdown."""
        def counts(counter: Counter[str]) -> str:
            total = sum(counter.values())
            detail = ", ".join(f"{k} {v}" for k, v in sorted(counter.items()) if v)
            return f"**{total}** ({detail})" if total else "0"

        sent = " + ".join(f"{self.sent[k]} {k}" for k in ("qbo", "crm", "invoice") if self.sent[k]) or "-"
        if self.error:
            return f"| {self.scenario} | {self.database} | {sent} | - | - | - | not measured: {self.error} |"
        converge = f"{self.converge:.0f} s" if self.converge is not None else f"not within {self.deadline:.0f} s"
        notes = "; ".join(self.notes) or "-"
        return (f"| {self.scenario} | {self.database} | {sent} | {counts(self.lost)} | {counts(self.duplicated)} "
                f"| {converge} | {notes} |")


HEADER = ("| scenario | db | changes sent | lost | duplicated | converged after the fault | notes |\n"
          "|---|---|---|---|---|---|---|")


@contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    """A fresh database: a new SQLite file, or a new PostgreSQL database dropped at the end."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'crm_qb.sqlite3'}"
        return
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"crm_qb_faults_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run_scenario(scenario: Scenario, kind: str, base: Sizes, options: Options, deadline: float, logs: Path,
                 redis_url: str | None = None, extra_env: dict[str, str] | None = None) -> Row:
    """Run one scenario on a fresh system and database; return its row (errors are reported in the row)."""
    row = Row(scenario.name, kind, deadline=deadline)
    logs.mkdir(parents=True, exist_ok=True)
    try:
        with database(kind, logs) as url:
            sizes = scenario.sizes(base)
            records = RECORDS if scenario.name == RECOVERY else sizes.records
            workers = 1 if scenario.name == RECOVERY else 2
            if scenario.own_redis:
                redis_url = None
            rig = start_rig(logs, url, records, workers=workers, redis_url=redis_url, extra_env=extra_env)
            try:
                if scenario.name == RECOVERY:
                    _measure_recovery(rig, row, deadline)
                else:
                    run_on_rig(rig, rig.pairs, scenario, sizes, options, deadline, row)
            finally:
                rig.close()
    except Exception as exc:  # reported in the table; the other scenarios still run
        row.error = f"{type(exc).__name__}: {exc}"[:300]
        (logs / "error.txt").write_text(traceback.format_exc())
    return row


def run_on_rig(rig: Rig, pairs: list[Pair], scenario: Scenario, sizes: Sizes, options: Options, deadline: float,
               row: Row) -> None:
    """Send the burst over ``pairs`` of a running rig with the scenario's fault halfway; fill in ``row``.

    The rig is left as it was found for the next scenario: its hooks point at crm-qb again and it has as many
    workers as before.
    """
    relay = _relay(rig, scenario)
    workers = len(rig.workers)
    try:
        plan = make_plan(pairs, sizes, max(int(p.customer_id) for p in rig.pairs), poison=scenario.poison)
        fault_seconds = scenario.seconds(options)
        half = sizes.burst_seconds / 2
        sender = Sender(rig, plan, half, max(half, fault_seconds))
        ctx = Context(rig, options, relay)
        sender.start()
        sender.halfway.wait(half + 120)
        scenario.fault(ctx)
        fault_end = time.monotonic()
        sender.done.wait(max(half, fault_seconds) + 300)
        calm = max(fault_end, time.monotonic())
        converged = wait_for_convergence(rig, plan, deadline)
        row.converge = None if converged is None else time.monotonic() - fault_end
        if converged is not None and calm - fault_end >= 1:
            row.notes.append(f"burst ended {calm - fault_end:.0f} s after the fault")
        _settle(rig, relay)
        verdict = judge(rig, plan)
        row.sent, row.lost, row.duplicated = verdict.sent, verdict.lost, verdict.duplicated
        row.notes += ctx.notes + verdict.poison + _observations(rig, relay, sender.errors)
        if verdict.lost_examples:
            (rig.tmp / "lost.txt").write_text("\n".join(verdict.lost_examples) + "\n")
        if scenario.check_cdc:
            row.notes.append(cdc_poll_advances(rig))
        if relay is not None and relay.gave_up:
            row.error = f"the relay gave up on {relay.gave_up} deliveries (not a valid measurement)"
    finally:
        if relay is not None:
            rig.point_qbo_webhooks(f"{rig.web}/webhooks/qbo")
            rig.point_crm_hooks(f"{rig.web}/webhooks/crm/{rig.connection_id}")
            relay.stop()
        while len(rig.workers) < workers:
            rig.start_worker()


def cdc_poll_advances(rig: Rig, within: float = CDC_CHECK_SECONDS) -> str:
    """Set the connection's CDC poll to every 60 s and say whether a poll completes within ``within`` seconds."""
    rig.cli("connection", "configure", str(rig.connection_id), "--set", "sync.cdc_poll_seconds=60")
    before = rig.connection_show().get("last_sync_at")
    for _ in bounded(within):
        time.sleep(10.0)
        if rig.connection_show().get("last_sync_at") != before:
            return "CDC poll (every 60 s) completes"
    return f"CDC poll stuck: no poll completed in {within:.0f} s at a 60 s interval (last {before})"


def _relay(rig: Rig, scenario: Scenario) -> Relay | None:
    if scenario.relay is None:
        return None
    relay = Relay(rig.web, rig.connection_id, str(rig.qbo_info["verifier_token"]), rig.hook_secret).start()
    rig.point_qbo_webhooks(f"{relay.url}/qbo", scenario.qbo_webhook_format)
    rig.point_crm_hooks(f"{relay.url}/crm")
    return relay


def _settle(rig: Rig, relay: Relay | None) -> None:
    """Wait (bounded) until nothing is in flight: senders idle, relay empty, no pending inbound event."""
    assert rig.db is not None
    for _ in bounded(SETTLE_SECONDS):
        if rig.senders_idle() and (relay is None or relay.held() == 0) and rig.db.pending_events() == 0:
            time.sleep(3.0)
            if rig.senders_idle() and rig.db.pending_events() == 0:
                return
        time.sleep(1.0)


def _observations(rig: Rig, relay: Relay | None, sender_errors: list[str]) -> list[str]:
    """Notes: failed or pending events, what the senders were answered, exited processes, sandbox errors."""
    assert rig.db is not None
    notes = []
    statuses: Counter[str] = Counter()
    for source, by_status in rig.db.events_after(0)["by_source"].items():
        statuses.update({f"{source} {status}": n for status, n in by_status.items()
                         if status in ("failed", "pending")})
    if statuses:
        notes.append("events " + ", ".join(f"{k} {v}" for k, v in sorted(statuses.items())))
    hooks = Counter(log_statuses(rig.tmp / "crm-sandbox.log", CRM_HOOK_FAILURE))
    webhooks = Counter(log_statuses(rig.tmp / "qbo-sandbox.log", QBO_WEBHOOK_FAILURE))
    if hooks:
        notes.append("CRM hook sender got " + ", ".join(f"{v}x {k}" for k, v in sorted(hooks.items())))
    if webhooks:
        notes.append("QBO webhook sender got " + ", ".join(f"{v}x {k}" for k, v in sorted(webhooks.items())))
    if relay is not None:
        bad = {k: v for k, v in relay.statuses.items() if not k.split()[1].startswith("2")}
        if bad:
            notes.append("ingress answered " + ", ".join(f"{v}x {k}" for k, v in sorted(bad.items())))
        if relay.injected:
            notes.append("hostile events added to " + ", ".join(f"{v} {k} deliveries"
                                                              for k, v in sorted(relay.injected.items())))
    if exited := rig.exited():
        notes.append("exited by themselves: " + ", ".join(exited))
    if sender_errors:
        notes.append(f"{len(sender_errors)} changes refused by a sandbox, e.g. {sender_errors[0]}")
    return notes


def _measure_recovery(rig: Rig, row: Row, deadline: float) -> None:
    trickle = Trickle(rig, rig.pairs[:RECORDS])
    busy = busy_kill(rig, trickle, deadline)  # first: the taken-job kill leaves the system stuck until the sweep
    taken = taken_job_kill(rig, trickle, deadline)

    def shown(seconds: float | None) -> str:
        if seconds is None:
            return f"none within {deadline:.0f} s"
        verdict = "meets" if seconds <= RECOVERY_TARGET_SECONDS else "misses"
        return f"{seconds:.1f} s ({verdict} the {RECOVERY_TARGET_SECONDS:.0f} s target)"

    row.notes.append(f"first change applied after killing a worker in the middle of a drain: {shown(busy)}")
    row.notes.append(f"after killing a worker that had taken a drain job: {shown(taken)}")
    row.converge = wait_for_trickle(trickle, deadline)
    row.sent["crm"] = trickle.sent
    row.lost["crm"] = trickle.lost()
    row.duplicated["contact"] = max(0, len(rig.contacts()) - len(rig.pairs))


def wait_for_trickle(trickle: Trickle, deadline: float) -> float | None:
    """Seconds until every trickled record holds its last value on QBO, or None."""
    started = time.monotonic()
    for _ in bounded(deadline):
        if trickle.lost() == 0:
            return time.monotonic() - started
        time.sleep(2.0)
    return None


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run every scenario on every database asked for, print the table; the exit status."""
    names = [*SCENARIOS, RECOVERY]
    parser = argparse.ArgumentParser(description="crm-qb fault suite (issue 11): bursts with faults, real processes.")
    parser.add_argument("--scenario", action="append", choices=names, help="repeatable; default: all")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--outage-seconds", type=float, default=None,
                        help="length of the qbo-outage scenario (default 420; 60 with --quick)")
    parser.add_argument("--quick", action="store_true", help="smoke sizes: small bursts, short faults")
    parser.add_argument("--deadline-seconds", type=float, default=None,
                        help="how long to wait for convergence after each fault (default 420; 300 with --quick)")
    parser.add_argument("--env", action="append", default=[], metavar="CRM_QB_NAME=VALUE",
                        help="a setting for every crm-qb process (repeatable)")
    parser.add_argument("--logs", default=None, help="keep every process's log under this folder")
    parser.add_argument("--list", action="store_true", help="print the scenarios and what each does, then exit")
    args = parser.parse_args(argv)
    if args.list:
        for scenario in SCENARIOS.values():
            print(f"{scenario.name:16} {scenario.summary}")
        print(f"{RECOVERY:16} time from a worker kill to the first change applied (another worker alive)")
        return 0
    extra_env = dict(item.split("=", 1) for item in args.env)
    if any(not key.startswith("CRM_QB_") for key in extra_env):
        parser.error("--env takes CRM_QB_NAME=VALUE")
    options = Options(outage_seconds=args.outage_seconds or (60.0 if args.quick else 420.0))
    if args.quick:
        options.storm_seconds, options.web_down_seconds = 10.0, 10.0
    deadline = args.deadline_seconds or (300.0 if args.quick else 420.0)
    kinds = ("sqlite", "postgresql") if args.db == "both" else (args.db,)
    chosen = args.scenario or names
    logs = Path(args.logs) if args.logs else Path(tempfile.mkdtemp(prefix="crm-qb-faults-"))
    rows = []
    print(HEADER, flush=True)
    for kind in kinds:
        for name in chosen:
            scenario = SCENARIOS.get(name) or Scenario(RECOVERY, "worker recovery", lambda _ctx: None)
            row = run_scenario(scenario, kind, QUICK if args.quick else FULL, options, deadline,
                               logs / f"{kind}-{name}", extra_env=extra_env)
            rows.append(row)
            print(row.markdown(), flush=True)
    if not args.logs:
        shutil.rmtree(logs, ignore_errors=True)
    else:
        print(f"\nlogs: {logs}")
    if any(row.error for row in rows):
        return 2
    return 1 if any(row.failed for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
