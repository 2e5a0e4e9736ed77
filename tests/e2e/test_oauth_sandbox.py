"""The whole OAuth dance with real processes: the QBO sandbox, crm-qb's web app and `crm-qb admin-url`.

A ``requests`` session plays the admin's browser: admin link → Connect → the sandbox's consent → callback → the
connection's page, plus a denied consent, a reused callback and a disconnect.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from subprocess import Popen
from typing import Any

import pytest
import requests
from flask import Flask

from crm_qb.config import Settings
from crm_qb.models import QboStatus
from tests.conftest import settings_env
from tests.support import ROOT, free_port, wait_for
from tests.support.connections import add_connection, connection_row

pytestmark = pytest.mark.e2e


def _json_or_none(url: str) -> Any:
    try:
        response = requests.get(url, timeout=2)
    except requests.RequestException:  # not listening yet, or still starting up
        return None
    return response.json() if response.status_code == 200 else None


def _start(spawn: Callable[..., Popen[bytes]]) -> tuple[dict[str, str], str]:
    """Start the sandbox and crm-qb web; return the environment crm-qb runs with and its base URL."""
    sandbox_port, web_port = free_port(), free_port()
    spawn("sandbox", "qbo", "--port", str(sandbox_port))
    info = wait_for(lambda: _json_or_none(f"http://127.0.0.1:{sandbox_port}/_sandbox/info"),
                    what="the QBO sandbox to answer")
    base = f"http://127.0.0.1:{web_port}"
    env = {
        "CRM_QB_QBO_ENVIRONMENT": "local", "CRM_QB_QBO_DISCOVERY_URL": info["discovery_url"],
        "CRM_QB_QBO_API_BASE": info["api_base"], "CRM_QB_QBO_APP_BASE": info["app_base"],
        "CRM_QB_QBO_CLIENT_ID": info["client_id"], "CRM_QB_QBO_CLIENT_SECRET": info["client_secret"],
        "CRM_QB_PUBLIC_URL": base,
    }
    spawn("web", "--port", str(web_port), "--workers", "2", extra_env=env)
    wait_for(lambda: _json_or_none(f"{base}/healthz"), timeout=90, what="crm-qb web to answer /healthz")
    return env, base


def _admin_url(settings: Settings, env: dict[str, str], connection_id: int) -> str:
    result = subprocess.run([sys.executable, "-m", "crm_qb.cli", "admin-url", str(connection_id)], cwd=ROOT,
                            env={**os.environ, **settings_env(settings), **env}, capture_output=True, text=True,
                            timeout=30, check=True)
    return result.stdout.strip()



@pytest.mark.postgresql_slow  # the SQLite variant keeps it in CI (tests/conftest.py)
def test_an_admin_connects_the_sandbox_company_through_real_processes(
    app: Flask, settings: Settings, spawn: Callable[..., Popen[bytes]]
) -> None:
    env, base = _start(spawn)
    conn = add_connection(app)
    browser = requests.Session()
    url = _admin_url(settings, env, conn.id)
    assert url.startswith(f"{base}/admin/connections/{conn.id}?token=")
    page = browser.get(url, timeout=10)
    assert page.status_code == 200 and "Connect to QuickBooks" in page.text

    consent = browser.get(f"{base}/connections/{conn.id}/qbo/connect", allow_redirects=False, timeout=10)
    denied = browser.get(consent.headers["Location"] + "&deny=1", timeout=10)
    assert denied.status_code == 400 and "not granted" in denied.text
    assert connection_row(app, conn.id).qbo_status == QboStatus.NOT_CONNECTED

    done = browser.get(f"{base}/connections/{conn.id}/qbo/connect", timeout=10)
    assert [r.status_code for r in done.history] == [302, 302, 303]
    assert done.status_code == 200 and done.url == f"{base}/admin/connections/{conn.id}?done=connected"
    assert "Sandbox Company US" in done.text and "Connected" in done.text and "USD" in done.text
    row = connection_row(app, conn.id)
    assert row.qbo_status == QboStatus.CONNECTED and row.qbo_company_name == "Sandbox Company US"

    callback_url = done.history[2].url
    assert callback_url.startswith(f"{base}/qbo/callback?")
    reused = browser.get(callback_url, timeout=10)
    assert reused.status_code == 403 and "already used" in reused.text

    csrf = done.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    gone = browser.post(f"{base}/connections/{conn.id}/qbo/disconnect", data={"csrf_token": csrf}, timeout=10)
    assert gone.status_code == 200 and "Disconnected" in gone.text
    row = connection_row(app, conn.id)
    assert row.qbo_status == QboStatus.DISCONNECTED and row.qbo_company_name == "Sandbox Company US"
    assert requests.get(url.split("?")[0], timeout=10).status_code == 403  # no session, no page
