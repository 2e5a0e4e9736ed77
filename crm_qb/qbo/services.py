"""The QBO objects one app shares: endpoints, the OAuth client, the token manager, the rate budget.

Built lazily on first use (the OAuth discovery document is fetched then, not at start-up) and kept on the app,
never in a module global. ``client_for`` gives a ready client for one connection.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from crm_qb.models import Connection
from crm_qb.qbo.client import QboClient
from crm_qb.qbo.environments import Endpoints, resolve_endpoints
from crm_qb.qbo.oauth import OAuthClient
from crm_qb.qbo.ratebudget import RateBudget
from crm_qb.qbo.token_store import DbTokenStore
from crm_qb.qbo.tokens import NotConnectedError, TokenManager
from crm_qb.runtime import runtime

EXTENSION_KEY = "crm_qb.qbo"


@dataclass(frozen=True)
class QboServices:
    """Everything needed to call QuickBooks on behalf of any connection of this app."""

    endpoints: Endpoints
    oauth: OAuthClient
    tokens: TokenManager
    budget: RateBudget
    store: DbTokenStore

    def client_for(self, connection: Connection, **options: object) -> QboClient:
        """A client for ``connection``'s company; NotConnectedError if it has no realm yet."""
        if not connection.qbo_realm_id:
            raise NotConnectedError(f"connection {connection.id} is not connected to QuickBooks")
        return QboClient.for_connection(str(connection.id), connection.qbo_realm_id, self.endpoints.api_base,
                                        self.tokens, self.budget, **options)


def qbo_services(app: Flask | None = None) -> QboServices:
    """The app's QBO services, built on first use."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    services = app.extensions.get(EXTENSION_KEY)
    if services is None:
        services = _build(app)
        app.extensions[EXTENSION_KEY] = services
    return services  # type: ignore[no-any-return]


def _build(app: Flask) -> QboServices:
    rt = runtime(app)
    s = rt.settings
    endpoints = resolve_endpoints(s.qbo_environment, s.qbo_discovery_url, s.qbo_api_base, s.qbo_app_base)
    oauth = OAuthClient(s.qbo_client_id, s.qbo_client_secret, s.qbo_redirect_uri, endpoints.discovery_url)
    store = DbTokenStore(rt.secrets)
    tokens = TokenManager(rt.redis, store, oauth.refresh, key_prefix=f"{s.queue_prefix}:qbo:refresh")
    budget = RateBudget(rt.redis, per_minute=s.qbo_rate_per_minute, concurrent=s.qbo_max_in_flight,
                        key_prefix=f"{s.queue_prefix}:qbo:budget")
    return QboServices(endpoints, oauth, tokens, budget, store)
