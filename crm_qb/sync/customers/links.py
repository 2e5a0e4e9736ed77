"""The link store: contact links read into plain records, and the short transactions that write results.

A sync reads a link (``find_by_qbo`` / ``find_by_crm``), ends the read transaction, calls QBO and the CRM, and
only then opens one short write transaction (``save``) that stores the link, its base, the conflicts, the audit
entry and marks the inbound events processed, together. A job killed between the HTTP write and that commit
leaves the events pending; the re-run finds the other side already equal and writes nothing (the echo rule).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, select
from sqlalchemy.exc import IntegrityError

from crm_qb.address import Address
from crm_qb.db import db, insert_many, read
from crm_qb.models import AuditEntry, Conflict, ContactLink, LinkState
from crm_qb.sync.pipeline.events import mark_processed
from crm_qb.sync.rules.canonical import CanonicalValue
from crm_qb.sync.rules.merge import Conflict as MergeConflict

log = logging.getLogger(__name__)


@dataclass
class LinkRecord:
    """A contact link as plain values (no session attached); ``id`` is None until saved."""

    connection_id: int
    crm_contact_id: str | None = None
    qbo_customer_id: str | None = None
    state: LinkState = LinkState.LINKED
    base: dict[str, Any] | None = None  # None: never agreed (first link)
    qbo_owned: dict[str, Any] = field(default_factory=dict)
    qbo_sync_token: str | None = None
    qbo_updated_at: datetime | None = None
    crm_version: str | None = None
    crm_updated_at: datetime | None = None
    qbo_active: bool = True
    review_reason: str | None = None
    review_candidates: list[Any] = field(default_factory=list)
    id: int | None = None

    @classmethod
    def of(cls, row: ContactLink | Row[Any]) -> LinkRecord:
        """A record copied from a row (an entity, or a row of its columns with the same names)."""
        return cls(row.connection_id, row.crm_contact_id, row.qbo_customer_id, row.state,
                   dict(row.base) if row.base else None, dict(row.qbo_owned or {}), row.qbo_sync_token,
                   row.qbo_updated_at, row.crm_version, row.crm_updated_at, row.qbo_active, row.review_reason,
                   list(row.review_candidates or []), row.id)


@dataclass
class Record:
    """What one unit of sync work produced, written in one transaction by ``save``."""

    action: str
    direction: str
    entity: str
    entity_id: str | None
    diff: dict[str, Any] = field(default_factory=dict)
    outcome: str = "ok"
    message: str | None = None
    intuit_tid: str | None = None
    conflicts: Sequence[MergeConflict] = ()


# The reads a sync makes for every customer, built once and run as Core (``db.read``): building and keying a
# statement, or the ORM's work around running it, costs several times what SQLite takes to answer it (a backfill
# makes these reads for every customer, and for every job). A link is read as the columns ``LinkRecord`` copies.
_RECORD_COLUMNS = (ContactLink.connection_id, ContactLink.crm_contact_id, ContactLink.qbo_customer_id,
                   ContactLink.state, ContactLink.base, ContactLink.qbo_owned, ContactLink.qbo_sync_token,
                   ContactLink.qbo_updated_at, ContactLink.crm_version, ContactLink.crm_updated_at,
                   ContactLink.qbo_active, ContactLink.review_reason, ContactLink.review_candidates, ContactLink.id)
_BY_QBO = select(*_RECORD_COLUMNS).where(ContactLink.connection_id == bindparam("connection_id"),
                                         ContactLink.qbo_customer_id == bindparam("value"))
_BY_CRM = select(*_RECORD_COLUMNS).where(ContactLink.connection_id == bindparam("connection_id"),
                                         ContactLink.crm_contact_id == bindparam("value"))
_BASE_BY_QBO = select(ContactLink.base).where(ContactLink.connection_id == bindparam("connection_id"),
                                              ContactLink.qbo_customer_id == bindparam("value"))


def find_by_qbo(connection_id: int, customer_id: str) -> LinkRecord | None:
    """The link of a QBO customer, or None; ends the read transaction."""
    return _find(_BY_QBO, connection_id, customer_id)


def find_by_crm(connection_id: int, contact_id: str) -> LinkRecord | None:
    """The link of a CRM contact, or None; ends the read transaction."""
    return _find(_BY_CRM, connection_id, contact_id)


def base_by_qbo(connection_id: int, customer_id: str) -> dict[str, Any] | None:
    """The agreed base of the customer's link (``find_by_qbo(...).base``, without reading the rest); None when
    there is no link or no base yet. Ends the read transaction."""
    base = read(_BASE_BY_QBO, {"connection_id": connection_id, "value": customer_id}).scalar()
    db.session.rollback()
    return dict(base) if base else None


def with_base_or_linked(connection_id: int, customer_ids: Iterable[str]) -> tuple[set[str], set[str]]:
    """Of ``customer_ids``: those whose link has an agreed base, and those linked; ends the read transaction.

    One query for a batch (units.py looks up which jobs' parents it must read) instead of one per customer.
    """
    wanted = sorted(set(customer_ids))
    if not wanted:
        return set(), set()
    rows = db.session.execute(select(ContactLink.qbo_customer_id, ContactLink.base, ContactLink.state)
                              .where(ContactLink.connection_id == connection_id,
                                     ContactLink.qbo_customer_id.in_(wanted))).all()
    db.session.rollback()
    based = {str(row[0]) for row in rows if row[1]}
    return based, {str(row[0]) for row in rows if row[2] == LinkState.LINKED}


def agreed_crm_versions(connection_id: int, contact_ids: Sequence[str]) -> dict[str, str | None]:
    """The agreed CRM version of each *linked* contact among ``contact_ids``; ends the read transaction."""
    rows = db.session.execute(select(ContactLink.crm_contact_id, ContactLink.crm_version).where(
        ContactLink.connection_id == connection_id, ContactLink.state == LinkState.LINKED,
        ContactLink.crm_contact_id.in_(list(contact_ids)))).all()
    db.session.rollback()
    return {str(row.crm_contact_id): row.crm_version for row in rows}


def _find(statement: Any, connection_id: int, value: str) -> LinkRecord | None:
    row = read(statement, {"connection_id": connection_id, "value": value}).first()
    record = LinkRecord.of(row) if row is not None else None
    db.session.rollback()
    return record


def save(links: Iterable[LinkRecord], record: Record | None, events: Iterable[int], *,
         job_id: str | None, connection_id: int, delete: Iterable[int] = ()) -> list[int]:
    """In one transaction: upsert ``links``, delete rows ``delete``, store the record; return the link ids."""
    try:
        for link_id in delete:
            row = db.session.get(ContactLink, link_id)
            if row is not None:
                db.session.delete(row)
        db.session.flush()
        ids = [_upsert(link) for link in links]
        if record is not None:
            _store_record(record, ids[0] if ids else None, job_id, connection_id, events)
        mark_processed(events, connection_id)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return ids


def save_many(units: Sequence[tuple[LinkRecord, Record]], *, job_id: str | None, connection_id: int) -> None:
    """In one transaction: insert new links (``id`` None, left None) and their records; two bulk INSERTs.

    For a batch of first links whose sides are known to be unlinked and that decided no conflict (the backfill's
    links to contacts it created); a unique constraint refusing one of them rolls the whole batch back (the
    caller saves them one by one with ``save`` then).
    """
    if any(link.id is not None or record.conflicts for link, record in units):
        raise ValueError("save_many inserts new links without conflicts only; save the others with save")
    if not units:
        return
    try:
        # Core INSERTs of the tables (the ORM's bulk path costs more CPU per row than the row itself).
        insert_many(ContactLink.__table__, [_values(link) for link, _record in units])
        insert_many(AuditEntry.__table__, [_audit_values(record, job_id, connection_id, None)
                                           for _link, record in units])
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


def save_records(outcomes: Sequence[tuple[Record, Sequence[int]]], *, job_id: str | None,
                 connection_id: int) -> None:
    """In one transaction: the audit record of each outcome that changed no link (no conflicts), and its events
    processed; one bulk INSERT and one UPDATE (the echoes of a batch, ``pipeline.units``)."""
    if any(record.conflicts for record, _events in outcomes):
        raise ValueError("save_records stores records without conflicts only; save the others with save")
    if not outcomes:
        return
    try:
        insert_many(AuditEntry.__table__, [_audit_values(record, job_id, connection_id, next(iter(events), None))
                                           for record, events in outcomes])
        mark_processed([event for _record, events in outcomes for event in events], connection_id)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


def deferrable(record: Record | None, events: Sequence[int], changed: Sequence[LinkRecord],
               delete: Sequence[int]) -> bool:
    """Whether an outcome only adds rows that no later unit reads back (``save_new`` may store it later): no
    events to mark, nothing to delete, no conflicts, and only new links without a contact (reviews)."""
    return (not events and not delete and (record is None or not record.conflicts)
            and all(link.id is None and link.crm_contact_id is None for link in changed))


def save_new(units: Sequence[tuple[list[LinkRecord], Record | None]], *, job_id: str | None,
             connection_id: int) -> None:
    """Store deferred outcomes (``deferrable``) in one transaction with two bulk INSERTs (``id`` stays None).

    A unique constraint refusing one (the customer linked meanwhile) rolls them back; they are then saved one by
    one with ``save``, as they would have been, so each meets its own error.
    """
    if not units:
        return
    new_links = [link for changed, _record in units for link in changed]
    records = [record for _changed, record in units if record is not None]
    try:
        insert_many(ContactLink.__table__, [_values(link) for link in new_links])
        insert_many(AuditEntry.__table__, [_audit_values(record, job_id, connection_id, None) for record in records])
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        for changed, record in units:
            save(changed, record, (), job_id=job_id, connection_id=connection_id)
        return
    except Exception:
        db.session.rollback()
        raise


def _values(link: LinkRecord) -> dict[str, Any]:
    """A new link's column values."""
    return {"connection_id": link.connection_id, "crm_contact_id": link.crm_contact_id,
            "qbo_customer_id": link.qbo_customer_id, "state": link.state, "base": link.base or {},
            "qbo_owned": link.qbo_owned, "qbo_sync_token": link.qbo_sync_token,
            "qbo_updated_at": link.qbo_updated_at, "crm_version": link.crm_version,
            "crm_updated_at": link.crm_updated_at, "qbo_active": link.qbo_active,
            "review_reason": link.review_reason, "review_candidates": list(link.review_candidates)}


def _upsert(link: LinkRecord) -> int:
    row = db.session.get(ContactLink, link.id) if link.id is not None else None
    if row is None:
        row = ContactLink(connection_id=link.connection_id)
        db.session.add(row)
    _fill(row, link)
    db.session.flush()
    link.id = row.id
    return int(row.id)


def _fill(row: ContactLink, link: LinkRecord) -> ContactLink:
    if row.crm_contact_id != link.crm_contact_id:
        row.time_walked_at = None  # another contact: its earlier activities are read again (sync/time/earlier.py)
    row.crm_contact_id, row.qbo_customer_id, row.state = link.crm_contact_id, link.qbo_customer_id, link.state
    row.base = link.base or {}
    row.qbo_owned = link.qbo_owned
    row.qbo_sync_token, row.qbo_updated_at = link.qbo_sync_token, link.qbo_updated_at
    row.crm_version, row.crm_updated_at = link.crm_version, link.crm_updated_at
    row.qbo_active, row.review_reason = link.qbo_active, link.review_reason
    row.review_candidates = list(link.review_candidates)
    return row


def _store_record(record: Record, link_id: int | None, job_id: str | None, connection_id: int,
                  events: Iterable[int]) -> None:
    db.session.add(AuditEntry(**_audit_values(record, job_id, connection_id, next(iter(events), None))))
    for conflict in record.conflicts:
        db.session.add(Conflict(
            connection_id=connection_id, contact_link_id=link_id, field=conflict.field,
            qbo_value=json_value(conflict.qbo_value), crm_value=json_value(conflict.crm_value),
            qbo_changed_at=conflict.qbo_changed_at, crm_changed_at=conflict.crm_changed_at,
            winner=conflict.winner, rule=conflict.rule,
        ))


def _audit_values(record: Record, job_id: str | None, connection_id: int, event: int | None) -> dict[str, Any]:
    """The audit entry of a record."""
    return {"connection_id": connection_id, "inbound_event_id": event, "job_id": job_id, "action": record.action,
            "direction": record.direction, "entity": record.entity, "entity_id": record.entity_id,
            "diff": record.diff, "outcome": record.outcome, "message": record.message,
            "intuit_tid": record.intuit_tid}


def json_value(value: CanonicalValue) -> Any:
    """A canonical value as JSON (an Address becomes its dict)."""
    return value.to_json() if isinstance(value, Address) else value


def json_record(record: Mapping[str, CanonicalValue]) -> dict[str, Any]:
    """A canonical record as JSON."""
    return {name: json_value(value) for name, value in record.items()}
