"""Serving the sandbox: ``run`` binds, prints one JSON line (the /_sandbox/info object) and serves until
SIGINT or SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import threading

from werkzeug.serving import make_server

from crm_qb.gcpolicy import bulk_collection

from . import jsonio
from .app import create_app, sandbox_of
from .sandbox import SandboxConfig


def run(host: str = "127.0.0.1", port: int = 0, persist_path: str | None = None, seed_demo: bool = True) -> None:
    """Serve the sandbox on host:port (0: any free port) until SIGINT/SIGTERM; prints the info line when ready."""
    # The demo keeps superseded refresh tokens usable for a while, as Intuit's rotation tolerates races.
    config = SandboxConfig(persist_path=persist_path, seed_demo=seed_demo, refresh_grace_seconds=300.0)
    app = create_app(config)
    sandbox = sandbox_of(app)
    server = make_server(host, port, app, threaded=True)
    sandbox.base_url = f"http://{_url_host(host)}:{server.server_port}"
    stopping = threading.Event()

    def stop(_signum: int, _frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            # shutdown() waits for serve_forever to return, so it must run outside the serving thread.
            threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    sandbox.start()
    try:
        sys.stdout.write(jsonio.dumps(sandbox.info(sandbox.base_url)) + "\n")
        sys.stdout.flush()
        with bulk_collection():  # a page of a thousand objects per answer: collect cycles less often
            server.serve_forever()
    finally:
        server.server_close()
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
