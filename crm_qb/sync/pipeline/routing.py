"""Routing a QBO realm's events to the connections of that realm: one delivery per connection, each settled once.

Intuit reports a change once per company (realm), but several connections (several CRMs) may sync the same
company. Ingress stores the change once, with its realm and no connection. The realm's drain then *routes* it:
in one transaction the stored row becomes the delivery of the realm's first connection (its ``connection_id`` set,
a guarded UPDATE of rows that have none) and a copy is inserted for every other connection, each under its own
deduplication key ``route:<event id>:<connection id>``. From then on each delivery is an ordinary pending event of
one connection: claimed, retried, failed and replayed on its own, so one connection settling a change never hides
it from another (docs/architecture.md §7).

Exactly once per connection, across kills and races: the guarded UPDATE decides which drain routes a row (a drain
that loses the race copies nothing), the copies are inserted in the same transaction (a drain killed mid-way
leaves the row unrouted, to be routed again), and the unique ``(source, dedupe_key)`` would refuse a second copy.
Routing is a snapshot: a connection that joins the realm later catches up through its backfill and CDC poll.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from crm_qb.db import db, utcnow
from crm_qb.models import EventSource, EventStatus, InboundEvent
from crm_qb.models.types import storable_key

log = logging.getLogger(__name__)

ROUTE_BATCH = 500
DEDUPE_KEY_LENGTH = 400
_COPIED = ("source", "realm_id", "entity", "entity_id", "operation", "occurred_at", "payload", "received_at")


def route_key(event_id: int, connection_id: int) -> str:
    """The deduplication key of an event's delivery to one more connection of its realm."""
    return f"route:{event_id}:{connection_id}"


def route_realm(realm_id: str, connection_ids: Sequence[int]) -> int:
    """Route every unrouted pending event of ``realm_id`` to ``connection_ids``; return how many were routed."""
    if not connection_ids:
        return 0
    routed = 0
    while True:
        count = _route_batch(realm_id, list(connection_ids))
        routed += count
        if count < ROUTE_BATCH:
            break
    if routed:
        log.info("routed %s event(s) of realm %s to connection(s) %s", routed, realm_id,
                 ",".join(map(str, connection_ids)))
    return routed


def _route_batch(realm_id: str, connection_ids: list[int]) -> int:
    """Route up to ROUTE_BATCH unrouted events in one transaction (committed); return how many this call routed."""
    first, others = connection_ids[0], connection_ids[1:]
    ids = list(db.session.scalars(select(InboundEvent.id).where(_unrouted(realm_id)).order_by(InboundEvent.id)
                                  .limit(ROUTE_BATCH)))
    if not ids:
        db.session.rollback()
        return 0
    claimed = list(db.session.scalars(
        update(InboundEvent).where(InboundEvent.id.in_(ids), InboundEvent.connection_id.is_(None),
                                   InboundEvent.status == EventStatus.PENDING)
        .values(connection_id=first).returning(InboundEvent.id)))
    if claimed and others:
        _insert_copies(sorted(claimed), others)
    db.session.commit()
    return len(ids)


def _insert_copies(event_ids: list[int], connection_ids: list[int]) -> None:
    """One pending copy of each event per connection, in event order (so each connection sees arrival order)."""
    table = InboundEvent.__table__
    originals = db.session.execute(select(*(table.c[name] for name in ("id", *_COPIED)))
                                   .where(table.c.id.in_(event_ids)).order_by(table.c.id)).all()
    rows: list[dict[str, Any]] = []
    for connection_id in connection_ids:
        for original in originals:
            row = {name: getattr(original, name) for name in _COPIED}
            row.update(dedupe_key=storable_key(route_key(original.id, connection_id), DEDUPE_KEY_LENGTH),
                       connection_id=connection_id, status=EventStatus.PENDING, attempts=0)
            rows.append(row)
    insert = postgresql.insert if db.session.get_bind().dialect.name == "postgresql" else sqlite.insert
    db.session.execute(insert(table).on_conflict_do_nothing(index_elements=["source", "dedupe_key"]), rows)


def _unrouted(realm_id: str) -> Any:
    return ((InboundEvent.source == EventSource.QBO) & (InboundEvent.realm_id == realm_id)
            & InboundEvent.connection_id.is_(None) & (InboundEvent.status == EventStatus.PENDING))


def ignore_unrouted(realm_id: str, reason: str) -> int:
    """Settle the realm's unrouted pending events as ignored with ``reason`` (no connection syncs it); committed."""
    if db.session.scalar(select(InboundEvent.id).where(_unrouted(realm_id)).limit(1)) is None:
        db.session.rollback()
        return 0
    result = db.session.execute(update(InboundEvent).where(_unrouted(realm_id)).values(
        status=EventStatus.IGNORED, status_reason=reason, processed_at=utcnow()))
    db.session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def settle_orphans(realm_id: str, connection_ids: Sequence[int]) -> int:
    """Ignore pending deliveries of ``realm_id`` to connections no longer syncing it (disconnected); committed."""
    where = ((InboundEvent.source == EventSource.QBO) & (InboundEvent.realm_id == realm_id)
             & InboundEvent.connection_id.is_not(None) & (InboundEvent.status == EventStatus.PENDING))
    if connection_ids:
        where = where & InboundEvent.connection_id.not_in(list(connection_ids))
    ids = list(db.session.scalars(select(InboundEvent.id).where(where)))  # read first: no write lock when none
    if not ids:
        db.session.rollback()
        return 0
    result = db.session.execute(update(InboundEvent).where(where, InboundEvent.id.in_(ids)).values(
        status=EventStatus.IGNORED, status_reason="connection no longer connected to this company",
        processed_at=utcnow()))
    db.session.commit()
    return int(getattr(result, "rowcount", 0) or 0)
