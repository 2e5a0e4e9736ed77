"""HubSpot's OAuth for an app (docs/hubspot/facts.md §1): the install link, the code exchange, the refresh.

The token endpoint takes a form-encoded POST (``/oauth/v1/token``) and answers ``access_token``,
``refresh_token``, ``expires_in`` (1800: access tokens live 30 minutes) and ``hub_id``. A refresh token HubSpot
no longer honours (deleted, the app uninstalled) answers 400 ``BAD_REFRESH_TOKEN`` / ``invalid_grant``: that is
``RefreshTokenRefused``, and only a person can fix it (the connection is marked "needs reconnect").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import requests

from crm_qb.crm.errors import CrmPermanentError, CrmProtocolError, CrmUnavailableError
from crm_qb.crm.hubspot.config import HubSpotConfig

SCOPES = ("oauth", "crm.objects.contacts.read", "crm.objects.contacts.write", "crm.objects.companies.read",
          "crm.objects.companies.write", "crm.objects.owners.read", "crm.schemas.contacts.read",
          "crm.schemas.contacts.write")  # hubspot-app/src/app/app-hsmeta.json requiredScopes
REFUSED = ("BAD_REFRESH_TOKEN", "invalid_grant")


@dataclass(frozen=True)
class TokenGrant:
    """What HubSpot's token endpoint answered."""

    access_token: str
    refresh_token: str
    expires_at: datetime
    hub_id: str | None


class RefreshTokenRefused(CrmPermanentError):
    """HubSpot no longer honours the refresh token (revoked, or the app was uninstalled)."""


class HubSpotOAuth:
    """The HubSpot app's OAuth endpoints, with its client id and secret."""

    def __init__(self, config: HubSpotConfig, session: requests.Session | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._config, self._clock = config, clock
        self._session = session if session is not None else requests.Session()

    def authorize_url(self, state: str) -> str:
        """Where to send the person installing the app (HubSpot's consent page)."""
        query = urlencode({"client_id": self._config.client_id, "redirect_uri": self._config.redirect_uri,
                           "scope": " ".join(SCOPES), "state": state})
        return f"{self._config.app_base}/oauth/authorize?{query}"

    def exchange_code(self, code: str) -> TokenGrant:
        """Redeem the callback's single-use ``code``."""
        return self._token({"grant_type": "authorization_code", "code": code,
                            "redirect_uri": self._config.redirect_uri})

    def refresh(self, refresh_token: str) -> TokenGrant:
        """A new access token; RefreshTokenRefused when HubSpot no longer honours the refresh token."""
        return self._token({"grant_type": "refresh_token", "refresh_token": refresh_token,
                            "redirect_uri": self._config.redirect_uri})

    def _token(self, form: Mapping[str, str]) -> TokenGrant:
        body = {**form, "client_id": self._config.client_id, "client_secret": self._config.client_secret}
        try:
            response = self._session.post(f"{self._config.api_base}/oauth/v1/token", data=body, timeout=(3.05, 20),
                                          headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            raise CrmUnavailableError(f"HubSpot's token endpoint cannot be reached: {type(exc).__name__}") from exc
        data = _json(response)
        if response.status_code >= 500 or response.status_code == 429:
            raise CrmUnavailableError(f"HubSpot's token endpoint answered {response.status_code}",
                                      status=response.status_code, correlation_id=data.get("correlationId"))
        if not response.ok:
            words = (str(data.get("status") or ""), str(data.get("error") or ""))
            message = f"HubSpot refused the token request: {data.get('message') or response.reason} ({words[0]})"
            error = RefreshTokenRefused if any(w in REFUSED for w in words) else CrmPermanentError
            raise error(message, status=response.status_code, code=words[0] or None,
                        correlation_id=data.get("correlationId"))
        return self._grant(data)

    def _grant(self, data: Mapping[str, Any]) -> TokenGrant:
        try:
            expires_in = int(data["expires_in"])
            grant = TokenGrant(str(data["access_token"]), str(data["refresh_token"]),
                               self._clock() + timedelta(seconds=expires_in),
                               str(data["hub_id"]) if data.get("hub_id") is not None else None)
        except (KeyError, TypeError, ValueError):
            raise CrmProtocolError("HubSpot's token answer lacks access_token, refresh_token or expires_in") from None
        return grant


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
