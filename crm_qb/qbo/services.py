"""The QBO objects one app shares: endpoints, the OAuth client, the token manager, the rate budget.

Built once per app at the edge (``crm_qb.runtime.Runtime.qbo``, on first use, so a missing QBO setting only
fails the requests that need QuickBooks) and handed to whoever calls QuickBooks. Building fetches nothing: the
OAuth discovery document is read on first use. ``client_for`` gives a ready client for one connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis import Redis

from crm_qb.config import Settings
from crm_qb.crypto import SecretBox
from crm_qb.keys import RedisKeys
from crm_qb.models import Connection
from crm_qb.qbo.client import QboClient
from crm_qb.qbo.environments import Endpoints, resolve_endpoints
from crm_qb.qbo.oauth import OAuthClient
from crm_qb.qbo.ratebudget import RateBudget
from crm_qb.qbo.token_store import DbTokenStore
from crm_qb.qbo.tokens import NotConnectedError, TokenManager


@dataclass(frozen=True)
class QboServices:
    """Everything needed to call QuickBooks on behalf of any connection of this app."""

    endpoints: Endpoints
    oauth: OAuthClient
    tokens: TokenManager
    budget: RateBudget
    store: DbTokenStore

    def client_for(self, connection: Connection, **options: Any) -> QboClient:
        """A client for ``connection``'s company; NotConnectedError if it has no realm yet."""
        if not connection.qbo_realm_id:
            raise NotConnectedError(f"connection {connection.id} is not connected to QuickBooks")
        return QboClient.for_connection(str(connection.id), connection.qbo_realm_id, self.endpoints.api_base,
                                        self.tokens, self.budget, **options)


def build_qbo_services(settings: Settings, secrets: SecretBox, redis: Redis, keys: RedisKeys) -> QboServices:
    """The QBO services for ``settings``; ValueError when the QBO environment's addresses are not all known."""
    s = settings
    endpoints = resolve_endpoints(s.qbo_environment, s.qbo_discovery_url, s.qbo_api_base, s.qbo_app_base)
    oauth = OAuthClient(s.qbo_client_id, s.qbo_client_secret, s.qbo_redirect_uri, endpoints.discovery_url)
    store = DbTokenStore(secrets)
    tokens = TokenManager(redis, store, oauth.refresh, keys=keys)
    budget = RateBudget(redis, per_minute=s.qbo_rate_per_minute, concurrent=s.qbo_max_in_flight, keys=keys)
    return QboServices(endpoints, oauth, tokens, budget, store)
