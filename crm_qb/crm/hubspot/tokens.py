"""A HubSpot OAuth connection's access token: refreshed before it expires, one refresh at a time.

HubSpot's access tokens live 30 minutes and HubSpot asks apps to refresh on ``expires_in`` rather than wait for
a 401 (docs/hubspot/facts.md §1). Every refresh runs under the connection's HubSpot token lock (the renewing
lock of ``crm_qb.locks``), and re-reads the stored grant after taking it, so of several workers that find the
token stale only the first calls HubSpot and the others use what it saved. The new token is committed in its
own short session before it is used, independent of the caller's transaction. A refresh token HubSpot refuses
marks the connection "needs reconnect" (``crm_status``) and raises ``CrmNeedsReconnectError``; so does any call
on a connection already marked.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis import Redis
from sqlalchemy.orm import Session

from crm_qb.crm.environment import CrmEnvironment
from crm_qb.crm.errors import CrmNeedsReconnectError, CrmTransientError
from crm_qb.crm.hubspot.oauth import HubSpotOAuth, RefreshTokenRefused, TokenGrant
from crm_qb.crypto import SecretBox
from crm_qb.db import db
from crm_qb.keys import RedisKeys
from crm_qb.locks import RenewingLock
from crm_qb.models import CRM_CONNECTED, CRM_NEEDS_RECONNECT, Connection

log = logging.getLogger(__name__)

SKEW = timedelta(minutes=5)
LOCK_WAIT_SECONDS = 45.0


@dataclass(frozen=True)
class StoredGrant:
    """A connection's HubSpot grant as stored."""

    access_token: str
    refresh_token: str
    expires_at: datetime | None
    status: str
    reason: str | None


class HubSpotGrantStore:
    """Reads and saves HubSpot grants on the ``connections`` row, each call in its own committed session."""

    def __init__(self, secrets: SecretBox) -> None:
        self._secrets = secrets

    def load(self, connection_id: int) -> StoredGrant | None:
        """The connection's grant, or None when it has none (a private-app token)."""
        with Session(db.engine) as session:
            row = session.get(Connection, connection_id)
            if row is None or not row.crm_refresh_token_encrypted:
                return None
            return StoredGrant(self._secrets.decrypt(row.crm_token_encrypted),
                               self._secrets.decrypt(row.crm_refresh_token_encrypted), row.crm_access_expires_at,
                               row.crm_status, row.crm_status_reason)

    def save(self, connection_id: int, grant: TokenGrant) -> None:
        """Store a new grant (committed) and mark the connection connected."""
        with Session(db.engine) as session:
            row = session.get(Connection, connection_id, with_for_update=True)
            if row is None:
                raise LookupError(f"no connection {connection_id}")
            store_grant(row, grant, self._secrets)
            session.commit()

    def mark_needs_reconnect(self, connection_id: int, reason: str) -> None:
        """Record (committed) that a person must connect HubSpot again, and why."""
        with Session(db.engine) as session:
            row = session.get(Connection, connection_id, with_for_update=True)
            if row is not None:
                row.crm_status, row.crm_status_reason = CRM_NEEDS_RECONNECT, reason[:2000]
                session.commit()


def store_grant(row: Connection, grant: TokenGrant, secrets: SecretBox) -> None:
    """Put a grant on a connection row (the caller commits): tokens encrypted, expiry, portal, connected."""
    row.crm_token_encrypted = secrets.encrypt(grant.access_token)
    row.crm_refresh_token_encrypted = secrets.encrypt(grant.refresh_token)
    row.crm_access_expires_at = grant.expires_at
    if grant.hub_id:
        row.crm_account_id = grant.hub_id
    row.crm_status, row.crm_status_reason = CRM_CONNECTED, None


class RefreshBusyError(CrmTransientError):
    """Another process held the HubSpot refresh lock for too long; retry shortly."""


class OAuthTokenSource:
    """Access tokens of one HubSpot OAuth connection (``api.TokenSource``)."""

    def __init__(self, connection_id: int, store: HubSpotGrantStore, oauth: HubSpotOAuth, redis: Redis,
                 keys: RedisKeys, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._id, self._store, self._oauth = connection_id, store, oauth
        self._redis, self._keys, self._clock = redis, keys, clock

    @classmethod
    def for_connection(cls, connection: Connection, environment: CrmEnvironment) -> OAuthTokenSource:
        """The source for ``connection`` with the app's OAuth settings; Redis is required (the refresh lock)."""
        if environment.redis is None:
            raise ValueError("a HubSpot OAuth connection needs Redis for its refresh lock")
        return cls(connection.id, HubSpotGrantStore(environment.secrets), HubSpotOAuth(environment.hubspot),
                   environment.redis, environment.keys)

    def token(self) -> str:
        """A token valid for at least SKEW more, refreshed first when it is not."""
        stored = self._usable()
        if self._fresh(stored):
            return stored.access_token
        return self._refresh(lambda latest: not self._fresh(latest))

    def after_unauthorized(self, used: str) -> str | None:
        """After a 401: a new token, unless another process already replaced ``used``."""
        return self._refresh(lambda latest: latest.access_token == used)

    def _refresh(self, still_needed: Callable[[StoredGrant], bool]) -> str:
        lock = RenewingLock(self._redis, self._keys.hubspot_token_lock(self._id), wait=LOCK_WAIT_SECONDS)
        if not lock.acquire():
            raise RefreshBusyError(f"HubSpot token refresh for connection {self._id} is taking too long",
                                   retry_after=5)
        try:
            latest = self._usable()  # re-read: the holder before us may have refreshed already
            if not still_needed(latest):
                return latest.access_token
            try:
                grant = self._oauth.refresh(latest.refresh_token)
            except RefreshTokenRefused as exc:
                self._store.mark_needs_reconnect(self._id, str(exc))
                log.warning("HubSpot connection needs reconnect connection=%s correlationId=%s", self._id,
                            exc.correlation_id)
                raise CrmNeedsReconnectError(self._id, str(exc)) from exc
            self._store.save(self._id, grant)
            log.info("HubSpot token refreshed connection=%s", self._id)
            return grant.access_token
        finally:
            lock.release()

    def _usable(self) -> StoredGrant:
        stored = self._store.load(self._id)
        if stored is None:
            raise CrmNeedsReconnectError(self._id, "the connection has no HubSpot grant")
        if stored.status != CRM_CONNECTED:
            raise CrmNeedsReconnectError(self._id, stored.reason or "marked for reconnection")
        return stored

    def _fresh(self, stored: StoredGrant) -> bool:
        return stored.expires_at is not None and stored.expires_at > self._clock() + SKEW
