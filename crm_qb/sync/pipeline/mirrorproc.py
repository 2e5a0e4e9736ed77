"""The backfill's transaction walk in a process of its own, so that it runs on another core.

crm-qb's threads share one interpreter lock: a backfill's CPU (parsing QBO's pages, matching and linking
customers, building and inserting folder rows) is a floor on its wall time however its waits overlap. The folder
does not depend on links, so the transaction walk (read every transaction page, mirror it, commit it) can run in
a second process beside the customer phase: ``MirrorChild`` starts it (``python -m workers.mirror_child``, given
the app's settings), and the child runs ``backfill.serve_transactions``.

The protocol is JSON lines. The child writes one line per committed page (``{"page": {"entity", "counts"}}``:
what the page added to the transaction phase's counts), then ``{"done": true}``, or ``{"error": …}`` (the
exception pickled, and its text) when the walk stopped. The parent answers each page with ``ok`` on the child's
stdin while its sync lock is held; the child commits at most ``WINDOW`` pages beyond the last answered one, so a
parent that lost its lock (or died) stops the walk within a few pages, as the one-process run stops at a page
boundary. Closing the child's stdin asks it to stop after the page it is on.

Nothing of the walk is lost or counted twice: a page is counted when its line arrives, each page is committed in
one transaction by the child before its line is written, and a walk that stops half-way leaves its committed
pages, which a second backfill counts ``unchanged``.
"""

from __future__ import annotations

import base64
import json
import logging
import pickle
import queue
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from crm_qb.errors import TransientError

log = logging.getLogger(__name__)

WINDOW = 4  # pages the child may commit beyond the last one its parent answered
STOP_WAIT_SECONDS = 30.0  # how long a stopping child may take to finish its page before it is killed


class MirrorProcessError(TransientError):
    """The transaction process stopped without finishing (killed, crashed, or its error could not be read)."""


@dataclass(frozen=True)
class Task:
    """What the child walks: the connection, its job, the page size, whether its pages give way to live work."""

    connection_id: int
    job_id: str | None
    page_size: int
    paced: bool
    log_level: str


# Starts the child for a task: the runtime's (``SyncServices.mirror_process``), or a test's.
MirrorStarter = Callable[[Task], "MirrorChild"]


def encode_error(exc: BaseException) -> dict[str, Any]:
    """An exception as a JSON-safe message: pickled when it can be, and its type and text in any case."""
    try:
        pickled: str | None = base64.b64encode(pickle.dumps(exc)).decode()
    except Exception:  # one that does not pickle: its type and text are sent
        pickled = None
    return {"error": {"pickled": pickled, "type": type(exc).__name__, "text": str(exc)}}


def decode_error(message: dict[str, Any]) -> Exception:
    """The exception a child sent (``encode_error``); MirrorProcessError when it cannot be rebuilt."""
    pickled = message.get("pickled")
    if pickled:
        try:
            exc = pickle.loads(base64.b64decode(pickled))
            if isinstance(exc, Exception):
                return exc
        except Exception:  # one that does not unpickle here: its type and text are raised
            pass
    return MirrorProcessError(f"the transaction process failed: {message.get('type')}: {message.get('text')}")


class MirrorChild:
    """The parent's side of one transaction process: its messages, read on a thread, and its stopping."""

    def __init__(self, process: subprocess.Popen[str], check: Callable[[], bool] | None = None) -> None:
        self.process = process
        self.check = check or (lambda: True)  # answered pages are those seen while this says the lock is held
        self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.finished = False  # "done", an error or the end of its output was taken
        self.reader = threading.Thread(target=self._read, daemon=True, name="backfill-mirror-reader")
        self.reader.start()

    @classmethod
    def start(cls, argv: Sequence[str], payload: bytes, env: dict[str, str] | None = None,
              check: Callable[[], bool] | None = None) -> MirrorChild:
        """Start ``argv`` with ``payload`` (pickled settings and task) as the first line of its stdin, base64;
        ``check`` as ``__init__``'s (the backfill sets its own once it has the child)."""
        process = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                   bufsize=1, env=env)
        assert process.stdin is not None
        process.stdin.write(base64.b64encode(payload).decode() + "\n")
        process.stdin.flush()
        return cls(process, check)

    def _read(self) -> None:
        assert self.process.stdout is not None
        try:
            for line in self.process.stdout:
                if not line.strip():
                    continue
                message = json.loads(line)
                if "page" in message:
                    self._answer()
                self.messages.put(message)
        except (OSError, ValueError) as exc:
            self.messages.put({"error": {"pickled": None, "type": type(exc).__name__,
                                         "text": f"unreadable output of the transaction process: {exc}"}})
        finally:
            self.messages.put(None)

    def _answer(self) -> None:
        if not self.check():
            return  # the lock is lost: the child stalls after its window and is stopped by ``stop``
        try:
            assert self.process.stdin is not None
            self.process.stdin.write("ok\n")
            self.process.stdin.flush()
        except (OSError, ValueError):  # it stopped meanwhile (or is being stopped): nothing to answer
            pass

    def take(self, block: bool) -> dict[str, Any] | None:
        """The next message (``{"page": …}``, ``{"done": True}``, ``{"error": …}``); None when there is none now
        (``block`` False) or no more (the process ended). The end of the output without "done" or an error is
        reported as an error message."""
        if self.finished:
            return None
        try:
            message = self.messages.get(block=block)
        except queue.Empty:
            return None
        if message is None:
            self.finished = True
            code = self.process.wait()
            return {"error": {"pickled": None, "type": "exit",
                              "text": f"the transaction process ended without finishing (exit code {code})"}}
        if "done" in message or "error" in message:
            self.finished = True
        return message

    def stop(self) -> None:
        """Ask the child to stop after its page, wait for it (killed after STOP_WAIT_SECONDS), and end the reader."""
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
        except (OSError, ValueError):
            pass
        try:
            self.process.wait(STOP_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("the transaction process %s did not stop in %.0f s: killed", self.process.pid,
                        STOP_WAIT_SECONDS)
            self.process.kill()
            self.process.wait()
        self.reader.join(STOP_WAIT_SECONDS)
        if self.process.stdout is not None:
            self.process.stdout.close()


class Answers:
    """The child's side of the window: before committing a page, wait until at most WINDOW are unanswered."""

    def __init__(self, inp: IO[str]) -> None:
        self.inp, self.sent, self.answered = inp, 0, 0

    def wait_turn(self) -> bool:
        """Whether the next page may be committed: False when the parent stopped answering (stdin closed)."""
        while self.sent - self.answered >= WINDOW:
            line = self.inp.readline()
            if not line:
                return False
            if line.strip() == "ok":
                self.answered += 1
        return True


def write(out: IO[str], message: dict[str, Any]) -> None:
    """One message line to the parent."""
    out.write(json.dumps(message) + "\n")
    out.flush()
