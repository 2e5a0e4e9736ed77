"""The running system for ``tests.bench.sync``: real processes on 127.0.0.1 and ways to act on and read them.

Started here, each as its own process: the QBO sandbox and the reference CRM (``crm-qb sandbox ...``), crm-qb web
(gunicorn, 2 workers), 2 RQ workers and, optionally, the scheduler. One connection is wired with
``crm-qb connection demo`` (OAuth against the sandbox, CRM hooks registered, a first CDC poll enqueued) and the
sandbox realm's webhooks go to crm-qb with ``delay_ms`` 0. crm-qb's database is read directly (read-only) for
the inbound events' ``received_at`` and the contact links.

Workaround: the seeded realm has one customer at QBO's length limits (DisplayName of 500 characters). crm-qb
sends it to the CRM unshortened, the CRM refuses it (display_name is limited to 255), and that one failure makes
the whole CDC poll fail, so nobody would be linked. Its DisplayName is shortened to 255 before crm-qb starts
(reported as ``renamed_customers``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests
from cryptography.fernet import Fernet
from sqlalchemy import Engine, create_engine, func, select

from crm_qb.models import Connection, ContactLink, EventSource, EventStatus, InboundEvent, LinkState
from tests.support import ROOT, free_port, wait_for

REDIS_URL = os.environ.get("CRM_QB_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
QUEUE_PREFIX = "crm_qb_bench_sync"
CLI = [sys.executable, "-m", "crm_qb.cli"]
CRM_DISPLAY_NAME_LIMIT = 255  # the reference CRM's limit; QBO allows 500


def _drain_to(stream: IO[bytes], log: IO[bytes]) -> None:
    for line in iter(stream.readline, b""):
        log.write(line)
        log.flush()


@dataclass
class Processes:
    """Every process started by the benchmark; ``stop`` ends them (SIGTERM, then SIGKILL after 15 s)."""

    logs: Path
    started: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` with its output in ``<logs>/<name>.log``."""
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        self.started.append((name, process))
        return process

    def start_sandbox(self, name: str, argv: list[str]) -> dict[str, Any]:
        """Start a sandbox that prints one JSON line when ready; return that line (its /_sandbox/info)."""
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=log)
        self.started.append((name, process))
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"{name} exited before it was ready; see {self.logs / (name + '.log')}")
        threading.Thread(target=_drain_to, args=(process.stdout, log), daemon=True).start()
        return json.loads(line)  # type: ignore[no-any-return]

    def check_alive(self) -> None:
        """Fail when a started process has exited."""
        for name, process in self.started:
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}; see {self.logs / (name + '.log')}")

    def stop(self) -> None:
        """Stop every process, the last started first."""
        for _name, process in reversed(self.started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for _name, process in reversed(self.started):
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def tails(self, lines: int = 15) -> str:
        """The last lines of every log (for a failure report)."""
        parts = []
        for path in sorted(self.logs.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(parts)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``predicate`` until truthy (tests.support.wait_for, in the argument order the benchmark uses)."""
    return wait_for(predicate, timeout=timeout, interval=interval, what=what)


@dataclass
class System:
    """The wired system: sandbox URLs, the realm, the connection, crm-qb's database."""

    processes: Processes
    qbo: str
    realm: str
    crm: str
    crm_token: str
    web: str
    connection_id: int
    engine: Engine
    renamed_customers: list[str] = field(default_factory=list)
    http: requests.Session = field(default_factory=requests.Session)

    # -- QBO sandbox (control API: bookkeeper edits and reads, not counted as API requests) -------------------

    def edit_customer(self, customer_id: str, **fields: Any) -> None:
        """Edit a customer as a bookkeeper (sparse, no SyncToken); the sandbox sends the webhook."""
        self.http.patch(f"{self.qbo}/_sandbox/realms/{self.realm}/entities/Customer/{customer_id}", json=fields,
                        timeout=10).raise_for_status()

    def customer(self, customer_id: str) -> dict[str, Any]:
        """A customer as stored now."""
        answer = self.http.get(f"{self.qbo}/_sandbox/realms/{self.realm}/entities/Customer/{customer_id}",
                               timeout=10)
        answer.raise_for_status()
        return answer.json()["Customer"]  # type: ignore[no-any-return]

    def qbo_requests(self) -> dict[str, Any]:
        """The realm's API request counts."""
        return self.http.get(f"{self.qbo}/_sandbox/realms/{self.realm}/requests", timeout=10).json()  # type: ignore[no-any-return]

    def reset_qbo_requests(self) -> None:
        """Zero the realm's API request counts."""
        self.http.delete(f"{self.qbo}/_sandbox/realms/{self.realm}/requests", timeout=10).raise_for_status()

    def qbo_webhooks(self) -> dict[str, int]:
        """``{"pending", "delivered"}`` of the sandbox's webhook sender."""
        return self.http.get(f"{self.qbo}/_sandbox/webhooks", timeout=10).json()  # type: ignore[no-any-return]

    # -- reference CRM --------------------------------------------------------------------------------------

    def contact(self, contact_id: str) -> dict[str, Any]:
        """A contact through the CRM API (as crm-qb reads it)."""
        answer = self.http.get(f"{self.crm}/contacts/{contact_id}", timeout=10,
                               headers={"Authorization": f"Bearer {self.crm_token}"})
        answer.raise_for_status()
        return answer.json()  # type: ignore[no-any-return]

    def contacts_updated_since(self, since: str) -> list[dict[str, Any]]:
        """Every contact with ``updated_at >= since`` (all pages)."""
        found: list[dict[str, Any]] = []
        cursor = None
        for _ in range(1000):
            params = {"updated_since": since, "limit": "1000", **({"cursor": cursor} if cursor else {})}
            answer = self.http.get(f"{self.crm}/contacts", params=params, timeout=30,
                                   headers={"Authorization": f"Bearer {self.crm_token}"})
            answer.raise_for_status()
            page = answer.json()
            found += page["contacts"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return found

    def edit_contact(self, contact_id: str, **fields: Any) -> None:
        """Edit a contact as a CRM user (control API: no If-Match); the CRM sends the change hook."""
        self.http.patch(f"{self.crm}/_sandbox/contacts/{contact_id}", json=fields, timeout=10).raise_for_status()

    def crm_hooks(self) -> dict[str, Any]:
        """The CRM's hook sender state (``pending``, ``delivered``, ...)."""
        return self.http.get(f"{self.crm}/_sandbox/hooks", timeout=10).json()  # type: ignore[no-any-return]

    def crm_requests(self) -> int:
        """Total section 6 API calls the CRM has answered."""
        return int(self.http.get(f"{self.crm}/_sandbox/requests", timeout=10).json()["total"])

    # -- crm-qb's database (read only) ----------------------------------------------------------------------

    def linked_pairs(self) -> list[tuple[str, str]]:
        """(QBO customer id, CRM contact id) of every linked pair, by customer id."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(ContactLink.qbo_customer_id, ContactLink.crm_contact_id).where(
                ContactLink.connection_id == self.connection_id, ContactLink.state == LinkState.LINKED)).all()
        pairs = [(str(q), str(c)) for q, c in rows if q and c]
        return sorted(pairs, key=lambda pair: int(pair[0]) if pair[0].isdigit() else pair[0])

    def link_states(self) -> dict[str, int]:
        """How many links are in each state."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(ContactLink.state, func.count()).group_by(ContactLink.state)).all()
        return {state.value: int(count) for state, count in rows}

    def cdc_polled(self) -> bool:
        """Whether the connection's first CDC poll has finished (its cursor is set)."""
        with self.engine.connect() as conn:
            cursor = conn.execute(select(Connection.cdc_cursor).where(Connection.id == self.connection_id))
            return cursor.scalar() is not None

    def last_event_id(self) -> int:
        """The highest inbound event id so far (0 when none)."""
        return last_event_id(self.engine)

    def pending_events(self) -> int:
        """Inbound events not yet processed."""
        with self.engine.connect() as conn:
            query = select(func.count()).select_from(InboundEvent).where(InboundEvent.status == EventStatus.PENDING)
            return int(conn.execute(query).scalar() or 0)

    def first_event_after(self, source: EventSource, entity_id: str, after_id: int) -> InboundEventRow | None:
        """The first event of ``source`` about ``entity_id`` stored after event ``after_id``."""
        return first_event_after(self.engine, source, entity_id, after_id)

    def events_after(self, after_id: int) -> dict[str, Any]:
        """Counts of the events stored after ``after_id``, by source and status, and their time span."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(InboundEvent.source, InboundEvent.status, func.count(),
                                       func.min(InboundEvent.received_at), func.max(InboundEvent.processed_at))
                                .where(InboundEvent.id > after_id)
                                .group_by(InboundEvent.source, InboundEvent.status)).all()
            failed = conn.execute(select(InboundEvent.status_reason).where(
                InboundEvent.id > after_id, InboundEvent.status.in_((EventStatus.FAILED, EventStatus.IGNORED)))
                .limit(5)).scalars().all()
        counts: dict[str, dict[str, int]] = {}
        first, last = None, None
        for source, status, count, received, processed in rows:
            counts.setdefault(source.value, {})[status.value] = int(count)
            first = received if first is None or received < first else first
            if processed is not None:
                last = processed if last is None or processed > last else last
        span = round((last - first).total_seconds(), 3) if first is not None and last is not None else None
        return {"by_source": counts, "first_received_to_last_processed_s": span,
                "sample_reasons_not_processed": list(failed)}

    # -- quiet ----------------------------------------------------------------------------------------------

    def quiet(self) -> bool:
        """Nothing in flight: no webhook or hook waiting to be sent, no inbound event pending."""
        return (self.qbo_webhooks()["pending"] == 0 and self.crm_hooks()["pending"] == 0
                and self.pending_events() == 0)

    def wait_quiet(self, timeout: float, settle: float = 0.6) -> None:
        """Wait until the system is quiet twice, ``settle`` seconds apart (a drain may still be finishing)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.processes.check_alive()
            if self.quiet():
                time.sleep(settle)
                if self.quiet():
                    return
            time.sleep(0.1)
        raise RuntimeError(f"the system did not settle within {timeout:.0f} s "
                           f"(pending events {self.pending_events()}, qbo {self.qbo_webhooks()}, "
                           f"crm hooks pending {self.crm_hooks()['pending']})")


@dataclass(frozen=True)
class InboundEventRow:
    """The times of one stored inbound event (epoch seconds)."""

    id: int
    received_at: float
    processed_at: float | None
    status: str


def last_event_id(engine: Engine) -> int:
    """The highest inbound event id so far (0 when none)."""
    with engine.connect() as conn:
        return int(conn.execute(select(func.max(InboundEvent.id))).scalar() or 0)


def first_event_after(engine: Engine, source: EventSource, entity_id: str, after_id: int) -> InboundEventRow | None:
    """The first event of ``source`` about ``entity_id`` stored after event ``after_id``."""
    with engine.connect() as conn:
        row = conn.execute(select(InboundEvent.id, InboundEvent.received_at, InboundEvent.processed_at,
                                  InboundEvent.status).where(
            InboundEvent.source == source, InboundEvent.entity_id == entity_id, InboundEvent.id > after_id,
        ).order_by(InboundEvent.id).limit(1)).first()
    if row is None:
        return None
    return InboundEventRow(row.id, row.received_at.timestamp(),
                           row.processed_at.timestamp() if row.processed_at else None, row.status.value)


def _healthy(web: str) -> bool:
    try:
        return requests.get(f"{web}/healthz", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def environment(tmp: Path, database_url: str, qbo_info: dict[str, Any], web: str) -> dict[str, str]:
    """The CRM_QB_* environment of every crm-qb process: the sandbox as QBO, Redis database 13."""
    return {
        **os.environ,
        "CRM_QB_INSTANCE_PATH": str(tmp / "instance"), "CRM_QB_DATABASE_URL": database_url,
        "CRM_QB_REDIS_URL": REDIS_URL, "CRM_QB_QUEUE_PREFIX": QUEUE_PREFIX,
        "CRM_QB_SECRET_KEY": "bench-sync-secret", "CRM_QB_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "CRM_QB_PUBLIC_URL": web, "CRM_QB_QBO_ENVIRONMENT": "local",
        "CRM_QB_QBO_CLIENT_ID": str(qbo_info["client_id"]), "CRM_QB_QBO_CLIENT_SECRET": str(qbo_info["client_secret"]),
        "CRM_QB_QBO_WEBHOOK_VERIFIER_TOKEN": str(qbo_info["verifier_token"]),
        "CRM_QB_QBO_DISCOVERY_URL": str(qbo_info["discovery_url"]), "CRM_QB_QBO_API_BASE": str(qbo_info["api_base"]),
        "CRM_QB_QBO_APP_BASE": str(qbo_info["app_base"]), "CRM_QB_QBO_REDIRECT_URI": f"{web}/qbo/callback",
        "CRM_QB_LOG_LEVEL": "INFO",
    }


def seeded_customer_ids(count: int) -> list[str]:
    """The Ids a realm seeded with ``count`` customers gives them (after the seeded vendors and employees)."""
    from crm_qb.sandbox.qbo.seed import EMPLOYEES, VENDORS

    first = len(VENDORS) + len(EMPLOYEES) + 1
    return [str(first + i) for i in range(count)]


def start_system(processes: Processes, tmp: Path, database_url: str, customers: int,
                 touch: Callable[[Callable[[str], None], list[str]], None], scheduler: bool) -> System:
    """Start everything, seed a realm of ``customers``, wire the connection; return before the first link ends.

    The seeded customers are bulk-loaded with old LastUpdatedTime values, which the first CDC poll (it looks back
    one hour) would not see; ``touch`` edits each once as a bookkeeper *before* webhooks are registered, so the
    first CDC poll links them all (one poll, no webhooks), the way a recently active company would be linked.
    """
    qbo_info = processes.start_sandbox("qbo-sandbox", [*CLI, "sandbox", "qbo", "--port", str(free_port())])
    crm_info = processes.start_sandbox("crm-sandbox", [*CLI, "sandbox", "crm", "--port", str(free_port())])
    qbo, crm = str(qbo_info["api_base"]).rstrip("/"), str(crm_info["api_base"]).rstrip("/")
    # The reference CRM allows 100 API requests per 10 s by default (HubSpot's burst limit). This benchmark
    # measures sync latency and QBO calls; its first link creates --burst contacts and its harness reads the CRM
    # through the same token, so the CRM's limit is raised here. tests.bench.backfill keeps the default: there the
    # CRM's bound is what is measured against.
    requests.post(f"{crm}/_sandbox/limits", json={"requests": 1_000_000}, timeout=10).raise_for_status()
    seeded = requests.post(f"{qbo}/_sandbox/realms", json={"customers": customers, "transactions": 0, "seed": 13},
                           timeout=120)
    seeded.raise_for_status()
    realm = str(seeded.json()["realm_id"])
    session = requests.Session()

    renamed: list[str] = []

    def edit(customer_id: str) -> None:
        url = f"{qbo}/_sandbox/realms/{realm}/entities/Customer/{customer_id}"
        answer = session.patch(url, json={"Notes": "bench: recently active"}, timeout=10)
        answer.raise_for_status()
        name = str(answer.json()["Customer"]["DisplayName"])
        if len(name) > CRM_DISPLAY_NAME_LIMIT:  # see the module docstring: crm-qb cannot create this contact
            session.patch(url, json={"DisplayName": name[:CRM_DISPLAY_NAME_LIMIT].rstrip()},
                          timeout=10).raise_for_status()
            renamed.append(customer_id)

    touch(edit, seeded_customer_ids(customers))
    web_port = free_port()
    web = f"http://127.0.0.1:{web_port}"
    env = environment(tmp, database_url, qbo_info, web)
    subprocess.run([*CLI, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
    wired = subprocess.run([*CLI, "connection", "demo", "--crm-url", crm, "--crm-token", str(crm_info["token"]),
                            "--realm", realm, "--web-url", web, "--backfill"],
                           env=env, cwd=ROOT, check=True, capture_output=True, text=True)
    connection_id = int(json.loads(wired.stdout.strip().splitlines()[-1])["id"])
    processes.start("web", [*CLI, "web", "--port", str(web_port), "--workers", "2"], env)
    for n in range(2):
        processes.start(f"worker-{n}", [*CLI, "worker"], env)
    if scheduler:
        processes.start("scheduler", [*CLI, "scheduler"], env)
    wait_until(lambda: _healthy(web), 60, "crm-qb web to answer /healthz")
    requests.post(f"{qbo}/_sandbox/webhooks", json={"url": f"{web}/webhooks/qbo", "format": "cloudevents",
                                                    "delay_ms": 0, "realm": realm}, timeout=10).raise_for_status()
    engine = create_engine(database_url)
    return System(processes, qbo, realm, crm, str(crm_info["token"]), web, connection_id, engine,
                  renamed_customers=renamed)
