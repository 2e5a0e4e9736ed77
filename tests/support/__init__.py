"""Helpers shared by every kind of test (unit, integration, end-to-end, browser, benchmarks), in one package.

This module: the repository root, fixture files, waiting, free ports. ``connections``: connections and the signed
requests they receive; ``folder``: QBO-shaped transactions and folder rows; ``oauth``: the QBO sandbox served in
process and the admin's browser steps; ``sync``: the customer-sync harness (both sandboxes on threads, a
connected app); ``followups``: the follow-up tests' world; ``e2e``: crm-qb and the sandboxes as real processes.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
QBO_FIXTURES = FIXTURES / "qbo"
T = TypeVar("T")


def fixture_bytes(name: str) -> bytes:
    """The raw bytes of a fixture file under tests/fixtures (e.g. "qbo/webhook_legacy.json")."""
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    """A fixture file decoded as JSON."""
    return json.loads(fixture_bytes(name))


def qbo_fixture(name: str) -> Any:
    """A QBO payload of tests/fixtures/qbo decoded as the client decodes it (amounts as exact Decimals)."""
    return json.loads((QBO_FIXTURES / name).read_text(encoding="utf-8"), parse_float=Decimal)


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.1, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_all(processes: list[subprocess.Popen[bytes]], grace: float = 30.0) -> None:
    """Terminate several processes at once and reap them; those still running after ``grace`` s are killed.

    Signalled together, they shut down side by side: a teardown takes the slowest one's time, not the sum.
    """
    alive = [p for p in processes if p.poll() is None]
    for process in alive:
        process.terminate()
    deadline = time.monotonic() + grace
    for process in alive:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(grace)


def stop(process: subprocess.Popen[bytes], grace: float = 30.0) -> None:
    """Terminate a process started by a test and reap it; a process that ignores SIGTERM for ``grace`` s is killed.

    A loaded machine (CI shares two cores between three test processes and the servers they start) can take more
    than a few seconds to run a server's shutdown, which must not fail the test that only wanted it gone.
    """
    stop_all([process], grace)
