"""HubSpot's rate limits, paced before each call and shared by every process through Redis.

HubSpot counts per portal (docs/hubspot/facts.md §9): a burst of 100 requests per rolling 10 seconds, 250,000 a
day for private apps (none for OAuth apps, whose calls HubSpot does not count against the daily limit), and the
search endpoints' own few per second. The burst and search limits are two ``RateBudget`` windows (the QBO
budget's Lua script: one grant is atomic across processes, a killed holder's lease expires) keyed by portal;
the daily limit is a counter per UTC day (HubSpot resets it at midnight in the account's time zone, which
crm-qb does not know, so the count is conservative for a few hours at most). A portal over its daily limit is
refused here, before HubSpot is asked, with the wait until the next day.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta

from redis import Redis

from crm_qb.crm.errors import CrmRateLimitedError
from crm_qb.crm.hubspot.config import HubSpotConfig
from crm_qb.keys import RedisKeys
from crm_qb.qbo.ratebudget import RateBudget, RateBudgetTimeout

BURST_WINDOW_SECONDS = 10.0
SEARCH_WINDOW_SECONDS = 1.0
WAIT_SECONDS = 60.0


class HubSpotLimiter:
    """Paces one portal's calls: burst and search windows, in-flight leases, and the daily count."""

    def __init__(self, redis: Redis, keys: RedisKeys, portal: str, config: HubSpotConfig, *,
                 count_daily: bool = True, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.portal = portal
        self._redis, self._keys, self._clock = redis, keys, clock
        self._daily = config.daily_limit if count_daily else None
        self._burst = RateBudget(redis, config.burst_per_10s, config.max_in_flight, clock, sleep,
                                 window=BURST_WINDOW_SECONDS, lease_seconds=120.0, name="HubSpot",
                                 key=lambda p, part: keys.hubspot_budget(p, f"burst-{part}"))
        self._search = RateBudget(redis, config.search_per_second, config.max_in_flight, clock, sleep,
                                  window=SEARCH_WINDOW_SECONDS, lease_seconds=120.0, name="HubSpot search",
                                  key=lambda p, part: keys.hubspot_budget(p, f"search-{part}"))

    @contextmanager
    def slot(self, *, search: bool = False, timeout: float = WAIT_SECONDS) -> Iterator[None]:
        """Hold a slot for one call (and a search slot for a search); CrmRateLimitedError when none comes."""
        self._count_daily()
        try:
            with ExitStack() as stack:
                if search:
                    stack.enter_context(self._search.slot(self.portal, timeout=timeout))
                stack.enter_context(self._burst.slot(self.portal, timeout=timeout))
                yield
        except RateBudgetTimeout as exc:
            raise CrmRateLimitedError(f"HubSpot portal {self.portal}: {exc}", retry_after=exc.retry_after) from exc

    def used_today(self) -> int:
        """How many calls this portal made today (UTC), as counted here."""
        return int(self._redis.get(self._keys.hubspot_daily(self.portal, self._day())) or 0)

    def _count_daily(self) -> None:
        if self._daily is None:
            return
        key = self._keys.hubspot_daily(self.portal, self._day())
        with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 2 * 86400)
            used = int(pipe.execute()[0])
        if used > self._daily:
            raise CrmRateLimitedError(f"HubSpot portal {self.portal} used its daily limit of {self._daily} calls",
                                      code="DAILY", retry_after=self._until_tomorrow())

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    def _day(self) -> str:
        return self._now().date().isoformat()

    def _until_tomorrow(self) -> float:
        now = self._now()
        tomorrow = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
        return (tomorrow - now).total_seconds()
