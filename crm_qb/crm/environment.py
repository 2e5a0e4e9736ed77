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
    # How long to wait for one answer (None: the connector's own read timeout) and whether a call that got none
    # is sent again. Live drains and polls wait no longer than a slow CRM takes and do not repeat such a call
    # (crm_qb.sync.pipeline.slowlane.live_crm_options): its connection moves to the bulk lane instead.
    answer_timeout: float | None = None
    retry_timeouts: bool = True

    def timeout(self, default: tuple[float, float]) -> tuple[float, float]:
        """A connector's (connect, read) timeout: its ``default``, the read part ``answer_timeout`` when set."""
        return default if self.answer_timeout is None else (default[0], self.answer_timeout)
