"""Fixtures for the local HubSpot: a test-client app, a real server, HubSpot's official client, a receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import hubspot
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from crm_qb.sandbox.hubspot.app import create_app, sandbox_of
from crm_qb.sandbox.hubspot.server import RunningServer, start_server
from crm_qb.sandbox.hubspot.state import SandboxConfig
from tests.support import wait_for

TOKEN = "pat-na1-test-token"
CLIENT_ID = "test-client-id"
CLIENT_SECRET = "test-client-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PAYLOADS = Path(__file__).resolve().parents[2] / "docs" / "hubspot" / "payloads"
# Squeezes HubSpot's 24-hour retry schedule into well under a second.
FAST = {"webhook_retry_scale": 0.00001, "webhook_timeout": 2.0, "webhook_seed": 7}


def config(**overrides: Any) -> SandboxConfig:
    """A sandbox config with fixed credentials."""
    values: dict[str, Any] = {"token": TOKEN, "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **FAST}
    values.update(overrides)
    return SandboxConfig(**values)


def payload_bytes(name: str) -> bytes:
    """The raw bytes of a documented HubSpot payload in docs/hubspot/payloads."""
    return (PAYLOADS / name).read_bytes()


def payload(name: str) -> Any:
    """A documented HubSpot payload, decoded."""
    return json.loads(payload_bytes(name))


@pytest.fixture
def app() -> Iterator[Flask]:
    """An app without background threads."""
    app = create_app(config())
    yield app
    sandbox_of(app).stop()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A Flask test client."""
    return app.test_client()


@pytest.fixture
def live() -> Iterator[RunningServer]:
    """A real local HubSpot on 127.0.0.1 with webhook delivery running."""
    running = start_server("127.0.0.1", 0, config())
    yield running
    running.stop()


@pytest.fixture
def hs(live: RunningServer) -> hubspot.Client:
    """HubSpot's official client pointed at the live sandbox: only host and base_url changed."""
    return hubspot.Client.create(access_token=TOKEN, host=live.url, base_url=live.url)


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A requests session that ignores proxy settings from the environment."""
    with requests.Session() as session:
        session.trust_env = False
        yield session


@dataclass
class Received:
    """One request a receiver got."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes

    def events(self) -> list[dict[str, Any]]:
        """The webhook events in the body."""
        return json.loads(self.body)


class Receiver:
    """A real HTTP server that records requests and answers with scripted statuses (then 200)."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.script: list[tuple[int, dict[str, str]]] = []
        self.reply: dict[str, Any] | None = None
        self._cond = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})

    @property
    def url(self) -> str:
        """The base URL of this receiver (paths are free)."""
        return f"http://127.0.0.1:{self._server.server_port}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, headers = receiver._record(Received(self.command, self.path, dict(self.headers), body))
                payload = json.dumps(receiver.reply).encode() if receiver.reply is not None else b""
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_GET = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                """Keep test output quiet."""

        return Handler

    def _record(self, received: Received) -> tuple[int, dict[str, str]]:
        with self._cond:
            self.requests.append(received)
            self._cond.notify_all()
            return self.script.pop(0) if self.script else (200, {})

    def events(self) -> list[dict[str, Any]]:
        """Every event received so far, in arrival order."""
        with self._cond:
            return [e for r in self.requests for e in r.events()]

    def wait_events(self, predicate: Callable[[list[dict[str, Any]]], bool], what: str) -> list[dict[str, Any]]:
        """Wait until the received events satisfy ``predicate``; return them."""
        return wait_for(lambda: predicate(self.events()) and self.events(), timeout=20, what=what)

    def start(self) -> Receiver:
        """Start serving."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running receiver."""
    running = Receiver().start()
    yield running
    running.stop()
