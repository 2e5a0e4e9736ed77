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


def test_up_runs_everything_wires_the_demo_and_stops_cleanly(tmp_path: Path, redis_client: object) -> None:
    web, qbo, crm = free_port(), free_port(), free_port()
    env = {**os.environ, "CRM_QB_INSTANCE_PATH": str(tmp_path / "instance"), "CRM_QB_REDIS_URL": REDIS_TEST_URL,
           "CRM_QB_QUEUE_PREFIX": "crm_qb_up_test"}
    for name in ("CRM_QB_DATABASE_URL", "CRM_QB_SECRET_KEY", "CRM_QB_ENCRYPTION_KEY"):
        env.pop(name, None)  # embedded defaults: SQLite in the instance folder, generated development keys
    process = subprocess.Popen(
        [sys.executable, "-m", "crm_qb.cli", "up", "--port", str(web), "--qbo-sandbox-port", str(qbo),
         "--crm-sandbox-port", str(crm)], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")), daemon=True).start()  # type: ignore[union-attr]
    try:
        wait_for(lambda: any(line.startswith("Try it:") for line in lines), timeout=90, what="up to print its hints")
        health = requests.get(f"http://127.0.0.1:{web}/healthz", timeout=5)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert requests.get(f"http://127.0.0.1:{qbo}/_sandbox/info", timeout=5).json()["realm_id"]
        contacts_page = requests.get(f"http://127.0.0.1:{crm}/ui/contacts", timeout=5)
        assert contacts_page.status_code == 200
        assert (tmp_path / "instance" / "crm_qb.sqlite3").exists()
        assert (tmp_path / "instance" / "dev-keys.json").exists()
    finally:
        os.killpg(process.pid, signal.SIGINT) if process.poll() is None else None
        code = process.wait(30)
    output = "".join(lines)
    assert code == 0, output[-3000:]
    assert "[up] stopped" in output
    assert not any(_listening(port) for port in (web, qbo, crm)), "a child process outlived up"
