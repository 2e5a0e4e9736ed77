"""A worker of every queue serves its bulk queue from a child process, so its live queues never wait for a first sync.

An RQ worker runs one job at a time. A first sync, the drains of the backlog it leaves, or a backfill (queue
``backfill``) run for minutes, and the worker that took one used to serve nothing else meanwhile: beside it a host
had one live worker fewer, just while the first sync also took CPU. Measured on the 2-core development machine (20
live tenants, 20 changes a second, a 3,000-customer first sync; README, Benchmarks), the live drains then waited
for a worker (queued p95 0.22 s against 0.01 s) and their p95 rose 4 to 5 times. With the live workers' number
unchanged beside a bulk worker of its own, their p95 rose 2 to 29 %; with this child, their queued p95 was
0.01 to 0.07 s, and what is left is CPU.

So ``crm-qb worker`` serving the live queues and ``backfill`` (its default) starts a child ``crm-qb worker --queues
backfill`` at CPU niceness ``--bulk-nice`` and, on Linux, at the idle scheduling priority (``--idle``, unless
``--no-bulk-idle``), and serves the live queues itself: one command still serves every queue, and bulk work runs
beside live work instead of in its place. The child is in a process of its own, not on
a thread of the worker: a thread would share the interpreter lock with the live jobs, and a niced thread holding
it while the CPU is busy keeps them waiting (priority inversion).

The child lives and dies with its parent. It is started again (after 1 s, doubling to 30 s) when it exits on its
own; a stop of the parent (SIGTERM, Ctrl-C: RQ's warm shutdown) stops it the same way and waits for it to end its
job; and a parent killed outright takes it along (Linux: ``PR_SET_PDEATHSIG``; elsewhere the child looks for its
parent every second), so killing a worker still kills the job it runs, which its sweep or the first sync's resume
picks up (README, Reliability). A burst worker (``--burst``: tests, one-off runs) keeps running its bulk
jobs itself, in queue order.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

log = logging.getLogger(__name__)

RESTART_AFTER_SECONDS = 1.0
RESTART_AFTER_MAX_SECONDS = 30.0
STABLE_SECONDS = 60.0  # a child that ran this long before it exited is started again after the shortest wait
PARENT_CHECK_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1


def child_argv(bulk_nice: int, idle: bool = True) -> list[str]:
    """The command line of a bulk child: the bulk queue only, the whole process at ``bulk_nice`` and, with
    ``idle``, at Linux's idle CPU priority (its jobs then run on its main thread, with RQ's signal timeout), and tied
    to this process."""
    return [sys.executable, "-m", "crm_qb.cli", "worker", "--queues", "backfill", "--nice", str(bulk_nice),
            *(["--idle"] if idle else []), "--bulk-nice", "0", "--exit-with-parent", str(os.getpid())]


class BulkProcess:
    """Runs ``argv`` as a child process until ``stop``; starts it again when it exits on its own."""

    def __init__(self, argv: Sequence[str], restart_after: float = RESTART_AFTER_SECONDS,
                 restart_after_max: float = RESTART_AFTER_MAX_SECONDS) -> None:
        self.argv = list(argv)
        self.restart_after = restart_after
        self.restart_after_max = restart_after_max
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, name="bulk-process", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def request_stop(self) -> None:
        """Ask the child to stop (SIGTERM: RQ's warm shutdown, it ends its job first) and not start it again.

        Called from the parent's signal handler as soon as the parent is asked to stop, so a signal the child also
        got itself (Ctrl-C reaches the whole process group, ``systemctl stop`` the whole service) arrives within the
        second in which RQ takes a repeated signal for the same request, not for a second, cold, one."""
        with self._lock:
            self._stopping.set()
            process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float | None = None) -> int | None:
        """``request_stop`` and wait for the child; return its exit code. Interrupted while waiting (a second
        Ctrl-C), the child is killed."""
        self.request_stop()
        with self._lock:
            process = self._process
        try:
            if self._thread.is_alive():
                self._thread.join(timeout)
        except BaseException:
            if process is not None and process.poll() is None:
                process.kill()
            raise
        return process.poll() if process is not None else None

    def _supervise(self) -> None:
        """Start the child and wait for it; while not stopping, start it again after a growing pause.

        The child is started from this thread, which lives as long as the child may: Linux sends the parent-death
        signal when the thread that started a child ends, not only when its process does."""
        wait = self.restart_after
        while True:
            with self._lock:
                if self._stopping.is_set():
                    return
                self._process = subprocess.Popen(self.argv)
            started = time.monotonic()
            code = self._process.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started >= STABLE_SECONDS:
                wait = self.restart_after
            log.warning("bulk worker process %s exited with code %s; starting it again in %.0f s",
                        self._process.pid, code, wait)
            if self._stopping.wait(wait):
                return
            wait = min(wait * 2, self.restart_after_max)


def exit_with_parent(parent_pid: int) -> None:
    """End this process when ``parent_pid`` (the worker that started it) is gone: at once on Linux (the kernel
    kills it), else within ``PARENT_CHECK_SECONDS``. A parent already gone ends it now."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
            log.warning("could not tie the bulk worker to its parent (errno %s): watching it instead",
                        ctypes.get_errno())
            _watch_parent(parent_pid)
    else:
        _watch_parent(parent_pid)
    if os.getppid() != parent_pid:  # the parent died before the tie was made
        os._exit(1)


def _watch_parent(parent_pid: int) -> None:
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_SECONDS)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
