"""The one Redis lock crm-qb takes, renewed while it is held.

Four kinds of work hold it: every sync of a connection (so two workers never merge one link from stale bases), a
QBO token refresh (TokenManager, and the connect and disconnect views under the same key, so a refresh in flight
cannot undo them), and the work on one follow-up row (so two scans never talk to the CRM about it at once).

The lock lives ``ttl`` seconds and a thread renews it every ``ttl / 3`` while it is held, so a holder killed with
-9 blocks the others for seconds, not for as long as the longest piece of work might take; a live holder keeps it
however long the work is. ``wait`` is how long ``acquire`` waits for another holder (0: do not wait), and
``long_holder`` (when given) lets a waiter give up on a holder that has held the lock that long: at once when it
already has, else when it comes to (its token carries the moment it was taken), so a drain does not spend its wait
on a first sync or on a call to a side that answers slowly, which will not end within it. Releasing a
lock that expired meanwhile (Redis flushed, a renewal missed for a whole ttl) is logged, not raised: the work is
done by then, and the writes it made carry their own versions and tokens.

A holder whose renewals all failed for a whole ttl (a process starved of CPU, Redis unreachable) may have lost the
lock to another worker while it still works. Short holders finish their piece; long ones (a first sync holds the
connection's lock for minutes) ask ``lost`` between pages and stop there (``ensure_held``), so two workers never
go on writing one connection's links side by side.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from redis import Redis
from redis.exceptions import LockError, RedisError
from redis.lock import Lock

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 15.0
DEFAULT_WAIT_SECONDS = 30.0
# How often a waiter asks again (one SET NX each time). A sync lock is mostly held for one drain's tens of
# milliseconds, and the commonest wait is an echo: the other side's hook for the write a drain just made arrives
# while that drain still holds the lock. redis-py's default of 0.1 s added up to 100 ms to such an event for a wait
# of a few; at 0.01 s a waiter starts at most 10 ms after the release, for at most 100 cheap commands a second.
POLL_SECONDS = 0.01


class RenewingLock:
    """A Redis lock on ``name`` that a background thread renews while this process holds it."""

    def __init__(self, redis: Redis, name: str, *, ttl: float = DEFAULT_TTL_SECONDS,
                 wait: float = DEFAULT_WAIT_SECONDS, long_holder: float | None = None) -> None:
        if ttl <= 0 or wait < 0:
            raise ValueError(f"ttl must be positive and wait not negative, got ttl={ttl!r}, wait={wait!r}")
        self.name = name
        self._redis = redis
        self._long_holder = long_holder
        self._wait = wait
        # thread_local=False: the renewing thread uses the token that the acquiring thread got.
        self._lock: Lock = redis.lock(name, timeout=ttl, sleep=POLL_SECONDS, blocking=wait > 0,
                                      blocking_timeout=wait or None, thread_local=False)
        self._ttl = ttl
        self._renew_every = ttl / 3
        self._lost = threading.Event()
        self._keeper: _Keeper | None = None

    def acquire(self) -> bool:
        """Take the lock (waiting up to ``wait`` seconds, unless its holder is a long one); True when taken, False
        when someone else kept it."""
        if not self._take(new_token()):
            return False
        self._lost.clear()
        self._keeper = _Keeper(self._keep_alive, f"lock-{self.name}")
        return True

    def _take(self, token: str) -> bool:
        if self._long_holder is None:
            return bool(self._lock.acquire(token=token))
        deadline = time.monotonic() + self._wait
        while True:
            if self._lock.acquire(blocking=False, token=token):
                return True
            since = taken_at(self._redis.get(self.name))
            now = time.time()
            if since is not None and now - since >= self._long_holder:
                return False  # a long holder: it will not be done within the wait
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            # Wait no longer than until the holder becomes a long one: a holder that took the lock moments ago and
            # then waits for a slow side is not done sooner for being waited for (then ask again: another holder
            # may have taken it meanwhile, younger than this one).
            until_long = left if since is None else max(POLL_SECONDS, since + self._long_holder - now)
            if self._lock.acquire(blocking=True, blocking_timeout=min(left, until_long), token=token):
                return True

    def release(self) -> None:
        """Stop renewing and give the lock back; an expired lock is logged, never raised."""
        if self._keeper is not None:
            self._keeper.stop()
            self._keeper = None
        try:
            self._lock.release()
        except LockError:
            log.warning("lock %s had expired before it was released", self.name)

    @property
    def lost(self) -> bool:
        """Whether the lock may be another holder's by now: it expired, or no renewal got through for a ttl."""
        return self._lost.is_set()

    def ensure_held(self, busy: Callable[[], BaseException]) -> None:
        """Raise ``busy()`` when the lock was lost while held (a long holder calls this between its pieces)."""
        if self.lost:
            raise busy()

    def _keep_alive(self, stop: threading.Event) -> None:
        """Renew the lock until told to stop; logs failures and never raises."""
        renewed = time.monotonic()
        while not stop.wait(self._renew_every):
            try:
                self._lock.reacquire()
                renewed = time.monotonic()
            except LockError:  # lost: expired and maybe taken by another holder
                log.warning("lock %s was lost while held", self.name)
                self._lost.set()
                return
            except RedisError as exc:  # Redis blinked: try again at the next tick, while the ttl lasts
                log.warning("lock %s not renewed: %s", self.name, type(exc).__name__)
                if time.monotonic() - renewed >= self._ttl:  # expired by now, wherever Redis is
                    self._lost.set()


class RenewingLocks:
    """Locks on several names, each taken without waiting, all renewed by one thread while held.

    A follow-up scan creates tasks a hundred at a time and holds each row's lock for the batch; a ``RenewingLock``
    per row started and joined a hundred renewing threads per batch, more of a first sync's follow-up phase than
    the batch's own database work. The locks are the same Redis keys and tokens as ``RenewingLock``'s, so a
    single row's holder and a batch's exclude each other. A lock lost while held is logged; the work on a row is
    short and its writes are guarded (the row's status), as for a single row's lock.
    """

    def __init__(self, redis: Redis, names: list[str], *, ttl: float = DEFAULT_TTL_SECONDS) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be positive, got ttl={ttl!r}")
        self._locks = {name: redis.lock(name, timeout=ttl, blocking=False, thread_local=False) for name in names}
        self._held: list[Lock] = []
        self._renew_every = ttl / 3
        self._keeper: _Keeper | None = None

    def acquire(self) -> list[str]:
        """Take every lock no one else holds; the names taken."""
        taken = [name for name, lock in self._locks.items() if lock.acquire(blocking=False, token=new_token())]
        self._held = [self._locks[name] for name in taken]
        if self._held:
            self._keeper = _Keeper(self._keep_alive, "locks")
        return taken

    def release(self) -> None:
        """Stop renewing and give every lock back; an expired one is logged, never raised."""
        if self._keeper is not None:
            self._keeper.stop()
            self._keeper = None
        for lock in self._held:
            try:
                lock.release()
            except LockError:
                log.warning("lock %s had expired before it was released", lock.name)
        self._held = []

    def _keep_alive(self, stop: threading.Event) -> None:
        """Renew the held locks until told to stop; a lock lost is dropped from the renewals, a Redis error
        retried at the next tick. Never raises."""
        held = list(self._held)
        while held and not stop.wait(self._renew_every):
            for lock in list(held):
                try:
                    lock.reacquire()
                except LockError:
                    log.warning("lock %s was lost while held", lock.name)
                    held.remove(lock)
                except RedisError as exc:
                    log.warning("lock %s not renewed: %s", lock.name, type(exc).__name__)


class _Keeper:
    """The thread that renews a holder's locks: ``renew(stop)`` runs until ``stop()`` sets its event."""

    def __init__(self, renew: Callable[[threading.Event], None], name: str) -> None:
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=renew, args=(self._stopping,), daemon=True, name=name)
        self._thread.start()

    def stop(self) -> None:
        """Tell the renewals to stop and wait until they have."""
        self._stopping.set()
        self._thread.join()


def new_token() -> str:
    """A holder's token: its own, and carrying the moment it was taken (``taken_at``, for ``long_holder``)."""
    return f"{uuid.uuid4().hex}@{time.time():.3f}"


def taken_at(token: bytes | str | None) -> float | None:
    """When the holder of a lock whose value is ``token`` took it (seconds since the epoch); None when unknown."""
    if token is None:
        return None
    text = token.decode("ascii", "replace") if isinstance(token, bytes) else token
    try:
        return float(text.rpartition("@")[2]) if "@" in text else None
    except ValueError:
        return None


@contextmanager
def held(redis: Redis, name: str, busy: Callable[[], BaseException], *, ttl: float = DEFAULT_TTL_SECONDS,
         wait: float = DEFAULT_WAIT_SECONDS, long_holder: float | None = None) -> Iterator[RenewingLock]:
    """Hold the lock on ``name`` for the block (given to it, for ``ensure_held``); raise ``busy()`` when another
    holder keeps it past ``wait``, or at once when it has held it for ``long_holder`` seconds already."""
    lock = RenewingLock(redis, name, ttl=ttl, wait=wait, long_holder=long_holder)
    if not lock.acquire():
        raise busy()
    try:
        yield lock
    finally:
        lock.release()
