"""``crm-qb up``: everything on embedded defaults in one foreground command, for a first run.

It upgrades the schema, starts the local QBO sandbox (when QBO_ENVIRONMENT is ``local``) and points crm-qb at it,
then starts the web app, a worker and the scheduler, and relays their output until Ctrl-C stops them all.

A later ``up`` resumes the demo: both sandboxes keep their state in the instance folder (``qbo-sandbox.sqlite3``,
``crm-sandbox.sqlite3``), the demo connection is reused (crm_qb/demo.py) and wired before any worker runs (so no
job ever sees its previous run's QuickBooks grant, which the sandbox does not keep), and the CRM is seeded with
demo contacts only the first time.
"""

from __future__ import annotations

import sys
import time
from typing import Any

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


def run_up(settings: Settings, web_port: int = 5000, qbo_port: int = QBO_SANDBOX_PORT,
           crm_port: int = CRM_SANDBOX_PORT, crm_kind: str = "rest") -> int:
    """Start every process and block until stopped; return the exit status."""
    _require_redis(settings)
    sup = Supervisor(redact=Redactor(settings.secrets()).redact)
    cli = [sys.executable, "-m", "crm_qb.cli"]
    try:
        settings.instance_path.mkdir(parents=True, exist_ok=True)
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
        sup.start("web", [*cli, "web", "--port", str(web_port), "--workers", "2"], env=env)
        sup.start("worker", [*cli, "worker"], env=env)
        sup.start("scheduler", [*cli, "scheduler"], env=env)
        _wait_for_web(web_port)
        if qbo_info and crm_info:
            _register_qbo_webhooks(qbo_info, web_port)
            seed = _seed_hubspot_contacts if crm_kind == "hubspot" else _seed_demo_contacts
            crm_info["seeded"] = seed(crm_info)
            if crm_kind != "hubspot":
                _seed_demo_activities(crm_info)
        _say_ready(web_port, qbo_info)
        if crm_info:
            (_say_try_hubspot if crm_kind == "hubspot" else _say_try)(crm_info, qbo_info or {})
    except Exception:
        sup.stop()
        raise
    return sup.wait()


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
    code = sup.run_once("demo-connection", [*cli, "connection", "demo", "--crm-url", str(info["api_base"]),
                                            "--crm-token", str(info["token"]), "--realm", str(qbo_info["realm_id"]),
                                            "--web-url", f"http://127.0.0.1:{web_port}"], env=env)
    if code != 0:
        raise ConfigError(f"wiring the demo connection failed (exit code {code})")
    return dict(info)


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


def _say_try_hubspot(info: dict[str, Any], qbo_info: dict[str, Any]) -> None:
    first = (info.get("seeded") or ["<id>"])[0]
    record = str(info.get("record_url_template") or "").replace("{id}", str(first))
    print("Try it:\n"
          f"  a HubSpot contact record   {record}   (its QuickBooks app card and panel)\n"
          f"  HubSpot's API              {info.get('api_base')}/crm/v3/objects/contacts   (bearer token in\n"
          f"                             {info.get('api_base')}/_sandbox/info)\n"
          f"  and the QBO sandbox        {qbo_info.get('app_base')}   (demo realm {qbo_info.get('realm_id')})\n"
          "  edit a contact in HubSpot (its /_sandbox/objects control API acts as a HubSpot user), or the customer\n"
          "  in QBO, and watch the other side follow within seconds.\n", flush=True)


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


def _say_try(crm_info: dict[str, Any], qbo_info: dict[str, Any]) -> None:
    ui = str(crm_info.get("ui_base") or f"{crm_info['api_base']}/ui")
    first = (crm_info.get("seeded") or [None])[0]
    print("Try it:\n"
          f"  the CRM's contacts         {ui}/contacts   (each page embeds its QuickBooks panel; the customers\n"
          "                             that came from QuickBooks show their invoices, payments and estimates)\n"
          f"  a contact made in the CRM  {ui}/contacts/{first}   (now a QBO customer too)\n"
          f"  and the QBO sandbox        {qbo_info.get('app_base')}/app/login?pagereq=customerdetail%3FnameId%3D<id>"
          f"&deeplinkcompanyid={qbo_info.get('realm_id')}\n"
          "  edit the contact in the CRM, or the customer in QBO (the sandbox's /_sandbox control API acts as a\n"
          "  bookkeeper), and watch the other side follow within seconds.\n"
          "  billable calls and meetings logged on the seeded contacts are QBO time (the panel's Time section);\n"
          "  Riley Chen's time waits until mapped: crm-qb time status <id>, crm-qb time configure <id> --map-user\n",
          flush=True)


def _say_ready(web_port: int, qbo_info: dict[str, Any] | None) -> None:
    lines = [
        "",
        "crm-qb is up (Ctrl-C stops everything):",
        f"  web app      http://127.0.0.1:{web_port}   (health: /healthz)",
    ]
    if qbo_info:
        lines.append(f"  QBO sandbox  {qbo_info.get('api_base')}   (demo realm {qbo_info.get('realm_id')})")
    print("\n".join(lines) + "\n", flush=True)
