"""``crm-qb up``: everything starts on embedded defaults, the demo is wired, and Ctrl-C stops every process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from tests.conftest import REDIS_TEST_URL
from tests.support import ROOT, free_port, wait_for

pytestmark = pytest.mark.e2e


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


OPERATOR_TOKEN = "up-test-operator-token-of-32-characters-or-more"


class Up:
    """One ``crm-qb up`` as a real process group on free ports, its output collected line by line."""

    def __init__(self, tmp_path: Path, web: int, qbo: int, crm: int, crm_kind: str = "rest") -> None:
        env = {**os.environ, "CRM_QB_INSTANCE_PATH": str(tmp_path / "instance"), "CRM_QB_REDIS_URL": REDIS_TEST_URL,
               "CRM_QB_QUEUE_PREFIX": "crm_qb_up_test", "CRM_QB_OPERATOR_TOKEN": OPERATOR_TOKEN}
        for name in ("CRM_QB_DATABASE_URL", "CRM_QB_SECRET_KEY", "CRM_QB_ENCRYPTION_KEY"):
            env.pop(name, None)  # embedded defaults: SQLite in the instance folder, generated development keys
        crm_options = (["--crm", "hubspot", "--hubspot-sandbox-port", str(crm)] if crm_kind == "hubspot"
                       else ["--crm-sandbox-port", str(crm)])
        self.process = subprocess.Popen(
            [sys.executable, "-m", "crm_qb.cli", "up", "--port", str(web), "--qbo-sandbox-port", str(qbo),
             *crm_options], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=lambda: self.lines.extend(iter(self.process.stdout.readline, "")),  # type: ignore[union-attr]
                         daemon=True).start()

    def wait_ready(self) -> None:
        """Wait for the hints ``up`` prints once everything is wired."""
        wait_for(lambda: any(line.startswith("Try it:") for line in self.lines), timeout=90,
                 what="up to print its hints")

    def stop(self) -> tuple[int, str]:
        """Ctrl-C, as a user would; the exit code and the whole output."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        code = self.process.wait(30)
        return code, "".join(self.lines)


def test_up_runs_everything_wires_the_demo_and_stops_cleanly(tmp_path: Path, redis_client: object) -> None:
    web, qbo, crm = free_port(), free_port(), free_port()
    up = Up(tmp_path, web, qbo, crm)
    try:
        up.wait_ready()
        health = requests.get(f"http://127.0.0.1:{web}/healthz", timeout=5)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert requests.get(f"http://127.0.0.1:{qbo}/_sandbox/info", timeout=5).json()["realm_id"]
        contacts_page = requests.get(f"http://127.0.0.1:{crm}/ui/contacts", timeout=5)
        assert contacts_page.status_code == 200
        assert (tmp_path / "instance" / "crm_qb.sqlite3").exists()
        assert (tmp_path / "instance" / "dev-keys.json").exists()
        wait_for(lambda: any(line.startswith("Press Enter") for line in up.lines), what="the end of the block")
        shown = "".join(up.lines)
        # The block is the last thing said: no process output on the console, it is in the instance's logs.
        assert shown.rstrip().endswith("Ctrl-C stops everything.") and "[web]" not in shown, shown[-3000:]
        assert "GET /healthz" in (tmp_path / "instance" / "logs" / "web.log").read_text()
        admin = next(line.split()[-1] for line in up.lines if line.strip().startswith("the admin page"))
        browser = requests.Session()
        assert browser.get(admin, timeout=10).status_code == 200  # the link starts a session (303, then 200)
        # The demo's first sync starts by itself: its status reaches done, with what it linked and mirrored.
        sync_status = admin.split("?")[0] + "/sync/status.json"
        done = wait_for(lambda: (s := browser.get(sync_status, timeout=10).json())["state"] == "done" and s,
                        timeout=120, what="the demo's first sync to finish")
        assert done["failed"] == 0 and done["done"] > 0
        # The seeded contacts' billable activities flow into QuickBooks as time on the first run.
        wait_for(lambda: _crm_time(qbo), timeout=90, what="the seeded billable activities to become QBO time")
    finally:
        code, output = up.stop()
    assert code == 0, output[-3000:]
    assert "[up] stopped" in output
    assert not any(_listening(port) for port in (web, qbo, crm)), "a child process outlived up"


@pytest.mark.slow  # two whole `up` runs: `scripts/test`, not CI (the first run is tested above)
def test_a_second_up_resumes_the_demo_with_its_data_and_its_one_connection(tmp_path: Path,
                                                                         redis_client: object) -> None:
    web, qbo, crm = free_port(), free_port(), free_port()
    first = Up(tmp_path, web, qbo, crm)
    try:
        first.wait_ready()
        info = requests.get(f"http://127.0.0.1:{qbo}/_sandbox/info", timeout=5).json()
        made = requests.post(f"{info['control_base']}/realms/{info['realm_id']}/entities/Customer", timeout=10,
                             json={"DisplayName": "Survives A Restart",
                                   "PrimaryEmailAddr": {"Address": "survivor@example.com"}}).json()["Customer"]
        wait_for(lambda: _crm_contact(crm, "survivor@example.com") is not None, timeout=60,
                 what="the demo to sync the new customer to the CRM")
    finally:
        code, output = first.stop()
    assert code == 0, output[-3000:]

    second = Up(tmp_path, web, qbo, crm)
    try:
        second.wait_ready()
        health = requests.get(f"http://127.0.0.1:{web}/healthz/details", timeout=5,
                              headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"}).json()["checks"]["connections"]
        assert (health["total"], health["needs_reconnect"]) == (1, [])  # one demo connection, still connected
        kept = requests.get(f"{info['control_base']}/realms/{info['realm_id']}/entities/Customer/{made['Id']}",
                            timeout=5)
        assert kept.status_code == 200 and kept.json()["Customer"]["DisplayName"] == "Survives A Restart"
        contact = _crm_contact(crm, "survivor@example.com")
        assert contact is not None  # the CRM kept its contacts too
        # ...and the resumed demo still syncs: an edit in QBO reaches the same contact.
        requests.patch(f"{info['control_base']}/realms/{info['realm_id']}/entities/Customer/{made['Id']}",
                       json={"Notes": "edited after the restart"}, timeout=10).raise_for_status()
        wait_for(lambda: (_crm_contact(crm, "survivor@example.com") or {}).get("notes") == "edited after the restart",
                 timeout=60, what="the resumed demo to sync an edit")
    finally:
        code, output = second.stop()
    assert code == 0, output[-3000:]
    assert "Traceback" not in output, output[-5000:]


@pytest.mark.slow  # a whole second `up`: `scripts/test`, not CI; the HubSpot connector's e2e tests stay in CI
def test_up_with_the_local_hubspot_syncs_and_answers_the_card(tmp_path: Path, redis_client: object) -> None:
    web, qbo, hubspot = free_port(), free_port(), free_port()
    up = Up(tmp_path, web, qbo, hubspot, crm_kind="hubspot")
    try:
        up.wait_ready()
        base = f"http://127.0.0.1:{hubspot}"
        info = requests.get(f"{base}/_sandbox/info", timeout=5).json()
        assert info["webhook_url"] == f"http://127.0.0.1:{web}/webhooks/hubspot"
        qbo_info = requests.get(f"http://127.0.0.1:{qbo}/_sandbox/info", timeout=5).json()
        made = requests.post(f"{qbo_info['control_base']}/realms/{qbo_info['realm_id']}/entities/Customer",
                             timeout=10, json={"DisplayName": "Hub Spotted", "GivenName": "Hub",
                                               "PrimaryEmailAddr": {"Address": "hub@example.com"}}).json()["Customer"]
        contact = wait_for(lambda: _hubspot_contact(base, info["token"], "hub@example.com"), timeout=60,
                           what="the demo to sync the new customer to HubSpot")
        requests.patch(f"{base}/_sandbox/objects/contacts/{contact['id']}", timeout=10,
                       json={"properties": {"phone": "+1 555 0199"}}).raise_for_status()
        customer_url = f"{qbo_info['control_base']}/realms/{qbo_info['realm_id']}/entities/Customer/{made['Id']}"
        wait_for(lambda: (requests.get(customer_url, timeout=5).json()["Customer"].get("PrimaryPhone") or {})
                 .get("FreeFormNumber") == "+1 555 0199", timeout=60, what="the HubSpot edit to reach QBO")
        record = requests.get(f"{base}/contacts/{info['portal_id']}/record/0-1/{contact['id']}", timeout=20)
        assert record.status_code == 200 and "Open QuickBooks panel" in record.text
        assert "backend answered" not in record.text and "qbo_balance" in record.text  # the card, answered
    finally:
        code, output = up.stop()
    assert code == 0, output[-3000:]
    assert "Traceback" not in output, output[-5000:]
    assert not any(_listening(port) for port in (web, qbo, hubspot)), "a child process outlived up"


def _hubspot_contact(base: str, token: str, email: str) -> dict[str, object] | None:
    """The local HubSpot's contact with ``email`` (through HubSpot's API), or None."""
    answer = requests.get(f"{base}/crm/v3/objects/contacts/{email}", params={"idProperty": "email"}, timeout=5,
                          headers={"Authorization": f"Bearer {token}"})
    return dict(answer.json()) if answer.status_code == 200 else None


def _crm_contact(crm_port: int, email: str) -> dict[str, object] | None:
    """The reference CRM's contact with ``email`` (through its API, with the token it serves at its info), or None."""
    base = f"http://127.0.0.1:{crm_port}"
    token = requests.get(f"{base}/_sandbox/info", timeout=5).json()["token"]
    answer = requests.get(f"{base}/contacts", params={"email": email}, timeout=5,
                          headers={"Authorization": f"Bearer {token}"})
    found = answer.json().get("contacts") or [] if answer.status_code == 200 else []
    return found[0] if found else None


def _crm_time(qbo_port: int) -> list[dict[str, object]]:
    """The demo realm's TimeActivities made by crm-qb (their description links back to the CRM's contact page)."""
    info = requests.get(f"http://127.0.0.1:{qbo_port}/_sandbox/info", timeout=5).json()
    found = []
    for time_id in range(1, 40):
        answer = requests.get(f"{info['control_base']}/realms/{info['realm_id']}/entities/TimeActivity/{time_id}",
                              timeout=5)
        if answer.status_code == 200 and "/ui/contacts/" in str(answer.json()["TimeActivity"].get("Description")):
            found.append(answer.json()["TimeActivity"])
    return found
