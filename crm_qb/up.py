"""``crm-qb up``: everything on embedded defaults in one foreground command, for a first run.

It upgrades the schema, starts the local QBO sandbox (when QBO_ENVIRONMENT is ``local``) and points crm-qb at it,
then starts the web app, a worker and the scheduler until Ctrl-C stops them all. Their output (access logs,
library start-up noise) goes to ``<instance>/logs/<process>.log``, so the last thing on the console is the
"crm-qb is up / try it" block with the demo connection's admin link; Enter prints it again. ``--verbose`` relays
every process's output to the console instead, as before.

The demo connection opts in to starting its first sync by itself (``first_sync.auto_start``): a first run still
shows data flowing at once, through the same preview → run → report as any connection (its admin page shows them).

A later ``up`` resumes the demo: both sandboxes keep their state in the instance folder (``qbo-sandbox.sqlite3``,
``crm-sandbox.sqlite3``), the demo connection is reused (crm_qb/demo.py) and wired before any worker runs (so no
job ever sees its previous run's QuickBooks grant, which the sandbox does not keep), and the CRM is seeded with
demo contacts only the first time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

import requests
from redis import Redis
from redis.exceptions import RedisError

from crm_qb.config import Settings
from crm_qb.errors import ConfigError
from crm_qb.logs import Redactor
from crm_qb.supervisor import Supervisor

QBO_SANDBOX_PORT = 8701
CRM_SANDBOX_PORT = 8702
DEMO_CONTACTS = 5
DEMO_ACTIVITIES = 2  # per contact: mostly billable calls and meetings, so time flows into QBO on the first run
QBO_SANDBOX_DB = "qbo-sandbox.sqlite3"
CRM_SANDBOX_DB = "crm-sandbox.sqlite3"
HUBSPOT_SANDBOX_DB = "hubspot-sandbox.sqlite3"
HUBSPOT_DEMO_CONTACTS = (("Grace", "Hopper", "Cobol Works", "cobol.example"),
                         ("Alan", "Turing", "Bletchley Systems", "bletchley.example"),
                         ("Katherine", "Johnson", "Orbital Maths", "orbital.example"))
WEB_READY_SECONDS = 60
LOG_DIR = "logs"
ADMIN_LINK_MINUTES = 24 * 60


def run_up(settings: Settings, web_port: int = 5000, qbo_port: int = QBO_SANDBOX_PORT,
           crm_port: int = CRM_SANDBOX_PORT, crm_kind: str = "rest", verbose: bool = False) -> int:
    """Start every process and block until stopped; return the exit status."""
    _require_redis(settings)
    log_dir = None if verbose else settings.instance_path / LOG_DIR
    sup = Supervisor(redact=Redactor(settings.secrets()).redact, log_dir=log_dir)
    cli = [sys.executable, "-m", "crm_qb.cli"]
    try:
        settings.instance_path.mkdir(parents=True, exist_ok=True)
        if log_dir is not None:
            print(f"Starting crm-qb (logs: {log_dir}/) ...", flush=True)
        _run_to_end(sup, [*cli, "db", "upgrade"])
        env: dict[str, str] = {"CRM_QB_PUBLIC_URL": f"http://127.0.0.1:{web_port}"}
        qbo_info = crm_info = None
        if settings.qbo_environment == "local":
            qbo = sup.start("qbo-sandbox", [*cli, "sandbox", "qbo", "--port", str(qbo_port),
                                            "--db", str(settings.instance_path / QBO_SANDBOX_DB)], wait_for_json=True)
            qbo_info = qbo.ready_line or {}
            env.update(_local_qbo_env(qbo_info))
            start = _start_demo_hubspot if crm_kind == "hubspot" else _start_demo_crm
            crm_info = start(sup, cli, qbo_info, web_port, crm_port, env, settings)
        sup.start("web", [*cli, "web", "--port", str(web_port), "--workers", "2", "--access-log"], env=env)
        sup.start("worker", [*cli, "worker"], env=env)
        sup.start("scheduler", [*cli, "scheduler"], env=env)
        _wait_for_web(web_port)
        if qbo_info and crm_info:
            _register_qbo_webhooks(qbo_info, web_port)
            seed = _seed_hubspot_contacts if crm_kind == "hubspot" else _seed_demo_contacts
            crm_info["seeded"] = seed(crm_info)
            if crm_kind != "hubspot":
                _seed_demo_activities(crm_info)
            crm_info["kind"] = crm_kind
            crm_info["admin_url"] = _admin_link(sup, cli, env, crm_info.get("connection_id"))
        block = _ready_block(web_port, qbo_info, crm_info, log_dir)
        print(block, flush=True)
        _reprint_on_enter(sys.stdin, lambda: print(block, flush=True))
    except Exception:
        sup.stop()
        raise
    return sup.wait()


def _ready_block(web_port: int, qbo_info: dict[str, Any] | None, crm_info: dict[str, Any] | None,
                 log_dir: Path | None) -> str:
    """The "is up / try it" block ``up`` ends its output with."""
    parts = [_ready_text(web_port, qbo_info)]
    if crm_info:
        parts.append((_try_text_hubspot if crm_info.get("kind") == "hubspot" else _try_text)(crm_info, qbo_info or {}))
    footer = [f"Logs: {log_dir}/ (crm-qb up --verbose shows them here)." if log_dir else "",
              "Press Enter to show this again; Ctrl-C stops everything."]
    return "\n".join(parts) + "\n".join(line for line in footer if line) + "\n"


def _reprint_on_enter(stdin: IO[str] | None, show: Callable[[], None]) -> None:
    """Show the block again each time a line is entered (a daemon thread; nothing when there is no input)."""
    if stdin is None or not stdin.isatty():
        return

    def read() -> None:
        for _ in stdin:
            show()

    threading.Thread(target=read, daemon=True).start()


def _run_captured(sup: Supervisor, name: str, argv: Sequence[str], env: dict[str, str]) -> tuple[int, str]:
    """Run a one-shot command to its end; its output goes where the children's goes; (exit code, stdout)."""
    done = subprocess.run(list(argv), env={**os.environ, **env}, capture_output=True, text=True, check=False)
    path = sup.log_path(name)
    text = sup.redact(done.stderr + done.stdout)
    if path is None:
        sys.stdout.write("".join(f"[{name}] {line}\n" for line in text.splitlines()))
    else:
        with path.open("a", encoding="utf-8") as log:
            log.write(text)
    return done.returncode, done.stdout


def _admin_link(sup: Supervisor, cli: list[str], env: dict[str, str], connection_id: object) -> str | None:
    """A signed link to the demo connection's admin page, valid for a day (None when it could not be made)."""
    if connection_id is None:
        return None
    code, out = _run_captured(sup, "admin-url", [*cli, "admin-url", str(connection_id), "--expires-in",
                                                 str(ADMIN_LINK_MINUTES)], env)
    lines = out.strip().splitlines()
    return lines[-1] if code == 0 and lines else None


def _require_redis(settings: Settings) -> None:
    try:
        Redis.from_url(settings.redis_url, socket_connect_timeout=2).ping()
    except RedisError as exc:
        raise ConfigError(
            f"Redis is not reachable at CRM_QB_REDIS_URL={settings.redis_url} ({type(exc).__name__}); start it "
            "(e.g. redis-server --daemonize yes) or point CRM_QB_REDIS_URL at a running one"
        ) from None


def _run_to_end(sup: Supervisor, argv: list[str]) -> None:
    code = sup.run_once(argv[3] if len(argv) > 3 else "setup", argv)
    if code != 0:
        raise ConfigError(f"{' '.join(argv[3:])} failed (exit code {code})")


def _local_qbo_env(info: dict[str, Any]) -> dict[str, str]:
    return {
        "CRM_QB_QBO_ENVIRONMENT": "local",
        "CRM_QB_QBO_CLIENT_ID": str(info.get("client_id", "")),
        "CRM_QB_QBO_CLIENT_SECRET": str(info.get("client_secret", "")),
        "CRM_QB_QBO_WEBHOOK_VERIFIER_TOKEN": str(info.get("verifier_token", "")),
        "CRM_QB_QBO_DISCOVERY_URL": str(info.get("discovery_url", "")),
        "CRM_QB_QBO_API_BASE": str(info.get("api_base", "")),
        "CRM_QB_QBO_APP_BASE": str(info.get("app_base", "")),
    }


def _wait_for_web(web_port: int, timeout: float = WEB_READY_SECONDS) -> None:
    """Return once the web app answers (so "up" is only said when it is); ConfigError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(f"http://127.0.0.1:{web_port}/healthz", timeout=2)
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise ConfigError(f"the web app did not answer on port {web_port} within {timeout:.0f} s; "
                                  "see its output above") from None
            time.sleep(0.2)


def _register_qbo_webhooks(info: dict[str, Any], web_port: int) -> None:
    base = str(info["api_base"]).rstrip("/")
    requests.post(f"{base}/_sandbox/webhooks", timeout=5, json={
        "url": f"http://127.0.0.1:{web_port}/webhooks/qbo", "format": "cloudevents", "delay_ms": 0,
    }).raise_for_status()


def _start_demo_crm(sup: Supervisor, cli: list[str], qbo_info: dict[str, Any], web_port: int, crm_port: int,
                    env: dict[str, str], settings: Settings) -> dict[str, Any]:
    """Start the reference CRM (its state kept in the instance folder) and wire the demo connection to it and to
    the demo realm: a new one the first time, the same one on every later run."""
    crm = sup.start("crm-sandbox", [*cli, "sandbox", "crm", "--port", str(crm_port),
                                    "--db", str(settings.instance_path / CRM_SANDBOX_DB)], wait_for_json=True)
    info = crm.ready_line or {}
    code, out = _run_captured(sup, "demo-connection", [
        *cli, "connection", "demo", "--crm-url", str(info["api_base"]), "--crm-token", str(info["token"]),
        "--realm", str(qbo_info["realm_id"]), "--web-url", f"http://127.0.0.1:{web_port}"], env)
    if code != 0:
        sup.show_tail("demo-connection")
        raise ConfigError(f"wiring the demo connection failed (exit code {code})")
    return {**info, "connection_id": _last_json(out).get("id")}


def _last_json(out: str) -> dict[str, Any]:
    for line in reversed(out.strip().splitlines()):
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict):
            return found
    return {}


def _start_demo_hubspot(sup: Supervisor, cli: list[str], qbo_info: dict[str, Any], web_port: int, port: int,
                        env: dict[str, str], settings: Settings) -> dict[str, Any]:
    """Start the local HubSpot (its state kept in the instance folder), make crm-qb HubSpot's app for it (its
    client secret verifies the portal's webhooks and card requests) and wire the demo connection."""
    hubspot = sup.start("hubspot-sandbox", [*cli, "sandbox", "hubspot", "--port", str(port),
                                            "--db", str(settings.instance_path / HUBSPOT_SANDBOX_DB)],
                        wait_for_json=True)
    info = hubspot.ready_line or {}
    env.update(_local_hubspot_env(info))
    code = sup.run_once("demo-connection", [*cli, "connection", "demo-hubspot", "--api-base", str(info["api_base"]),
                                            "--token", str(info["token"]), "--realm", str(qbo_info["realm_id"]),
                                            "--web-url", f"http://127.0.0.1:{web_port}"], env=env)
    if code != 0:
        raise ConfigError(f"wiring the HubSpot demo connection failed (exit code {code})")
    return dict(info)


def _local_hubspot_env(info: dict[str, Any]) -> dict[str, str]:
    return {
        "CRM_QB_HUBSPOT_API_BASE": str(info.get("api_base", "")),
        "CRM_QB_HUBSPOT_APP_BASE": str(info.get("app_base", "")),
        "CRM_QB_HUBSPOT_CLIENT_ID": str(info.get("client_id", "")),
        "CRM_QB_HUBSPOT_CLIENT_SECRET": str(info.get("client_secret", "")),
        "CRM_QB_HUBSPOT_APP_ID": str(info.get("app_id", "")),
    }


def _seed_hubspot_contacts(info: dict[str, Any]) -> list[str]:
    """Create a few HubSpot contacts through HubSpot's API the first time (their webhooks link them). Their ids."""
    api, headers = str(info["api_base"]).rstrip("/"), {"Authorization": f"Bearer {info['token']}"}
    existing = requests.get(f"{api}/crm/v3/objects/contacts", params={"limit": DEMO_CONTACTS}, headers=headers,
                            timeout=10)
    existing.raise_for_status()
    if existing.json().get("results"):
        return [str(contact["id"]) for contact in existing.json()["results"]]
    inputs = [{"properties": {"firstname": first, "lastname": last, "email": f"{first.lower()}@{domain}",
                              "company": company, "phone": f"+1 555 010{n}"}}
              for n, (first, last, company, domain) in enumerate(HUBSPOT_DEMO_CONTACTS)]
    made = requests.post(f"{api}/crm/v3/objects/contacts/batch/create", json={"inputs": inputs}, headers=headers,
                         timeout=10)
    made.raise_for_status()
    return [str(contact["id"]) for contact in made.json().get("results", [])]


def _try_text_hubspot(info: dict[str, Any], qbo_info: dict[str, Any]) -> str:
    first = (info.get("seeded") or ["<id>"])[0]
    record = str(info.get("record_url_template") or "").replace("{id}", str(first))
    admin = info.get("admin_url")
    lines = ["Try it:",
             f"  a HubSpot contact record   {record}   (its QuickBooks app card and panel)",
             f"  HubSpot's API              {info.get('api_base')}/crm/v3/objects/contacts   (bearer token in",
             f"                             {info.get('api_base')}/_sandbox/info)",
             f"  and the QBO sandbox        {qbo_info.get('app_base')}   (demo realm {qbo_info.get('realm_id')})",
             "  edit a contact in HubSpot (its /_sandbox/objects control API acts as a HubSpot user), or the customer",
             "  in QBO, and watch the other side follow within seconds."]
    if admin:
        lines += [f"  the admin page             {admin}",
                  "                             (valid a day; a new link: crm-qb admin-url "
                  f"{info.get('connection_id')})"]
    return "\n".join(lines) + "\n"


def _seed_demo_contacts(info: dict[str, Any]) -> list[str]:
    """Seed a few CRM contacts the first time (their hooks link them); a resumed CRM keeps its own. Their ids."""
    api = str(info["api_base"]).rstrip("/")
    existing = requests.get(f"{api}/contacts", params={"limit": DEMO_CONTACTS}, timeout=10,
                            headers={"Authorization": f"Bearer {info['token']}"})
    existing.raise_for_status()
    if existing.json().get("contacts"):
        return [str(contact["id"]) for contact in existing.json()["contacts"]]
    control = str(info.get("control_base") or f"{api}/_sandbox")
    seeded = requests.post(f"{control}/seed", json={"contacts": DEMO_CONTACTS, "seed": 1}, timeout=10)
    seeded.raise_for_status()
    return [str(contact_id) for contact_id in seeded.json().get("ids", [])]


def _seed_demo_activities(info: dict[str, Any]) -> int:
    """Log a few activities on every CRM contact the first time (a CRM without activities), as CRM users would:
    their hooks make the billable ones QBO time, so a newcomer sees time flow; a resumed CRM keeps its own."""
    api = str(info["api_base"]).rstrip("/")
    existing = requests.get(f"{api}/activities", params={"limit": 1}, timeout=10,
                            headers={"Authorization": f"Bearer {info['token']}"})
    existing.raise_for_status()
    if existing.json().get("activities"):
        return 0
    control = str(info.get("control_base") or f"{api}/_sandbox")
    seeded = requests.post(f"{control}/seed/activities", json={"per_contact": DEMO_ACTIVITIES, "seed": 1},
                           timeout=30)
    seeded.raise_for_status()
    return len(seeded.json().get("activity_ids", []))


def _try_text(crm_info: dict[str, Any], qbo_info: dict[str, Any]) -> str:
    ui = str(crm_info.get("ui_base") or f"{crm_info['api_base']}/ui")
    first = (crm_info.get("seeded") or [None])[0]
    admin = crm_info.get("admin_url")
    lines = ["Try it:",
             f"  the CRM's contacts         {ui}/contacts   (each page embeds its QuickBooks panel; the customers",
             "                             that came from QuickBooks show their invoices, payments and estimates)",
             f"  a contact made in the CRM  {ui}/contacts/{first}   (now a QBO customer too)",
             f"  and the QBO sandbox        {qbo_info.get('app_base')}/app/login?pagereq=customerdetail%3FnameId%3D"
             f"<id>&deeplinkcompanyid={qbo_info.get('realm_id')}",
             "  edit the contact in the CRM, or the customer in QBO (the sandbox's /_sandbox control API acts as a",
             "  bookkeeper), and watch the other side follow within seconds.",
             "  billable calls and meetings logged on the seeded contacts are QBO time (the panel's Time section);",
             "  Riley Chen's time waits until mapped: crm-qb time status <id>, crm-qb time configure <id> --map-user"]
    if admin:
        lines += [f"  the admin page             {admin}",
                  "                             (the demo's first sync: preview, progress and report; valid a day;",
                  f"                             a new link: crm-qb admin-url {crm_info.get('connection_id')})"]
    return "\n".join(lines) + "\n"


def _ready_text(web_port: int, qbo_info: dict[str, Any] | None) -> str:
    lines = [
        "",
        "crm-qb is up (Ctrl-C stops everything):",
        f"  web app      http://127.0.0.1:{web_port}   (health: /healthz)",
    ]
    if qbo_info:
        lines.append(f"  QBO sandbox  {qbo_info.get('api_base')}   (demo realm {qbo_info.get('realm_id')})")
    return "\n".join(lines) + "\n\n"
