"""A small process supervisor for ``crm-qb up``: start children, relay their output, stop them all cleanly.

Ctrl-C (SIGINT) or SIGTERM stops every child with SIGTERM, waits, then SIGKILLs stragglers. If any child exits
on its own, the others are stopped too and ``up`` exits non-zero: a half-running system is worse than none.

With a ``log_dir`` each child's output goes to ``<log_dir>/<name>.log`` instead of the console (access logs and
start-up noise would bury what ``up`` has to say); a child that exits on its own then has the end of its log
shown, so the reason is on the console anyway.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

STOP_GRACE_SECONDS = 10
TAIL_LINES = 20


@dataclass
class Child:
    """A child process of the supervisor and the name its output lines are prefixed with."""

    name: str
    process: subprocess.Popen[str]
    ready_line: dict[str, Any] | None = None
    ready: threading.Event = field(default_factory=threading.Event)


class Supervisor:
    """Starts and stops a set of named child processes."""

    def __init__(self, out: IO[str] = sys.stdout, redact: Callable[[str], str] = str,
                 log_dir: Path | None = None) -> None:
        self.children: list[Child] = []
        self.out = out
        self.redact = redact  # applied to every relayed line (the sandboxes print their secrets when ready)
        self.log_dir = log_dir
        self._lock = threading.Lock()
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)

    def log_path(self, name: str) -> Path | None:
        """Where the output of the child ``name`` goes (None: the console)."""
        return self.log_dir / f"{name}.log" if self.log_dir is not None else None

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None,
              wait_for_json: bool = False, timeout: float = 60) -> Child:
        """Start ``argv``; with ``wait_for_json`` block until it prints its one JSON ready line."""
        process = subprocess.Popen(
            list(argv), env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1, start_new_session=True,
        )
        child = Child(name, process)
        self.children.append(child)
        threading.Thread(target=self._relay, args=(child, wait_for_json), daemon=True).start()
        if wait_for_json and not child.ready.wait(timeout):
            raise RuntimeError(f"{name} did not become ready within {timeout:.0f} s")
        if wait_for_json and child.ready_line is None:
            raise RuntimeError(f"{name} exited before it was ready (exit code {process.poll()})")
        return child

    def _relay(self, child: Child, wait_for_json: bool) -> None:
        assert child.process.stdout is not None
        path = self.log_path(child.name)
        sink = path.open("a", encoding="utf-8") if path is not None else None
        try:
            for line in child.process.stdout:
                if wait_for_json and child.ready_line is None and line.lstrip().startswith("{"):
                    try:
                        child.ready_line = json.loads(line)
                        child.ready.set()
                    except ValueError:
                        pass
                self._write(sink, f"[{child.name}] {self.redact(line)}")
        finally:
            if sink is not None:
                sink.close()
            child.ready.set()

    def _write(self, sink: IO[str] | None, text: str) -> None:
        with self._lock:
            target = sink if sink is not None else self.out
            target.write(text)
            target.flush()

    def run_once(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
        """Run a one-shot step (e.g. a migration) to its end, relaying its output; return its exit code."""
        child = self.start(name, argv, env)
        self.children.remove(child)  # a finished step is not a service whose exit should stop the others
        code = child.process.wait()
        child.ready.wait(5)  # let the relay thread flush the step's last lines
        return code

    def wait(self) -> int:
        """Block until a signal arrives or a child exits; stop everything; return the exit status."""
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        exited: Child | None = None
        while not stop.is_set() and exited is None:
            exited = next((c for c in self.children if c.process.poll() is not None), None)
            stop.wait(0.5)
        if exited is not None:
            self._say(f"{exited.name} exited with code {exited.process.returncode}; stopping everything")
            self.show_tail(exited.name)
        self.stop()
        return 0 if exited is None else 1

    def stop(self) -> None:
        """SIGTERM every child, wait up to the grace period, SIGKILL what is left."""
        for child in self.children:
            if child.process.poll() is None:
                _signal_group(child.process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for child in self.children:
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(child.process, signal.SIGKILL)
                child.process.wait()
        self._say("stopped")

    def show_tail(self, name: str) -> None:
        """Show the last lines of a child's log file on the console (nothing when it logs to the console)."""
        path = self.log_path(name)
        if path is None or not path.exists():
            return
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[-TAIL_LINES:]
        self._say(f"the end of {path}:\n" + "\n".join(lines))

    def _say(self, message: str) -> None:
        with self._lock:
            self.out.write(f"[up] {message}\n")
            self.out.flush()


def _signal_group(process: subprocess.Popen[str], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
