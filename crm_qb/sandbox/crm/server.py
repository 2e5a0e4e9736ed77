"""Serve the reference CRM: ``run()`` for the CLI (``crm-qb sandbox crm``), ``start_server()`` for tests.

When ready, ``run`` prints one JSON line to stdout (the ``/_sandbox/info`` object) and serves until SIGINT or
SIGTERM, then stops hook delivery and closes the store.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from collections.abc import Sequence
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from crm_qb.gcpolicy import bulk_collection
from crm_qb.sandbox.crm.app import create_app
from crm_qb.sandbox.crm.ratelimit import DEFAULT_REQUESTS, DEFAULT_WINDOW_SECONDS, check_requests, check_window
from crm_qb.sandbox.crm.state import Sandbox, SandboxConfig, sandbox_of


def public_host(host: str) -> str:
    """Return the host clients should use to reach a server bound to ``host``."""
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


class RunningServer:
    """A reference CRM serving on a background thread."""

    def __init__(self, server: BaseWSGIServer, sandbox: Sandbox, url: str) -> None:
        self.server, self.sandbox, self.url = server, sandbox, url
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="crm-sandbox-http", daemon=True)

    def start(self) -> RunningServer:
        """Start hook delivery and serving; return self."""
        self.sandbox.start()
        self._thread.start()
        return self

    @property
    def info(self) -> dict[str, Any]:
        """The ``/_sandbox/info`` object."""
        return self.sandbox.info(self.url)

    def stop(self) -> None:
        """Stop serving, stop hook delivery and close the store."""
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
        self.sandbox.stop()


def start_server(host: str = "127.0.0.1", port: int = 0, config: SandboxConfig | None = None) -> RunningServer:
    """Build the app, bind ``host:port`` (0 picks a free port) and serve it on a background thread."""
    app = create_app(config)
    try:
        server = make_server(host, port, app, threaded=True)
    except OSError:
        sandbox_of(app).stop()
        raise
    url = f"http://{public_host(host)}:{server.server_port}"
    sandbox = sandbox_of(app)
    sandbox.api_base = url
    return RunningServer(server, sandbox, url).start()


def run(host: str = "127.0.0.1", port: int = 0, persist_path: str | None = None, token: str | None = None,
        rate_limit: int | None = DEFAULT_REQUESTS, rate_window: float = DEFAULT_WINDOW_SECONDS) -> None:
    """Serve the reference CRM until SIGINT/SIGTERM, after printing its info as one JSON line."""
    config = SandboxConfig(persist_path=persist_path, token=token, rate_limit_requests=rate_limit,
                           rate_limit_window_seconds=rate_window)
    running = start_server(host, port, config)
    stopping = threading.Event()
    previous = _on_signals(lambda *_: stopping.set())
    try:
        print(json.dumps(running.info), flush=True)
        # A timed wait keeps the main thread responsive to signals on every platform.
        with bulk_collection():  # pages and batches of contacts per answer: collect cycles less often
            while not stopping.wait(0.2):
                pass
    finally:
        running.stop()
        _restore(previous)


def _on_signals(handler: Any) -> dict[int, Any]:
    """Install ``handler`` for SIGINT and SIGTERM when on the main thread; return the previous handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore(previous: dict[int, Any]) -> None:
    """Put back the signal handlers replaced by _on_signals."""
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def rate_limit_arg(text: str) -> int | None:
    """Parse ``--rate-limit``: a positive number of requests, or ``off`` (also ``0``)."""
    if text.strip().lower() in ("off", "0"):
        return None
    try:
        return check_requests(int(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'off', got {text!r}") from None


def rate_window_arg(text: str) -> float:
    """Parse ``--rate-window``: seconds above 0, at most 3600."""
    try:
        return check_window(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds above 0 and at most 3600, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and run (``python -m crm_qb.sandbox.crm.server``)."""
    parser = argparse.ArgumentParser(description="Serve the crm-qb reference CRM.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--persist", default=None,
                        help="SQLite file to keep contacts, users and activities in across restarts")
    parser.add_argument("--token", default=None, help="API token (default: generated, or the persisted one)")
    parser.add_argument("--rate-limit", type=rate_limit_arg, default=DEFAULT_REQUESTS, metavar="N|off",
                        help=f"API requests per window and token (default {DEFAULT_REQUESTS}; 'off' for none)")
    parser.add_argument("--rate-window", type=rate_window_arg, default=DEFAULT_WINDOW_SECONDS, metavar="SECONDS",
                        help=f"length of the rolling rate-limit window (default {DEFAULT_WINDOW_SECONDS:g})")
    args = parser.parse_args(argv)
    run(args.host, args.port, args.persist, args.token, args.rate_limit, args.rate_window)


if __name__ == "__main__":
    main()
