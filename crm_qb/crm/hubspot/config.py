"""What the HubSpot connector needs of the installation's settings (``CRM_QB_HUBSPOT_*``, README "Configuration").

Built once at the edge from ``crm_qb.config.Settings`` and passed in, so the connector never reads settings.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_API_BASE = "https://api.hubapi.com"
DEFAULT_APP_BASE = "https://app.hubspot.com"


@dataclass(frozen=True)
class HubSpotConfig:
    """The HubSpot app crm-qb is (client id and secret, app id, redirect), HubSpot's addresses and its limits."""

    api_base: str = DEFAULT_API_BASE
    app_base: str = DEFAULT_APP_BASE
    client_id: str = ""
    client_secret: str = ""
    app_id: str = ""
    redirect_uri: str = ""
    # docs/hubspot/facts.md §9: 100 requests per rolling 10 s (Free/Starter private apps, and OAuth apps per
    # installed account), 250,000 a day for private apps; the search endpoints have their own per-second limit.
    burst_per_10s: int = 100
    daily_limit: int = 250_000
    search_per_second: int = 4
    max_in_flight: int = 10

    @property
    def oauth_ready(self) -> bool:
        """Whether HubSpot OAuth can be used (an app's client id and secret are configured)."""
        return bool(self.client_id and self.client_secret)
