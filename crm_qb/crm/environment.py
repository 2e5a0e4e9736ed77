"""What a CRM connector may use besides its connection row: built once at the edge and passed to the factory.

The REST connector needs only the secret box (its token is encrypted); HubSpot's also needs Redis (its rate
budget is shared by every process, and a token refresh takes the connection's lock) and the HubSpot app's
settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from redis import Redis

from crm_qb.crm.hubspot.config import HubSpotConfig
from crm_qb.crypto import SecretBox
from crm_qb.keys import RedisKeys

MAX_RETRIES = 4  # how often a CRM connector sends a failed call again unless its caller asks otherwise


@dataclass(frozen=True)
class CrmEnvironment:
    """The secret box, Redis and its keys, and the HubSpot app settings, as one app sees them."""

    secrets: SecretBox
    redis: Redis | None = None
    keys: RedisKeys = field(default_factory=RedisKeys)
    hubspot: HubSpotConfig = field(default_factory=HubSpotConfig)
    # How often a connector sends a failed call again (default four). The drains ask for one
    # quick retry, and an outage's turn for none (crm_qb.sync.pipeline.drain), as they do of the QBO client: a
    # CRM answering 5xx would otherwise hold a worker other tenants need for seconds of backoff per call.
    max_retries: int = MAX_RETRIES
    # The longest one call may keep its caller waiting on the CRM: for an answer (the read timeout), through a
    # Retry-After (slept only when no longer), for a rate-limit slot (HubSpot's pacing). None: the connector's own
    # (read timeouts of 15 s, REST, and 20 s, HubSpot; Retry-After up to 30 s; a slot up to 60 s). And whether a
    # call that got no answer is sent again. Live drains and polls wait no longer than a slow CRM takes and do not
    # repeat such a call (crm_qb.sync.pipeline.slowlane.live_crm_options): its connection moves to the bulk lane.
    max_wait: float | None = None
    retry_timeouts: bool = True

    def within(self, default: float) -> float:
        """A connector's ``default`` wait (a read timeout, a Retry-After, a slot), no longer than ``max_wait``."""
        return default if self.max_wait is None else min(default, self.max_wait)
