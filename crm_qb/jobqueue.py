"""The queue port: everything the web app, the webhooks and the domain may ask of the background jobs.

The views and the ingress never import worker modules: they call this small interface on the app's runtime
(``runtime().jobs``), and the app factory plugs in the RQ implementation (``workers.jobqueue.RqJobQueue``). So
the jobs can be renamed, split or moved between queues without touching a view, and a test can hand a fake in.
Every call is safe to repeat: job ids are deterministic, and a job already waiting is not enqueued twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from crm_qb.models import EventSource


@dataclass(frozen=True)
class Enqueued:
    """A request for a job: its id, and whether it was queued now (False: that job is already waiting or running)."""

    job_id: str
    queued: bool


@dataclass(frozen=True)
class QueueStats:
    """What /healthz shows of the queues: workers alive, jobs waiting and failed jobs, per queue."""

    workers: int
    depth: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)


class JobQueue(Protocol):
    """The background work crm-qb can ask for; implementations enqueue after the caller's commit, never before."""

    def wake(self, source: EventSource, key: str, *, bulk: bool = False, now: bool = False) -> str | None:
        """Make sure a drain runs for ``key`` (a realm id, or a connection id for CRM events); its job id if new.
        ``bulk``: the drain is bulk work (a first sync's backlog) and runs where first syncs run, after live work.
        ``now``: also when the drain that holds the wake waits in the delayed set (an outage's next turn)."""
        ...

    def backfill(self, connection_id: int) -> Enqueued:
        """Ask for the connection's full backfill (customers, transactions, contacts)."""
        ...

    def load_company(self, connection_id: int) -> Enqueued:
        """Ask for the connection's company details and reference lists to be read from QuickBooks."""
        ...

    def check_followups(self, connection_id: int, qbo_invoice_ids: Iterable[str]) -> int:
        """Ask for the follow-ups of invoices a sync just changed to be brought up to date; how many were queued."""
        ...

    def push_summaries(self, connection_id: int, qbo_customer_ids: Iterable[str]) -> int:
        """Ask for the billing summary of each customer's linked contact to be written to the CRM; how many queued."""
        ...

    def flip_conflict(self, connection_id: int, conflict_id: int) -> Enqueued:
        """Ask for a conflict to be flipped to the losing value on both sides."""
        ...

    def catch_up(self, connection_id: int) -> int:
        """Ask for both catch-up polls (QBO's CDC, the CRM's updated_since) of a connection now; how many queued."""
        ...

    def sync_now(self, connection_id: int) -> Enqueued:
        """Ask for the connection to sync now: a CDC poll, then every change waiting (whatever its mode)."""
        ...

    def sync_contact_now(self, connection_id: int, crm_contact_id: str, who: str) -> Enqueued:
        """Ask for one CRM contact and its linked QBO customer to be re-read and reconciled now (audited as ``who``)."""
        ...

    def resolve_review(self, connection_id: int, link_id: int, action: str, candidate: str | None,
                       who: str) -> Enqueued:
        """Ask for a record waiting for review to be resolved: ``link``, ``create``, ``merge`` or ``deactivate``."""
        ...

    def sync_preview(self, run_id: int) -> Enqueued:
        """Ask for a first sync's or history import's preview to be computed (crm_qb/sync/firstsync)."""
        ...

    def sync_run(self, run_id: int) -> Enqueued:
        """Ask for a started first sync or history import to be run (or resumed from its checkpoint)."""
        ...

    def sync_retry(self, run_id: int, record_ids: Sequence[int] | None = None) -> Enqueued:
        """Ask for the failed records of a finished run (only ``record_ids`` when given) to be tried again."""
        ...

    def stats(self) -> QueueStats:
        """The queues' state for monitoring."""
        ...
