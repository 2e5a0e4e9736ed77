"""Fixtures for the reference CRM: a test-client app, a real server on an ephemeral port, a hook receiver."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from crm_qb.sandbox.crm.app import SandboxConfig, create_app, sandbox_of
from crm_qb.sandbox.crm.server import RunningServer, start_server

TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FAST_HOOKS = {"hook_backoff_base": 0.05, "hook_backoff_max": 0.2, "hook_timeout": 2.0}


@pytest.fixture
def app() -> Iterator[Flask]:
    """An app without background threads."""
    app = create_app(SandboxConfig(token=TOKEN, **FAST_HOOKS))
    yield app
    sandbox_of(app).stop()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A Flask test client."""
    return app.test_client()


@pytest.fixture
def live_crm() -> Iterator[RunningServer]:
    """A real reference CRM serving on 127.0.0.1 with hook delivery running."""
    running = start_server("127.0.0.1", 0, SandboxConfig(token=TOKEN, **FAST_HOOKS))
    yield running
    running.stop()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A requests session that ignores proxy settings from the environment."""
    with requests.Session() as session:
        session.trust_env = False
        yield session


class HookReceiver:
    """A tiny real HTTP server that records hook requests and can fail the first ones."""

    def __init__(self) -> None:
        self.received: list[tuple[bytes, dict[str, str]]] = []
        self.statuses: list[int] = []
        self.fail_first = 0
        self.delay = 0.0
        self.gate = threading.Event()  # cleared: requests are recorded but not answered until it is set
        self.gate.set()
        self.answered = 0
        self._cond = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})

    @property
    def url(self) -> str:
        """The URL hooks should be posted to."""
        return f"http://127.0.0.1:{self._server.server_port}/webhooks/crm/1"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        """Build the request handler bound to this receiver."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver._record(body, dict(self.headers))
                time.sleep(receiver.delay)
                receiver.gate.wait(30)
                receiver.answered += 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                """Keep test output quiet."""

        return Handler

    def _record(self, body: bytes, headers: dict[str, str]) -> int:
        """Store one request and decide its status."""
        with self._cond:
            status = 500 if len(self.statuses) < self.fail_first else 202
            self.statuses.append(status)
            if status == 202:
                self.received.append((body, headers))
            self._cond.notify_all()
            return status

    def events(self) -> list[dict[str, Any]]:
        """All events accepted so far, in arrival order."""
        with self._cond:
            return [event for body, _ in self.received for event in json.loads(body)["events"]]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` holds, else fail the test."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                assert remaining > 0, "timed out waiting for hooks"
                self._cond.wait(remaining)

    def wait_events(self, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Wait until ``count`` events arrived and return them."""
        self.wait_for(lambda: sum(len(json.loads(b)["events"]) for b, _ in self.received) >= count, timeout)
        return self.events()

    def start(self) -> None:
        """Start serving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@pytest.fixture
def receiver() -> Iterator[HookReceiver]:
    """A running hook receiver."""
    hook_receiver = HookReceiver()
    hook_receiver.start()
    yield hook_receiver
    hook_receiver.stop()
