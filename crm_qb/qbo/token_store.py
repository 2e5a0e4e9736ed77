"""The database behind :class:`~crm_qb.qbo.tokens.TokenManager`: each connection's tokens, encrypted at rest.

Every call uses its own short session and commits at once, independent of whatever transaction the caller has
open, because a rotated refresh token that is not durably saved is a disconnected company.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from crm_qb.crypto import SecretBox
from crm_qb.db import db
from crm_qb.models import Connection, QboStatus
from crm_qb.qbo.oauth import TokenSet
from crm_qb.qbo.tokens import StoredTokens


class DbTokenStore:
    """Loads and saves QBO tokens on the ``connections`` table."""

    def __init__(self, secrets: SecretBox) -> None:
        self._secrets = secrets

    def load(self, connection_id: str) -> StoredTokens | None:
        """The connection's tokens, or None when it has never been connected to QuickBooks."""
        with Session(db.engine) as session:
            row = session.get(Connection, int(connection_id))
            if row is None or not row.qbo_refresh_token_encrypted or not row.qbo_access_token_encrypted:
                return None
            tokens = TokenSet(
                access_token=self._secrets.decrypt(row.qbo_access_token_encrypted),
                refresh_token=self._secrets.decrypt(row.qbo_refresh_token_encrypted),
                access_expires_at=row.qbo_access_expires_at or row.created_at,
                refresh_expires_at=row.qbo_refresh_expires_at, realm_id=row.qbo_realm_id,
            )
            needs = row.qbo_status in (QboStatus.NEEDS_RECONNECT, QboStatus.DISCONNECTED)
            return StoredTokens(tokens, needs_reconnect=needs, reconnect_reason=row.qbo_status_reason)

    def save(self, connection_id: str, tokens: TokenSet) -> None:
        """Persist both tokens (committed) and mark the connection connected."""
        with Session(db.engine) as session:
            row = session.get(Connection, int(connection_id), with_for_update=True)
            if row is None:
                raise LookupError(f"no connection {connection_id}")
            row.qbo_access_token_encrypted = self._secrets.encrypt(tokens.access_token)
            row.qbo_refresh_token_encrypted = self._secrets.encrypt(tokens.refresh_token)
            row.qbo_access_expires_at = tokens.access_expires_at
            row.qbo_refresh_expires_at = tokens.refresh_expires_at
            if tokens.realm_id:
                row.qbo_realm_id = tokens.realm_id
            row.qbo_status, row.qbo_status_reason = QboStatus.CONNECTED, None
            session.commit()

    def mark_needs_reconnect(self, connection_id: str, reason: str) -> None:
        """Record (committed) that a user must connect QuickBooks again, and why."""
        with Session(db.engine) as session:
            row = session.get(Connection, int(connection_id), with_for_update=True)
            if row is None:
                return
            row.qbo_status, row.qbo_status_reason = QboStatus.NEEDS_RECONNECT, reason[:2000]
            session.commit()
