"""Run a piece of work at a lower CPU priority than the rest of its process, on a thread of its own.

Linux keeps a niceness per thread (``setpriority(PRIO_PROCESS, tid)`` changes only that thread), and a thread
starts at its creator's: a new thread that lowers its own priority takes every thread it starts with it, while the
thread that made it stays as it was. That is why the work gets a fresh thread: an unprivileged process can lower a
thread's priority but never raise it again, so a worker that niced its main thread for one bulk job would run
every later live job niced too. On other systems ``setpriority`` by thread id is not per thread, so the work runs
inline, at the process's priority (``supported``).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
MAX_NICE = 19
DEFAULT_BULK_NICE = 10  # `crm-qb worker --bulk-nice`: how much nicer a worker runs its bulk jobs


def supported() -> bool:
    """Whether this system nices a single thread (Linux)."""
    return sys.platform.startswith("linux")


def thread_niceness() -> int:
    """The calling thread's niceness."""
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def run(nice: int, work: Callable[[], T], name: str = "niced") -> T:
    """Run ``work`` on a new thread at niceness ``nice`` (at most 19; a thread already nicer stays as it is: a
    worker started with ``--nice`` keeps its own); return its result or raise its exception here. The calling
    thread waits; signals still reach it (the main thread) meanwhile, and the work's thread is a daemon, so a
    process told to stop now is not held by it."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, max(os.getpriority(os.PRIO_PROCESS, tid), min(MAX_NICE, nice)))
            outcome["value"] = work()
        except BaseException as exc:  # re-raised in the caller's thread
            outcome["error"] = exc

    if nice <= 0 or not supported():
        return work()
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]
