"""OAuth 2 as HubSpot runs it for an app (docs/hubspot/facts.md §1.2): codes, 30-minute access tokens, refresh.

Authorization consents at once (there is no user to ask). Codes are single-use and short-lived. Access tokens
last 30 minutes by the sandbox clock. HubSpot's refresh tokens do not rotate: a refresh answers with the same
refresh token, which works until it is deleted (``DELETE /oauth/v1/refresh-tokens/{token}``, or the control
API's revoke), after which it fails with ``BAD_REFRESH_TOKEN`` / ``invalid_grant``. The private-app token in
``/_sandbox/info`` never expires. Errors carry HubSpot's ``status`` word and the RFC 6749 ``error`` together,
as observed on HubSpot's token endpoint.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from crm_qb.sandbox.hubspot.errors import HubSpotError, error_body

ACCESS_TOKEN_SECONDS = 1800
CODE_SECONDS = 600
OAUTH_ERRORS = {
    "BAD_CLIENT_ID": ("missing or unknown client id", "invalid_client"),
    "BAD_CLIENT_SECRET": ("missing or invalid client secret", "invalid_client"),
    "BAD_AUTH_CODE": ("missing or unknown auth code", "invalid_grant"),
    "EXPIRED_AUTH_CODE": ("auth code is expired", "invalid_grant"),
    "BAD_REDIRECT_URI": ("redirect_uri does not match the one used to get the code", "invalid_grant"),
    "BAD_REFRESH_TOKEN": ("missing or unknown refresh token", "invalid_grant"),
    "BAD_GRANT_TYPE": ("grant_type must be authorization_code or refresh_token", "unsupported_grant_type"),
}


def oauth_error(status_word: str) -> HubSpotError:
    """Return the 400 HubSpot's token endpoint answers for ``status_word`` (e.g. BAD_REFRESH_TOKEN)."""
    message, rfc = OAUTH_ERRORS[status_word]
    body = {"status": status_word, "message": message, "correlationId": error_body("", "")["correlationId"],
            "error": rfc, "error_description": message}
    return HubSpotError(400, body)


@dataclass
class _Grant:
    refresh_token: str
    client_id: str
    scopes: list[str]
    user_id: int
    user_email: str
    revoked: bool = False


@dataclass
class _Code:
    grant: _Grant
    redirect_uri: str
    expires: datetime


@dataclass
class _Access:
    grant: _Grant | None  # None: the private-app token
    expires: datetime | None
    scopes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TokenCheck:
    """The result of presenting a bearer token: ``state`` is ok, expired or unknown."""

    state: str
    oauth: bool = False
    expired_at: datetime | None = None


class OAuthServer:
    """The app's OAuth state for one portal; thread-safe."""

    def __init__(self, clock: Callable[[], datetime], *, client_id: str, client_secret: str, app_id: int,
                 portal_id: int, private_token: str, hub_domain: str, user_id: int, user_email: str) -> None:
        self._clock = clock
        self.client_id, self.client_secret, self.app_id = client_id, client_secret, app_id
        self.portal_id, self.hub_domain = portal_id, hub_domain
        self._user_id, self._user_email = user_id, user_email
        self._lock = threading.Lock()
        self._codes: dict[str, _Code] = {}
        self._grants: dict[str, _Grant] = {}
        self._tokens: dict[str, _Access] = {private_token: _Access(None, None, ["crm.objects.contacts.write"])}

    # -- authorization ---------------------------------------------------------------------------------

    def authorize(self, client_id: str | None, redirect_uri: str | None, scope: str) -> str:
        """Consent for the demo user and return a fresh code; ValueError when the request is unusable."""
        if client_id != self.client_id:
            raise ValueError("unknown client_id")
        if not redirect_uri or not redirect_uri.startswith(("http://", "https://")):
            raise ValueError("redirect_uri must be an http(s) URL")
        grant = _Grant("na1-" + str(uuid.uuid4()), client_id, scope.split(), self._user_id, self._user_email)
        code = "na1-" + str(uuid.uuid4())
        with self._lock:
            self._codes[code] = _Code(grant, redirect_uri, self._clock() + timedelta(seconds=CODE_SECONDS))
        return code

    def token(self, form: Mapping[str, str]) -> dict[str, Any]:
        """Answer the token endpoint for a form-encoded body; raise HubSpot's OAuth error otherwise."""
        if form.get("client_id") != self.client_id:
            raise oauth_error("BAD_CLIENT_ID")
        if form.get("client_secret") != self.client_secret:
            raise oauth_error("BAD_CLIENT_SECRET")
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            grant = self._redeem(form.get("code"), form.get("redirect_uri"))
        elif grant_type == "refresh_token":
            grant = self._grant(form.get("refresh_token"))
        else:
            raise oauth_error("BAD_GRANT_TYPE")
        return self._issue(grant)

    def _redeem(self, code: str | None, redirect_uri: str | None) -> _Grant:
        with self._lock:
            found = self._codes.pop(code or "", None)
            if found is None:
                raise oauth_error("BAD_AUTH_CODE")
            if found.expires <= self._clock():
                raise oauth_error("EXPIRED_AUTH_CODE")
            if redirect_uri != found.redirect_uri:
                raise oauth_error("BAD_REDIRECT_URI")
            self._grants[found.grant.refresh_token] = found.grant
            return found.grant

    def _grant(self, refresh_token: str | None) -> _Grant:
        with self._lock:
            grant = self._grants.get(refresh_token or "")
            if grant is None or grant.revoked:
                raise oauth_error("BAD_REFRESH_TOKEN")
            return grant

    def _issue(self, grant: _Grant) -> dict[str, Any]:
        token = "C" + secrets.token_urlsafe(150)[:180]
        with self._lock:
            self._tokens[token] = _Access(grant, self._clock() + timedelta(seconds=ACCESS_TOKEN_SECONDS),
                                          grant.scopes)
        return {"token_type": "bearer", "refresh_token": grant.refresh_token, "access_token": token,
                "expires_in": ACCESS_TOKEN_SECONDS, "hub_id": self.portal_id, "user_id": grant.user_id,
                "scopes": grant.scopes, "token_use": "access_token"}

    # -- tokens ---------------------------------------------------------------------------------------

    def check(self, token: str | None) -> TokenCheck:
        """Say whether a bearer token may call the API now."""
        with self._lock:
            access = self._tokens.get(token or "")
        if access is None:
            return TokenCheck("unknown")
        if access.expires is not None and access.expires <= self._clock():
            return TokenCheck("expired", True, access.expires)
        return TokenCheck("ok", access.grant is not None)

    def access_info(self, token: str) -> dict[str, Any] | None:
        """Return HubSpot's access-token metadata, or None for an unknown or expired token."""
        with self._lock:
            access = self._tokens.get(token)
        if access is None or access.grant is None or access.expires is None or access.expires <= self._clock():
            return None
        remaining = int((access.expires - self._clock()).total_seconds())
        return {"token": token, "user": access.grant.user_email, "hub_domain": self.hub_domain,
                "scopes": access.scopes, "hub_id": self.portal_id, "app_id": self.app_id,
                "expires_in": remaining, "user_id": access.grant.user_id, "token_type": "access"}

    def refresh_info(self, token: str) -> dict[str, Any] | None:
        """Return HubSpot's refresh-token metadata, or None for an unknown or deleted token."""
        with self._lock:
            grant = self._grants.get(token)
        if grant is None or grant.revoked:
            return None
        return {"token": token, "user": grant.user_email, "hub_domain": self.hub_domain, "scopes": grant.scopes,
                "hub_id": self.portal_id, "client_id": grant.client_id, "user_id": grant.user_id,
                "token_type": "refresh"}

    def revoke(self, refresh_token: str) -> bool:
        """Delete a refresh token (its access tokens live until they expire); False when unknown."""
        with self._lock:
            grant = self._grants.get(refresh_token)
            if grant is None or grant.revoked:
                return False
            grant.revoked = True
            return True

    def expire_access_tokens(self) -> int:
        """Make every OAuth access token expired now (tests of refresh-on-401); return how many."""
        now = self._clock()
        with self._lock:
            live = [a for a in self._tokens.values() if a.expires is not None and a.expires > now]
            for access in live:
                access.expires = now
        return len(live)

    def grants(self) -> list[dict[str, Any]]:
        """Return the grants issued so far (refresh token, revoked) for the control API."""
        with self._lock:
            return [{"refresh_token": g.refresh_token, "revoked": g.revoked, "scopes": g.scopes}
                    for g in self._grants.values()]
