"""Every Redis key and every RQ job id crm-qb uses, spelt once.

Redis keys start with the installation's prefix (``CRM_QB_QUEUE_PREFIX``), so several installations can share one
Redis; ``RedisKeys`` is bound to that prefix once, at the edge, and handed to whoever needs a key. A key that the
cluster must keep on one slot puts its shard part in braces (the rate budget's realm).

Job ids are deterministic: enqueueing the same work while it waits is a no-op (``unique=True``), the sweep can
tell whether an event's drain is still alive, and a period number in an id makes a periodic tick run once per
period. RQ accepts only letters, digits, ``_`` and ``-`` in ids; ``safe_part`` turns anything else into that
alphabet and appends a short hash whenever it had to change something, so two different keys never share an id.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_PREFIX = "crm_qb"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_SAFE_LENGTH = 64


@dataclass(frozen=True)
class RedisKeys:
    """The Redis keys of one installation (``prefix`` is its CRM_QB_QUEUE_PREFIX)."""

    prefix: str = DEFAULT_PREFIX

    def queue(self, name: str) -> str:
        """The RQ queue ``name`` (inbound, sync, scheduled)."""
        return f"{self.prefix}.{name}"

    def sync_lock(self, connection_id: int) -> str:
        """The lock that serialises every sync of one connection."""
        return f"{self.prefix}:sync:connection:{connection_id}"

    def outage_turn(self, connection_id: int) -> str:
        """Held while a drain of a connection in an outage may not call the side that is down (its PX is the wait)."""
        return f"{self.prefix}:outage:turn:{connection_id}"

    def token_lock(self, connection_id: int | str) -> str:
        """The lock around a connection's QBO token refresh (and its connect/disconnect)."""
        return f"{self.prefix}:qbo:refresh:{connection_id}"

    def followup_lock(self, connection_id: int, row_id: int) -> str:
        """The lock one follow-up row is worked on under."""
        return f"{self.prefix}:followups:{connection_id}:row:{row_id}"

    def rate_budget(self, realm_id: str, part: str) -> str:
        """A key of a realm's QBO rate budget (``part``: the window, inflight and batches sorted sets, the
        holdoff marker; waited:<hour> seconds)."""
        return f"{self.prefix}:qbo:budget:{{{realm_id}}}:{part}"

    def hubspot_budget(self, portal_id: str, part: str) -> str:
        """A sorted set of a HubSpot portal's rate budget (``part``: burst-window, search-window, inflight...)."""
        return f"{self.prefix}:hubspot:budget:{{{portal_id}}}:{part}"

    def hubspot_daily(self, portal_id: str, day: str) -> str:
        """The count of a HubSpot portal's API calls on one ``day`` (YYYY-MM-DD, UTC)."""
        return f"{self.prefix}:hubspot:daily:{{{portal_id}}}:{day}"

    def hubspot_token_lock(self, connection_id: int | str) -> str:
        """The lock around a connection's HubSpot token refresh (and its connect)."""
        return f"{self.prefix}:hubspot:refresh:{connection_id}"

    def hubspot_oauth_state(self, state: str) -> str:
        """The pending OAuth ``state`` of a HubSpot install that was started and not finished yet."""
        return f"{self.prefix}:hubspot:oauth-state:{state}"

    def oauth_state(self, state: str) -> str:
        """The pending OAuth ``state`` of a connect that was started and not finished yet."""
        return f"{self.prefix}:qbo:oauth-state:{state}"

    def wake(self, source: str, key: str) -> str:
        """The marker of a queued drain of ``key`` (a realm or a connection) for events from ``source``."""
        return f"{self.prefix}:wake:{source}:{key}"

    def bulk_backlog(self, source: str, key: str) -> str:
        """The marker that ``key``'s pending events from ``source`` are a first sync's backlog (bulk work)."""
        return f"{self.prefix}:bulk-backlog:{source}:{key}"

    def slow_lane(self, source: str, key: str) -> str:
        """The marker that ``key``'s drains for ``source`` run as bulk work: its company answers slowly
        (crm_qb.sync.pipeline.slowlane)."""
        return f"{self.prefix}:slow-lane:{source}:{key}"

    def schedule_tick(self, name: str, period: int) -> str:
        """The marker that the periodic job ``name`` was enqueued for ``period``."""
        return f"{self.prefix}:schedule:{name}:{period}"

    def backfill_index(self, connection_id: int) -> str:
        """The hash holding a running backfill's index of CRM contacts."""
        return f"{self.prefix}:backfill:{connection_id}:crm-index"

    def live_work(self, host: str) -> str:
        """The sorted set of the workers of ``host`` that ran a live job (member: worker name, score: when that
        job's timeout ends while it runs, when it ended once it did; kept a minute), which bulk work on the host
        gives way to (crm_qb.sync.pacing)."""
        return f"{self.prefix}:live-work:{host}"

    def bulk_work(self, host: str) -> str:
        """The sorted set of the bulk processes of ``host`` at work (member: host and pid, score: until when its last
        look counts), which split the host's share of a core between them (crm_qb.sync.pacing)."""
        return f"{self.prefix}:bulk-work:{host}"

    def bulk_slots(self, host: str) -> str:
        """The prefix of ``host``'s bulk-job slots, ``<it>:0`` to ``<it>:N-1``: each a renewed lock held by the worker
        running a bulk job (workers.bulkslots)."""
        return f"{self.prefix}:bulk-slots:{host}"

    def cdc_answer(self, realm_id: str, entity: str) -> str:
        """The hash holding a realm's objects of ``entity`` from the drains' last CDC answers (minutes only)."""
        return f"{self.prefix}:cdc:{realm_id}:{entity}"


def safe_part(key: str) -> str:
    """``key`` as a job-id part: RQ's alphabet only, at most 64 characters, plus a hash when it was changed."""
    safe = _UNSAFE.sub("_", key)[:_SAFE_LENGTH]
    return safe if safe == key else f"{safe}_{hashlib.sha256(key.encode()).hexdigest()[:10]}"


class JobIds:
    """The deterministic RQ job id of each kind of job."""

    @staticmethod
    def drain(source: str, key: str, suffix: str) -> str:
        """A drain of ``key`` (realm or connection) for ``source``; ``suffix`` is the wake token or sweep period."""
        return f"drain-{source}-{safe_part(key)}-{suffix}"

    @staticmethod
    def sweep_drain(source: str, key: str, period: int) -> str:
        """The drain the sweep enqueues for stranded events of ``key`` in one minute ``period``."""
        return JobIds.drain(source, key, f"sweep-{period}")

    @staticmethod
    def periodic(name: str, period: int) -> str:
        """One tick of the periodic job ``name``."""
        return f"{name}-{period}"

    @staticmethod
    def cdc_poll(connection_id: int, period: int) -> str:
        """A connection's CDC poll in one polling period."""
        return f"cdc-poll-{connection_id}-{period}"

    @staticmethod
    def crm_poll(connection_id: int, period: int) -> str:
        """A connection's CRM catch-up poll in one polling period."""
        return f"crm-poll-{connection_id}-{period}"

    @staticmethod
    def bulk_crm_poll(connection_id: int) -> str:
        """A connection's CRM catch-up poll handed to the bulk lane (it found too many changes for a live one)."""
        return f"crm-poll-bulk-{connection_id}"

    @staticmethod
    def catch_up(kind: str, connection_id: int, moment: int) -> str:
        """A catch-up poll (``cdc`` or ``crm``) asked for when sync was turned on at ``moment`` (epoch seconds)."""
        return f"catch-up-{kind}-{connection_id}-{moment}"

    @staticmethod
    def backfill(connection_id: int) -> str:
        """A connection's backfill (one waiting or running at a time)."""
        return f"backfill-{connection_id}"

    @staticmethod
    def followup_scan(connection_id: int, period: int) -> str:
        """A connection's scheduled follow-up scan in one period."""
        return f"followups-scan-{int(connection_id)}-{int(period)}"

    @staticmethod
    def push_summary(connection_id: int, qbo_customer_id: str) -> str:
        """Writing one customer's billing summary to its CRM contact after a sync changed it."""
        return f"push-summary-{int(connection_id)}-{safe_part(str(qbo_customer_id))}"

    @staticmethod
    def followup_invoice(connection_id: int, qbo_invoice_id: str) -> str:
        """The follow-up check of one invoice after it was synced."""
        return f"followups-invoice-{int(connection_id)}-{safe_part(str(qbo_invoice_id))}"

    @staticmethod
    def followups_after_backfill(connection_id: int) -> str:
        """The one follow-up scan that follows a connection's backfill."""
        return f"followups-after-backfill-{connection_id}"

    @staticmethod
    def refresh_tokens(connection_id: int | str) -> str:
        """A connection's idle-token refresh."""
        return f"qbo-refresh-tokens-{connection_id}"

    @staticmethod
    def load_company(connection_id: int | str) -> str:
        """Reading a connection's company details."""
        return f"qbo-load-company-{connection_id}"

    @staticmethod
    def sync_run_job(step: str, run_id: int) -> str:
        """A first sync's or history import's ``step`` (preview, run, retry): one at a time per run."""
        return f"sync-{step}-{int(run_id)}"

    @staticmethod
    def sync_retry_records(run_id: int, record_ids: Sequence[int]) -> str:
        """The retry of some failed records of a run (the Failures page): one at a time per run and set of ids."""
        digest = hashlib.sha256(",".join(str(int(i)) for i in sorted(record_ids)).encode()).hexdigest()[:16]
        return f"sync-retry-{int(run_id)}-{digest}"

    @staticmethod
    def flip_conflict(conflict_id: int) -> str:
        """The flip of one conflict (one at a time per conflict)."""
        return f"flip-conflict-{conflict_id}"

    @staticmethod
    def sync_now(connection_id: int) -> str:
        """"Sync now" of one connection (a second click while it waits is the same job)."""
        return f"sync-now-{int(connection_id)}"

    @staticmethod
    def sync_contact_now(connection_id: int, crm_contact_id: str) -> str:
        """"Sync now" of one contact (a second click while it waits is the same job)."""
        return f"sync-contact-now-{int(connection_id)}-{safe_part(str(crm_contact_id))}"

    @staticmethod
    def resolve_review(link_id: int) -> str:
        """Resolving one record waiting for review (a second click while it waits is the same job)."""
        return f"resolve-review-{int(link_id)}"
