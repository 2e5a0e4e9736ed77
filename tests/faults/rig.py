"""The system under test for the fault suite: every part a real process on 127.0.0.1, wired as an operator would.

Started here: Redis (our own ``redis-server`` on a free port, so a scenario may kill or flush it without touching
anyone else's Redis; or an existing URL given by the caller, for scenarios that leave Redis alone), the QBO
sandbox and the reference CRM (``crm-qb sandbox ...``), crm-qb web (gunicorn), ``crm-qb worker`` processes and
``crm-qb scheduler``, all with the product's default settings.

The connection is made only through public entry points: ``crm-qb connection add`` (which prints the API key
and the hook secret), the signed link of ``crm-qb admin-url``, and the OAuth consent over HTTP
(``/connections/<id>/qbo/connect`` -> the sandbox's authorize page for our realm -> ``/qbo/callback``), which
opens the first sync; the connection opted in to starting it by itself (``crm-qb sync configure --auto-start``).
The realm's customers are created before the consent, so the first sync links each one to a CRM contact it
creates; the sandboxes' webhooks and change hooks are registered once it is done.

What the rig reads back uses the sandboxes' control APIs (not counted as API calls, never faulted), the CRM's
section 6 API, and crm-qb's own JSON API with the connection's key. crm-qb's database is read (read only) through
``tests.bench.sync_support.System`` for event counts only, never to decide lost or duplicated.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from cryptography.fernet import Fernet
from redis import Redis
from sqlalchemy import create_engine

from tests.bench.sync_support import CLI, ROOT, Processes, System, environment, wait_until
from tests.support import free_port

ITEM_ID = "1"  # the first seeded Item of every sandbox realm: what the invoices sell
WEB_WORKERS = 2


@dataclass(frozen=True)
class Pair:
    """One linked record: the QBO customer and the CRM contact crm-qb linked it to."""

    customer_id: str
    contact_id: str
    email: str


@dataclass
class OwnRedis:
    """A ``redis-server`` of our own (no persistence), which a scenario may kill, restart empty or flush."""

    processes: Processes
    port: int
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        """The URL every crm-qb process of the rig uses."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server (empty) and wait until it answers."""
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--daemonize", "no"]
        self.starts += 1
        self.process = self.processes.start(f"redis-{self.starts}", argv, dict(os.environ))
        client = Redis.from_url(self.url)
        wait_until(lambda: _pings(client), 20, f"redis-server on port {self.port}")
        client.close()

    def kill(self) -> None:
        """SIGKILL the server: everything it held is gone."""
        assert self.process is not None
        _kill(self.processes, self.process)
        self.process = None

    def flushall(self) -> None:
        """FLUSHALL on our own server (never on a shared one)."""
        client = Redis.from_url(self.url)
        client.flushall()
        client.close()


def _pings(client: Redis) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # not up yet: any connection error means "try again"
        return False


def _kill(processes: Processes, process: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``process`` and forget it (so that the final stop and liveness checks skip it)."""
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(30)
    processes.started[:] = [(n, p) for n, p in processes.started if p is not process]


@dataclass
class Rig:
    """The running system of one scenario, ways to act on both sides as their users would, and to read them."""

    processes: Processes
    tmp: Path
    env: dict[str, str]
    redis_url: str
    own_redis: OwnRedis | None
    qbo: str
    qbo_info: dict[str, Any]
    crm: str
    crm_token: str
    web_port: int
    realm: str = ""
    connection_id: int = 0
    api_key: str = ""
    hook_secret: str = ""
    pairs: list[Pair] = field(default_factory=list)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    web_process: subprocess.Popen[bytes] | None = None
    db: System | None = None
    http: requests.Session = field(default_factory=requests.Session)
    started: Iterator[int] = field(default_factory=itertools.count)  # numbers the process logs

    @property
    def web(self) -> str:
        """crm-qb's base URL."""
        return f"http://127.0.0.1:{self.web_port}"

    # -- processes -------------------------------------------------------------------------------------------

    def cli(self, *args: str, timeout: float = 120) -> str:
        """Run ``crm-qb <args>`` with the rig's settings; return its standard output (fail on a non-zero exit)."""
        done = subprocess.run([*CLI, *args], env=self.env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"crm-qb {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
        return done.stdout

    def start_web(self) -> None:
        """Start crm-qb web (gunicorn) on the rig's port and wait for it to answer."""
        self.web_process = self.processes.start(f"web-{next(self.started)}",
                                                [*CLI, "web", "--port", str(self.web_port),
                                                 "--workers", str(WEB_WORKERS)], self.env)
        wait_until(self._web_answers, 60, "crm-qb web to answer")

    def _web_answers(self) -> bool:
        try:
            return self.http.get(f"{self.web}/healthz", timeout=2).status_code in (200, 503)
        except requests.RequestException:
            return False

    def kill_web(self) -> None:
        """SIGKILL gunicorn's master and wait until its workers (which notice their parent died) stop answering."""
        assert self.web_process is not None
        _kill(self.processes, self.web_process)
        self.web_process = None
        wait_until(lambda: not self._web_answers(), 30, "the killed web server's workers to exit")

    def start_worker(self) -> subprocess.Popen[bytes]:
        """Start one more ``crm-qb worker``."""
        process = self.processes.start(f"worker-{next(self.started)}", [*CLI, "worker"], self.env)
        self.workers.append(process)
        return process

    def kill_worker(self, process: subprocess.Popen[bytes]) -> None:
        """SIGKILL one worker."""
        _kill(self.processes, process)
        self.workers.remove(process)

    def exited(self) -> list[str]:
        """Processes that have exited by themselves (name and exit code)."""
        return [f"{name} ({process.returncode})" for name, process in self.processes.started
                if process.poll() is not None]

    # -- QBO as a bookkeeper (control API) ------------------------------------------------------------------

    def _entity_url(self, entity: str, object_id: str = "") -> str:
        return f"{self.qbo}/_sandbox/realms/{self.realm}/entities/{entity}" + (f"/{object_id}" if object_id else "")

    def create_customer(self, **fields: Any) -> dict[str, Any]:
        """Create a customer as a bookkeeper; return it."""
        answer = self.http.post(self._entity_url("Customer"), json=fields, timeout=30)
        answer.raise_for_status()
        return answer.json()["Customer"]  # type: ignore[no-any-return]

    def edit_customer(self, customer_id: str, **fields: Any) -> None:
        """Edit a customer as a bookkeeper (the sandbox sends the webhook)."""
        self.http.patch(self._entity_url("Customer", customer_id), json=fields, timeout=30).raise_for_status()

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        """A customer as stored now, or None when there is none with that id."""
        answer = self.http.get(self._entity_url("Customer", customer_id), timeout=30)
        if answer.status_code in (400, 404):
            return None
        answer.raise_for_status()
        return answer.json()["Customer"]  # type: ignore[no-any-return]

    def create_invoice(self, customer_id: str, doc_number: str, amount: str) -> str:
        """Create an invoice for ``customer_id`` as a bookkeeper; return its id."""
        body = {"CustomerRef": {"value": customer_id}, "DocNumber": doc_number,
                "Line": [{"Amount": amount, "DetailType": "SalesItemLineDetail",
                          "SalesItemLineDetail": {"ItemRef": {"value": ITEM_ID}}}]}
        answer = self.http.post(self._entity_url("Invoice"), json=body, timeout=30)
        answer.raise_for_status()
        return str(answer.json()["Invoice"]["Id"])

    def customers_beyond(self, last_known: int, probe: int = 5) -> list[dict[str, Any]]:
        """Customers created after id ``last_known`` (ids are sequential per entity in the sandbox)."""
        found, miss, next_id = [], 0, last_known + 1
        while miss < probe:
            customer = self.customer(str(next_id))
            if customer is None:
                miss += 1
            else:
                found.append(customer)
                miss = 0
            next_id += 1
        return found

    def qbo_faults(self, **rule: Any) -> None:
        """Set the realm's /v3 fault rule (``error_rate``, ``error_status``, ``latency_ms``)."""
        self.http.post(f"{self.qbo}/_sandbox/faults", json={"realm": self.realm, **rule},
                       timeout=10).raise_for_status()

    def qbo_throttle(self, seconds: float) -> None:
        """Answer 429 to every /v3 request of the realm for ``seconds``."""
        self.http.post(f"{self.qbo}/_sandbox/throttle", json={"realm": self.realm, "seconds": seconds},
                       timeout=10).raise_for_status()

    def qbo_webhooks_pending(self) -> int:
        """Webhook events the sandbox has not delivered yet (waiting or being retried)."""
        return int(self.http.get(f"{self.qbo}/_sandbox/webhooks", timeout=10).json()["pending"])

    def point_qbo_webhooks(self, url: str, fmt: str = "cloudevents") -> None:
        """Send the realm's webhooks to ``url`` (no aggregation delay)."""
        self.http.post(f"{self.qbo}/_sandbox/webhooks", json={"url": url, "format": fmt, "delay_ms": 0,
                                                              "realm": self.realm}, timeout=10).raise_for_status()

    # -- the CRM as its users see and change it (control API: never faulted, never spends crm-qb's budget) ---

    def edit_contact(self, contact_id: str, **fields: Any) -> None:
        """Edit a contact as a CRM user (the CRM sends the change hook)."""
        self.http.patch(f"{self.crm}/_sandbox/contacts/{contact_id}", json=fields, timeout=30).raise_for_status()

    def contacts(self) -> list[dict[str, Any]]:
        """Every CRM contact (all pages of the section 6 list)."""
        answer = self.http.get(f"{self.crm}/_sandbox/contacts", timeout=60)
        answer.raise_for_status()
        return answer.json()["contacts"]  # type: ignore[no-any-return]

    def contact(self, contact_id: str) -> dict[str, Any] | None:
        """One contact, or None when it does not exist."""
        answer = self.http.get(f"{self.crm}/_sandbox/contacts/{contact_id}", timeout=30)
        if answer.status_code == 404:
            return None
        answer.raise_for_status()
        return answer.json()  # type: ignore[no-any-return]

    def crm_faults(self, count: int, status: int = 503, retry_after: int | None = None,
                   latency_ms: int = 0) -> None:
        """Fail the CRM's next ``count`` API calls with ``status`` (0 ends a storm); delay every call."""
        plan: dict[str, Any] = {"count": count, "status": status, "latency_ms": latency_ms}
        if retry_after is not None:
            plan["retry_after"] = retry_after
        self.http.post(f"{self.crm}/_sandbox/faults", json=plan, timeout=10).raise_for_status()

    def crm_hooks_pending(self) -> int:
        """Change events the CRM has not delivered yet."""
        return int(self.http.get(f"{self.crm}/_sandbox/hooks", timeout=10).json()["pending"])

    def point_crm_hooks(self, url: str) -> None:
        """Send the CRM's change hooks to ``url`` (signed with the connection's hook secret)."""
        self.http.post(f"{self.crm}/_sandbox/hooks", json={"url": url, "secret": self.hook_secret},
                       timeout=10).raise_for_status()

    # -- crm-qb's public API --------------------------------------------------------------------------------

    def folder(self, contact_id: str) -> list[dict[str, Any]] | None:
        """The contact's folder items (all pages) through crm-qb's JSON API; None when the contact is unknown."""
        items: list[dict[str, Any]] = []
        for page in range(1, 1000):
            answer = self.http.get(f"{self.web}/api/v1/connections/{self.connection_id}/contacts/{contact_id}"
                                   "/quickbooks", params={"page": page, "per_page": 200}, timeout=30,
                                   headers={"Authorization": f"Bearer {self.api_key}"})
            if answer.status_code == 404:
                return None
            answer.raise_for_status()
            body = answer.json()
            batch = _folder_items(body)
            items += batch
            if len(batch) < 200:
                return items
        raise RuntimeError("the folder did not end")

    def connection_show(self) -> dict[str, Any]:
        """``crm-qb connection show`` of the rig's connection."""
        return json.loads(self.cli("connection", "show", str(self.connection_id)))  # type: ignore[no-any-return]

    # -- quiet --------------------------------------------------------------------------------------------

    def senders_idle(self) -> bool:
        """Neither sandbox has anything left to send."""
        return self.qbo_webhooks_pending() == 0 and self.crm_hooks_pending() == 0

    def close(self) -> None:
        """Stop every process; dispose of the database engine."""
        if self.db is not None:
            self.db.engine.dispose()
        self.processes.stop()


def _folder_items(body: dict[str, Any]) -> list[dict[str, Any]]:
    folder = body.get("folder")
    if isinstance(folder, dict):
        return list(folder.get("items") or [])
    return list(folder or [])


# -- starting and wiring --------------------------------------------------------------------------------------


def start_rig(logs: Path, database_url: str, records: int, *, workers: int = 2, scheduler: bool = True,
              redis_url: str | None = None, extra_env: dict[str, str] | None = None) -> Rig:
    """Start everything, create ``records`` customers, connect and backfill; return once every pair is linked."""
    processes = Processes(logs)
    try:
        own = None
        if redis_url is None:
            own = OwnRedis(processes, free_port())
            own.start()
            redis_url = own.url
        qbo_info = processes.start_sandbox("qbo-sandbox", [*CLI, "sandbox", "qbo", "--port", str(free_port())])
        crm_info = processes.start_sandbox("crm-sandbox", [*CLI, "sandbox", "crm", "--port", str(free_port())])
        # The reference CRM allows 100 API requests per 10 s per token by default; the suite reads both sides in
        # full through the same token, so its reads would eat crm-qb's budget. Faults are injected explicitly.
        requests.post(f"{str(crm_info['api_base']).rstrip('/')}/_sandbox/limits", json={"requests": 1_000_000},
                      timeout=10).raise_for_status()
        web_port = free_port()
        env = environment(logs, database_url, qbo_info, f"http://127.0.0.1:{web_port}")
        env.update({"CRM_QB_REDIS_URL": redis_url, "CRM_QB_QUEUE_PREFIX": f"faults_{uuid.uuid4().hex[:8]}",
                    "CRM_QB_ENCRYPTION_KEY": Fernet.generate_key().decode(), **(extra_env or {})})
        rig = Rig(processes, logs, env, redis_url, own, str(qbo_info["api_base"]).rstrip("/"), qbo_info,
                  str(crm_info["api_base"]).rstrip("/"), str(crm_info["token"]), web_port)
        _wire(rig, records, workers, scheduler)
        rig.db = System(processes, rig.qbo, rig.realm, rig.crm, rig.crm_token, rig.web, rig.connection_id,
                        create_engine(database_url))
        return rig
    except BaseException:
        processes.stop()
        raise


def _wire(rig: Rig, records: int, workers: int, scheduler: bool) -> None:
    realm = rig.http.post(f"{rig.qbo}/_sandbox/realms", json={"customers": 0, "transactions": 0, "seed": 11},
                          timeout=60)
    realm.raise_for_status()
    rig.realm = str(realm.json()["realm_id"])
    customers = _create_customers(rig, records)
    rig.cli("db", "upgrade")
    made = json.loads(rig.cli("connection", "add", "--crm-url", rig.crm, "--crm-token", rig.crm_token,
                              "--name", "faults").strip().splitlines()[-1])
    rig.connection_id, rig.api_key, rig.hook_secret = int(made["id"]), made["api_key"], made["crm_hook_secret"]
    # Connecting writes nothing until the first sync starts; this connection starts it as soon as it is previewed.
    rig.cli("sync", "configure", str(rig.connection_id), "--auto-start")
    rig.start_web()
    for _ in range(workers):
        rig.start_worker()
    if scheduler:
        rig.processes.start("scheduler", [*CLI, "scheduler"], rig.env)
    _consent(rig)
    rig.pairs = _wait_for_links(rig, customers)
    rig.point_qbo_webhooks(f"{rig.web}/webhooks/qbo")
    rig.point_crm_hooks(f"{rig.web}/webhooks/crm/{rig.connection_id}")


def _create_customers(rig: Rig, records: int) -> dict[str, str]:
    """Create the realm's customers (unique names and emails); return email -> customer id."""
    tag = uuid.uuid4().hex[:6]

    def make(n: int) -> tuple[str, str]:
        email = f"f{n:04d}.{tag}@faults.example"
        made = rig.create_customer(DisplayName=f"Fault {tag} {n:04d}", GivenName="Fault", FamilyName=f"{tag} {n:04d}",
                                   PrimaryEmailAddr={"Address": email}, Notes="seed")
        return email, str(made["Id"])

    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(make, range(records)))


def _consent(rig: Rig) -> None:
    """Connect QuickBooks as an admin would: the signed admin link, Connect, the consent page, the callback."""
    browser = requests.Session()
    admin = rig.cli("admin-url", str(rig.connection_id)).strip()
    browser.get(admin, timeout=30).raise_for_status()
    to_intuit = browser.get(f"{rig.web}/connections/{rig.connection_id}/qbo/connect", allow_redirects=False,
                            timeout=30)
    if to_intuit.status_code not in (301, 302, 303):
        raise RuntimeError(f"connect answered {to_intuit.status_code}: {to_intuit.text[:500]}")
    consent = browser.get(to_intuit.headers["Location"] + f"&realm={rig.realm}", allow_redirects=False, timeout=30)
    callback = consent.headers.get("Location", "")
    if urlsplit(callback).path != "/qbo/callback":
        raise RuntimeError(f"the sandbox's consent answered {consent.status_code}: {consent.text[:500]}")
    page = browser.get(callback, timeout=60)
    if page.status_code != 200:
        raise RuntimeError(f"the OAuth callback ended with {page.status_code}: {page.text[:500]}")


def _wait_for_links(rig: Rig, customers: dict[str, str], timeout: float = 900) -> list[Pair]:
    """Wait until the backfill made one CRM contact per customer; return the pairs (by customer id)."""
    def linked() -> list[Pair] | None:
        rig.processes.check_alive()
        by_email = {str(c.get("email") or ""): str(c["id"]) for c in rig.contacts()}
        if not all(email in by_email for email in customers):
            return None
        return [Pair(customers[email], by_email[email], email) for email in customers]

    pairs = wait_until(linked, timeout, "the first backfill to link every customer", interval=1.0)
    wait_until(lambda: rig.connection_show().get("last_sync_at"), timeout, "the first backfill to finish",
               interval=1.0)
    return sorted(pairs, key=lambda p: int(p.customer_id))


def utc_now() -> str:
    """The current time, ISO 8601 UTC."""
    return datetime.now(UTC).isoformat()


def log_statuses(path: Path, pattern: str) -> list[str]:
    """What a sender logged for each failed delivery (``pattern``'s group 1: a status, or "no answer")."""
    if not path.exists():
        return []
    regex = re.compile(pattern)
    found = []
    for line in path.read_text(errors="replace").splitlines():
        if match := regex.search(line):
            status = match.group(1)
            found.append(status if status.isdigit() and status != "0" else "no answer")
    return found


def bounded(seconds: float) -> Iterator[float]:
    """Yield the time left until ``seconds`` from now have passed (a loop over it always ends)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        yield left


Action = Callable[[], None]
