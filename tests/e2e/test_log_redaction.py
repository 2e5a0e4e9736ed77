"""No credential reaches a log, at any level (issue 11 item 5): ``crm-qb up`` at CRM_QB_LOG_LEVEL=DEBUG, with real
processes doing what handles secrets (an OAuth connect through the web app, a token refresh in the worker, a
CRM page asking for a panel URL, the panel opened), then every line of every process is searched for them.

Before the fix the worker's DEBUG log held the OAuth access and refresh tokens (requests-oauthlib logs the token
response and the refresh request body), and ``up`` relayed the sandboxes' client secret and verifier token.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet, MultiFernet

from tests.conftest import REDIS_TEST_URL
from tests.support import ROOT, free_port, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # whole crm-qb runs of minutes: `scripts/test`, not CI


class Up:
    """``crm-qb up`` as a real process, its output collected line by line."""

    def __init__(self, tmp_path: Path) -> None:
        self.instance = tmp_path / "instance"
        self.web, self.qbo, self.crm = free_port(), free_port(), free_port()
        env = {**os.environ, "CRM_QB_INSTANCE_PATH": str(self.instance), "CRM_QB_REDIS_URL": REDIS_TEST_URL,
               "CRM_QB_QUEUE_PREFIX": "crm_qb_redaction_test", "CRM_QB_LOG_LEVEL": "DEBUG"}
        for name in ("CRM_QB_DATABASE_URL", "CRM_QB_SECRET_KEY", "CRM_QB_ENCRYPTION_KEY"):
            env.pop(name, None)
        self.env = env
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "crm_qb.cli", "up", "--port", str(self.web), "--qbo-sandbox-port", str(self.qbo),
             "--crm-sandbox-port", str(self.crm)], env=env, cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True)
        threading.Thread(target=lambda: self.lines.extend(iter(self.process.stdout.readline, "")),  # type: ignore[union-attr]
                         daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web}"

    def stop(self) -> str:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        self.process.wait(30)
        return "".join(self.lines)

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.instance / "crm_qb.sqlite3", timeout=15)

    def keys(self) -> dict[str, str]:
        return dict(json.loads((self.instance / "dev-keys.json").read_text()))

    def stored_secrets(self) -> set[str]:
        """Every secret of the demo connection as stored now, decrypted."""
        box = MultiFernet([Fernet(k) for k in self.keys()["ENCRYPTION_KEY"].split(",")])
        with self.db() as conn:
            row = conn.execute("SELECT crm_token_encrypted, crm_hook_secret_encrypted, qbo_access_token_encrypted,"
                               " qbo_refresh_token_encrypted FROM connections WHERE id = 1").fetchone()
        return {box.decrypt(value.encode()).decode() for value in row if value}

    def cli(self, *args: str) -> str:
        env = {**self.env, "CRM_QB_PUBLIC_URL": self.base}
        done = subprocess.run([sys.executable, "-m", "crm_qb.cli", *args], cwd=ROOT, env=env, text=True,
                              capture_output=True, timeout=60, check=True)
        return done.stdout.strip()


def _linked_pair(up: Up) -> tuple[str, str] | None:
    with up.db() as conn:
        row = conn.execute("SELECT qbo_customer_id, crm_contact_id FROM contact_links WHERE state = 'linked' AND "
                           "qbo_customer_id IS NOT NULL AND crm_contact_id IS NOT NULL ORDER BY id").fetchone()
    return (str(row[0]), str(row[1])) if row else None


def test_a_debug_run_of_every_process_logs_no_credential(tmp_path: Path, redis_client: object) -> None:
    up = Up(tmp_path)
    secrets: set[str] = set()
    try:
        wait_for(lambda: any(line.startswith("Try it:") for line in up.lines), timeout=120, what="up to be ready")
        qbo_info = requests.get(f"http://127.0.0.1:{up.qbo}/_sandbox/info", timeout=10).json()
        crm_info = requests.get(f"http://127.0.0.1:{up.crm}/_sandbox/info", timeout=10).json()
        secrets |= {qbo_info["client_secret"], qbo_info["verifier_token"], crm_info["token"], *up.keys().values()}
        secrets |= up.stored_secrets()

        # An admin connects QuickBooks again through the web app: the web process exchanges a code at DEBUG.
        link = up.cli("admin-url", "1")
        secrets.add(link.split("token=", 1)[1])
        browser = requests.Session()
        assert browser.get(link, timeout=10).status_code == 200
        done = browser.get(f"{up.base}/connections/1/qbo/connect", timeout=30)
        assert done.status_code == 200 and "Connected" in done.text, done.text[:500]
        secrets |= up.stored_secrets()

        # The worker refreshes an expired access token at DEBUG, then syncs a QuickBooks edit to the CRM.
        pair = wait_for(lambda: _linked_pair(up), timeout=60, what="the backfill to link a customer")
        with up.db() as conn:
            conn.execute("UPDATE connections SET qbo_access_expires_at = ? WHERE id = 1",
                         ((datetime.now(UTC) - timedelta(hours=1)).isoformat(),))
        realm = qbo_info["realm_id"]
        requests.patch(f"http://127.0.0.1:{up.qbo}/_sandbox/realms/{realm}/entities/Customer/{pair[0]}",
                       json={"Notes": "redaction check"}, timeout=10).raise_for_status()
        crm_api = f"http://127.0.0.1:{up.crm}"
        wait_for(lambda: requests.get(f"{crm_api}/contacts/{pair[1]}", timeout=10,
                                      headers={"Authorization": f"Bearer {crm_info['token']}"}).json().get("notes")
                 == "redaction check", timeout=60, what="the QBO edit to reach the CRM")
        secrets |= up.stored_secrets()

        # A CRM user opens the contact: the CRM asks crm-qb for a panel URL with its API key; the panel opens.
        page = requests.get(f"{crm_api}/ui/contacts/{pair[1]}", timeout=20).text
        panel = re.search(r'<iframe src="([^"]+)"', page)
        assert panel is not None, page[-800:]
        panel_url = panel.group(1).replace("&amp;", "&")
        secrets.add(panel_url.split("token=", 1)[1])
        assert requests.get(panel_url, timeout=10).status_code == 200
    finally:
        output = up.stop()
    # ``up`` writes each process's output to <instance>/logs/<process>.log (and the console shows only its block).
    logs = output + "".join(path.read_text(errors="replace") for path in up.instance.glob("**/*.log"))
    assert "DEBUG requests_oauthlib" in logs, "the run did not log at DEBUG"  # what this test is about
    leaked = sorted(s[:6] + "…" for s in secrets if len(s) >= 8 and s in logs)
    assert leaked == [], f"{len(leaked)} secret(s) of {len(secrets)} in the logs: {leaked}"
    assert re.search(r"\[worker\] .*\[redacted\]", logs) and re.search(r"\[web\] .*\[redacted\]", logs)
    assert "cqb_" not in logs  # no API key, ever
    assert "Bearer ey" not in logs and re.search(r"(access|refresh)_token['\"]?\s*[:=]\s*['\"]?[A-Za-z0-9]", logs) \
        is None
