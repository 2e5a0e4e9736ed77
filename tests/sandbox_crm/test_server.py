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


def test_a_persisted_crm_keeps_users_and_activities(http: requests.Session, tmp_path: Path) -> None:
    path = str(tmp_path / "crm.sqlite3")
    process, info = launch("--persist", path, "--token", "tok")
    auth = {"Authorization": "Bearer tok"}
    try:
        base = info["api_base"]
        http.post(f"{base}/_sandbox/users", json={"name": "Sam Rivera", "email": "sam@example.com"})
        http.patch(f"{base}/_sandbox/users/u3", json={"active": False})
        contact = http.post(f"{base}/contacts", json={"first_name": "Kept", "owner_id": "u4"}, headers=auth).json()
        activity = http.post(f"{base}/_sandbox/activities", json={
            "contact_id": contact["id"], "owner_id": "u4", "type": "time", "started_at": "2024-05-01T09:00:00Z",
            "duration_minutes": 30, "billable": True, "hourly_rate": "80"}).json()
        users = http.get(f"{base}/users", headers=auth).json()
    finally:
        stop(process, signal.SIGTERM)
    process, again = launch("--persist", path)
    try:
        base = again["api_base"]
        assert http.get(f"{base}/users", headers=auth).json() == users and len(users["users"]) == 4
        assert http.get(f"{base}/activities/{activity['id']}", headers=auth).json() == activity
        later = http.patch(f"{base}/activities/{activity['id']}", json={"duration_minutes": 45},
                           headers={**auth, "If-Match": "1"}).json()
        assert later["version"] == 2 and later["updated_at"] > activity["updated_at"]
    finally:
        stop(process, signal.SIGTERM)


@pytest.mark.parametrize(("args", "limits"), [
    ((), {"requests": 100, "window_seconds": 10.0}),
    (("--rate-limit", "off"), {"requests": None, "window_seconds": 10.0}),
    (("--rate-limit", "2", "--rate-window", "60"), {"requests": 2, "window_seconds": 60.0}),
])
def test_the_rate_limit_is_set_on_the_command_line(http: requests.Session, args: tuple[str, ...],
                                                   limits: dict[str, Any]) -> None:
    process, info = launch("--token", "tok", *args)
    try:
        assert info["rate_limit"] == limits
        statuses = [http.get(f"{info['api_base']}/users", headers={"Authorization": "Bearer tok"}).status_code
                    for _ in range(3)]
        assert statuses == ([200, 200, 429] if limits["requests"] == 2 else [200] * 3)
    finally:
        stop(process, signal.SIGTERM)


@pytest.mark.parametrize("args", [("--rate-limit", "-3"), ("--rate-limit", "many"), ("--rate-window", "0")])
def test_bad_rate_limit_flags_are_refused(args: tuple[str, ...]) -> None:
    result = subprocess.run([sys.executable, "-m", "crm_qb.sandbox.crm.server", "--port", "0", *args],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and args[0] in result.stderr and result.stdout == ""
