"""OAuth 2 as Intuit runs it: single-use authorization codes, one-hour access tokens, rotating refresh
tokens whose predecessor fails with ``invalid_grant`` after a grace period, revocation, and RS256 ID tokens
for the ``openid`` scope (FACTS.md section 1; the OpenID side is oidc.py). State lives in an ``OAuthServer``
object, never at module level.
"""

from __future__ import annotations

import hmac
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .clock import SandboxClock
from .oidc import ISSUER, SigningKey, subject_for

ACCESS_TOKEN_SECONDS = 3600
REFRESH_TOKEN_SECONDS = 8726400  # what Intuit's samples report: about 101 days, extended on each use
CODE_SECONDS = 600


class OAuthError(Exception):
    """An OAuth error answered as ``{"error": code}`` with HTTP ``status``."""

    def __init__(self, code: str, status: int = 400) -> None:
        super().__init__(code)
        self.code = code
        self.status = status


@dataclass
class _Grant:
    grant_id: str
    realm_id: str
    client_id: str
    scope: str
    refresh_token: str
    refresh_expires: datetime
    revoked: bool = False
    superseded: dict[str, datetime] = field(default_factory=dict)  # old refresh token -> when replaced


@dataclass
class _Code:
    realm_id: str
    redirect_uri: str
    scope: str
    expires: datetime
    used: bool = False


@dataclass(frozen=True)
class OAuthSettings:
    """Client credentials and token policy."""

    client_id: str
    client_secret: str
    grace_seconds: float = 0.0
    rotate_refresh_tokens: bool = True
    access_seconds: int = ACCESS_TOKEN_SECONDS
    refresh_seconds: int = REFRESH_TOKEN_SECONDS


class OAuthServer:
    """Issues and checks tokens for one app (client id); thread-safe."""

    def __init__(self, settings: OAuthSettings, clock: SandboxClock) -> None:
        self.settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._codes: dict[str, _Code] = {}
        self._grants: dict[str, _Grant] = {}
        self._by_refresh: dict[str, str] = {}  # refresh token (current or superseded) -> grant id
        self._access: dict[str, tuple[str, datetime]] = {}  # access token -> (grant id, expiry)
        self.signing_key = SigningKey()

    def client_ok(self, client_id: str | None, client_secret: str | None) -> bool:
        """True when the credentials are this app's (constant-time)."""
        if client_id is None or client_secret is None:
            return False
        same_id = hmac.compare_digest(client_id.encode(), self.settings.client_id.encode())
        same_secret = hmac.compare_digest(client_secret.encode(), self.settings.client_secret.encode())
        return same_id and same_secret

    def issue_code(self, realm_id: str, redirect_uri: str, scope: str) -> str:
        """Consent at once: return a single-use authorization code for ``realm_id``."""
        code = "AB11" + secrets.token_urlsafe(36)
        with self._lock:
            expires = self._clock.now() + timedelta(seconds=CODE_SECONDS)
            self._codes[code] = _Code(realm_id, redirect_uri, scope, expires)
        return code

    def exchange_code(self, code: str, redirect_uri: str | None) -> dict:
        """Trade an authorization code for tokens; a reused, expired or unknown code is ``invalid_grant``."""
        with self._lock:
            now = self._clock.now()
            entry = self._codes.get(code)
            if entry is None or entry.used or now > entry.expires:
                raise OAuthError("invalid_grant")
            if redirect_uri != entry.redirect_uri:
                raise OAuthError("invalid_grant")
            entry.used = True
            grant = _Grant(secrets.token_hex(8), entry.realm_id, self.settings.client_id, entry.scope,
                           _refresh_token(), now + timedelta(seconds=self.settings.refresh_seconds))
            self._grants[grant.grant_id] = grant
            self._by_refresh[grant.refresh_token] = grant.grant_id
            return self._token_response(grant, now)

    def refresh(self, refresh_token: str) -> dict:
        """Refresh: a new access token and (when rotating) a new refresh token; see the module docstring."""
        with self._lock:
            now = self._clock.now()
            grant = self._grants.get(self._by_refresh.get(refresh_token, ""))
            if grant is None or grant.revoked or now > grant.refresh_expires:
                raise OAuthError("invalid_grant")
            replaced = grant.superseded.get(refresh_token)
            if replaced is not None and now > replaced + timedelta(seconds=self.settings.grace_seconds):
                raise OAuthError("invalid_grant")
            if replaced is None and self.settings.rotate_refresh_tokens:
                grant.superseded[refresh_token] = now
                grant.refresh_token = _refresh_token()
                self._by_refresh[grant.refresh_token] = grant.grant_id
            grant.refresh_expires = now + timedelta(seconds=self.settings.refresh_seconds)
            return self._token_response(grant, now)

    def revoke(self, token: str) -> bool:
        """Revoke the grant a refresh or access token belongs to; False when the token is unknown."""
        with self._lock:
            grant_id = self._by_refresh.get(token) or self._access.get(token, ("", None))[0]
            grant = self._grants.get(grant_id)
            if grant is None:
                return False
            grant.revoked = True
            return True

    def realm_for(self, access_token: str) -> str | None:
        """The realm an access token may use, or None when it is unknown, expired or revoked."""
        grant = self._live_grant(access_token)
        return grant.realm_id if grant else None

    def scopes_for(self, access_token: str) -> tuple[str, set[str]] | None:
        """(realm, granted scopes) of a live access token, or None when it is unknown, expired or revoked."""
        grant = self._live_grant(access_token)
        return (grant.realm_id, set(grant.scope.split())) if grant else None

    def _live_grant(self, access_token: str) -> _Grant | None:
        with self._lock:
            entry = self._access.get(access_token)
            if entry is None:
                return None
            grant = self._grants.get(entry[0])
            if grant is None or grant.revoked or self._clock.now() >= entry[1]:
                return None
            return grant

    def _token_response(self, grant: _Grant, now: datetime) -> dict:
        access = "eyJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiYWxnIjoiZGlyIn0.." + secrets.token_urlsafe(96)
        self._access[access] = (grant.grant_id, now + timedelta(seconds=self.settings.access_seconds))
        body = {"expires_in": self.settings.access_seconds, "token_type": "bearer",
                "x_refresh_token_expires_in": int((grant.refresh_expires - now).total_seconds()),
                "refresh_token": grant.refresh_token, "access_token": access}
        if "openid" in grant.scope.split():
            body = {"id_token": self._id_token(grant, now), **body}
        return body

    def _id_token(self, grant: _Grant, now: datetime) -> str:
        """An RS256 ID token carrying Intuit's ``realmid`` claim, verifiable with the key in the JWKS."""
        claims = {"iss": ISSUER, "aud": [grant.client_id], "sub": subject_for(grant.realm_id),
                  "realmid": grant.realm_id, "iat": int(now.timestamp()),
                  "exp": int(now.timestamp()) + self.settings.access_seconds}
        return self.signing_key.sign(claims)


def _refresh_token() -> str:
    return "AB11" + secrets.token_urlsafe(36)

