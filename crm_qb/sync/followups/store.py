"""The follow-ups' database side: reading active rows and overdue invoices, reserving rules, guarded updates.

Every read ends its transaction before the caller talks to the CRM (no transaction stays open across HTTP), and
every write commits at once (a batch of new tasks in one statement). A rule is reserved with INSERT ... ON
CONFLICT DO NOTHING, so the unique (connection, invoice, rule) constraint decides who owns it; a row is updated
only while it still has the status the caller read (``record``, ``record_tasks``), so two scans never both finish
one row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Numeric, case, cast, func, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult

from crm_qb.db import db, utcnow
from crm_qb.errors import PermanentError
from crm_qb.models import Connection, FolderItem, FollowUp, FollowUpStatus
from crm_qb.sync.customers import hierarchy
from crm_qb.sync.rules.followups import Invoice
from crm_qb.sync.rules.status import VOIDED
from crm_qb.sync.transactions import registry

ACTIVE = (FollowUpStatus.PENDING, FollowUpStatus.OPEN)
RESERVE_BATCH = 500


class UnknownConnectionError(PermanentError):
    """No connection has the id given."""


@dataclass(frozen=True)
class Row:
    """A snapshot of one FollowUp row."""

    id: int
    qbo_invoice_id: str
    rule_days: int
    crm_contact_id: str
    crm_task_id: str | None
    status: FollowUpStatus
    task_attempted: bool = False  # a create of its task was sent at least once (the marker may be in the CRM)


def connection(connection_id: int) -> Connection:
    """The connection (the caller ends the read); UnknownConnectionError when there is none."""
    found = db.session.get(Connection, connection_id)
    if found is None:
        db.session.rollback()
        raise UnknownConnectionError(f"no connection {connection_id}")
    return found


def active_rows(connection_id: int, invoice_id: str | None) -> list[Row]:
    """The connection's pending and open follow-ups (of one invoice when given); ends the transaction."""
    query = select(FollowUp).where(FollowUp.connection_id == connection_id, FollowUp.status.in_(ACTIVE))
    if invoice_id is not None:
        query = query.where(FollowUp.qbo_invoice_id == invoice_id)
    rows = [_snapshot(item) for item in db.session.scalars(query.order_by(FollowUp.id))]
    db.session.rollback()
    return rows


def row(row_id: int) -> Row | None:
    """One row as it is now; ends the transaction."""
    item = db.session.get(FollowUp, row_id)
    found = _snapshot(item) if item is not None else None
    db.session.rollback()
    return found


def invoices(connection_id: int, today: date, invoice_id: str | None, also: set[str]) -> dict[str, Invoice]:
    """Invoices overdue with a balance on ``today`` (or just ``invoice_id``), plus those in ``also``."""
    query = _invoice_query(connection_id)
    if invoice_id is not None:
        query = query.where(FolderItem.qbo_id == invoice_id)
    else:
        query = query.where(or_(_overdue(today), FolderItem.qbo_id.in_(sorted(also))) if also else _overdue(today))
    items = list(db.session.scalars(query))
    contacts = hierarchy.contacts_for(connection_id, (item.qbo_customer_id for item in items))
    found = {item.qbo_id: _invoice(item, contacts.get(item.qbo_customer_id)) for item in items}
    db.session.rollback()
    return found


def contacts_with_invoices(connection_id: int) -> list[str]:
    """Every contact whose customer (or a sub-customer it represents) has at least one mirrored invoice."""
    customers = db.session.scalars(_invoice_query(connection_id).with_only_columns(FolderItem.qbo_customer_id)
                                   .distinct()).all()
    ids = sorted(set(hierarchy.contacts_for(connection_id, customers).values()))
    db.session.rollback()
    return ids


def contacts_overdue(connection_id: int, contact_ids: list[str], today: date) -> set[str]:
    """Those of ``contact_ids`` with at least one invoice overdue with a balance on ``today``."""
    if not contact_ids:
        return set()
    items = list(db.session.scalars(_invoice_query(connection_id).where(_overdue(today))))
    contacts = hierarchy.contacts_for(connection_id, (item.qbo_customer_id for item in items))
    wanted = set(contact_ids)
    overdue = {contacts[item.qbo_customer_id] for item in items if contacts.get(item.qbo_customer_id) in wanted
               and _invoice(item, contacts[item.qbo_customer_id]).overdue(today)}
    db.session.rollback()
    return overdue


def rules_reached(connection_id: int, invoice_ids: Iterable[str]) -> dict[str, int]:
    """The most advanced rule each of ``invoice_ids`` already has a row for, whatever its status; ends the read."""
    wanted = sorted(set(invoice_ids))
    reached: dict[str, int] = {}
    for start in range(0, len(wanted), RESERVE_BATCH):
        query = (select(FollowUp.qbo_invoice_id, func.max(FollowUp.rule_days))
                 .where(FollowUp.connection_id == connection_id,
                        FollowUp.qbo_invoice_id.in_(wanted[start:start + RESERVE_BATCH]))
                 .group_by(FollowUp.qbo_invoice_id))
        reached.update({str(invoice): int(days) for invoice, days in db.session.execute(query)})
    db.session.rollback()
    return reached


def reserve(connection_id: int, due: list[dict[str, Any]]) -> None:
    """Insert a pending row for each due rule that has none; the unique constraint skips the others."""
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for start in range(0, len(due), RESERVE_BATCH):
        values = [{**item, "connection_id": connection_id, "status": FollowUpStatus.PENDING, "created_at": utcnow()}
                  for item in due[start:start + RESERVE_BATCH]]
        db.session.execute(insert(FollowUp).values(values).on_conflict_do_nothing(
            index_elements=["connection_id", "qbo_invoice_id", "rule_days"]))
        db.session.commit()


def record(row_id: int, expected: FollowUpStatus, **values: Any) -> bool:
    """Update the row only if it still has status ``expected``; commit; return whether it changed."""
    result = db.session.execute(
        update(FollowUp).where(FollowUp.id == row_id, FollowUp.status == expected).values(**values))
    assert isinstance(result, CursorResult)  # an UPDATE always answers with a cursor result
    db.session.commit()
    return bool(result.rowcount)


def record_tasks(tasks: Mapping[int, str]) -> set[int]:
    """Record each row's new task (``row id -> task id``) where the row is still pending, in one UPDATE and one
    commit; return the ids recorded. One statement for a batch of creates, not one and a commit per row: each
    row's create was written ahead (``mark_attempted``), so if this commit is lost a later scan finds the tasks
    by their markers."""
    if not tasks:
        return set()
    task_type = FollowUp.__table__.c.crm_task_id.type  # its bind processor refuses an id it cannot store
    task_of = case({row_id: literal(task_id, task_type) for row_id, task_id in tasks.items()}, value=FollowUp.id)
    recorded = set(db.session.scalars(
        update(FollowUp).where(FollowUp.id.in_(list(tasks)), FollowUp.status == FollowUpStatus.PENDING)
        .values(status=FollowUpStatus.OPEN, crm_task_id=task_of, status_reason=None).returning(FollowUp.id)))
    db.session.commit()
    return recorded


def mark_attempted(row_ids: list[int]) -> set[int]:
    """Write ahead a task create for each of ``row_ids`` still pending and never tried (one UPDATE, committed);
    return the ids marked: only those may have their task created without searching the CRM for it first."""
    if not row_ids:
        return set()
    marked = set(db.session.scalars(
        update(FollowUp).where(FollowUp.id.in_(row_ids), FollowUp.status == FollowUpStatus.PENDING,
                               FollowUp.task_attempted_at.is_(None))
        .values(task_attempted_at=utcnow()).returning(FollowUp.id)))
    db.session.commit()
    return marked


def set_reason(row_id: int, reason: str) -> None:
    """Note on the row why the CRM refused its task (committed)."""
    db.session.execute(update(FollowUp).where(FollowUp.id == row_id).values(status_reason=reason))
    db.session.commit()


def _snapshot(item: FollowUp) -> Row:
    return Row(item.id, item.qbo_invoice_id, item.rule_days, item.crm_contact_id, item.crm_task_id, item.status,
               item.task_attempted_at is not None)


def _invoice_query(connection_id: int) -> Any:
    """The connection's invoices (their contacts come from ``hierarchy.contacts_for``: a sub-customer without a
    contact of its own is represented by its nearest linked ancestor's)."""
    return select(FolderItem).where(FolderItem.connection_id == connection_id,
                                    FolderItem.txn_type == registry.followed_up().entity)


def _overdue(today: date) -> Any:
    # SQLite stores money as text: compare it as a number. The exact test is Invoice.overdue, in Python.
    return (FolderItem.due_date < today) & (cast(FolderItem.balance, Numeric(18, 2)) > 0)


def _invoice(item: FolderItem, contact_id: str | None) -> Invoice:
    # The mirror keeps the QBO customer's name from the invoice's CustomerRef (crm_qb/sync/rules/folder.py).
    name = (item.details or {}).get("customer_name")
    return Invoice(qbo_id=item.qbo_id, contact_id=contact_id, doc_number=item.doc_number, due_date=item.due_date,
                   total=item.total, balance=item.balance, currency=item.currency, voided=item.status == VOIDED,
                   customer_name=str(name) if name else None)
