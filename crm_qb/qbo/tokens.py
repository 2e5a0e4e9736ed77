"""Access tokens for QBO connections: refresh early, once at a time across every process.

Intuit rotates refresh tokens and rejects a superseded one with ``invalid_grant`` (docs/qbo/facts.md §1.4-1.6), so two
workers refreshing with the same token at once can disconnect a company. Every refresh therefore runs under
the connection's token lock (``crm_qb.locks``, renewed while held, so it outlives a slow token call); inside it
the stored tokens are read again (another process may have refreshed while we waited) and the new pair is saved
before the new access token is handed out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from redis import Redis

from crm_qb.errors import PermanentError, TransientError
from crm_qb.keys import RedisKeys
from crm_qb.locks import RenewingLock
from crm_qb.qbo.oauth import InvalidGrantError, TokenSet, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredTokens:
    """What the store holds for a connection: its tokens and whether it must be reconnected."""

    tokens: TokenSet
    needs_reconnect: bool = False
    reconnect_reason: str | None = None


class TokenStore(Protocol):
    """Durable storage of each connection's tokens (the database, encrypted at rest)."""

    def load(self, connection_id: str) -> StoredTokens | None:
        """The connection's tokens, or None when it was never connected to QuickBooks."""

    def save(self, connection_id: str, tokens: TokenSet) -> None:
        """Persist both tokens durably (committed) before returning; clears any needs-reconnect mark."""

    def mark_needs_reconnect(self, connection_id: str, reason: str) -> None:
        """Record durably that the user must connect QuickBooks again, and why."""


class NotConnectedError(PermanentError):
    """The connection has no QuickBooks tokens at all."""


class NeedsReconnectError(PermanentError):
    """The connection's grant is gone (invalid_grant, expired refresh token): a user must reconnect."""

    def __init__(self, connection_id: str, reason: str) -> None:
        super().__init__(f"QuickBooks must be reconnected for connection {connection_id}: {reason}")
        self.connection_id = connection_id
        self.reason = reason

    def __reduce__(self) -> tuple[type[NeedsReconnectError], tuple[str, str]]:
        return (type(self), (self.connection_id, self.reason))


class RefreshBusyError(TransientError):
    """Another process held the refresh lock for too long; retry shortly."""


class TokenManager:
    """Hands out valid access tokens per connection, refreshing under a per-connection Redis lock."""

    def __init__(
        self,
        redis: Redis,
        store: TokenStore,
        oauth_refresh: Callable[[str], TokenSet],
        clock: Callable[[], datetime] = utcnow,
        skew: timedelta = timedelta(minutes=5),
        *,
        lock_wait: float = 45.0,
        keys: RedisKeys | None = None,
    ) -> None:
        self._redis = redis
        self._store = store
        self._oauth_refresh = oauth_refresh
        self._clock = clock
        self._skew = skew
        self._lock_wait = lock_wait
        self._keys = keys or RedisKeys()

    def access_token(self, connection_id: str) -> str:
        """A valid access token, refreshed first when it expires within ``skew``."""
        stored = self._usable(connection_id)
        if self._fresh(stored.tokens):
            return stored.tokens.access_token
        return self._refresh(connection_id, lambda tokens: not self._fresh(tokens))

    def force_refresh(self, connection_id: str, stale_access_token: str) -> str:
        """After a 401: a new access token, unless another process already replaced ``stale_access_token``."""
        return self._refresh(connection_id, lambda tokens: tokens.access_token == stale_access_token)

    def _refresh(self, connection_id: str, still_needed: Callable[[TokenSet], bool]) -> str:
        lock = RenewingLock(self._redis, self._keys.token_lock(connection_id), wait=self._lock_wait)
        if not lock.acquire():
            raise RefreshBusyError(f"token refresh for connection {connection_id} is taking too long",
                                   retry_after=5)
        try:
            stored = self._usable(connection_id)  # re-read: the lock holder before us may have refreshed
            if not still_needed(stored.tokens):
                return stored.tokens.access_token
            return self._refresh_locked(connection_id, stored.tokens)
        finally:
            lock.release()

    def _refresh_locked(self, connection_id: str, current: TokenSet) -> str:
        try:
            fresh = self._oauth_refresh(current.refresh_token)
        except InvalidGrantError as exc:
            return self._after_invalid_grant(connection_id, current, exc)
        # Intuit's refresh answer has no realm; keep the one the connection was made with.
        fresh = TokenSet(fresh.access_token, fresh.refresh_token, fresh.access_expires_at,
                         fresh.refresh_expires_at, fresh.realm_id or current.realm_id)
        self._store.save(connection_id, fresh)  # before anyone uses it: the old refresh token is now dead
        log.info("QBO tokens refreshed connection=%s", connection_id)
        return fresh.access_token

    def _after_invalid_grant(self, connection_id: str, used: TokenSet, exc: InvalidGrantError) -> str:
        """A refresh token another writer replaced is no reason to disconnect; anything else is."""
        latest = self._usable(connection_id)
        if latest.tokens.refresh_token != used.refresh_token:
            log.warning("QBO refresh raced a concurrent writer connection=%s", connection_id)
            return latest.tokens.access_token
        reason = f"Intuit rejected the refresh token: {exc}"
        self._store.mark_needs_reconnect(connection_id, reason)
        log.warning("QBO connection needs reconnect connection=%s reason=invalid_grant", connection_id)
        raise NeedsReconnectError(connection_id, reason) from exc

    def _usable(self, connection_id: str) -> StoredTokens:
        """The stored tokens, or the error that says why this connection cannot call QuickBooks."""
        stored = self._store.load(connection_id)
        if stored is None:
            raise NotConnectedError(f"connection {connection_id} is not connected to QuickBooks")
        if stored.needs_reconnect:
            raise NeedsReconnectError(connection_id, stored.reconnect_reason or "marked for reconnection")
        if not stored.tokens.refresh_valid_at(self._clock()) and not self._fresh(stored.tokens):
            reason = "the refresh token has expired"
            self._store.mark_needs_reconnect(connection_id, reason)
            raise NeedsReconnectError(connection_id, reason)
        return stored

    def _fresh(self, tokens: TokenSet) -> bool:
        return tokens.access_valid_at(self._clock(), self._skew)

