"""The time store: entries and user mappings read into plain records, and the short transactions that write them.

As for contact links (``sync/customers/links.py``): read, end the read transaction, call QBO and the CRM, then
write the result in one short transaction. The connection's sync lock serialises the time sync of a connection,
and the unique (connection, activity) and (connection, user) constraints catch anything that slips past it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import exists, or_, select, update

from crm_qb.db import db, utcnow
from crm_qb.models import AuditEntry, ContactLink, LinkState, TimeEntry, TimeState, TimeUserMapping

DIRECTION = "crm_to_qbo"


@dataclass
class EntryRecord:
    """A time entry as plain values; ``id`` is None until saved."""

    connection_id: int
    crm_activity_id: str
    crm_contact_id: str | None = None
    crm_user_id: str | None = None
    crm_version: int | None = None
    state: TimeState = TimeState.HELD
    hold_kind: str | None = None
    hold_reason: str | None = None
    activity: dict[str, Any] = field(default_factory=dict)
    qbo_id: str | None = None
    qbo_sync_token: str | None = None
    qbo_customer_id: str | None = None
    billable_status: str | None = None
    request_id: str | None = None
    batch_item_id: str | None = None
    sent: dict[str, Any] | None = None
    written: dict[str, Any] | None = None
    txn_date: date | None = None
    minutes: int | None = None
    hourly_rate: Decimal | None = None
    amount: Decimal | None = None
    currency: str | None = None
    conflict_version: int | None = None
    id: int | None = None

    @classmethod
    def of(cls, row: TimeEntry) -> EntryRecord:
        """A record copied from a row."""
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


@dataclass(frozen=True)
class Mapping:
    """A CRM user's QBO person (``qbo_kind``/``qbo_id``), or the reason it waits for a person."""

    crm_user_id: str
    qbo_kind: str | None
    qbo_id: str | None
    qbo_name: str | None
    source: str
    review_reason: str | None = None
    name: str | None = None
    email: str | None = None
    candidates: tuple[str, ...] = ()


def entries(connection_id: int, activity_ids: Iterable[str]) -> dict[str, EntryRecord]:
    """The entries of these activities by activity id; ends the read transaction."""
    ids = sorted(set(activity_ids))
    rows: list[TimeEntry] = []
    for start in range(0, len(ids), 500):
        rows += db.session.scalars(select(TimeEntry).where(
            TimeEntry.connection_id == connection_id, TimeEntry.crm_activity_id.in_(ids[start:start + 500]))).all()
    found = {row.crm_activity_id: EntryRecord.of(row) for row in rows}
    db.session.rollback()
    return found


def entries_where(connection_id: int, *conditions: Any, limit: int = 5000) -> list[EntryRecord]:
    """Entries of a connection matching ``conditions``, oldest first; ends the read transaction."""
    rows = db.session.scalars(select(TimeEntry).where(TimeEntry.connection_id == connection_id, *conditions)
                              .order_by(TimeEntry.id).limit(limit)).all()
    found = [EntryRecord.of(row) for row in rows]
    db.session.rollback()
    return found


def save(records: Sequence[EntryRecord], audit: Sequence[AuditEntry] = ()) -> None:
    """Upsert ``records`` and add ``audit`` entries in one transaction (committed)."""
    try:
        for record in records:
            _upsert(record)
        for entry in audit:
            db.session.add(entry)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


def _upsert(record: EntryRecord) -> None:
    row = db.session.get(TimeEntry, record.id) if record.id is not None else None
    if row is None:
        row = TimeEntry(connection_id=record.connection_id, crm_activity_id=record.crm_activity_id)
        db.session.add(row)
    for f in fields(EntryRecord):
        if f.name not in ("id", "connection_id", "crm_activity_id"):
            setattr(row, f.name, getattr(record, f.name))
    db.session.flush()
    record.id = row.id


def linked_customers(connection_id: int, contact_ids: Iterable[str]) -> dict[str, tuple[str, str | None]]:
    """(QBO customer id, its currency) of every linked contact among ``contact_ids``; ends the read."""
    ids = sorted(set(contact_ids))
    rows = db.session.scalars(select(ContactLink).where(
        ContactLink.connection_id == connection_id, ContactLink.state == LinkState.LINKED,
        ContactLink.crm_contact_id.in_(ids), ContactLink.qbo_customer_id.is_not(None))).all() if ids else []
    found = {str(row.crm_contact_id): (str(row.qbo_customer_id), (row.qbo_owned or {}).get("currency"))
             for row in rows}
    db.session.rollback()
    return found


def releasable(connection_id: int, kinds: Sequence[str]) -> bool:
    """Whether a release could do anything: a linked contact whose earlier activities were not read, a create
    left unanswered, or time held for one of ``kinds``; one query (each by index), ends the read."""
    found = db.session.scalar(select(or_(
        exists().where(ContactLink.connection_id == connection_id, ContactLink.time_walked_at.is_(None),
                       ContactLink.state == LinkState.LINKED, ContactLink.crm_contact_id.is_not(None)),
        exists().where(TimeEntry.connection_id == connection_id, TimeEntry.state == TimeState.CREATING),
        exists().where(TimeEntry.connection_id == connection_id, TimeEntry.state == TimeState.HELD,
                       TimeEntry.hold_kind.in_(list(kinds))))))
    db.session.rollback()
    return bool(found)


def unwalked_links(connection_id: int, limit: int | None) -> list[tuple[int, str]]:
    """(link id, contact id) of linked contacts whose earlier activities were not read yet, oldest link first (at
    most ``limit``; all when None); ends the read."""
    query = select(ContactLink.id, ContactLink.crm_contact_id).where(
        ContactLink.connection_id == connection_id, ContactLink.time_walked_at.is_(None),
        ContactLink.state == LinkState.LINKED, ContactLink.crm_contact_id.is_not(None)).order_by(ContactLink.id)
    rows = db.session.execute(query.limit(limit) if limit is not None else query).all()
    db.session.rollback()
    return [(int(link_id), str(contact_id)) for link_id, contact_id in rows]


def mark_walked(connection_id: int, link_ids: Sequence[int]) -> None:
    """Note that these links' earlier activities were read (committed)."""
    try:
        for start in range(0, len(link_ids), 500):
            db.session.execute(update(ContactLink).where(
                ContactLink.connection_id == connection_id, ContactLink.id.in_(link_ids[start:start + 500]))
                .values(time_walked_at=utcnow()))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


def link_id_of(connection_id: int, contact_id: str | None) -> int | None:
    """The id of the contact's link, if any; ends the read."""
    if not contact_id:
        return None
    found = db.session.scalar(select(ContactLink.id).where(ContactLink.connection_id == connection_id,
                                                           ContactLink.crm_contact_id == contact_id))
    db.session.rollback()
    return int(found) if found is not None else None


def mappings(connection_id: int) -> dict[str, Mapping]:
    """Every user mapping of a connection by CRM user id; ends the read."""
    rows = db.session.scalars(select(TimeUserMapping).where(TimeUserMapping.connection_id == connection_id)).all()
    found = {row.crm_user_id: _mapping(row) for row in rows}
    db.session.rollback()
    return found


def _mapping(row: TimeUserMapping) -> Mapping:
    return Mapping(row.crm_user_id, row.qbo_kind, row.qbo_id, row.qbo_name, row.source, row.review_reason,
                   row.name, row.email, tuple(row.candidates or ()))


def stage_mapping(connection_id: int, mapping: Mapping) -> None:
    """Insert or replace a user's mapping in the caller's transaction (not committed)."""
    row = db.session.scalars(select(TimeUserMapping).where(
        TimeUserMapping.connection_id == connection_id,
        TimeUserMapping.crm_user_id == mapping.crm_user_id)).first()
    if row is None:
        row = TimeUserMapping(connection_id=connection_id, crm_user_id=mapping.crm_user_id)
        db.session.add(row)
    row.qbo_kind, row.qbo_id, row.qbo_name = mapping.qbo_kind, mapping.qbo_id, mapping.qbo_name
    row.source, row.review_reason = mapping.source, mapping.review_reason
    row.name, row.email, row.candidates = mapping.name, mapping.email, list(mapping.candidates)


def save_mapping(connection_id: int, mapping: Mapping, audit: AuditEntry | None = None) -> None:
    """Insert or replace a user's mapping (committed)."""
    try:
        stage_mapping(connection_id, mapping)
        if audit is not None:
            db.session.add(audit)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


def audit(connection_id: int, job_id: str | None, action: str, activity_id: str | None,
          diff: dict[str, Any] | None = None, *, outcome: str = "ok", message: str | None = None,
          intuit_tid: str | None = None) -> AuditEntry:
    """An audit entry of the time sync (not added to the session)."""
    return AuditEntry(connection_id=connection_id, job_id=job_id, action=action, direction=DIRECTION,
                      entity="Activity", entity_id=activity_id, diff=diff or {}, outcome=outcome,
                      message=message, intuit_tid=intuit_tid)
