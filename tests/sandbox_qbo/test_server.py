"""The sandbox as a real server on 127.0.0.1: the ready line, a client over HTTP, SIGTERM, persistence."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from urllib.parse import parse_qs, urlsplit

import requests

from crm_qb.sandbox.qbo.app import create_app, sandbox_of
from crm_qb.sandbox.qbo.sandbox import SandboxConfig

from .conftest import REDIRECT


def _connect(info: dict) -> tuple[str, str]:
    """Discovery → authorize → token over real HTTP, as a client library does; (access token, realm)."""
    session = requests.Session()
    doc = session.get(info["discovery_url"], timeout=5).json()
    redirect = session.get(doc["authorization_endpoint"], allow_redirects=False, timeout=5, params={
        "client_id": info["client_id"], "response_type": "code", "scope": "com.intuit.quickbooks.accounting",
        "redirect_uri": REDIRECT, "state": "x"})
    query = parse_qs(urlsplit(redirect.headers["Location"]).query)
    tokens = session.post(doc["token_endpoint"], auth=(info["client_id"], info["client_secret"]), timeout=5,
                          data={"grant_type": "authorization_code", "code": query["code"][0],
                                "redirect_uri": REDIRECT}).json()
    return tokens["access_token"], query["realmId"][0]


def test_a_client_speaks_to_the_live_server(live):
    info = requests.get(f"{live.base_url}/_sandbox/info", timeout=5).json()
    token, realm = _connect(info)
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    created = requests.post(f"{info['api_base']}/v3/company/{realm}/customer?minorversion=75", headers=headers,
                            json={"DisplayName": "Over HTTP"}, timeout=5)
    assert created.status_code == 200 and created.headers["intuit_tid"]
    customer_id = created.json()["Customer"]["Id"]
    read = requests.get(f"{info['api_base']}/v3/company/{realm}/customer/{customer_id}?minorversion=75",
                        headers=headers, timeout=5)
    assert read.json()["Customer"]["DisplayName"] == "Over HTTP"


def test_concurrency_limit_answers_429(live):
    live.limiter.configure(concurrent=1)
    live.faults.configure(live.demo_realm_id, latency_ms=300)
    info = live.info(live.base_url)
    token, realm = _connect(info)
    url = f"{info['api_base']}/v3/company/{realm}/customer/1"
    statuses: list[int] = []

    def call() -> None:
        statuses.append(requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 429, 429]


def test_run_prints_one_json_line_and_stops_on_sigterm(tmp_path):
    db = tmp_path / "sandbox.db"
    code = ("from crm_qb.sandbox.qbo.server import run; "
            f"run(host='127.0.0.1', port=0, persist_path={str(db)!r})")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    try:
        info = json.loads(process.stdout.readline())
        assert info["api_base"].startswith("http://127.0.0.1:")
        token, realm = _connect(info)
        headers = {"Authorization": f"Bearer {token}"}
        requests.post(f"{info['api_base']}/v3/company/{realm}/customer", headers=headers,
                      json={"DisplayName": "Persisted"}, timeout=5).raise_for_status()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
    reloaded = sandbox_of(create_app(SandboxConfig(persist_path=str(db))))
    names = {c["DisplayName"] for c in reloaded.engine.rows(reloaded.demo_realm_id, "Customer")}
    assert "Persisted" in names and "Amy's Bird Sanctuary" in names
    assert len(reloaded.engine.rows(reloaded.demo_realm_id, "Customer")) == 5
    reloaded.stop()
