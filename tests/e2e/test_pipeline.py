"""The whole ingress path with real processes: gunicorn answers, a worker processes, over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from subprocess import Popen

import pytest
import requests
from flask import Flask

from crm_qb.models import EventStatus
from crm_qb.signatures import sign_qbo
from tests.conftest import VERIFIER_TOKEN
from tests.support import fixture_bytes, free_port, wait_for
from tests.support.connections import add_connection, count_events, disable_sync

pytestmark = pytest.mark.e2e


def _up(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:  # refused while gunicorn binds, or slow while its workers boot
        return False



def test_signed_webhook_through_gunicorn_is_processed_by_a_worker(
    app: Flask, spawn: Callable[..., Popen[bytes]]
) -> None:
    connection = add_connection(app, realm_id="1185883450")
    disable_sync(app, connection.id)  # the plumbing is under test here, not the customer sync
    port = free_port()
    spawn("web", "--port", str(port), "--workers", "2")
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: _up(f"{base}/healthz"), timeout=90, what="gunicorn to answer /healthz")
    spawn("worker")
    body = fixture_bytes("qbo/webhook_legacy.json")
    response = requests.post(f"{base}/webhooks/qbo", data=body, timeout=5,
                             headers={"intuit-signature": sign_qbo(body, VERIFIER_TOKEN),
                                      "Content-Type": "application/json"})
    assert response.status_code == 200 and response.json()["stored"] == 1
    wait_for(lambda: count_events(app, status=EventStatus.PROCESSED) == 1, what="the worker to process the event")
    bad = requests.post(f"{base}/webhooks/qbo", data=body, timeout=5, headers={"intuit-signature": "x"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "invalid_signature"
