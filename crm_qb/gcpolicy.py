"""The cyclic garbage collector's thresholds while bulk work runs (a backfill, its transaction process, the sandboxes).

CPython runs a generation-0 collection every 700 container allocations beyond deallocations. A backfill allocates
millions of short-lived containers (every parsed QBO object, its folder row, its link and audit values), most of
them alive for a page: at 10,000 / 30,000 the collector took 14 % of the backfill's CPU and 20 % of its
transaction process's, about 1,000 to 1,350 collections each, promoting each page's objects into older
generations only to find them garbage later. With generation 0 at 20,000 the same runs collected 23 and 36 times
and spent a quarter of that CPU (docs/benchmarks-history.md, ``backfill7``). Nothing is kept longer than the next
collection: reference counting still frees every acyclic object at once, only reference cycles wait for a
collection, now after 20,000 net allocations rather than 700.

``bulk_collection`` sets those thresholds for as long as any thread is inside it and restores the process's own
afterwards (a worker runs live jobs too); it nests and may be entered from several threads.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

BULK_THRESHOLDS = (20_000, 20, 10)

_lock = threading.Lock()
_inside = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def bulk_collection() -> Iterator[None]:
    """Collect garbage less often (``BULK_THRESHOLDS``) until the last thread inside leaves."""
    global _inside, _saved
    with _lock:
        if _inside == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(*BULK_THRESHOLDS)
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None
