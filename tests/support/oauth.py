"""Helpers for the OAuth and admin-page tests: the QBO sandbox served on 127.0.0.1 and the admin's browser steps."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from crm_qb.config import Settings
from crm_qb.sandbox.qbo.app import create_app as create_sandbox_app
from crm_qb.sandbox.qbo.app import sandbox_of
from crm_qb.sandbox.qbo.sandbox import Sandbox, SandboxConfig
from crm_qb.web.signing import link_token
from tests.conftest import make_settings


@dataclass(frozen=True)
class LiveSandbox:
    """A QBO sandbox served by a real HTTP server in this process, and its /_sandbox/info."""

    sandbox: Sandbox
    base_url: str
    info: dict[str, Any]

    def settings_overrides(self) -> dict[str, str]:
        """The CRM_QB_* settings (as make_settings keywords) that point crm-qb at this sandbox."""
        return {
            "qbo_environment": "local", "qbo_discovery_url": self.info["discovery_url"],
            "qbo_api_base": self.info["api_base"], "qbo_app_base": self.info["app_base"],
            "qbo_client_id": self.info["client_id"], "qbo_client_secret": self.info["client_secret"],
        }

    def control(self, method: str, path: str, **body: Any) -> Any:
        """Call the sandbox's control API (``path`` under /_sandbox) and return the decoded JSON, if any."""
        response = requests.request(method, f"{self.base_url}/_sandbox{path}", json=body or None, timeout=5)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None


@contextmanager
def live_sandbox() -> Iterator[LiveSandbox]:
    """Serve a fresh QBO sandbox (demo realm seeded) on an ephemeral 127.0.0.1 port."""
    app = create_sandbox_app(SandboxConfig())
    server = make_server("127.0.0.1", 0, app, threaded=True)
    sandbox = sandbox_of(app)
    sandbox.base_url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield LiveSandbox(sandbox, sandbox.base_url, sandbox.info(sandbox.base_url))
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()
        sandbox.stop()


def sign_in(client: FlaskClient, app: Flask, connection_id: int) -> None:
    """Open the connection's signed admin link in ``client`` (a browser), starting its admin session."""
    token = link_token(app.secret_key or "", connection_id)
    response = client.get(f"/admin/connections/{connection_id}?token={token}")
    assert response.status_code == 303, response.get_data(as_text=True)


def start_connect(client: FlaskClient, connection_id: int) -> str:
    """Press Connect: return the Intuit (sandbox) authorize URL crm-qb redirects to."""
    response = client.get(f"/connections/{connection_id}/qbo/connect")
    assert response.status_code == 302, response.get_data(as_text=True)
    return str(response.headers["Location"])


def consent(authorize_url: str, **extra: str) -> str:
    """Let the sandbox consent (``realm=...`` picks a company, ``deny="1"`` refuses); return the callback path."""
    suffix = "".join(f"&{key}={value}" for key, value in extra.items())
    response = requests.get(authorize_url + suffix, allow_redirects=False, timeout=5)
    assert response.status_code in (302, 303), response.text
    parts = urlsplit(response.headers["Location"])
    assert parts.path == "/qbo/callback"
    return f"{parts.path}?{parts.query}"


def query_of(url: str) -> dict[str, str]:
    """The query parameters of ``url``, one value each."""
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def connect(client: FlaskClient, app: Flask, connection_id: int, **extra: str) -> Any:
    """The whole dance for ``connection_id`` in ``client``; returns the callback's response."""
    sign_in(client, app, connection_id)
    return client.get(consent(start_connect(client, connection_id), **extra))


@pytest.fixture(name="sandbox")
def sandbox_fixture() -> Iterator[LiveSandbox]:
    """A fresh QBO sandbox for the test (import as ``sandbox`` into a test module)."""
    with live_sandbox() as live:
        yield live


@pytest.fixture(name="settings")
def sandbox_settings(tmp_path: Path, database_url: str, sandbox: LiveSandbox) -> Settings:
    """The test's settings pointed at the sandbox (overrides tests.conftest's ``settings``)."""
    return make_settings(tmp_path, database_url, **sandbox.settings_overrides())
