"""``run()`` as a real process: one JSON line when ready, serving, clean stop on SIGTERM/SIGINT, persistence."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from crm_qb.sandbox.crm.server import public_host


def launch(*args: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Start ``python -m crm_qb.sandbox.crm.server`` and return it with its ready line."""
    process = subprocess.Popen([sys.executable, "-m", "crm_qb.sandbox.crm.server", "--port", "0", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    return process, json.loads(process.stdout.readline())


def stop(process: subprocess.Popen[str], sig: int) -> str:
    """Send ``sig`` and return the rest of stdout once the process exited with 0."""
    process.send_signal(sig)
    rest, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    return rest


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_prints_info_serves_and_stops_cleanly(http: requests.Session, sig: int) -> None:
    process, info = launch("--token", "tok")
    try:
        assert info["token"] == "tok" and info["api_base"].startswith("http://127.0.0.1:")
        assert http.get(f"{info['api_base']}/_sandbox/info").json() == info
        created = http.post(f"{info['api_base']}/contacts", json={"first_name": "A"},
                            headers={"Authorization": "Bearer tok"})
        assert created.status_code == 201
    finally:
        rest = stop(process, sig)
    assert rest == "", "exactly one line goes to stdout"


def test_a_persisted_crm_keeps_contacts_token_and_hook_settings(http: requests.Session, tmp_path: Path) -> None:
    path = str(tmp_path / "crm.sqlite3")
    process, info = launch("--persist", path)
    try:
        http.post(f"{info['api_base']}/_sandbox/hooks", json={"url": "http://127.0.0.1:1/h", "secret": "s"})
        contact = http.post(f"{info['api_base']}/contacts", json={"first_name": "Kept"},
                            headers={"Authorization": f"Bearer {info['token']}"}).json()
    finally:
        stop(process, signal.SIGTERM)
    process, again = launch("--persist", path)
    try:
        assert (again["token"], again["hook_url"]) == (info["token"], "http://127.0.0.1:1/h")
        kept = http.get(f"{again['api_base']}/contacts/{contact['id']}",
                        headers={"Authorization": f"Bearer {again['token']}"}).json()
        assert kept == contact
    finally:
        stop(process, signal.SIGTERM)


@pytest.mark.parametrize(("host", "public"), [("0.0.0.0", "127.0.0.1"), ("::1", "[::1]"), ("localhost", "localhost")])
def test_public_host(host: str, public: str) -> None:
    assert public_host(host) == public
