"""Group commit: the webhooks a process receives at the same moment share one INSERT batch and one COMMIT.

Every webhook is committed before it is acknowledged (DESIGN.md §1). gunicorn's gthread workers (``crm-qb web``)
serve several requests of a process at once; instead of a transaction and a Redis round trip each, the requests
that arrive while a commit is under way join the next one. The first of them (the leader) stores every waiting
request's notices, commits once, wakes the drain of every realm or connection they touched once, and hands each
request its own new events; only then does each request answer. Nobody waits on a timer: a request alone is
committed at once, exactly as before. If the shared transaction fails, each request of the group is stored again
on its own, so one request that cannot be stored fails alone (and its sender retries it).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from crm_qb.db import db
from crm_qb.models import EventSource
from crm_qb.sync.pipeline import events
from crm_qb.sync.pipeline.events import Notice

Wake = Callable[[EventSource, set[str]], int]


@dataclass
class _Ticket:
    """One request's notices and, once its group has committed, its new events (or the error)."""

    source: EventSource
    notices: Sequence[Notice]
    connection_id: int | None
    done: bool = False
    new: list[Notice] = field(default_factory=list)
    error: BaseException | None = None

    def wake_keys(self) -> set[str]:
        """The drains this request's new events need: realms (QBO) or its connection (CRM)."""
        if self.source == EventSource.CRM:
            return {str(self.connection_id)} if self.new else set()
        return {n.realm_id for n in self.new if n.realm_id}


class GroupCommit:
    """Commits the concurrent stores of one process together (one per process: module-level ``GROUP``)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._waiting: list[_Ticket] = []
        self._busy = False

    def store(self, source: EventSource, notices: Sequence[Notice], connection_id: int | None,
              wake: Wake) -> list[Notice]:
        """Store and commit ``notices`` (with whoever else is storing now), wake their drains; the new ones."""
        ticket = _Ticket(source, notices, connection_id)
        with self._cond:
            self._waiting.append(ticket)
            while not ticket.done and self._busy:
                self._cond.wait()
            group: list[_Ticket] = []
            if not ticket.done:  # nobody is committing and ours is not done: lead the waiting group
                self._busy, group, self._waiting = True, self._waiting, []
        if group:
            try:
                _commit(group, wake)
            except BaseException as exc:  # every member must learn its fate: none may answer uncommitted
                for member in group:
                    if not member.done:
                        member.error, member.done = exc, True
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
        if ticket.error is not None:
            raise ticket.error
        return ticket.new


def _commit(group: list[_Ticket], wake: Wake) -> None:
    """Store the group in one transaction (each alone if that fails), then wake each drain once."""
    try:
        # A Core transaction of its own, not the ORM session: nothing here needs the session's bookkeeping, and
        # on every webhook it cost more than the INSERT (README, Benchmarks). Leaving the block commits.
        with db.engine.begin() as conn:
            for ticket in group:
                ticket.new = events.store(ticket.source, ticket.notices, ticket.connection_id, conn)
    except Exception as exc:
        if len(group) == 1:
            group[0].error, group[0].done = exc, True
            return
        for ticket in group:
            _commit([ticket], wake)
        return
    for source in (EventSource.QBO, EventSource.CRM):
        keys = set().union(*(t.wake_keys() for t in group if t.source == source))
        if keys:
            wake(source, keys)
    for ticket in group:
        ticket.done = True


GROUP = GroupCommit()
