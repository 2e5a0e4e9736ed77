"""Serve the local HubSpot: ``run()`` for the CLI (``crm-qb sandbox hubspot``), ``start_server()`` for tests.

When ready, ``run`` prints one JSON line to stdout (the ``/_sandbox/info`` object) and serves until SIGINT or
SIGTERM, then stops webhook delivery and closes the store.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

from crm_qb.sandbox.hubspot.app import create_app
from crm_qb.sandbox.hubspot.state import Sandbox, SandboxConfig, sandbox_of


def url_host(host: str) -> str:
    """Return the host part of the URL clients use for a server bound to ``host`` (any address: loopback)."""
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


@contextmanager
def stop_on_signals(stopping: threading.Event) -> Iterator[None]:
    """Set ``stopping`` on SIGINT or SIGTERM while inside the block (main thread only), then restore handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class RunningServer:
    """A local HubSpot serving on a background thread."""

    def __init__(self, server: BaseWSGIServer, sandbox: Sandbox, url: str) -> None:
        self.server, self.sandbox, self.url = server, sandbox, url
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="hubspot-sandbox-http", daemon=True)

    def start(self) -> RunningServer:
        """Start webhook delivery and serving; return self."""
        self.sandbox.start()
        self._thread.start()
        return self

    @property
    def info(self) -> dict[str, Any]:
        """The ``/_sandbox/info`` object."""
        return self.sandbox.info(self.url)

    def stop(self) -> None:
        """Stop serving, stop webhook delivery and close the store."""
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
    url = f"http://{url_host(host)}:{server.server_port}"
    sandbox = sandbox_of(app)
    sandbox.api_base = sandbox.api_base or url
    return RunningServer(server, sandbox, url).start()


def run(host: str = "127.0.0.1", port: int = 0, persist_path: str | None = None, portal_id: int = 62515) -> None:
    """Serve the local HubSpot until SIGINT/SIGTERM, after printing its info as one JSON line."""
    running = start_server(host, port, SandboxConfig(persist_path=persist_path, portal_id=portal_id))
    stopping = threading.Event()
    with stop_on_signals(stopping):
        try:
            print(json.dumps(running.info), flush=True)
            while not stopping.wait(0.2):  # a timed wait keeps the main thread responsive to signals
                pass
        finally:
            running.stop()


def main(argv: Sequence[str] | None = None) -> None:
    """Parse ``--host --port --persist --portal-id`` and run (``python -m crm_qb.sandbox.hubspot.server``)."""
    parser = argparse.ArgumentParser(description="Serve the crm-qb local HubSpot.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--persist", default=None, help="SQLite file to keep the portal in across restarts")
    parser.add_argument("--portal-id", type=int, default=62515)
    args = parser.parse_args(argv)
    run(args.host, args.port, args.persist, args.portal_id)


if __name__ == "__main__":
    main()
