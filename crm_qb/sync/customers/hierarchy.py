"""The QBO customer hierarchy: sub-customers ("jobs") under their parents, as the sync has seen them.

QBO nests customers up to five levels (a job's ``ParentRef``). Jobs usually inherit their parent's email and
company, so they rarely have a CRM contact of their own; their transactions still belong in front of the people
who deal with the customer. Hence (docs/architecture.md §3, "Sub-customers"):
- a contact's folder and summary cover its customer and every customer below it, each item marked with its
  customer's name (``family``);
- a job without a linked contact of its own is represented by its nearest linked ancestor's contact: its
  follow-up tasks go there (``contacts_for``).

Every customer the sync reads is remembered here (``remember``), linked or not; the table is a mirror of
``ParentRef`` and ``DisplayName`` only, so remembering is idempotent and cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from crm_qb.db import db, read, utcnow
from crm_qb.models import ContactLink, LinkState, QboCustomer

MAX_DEPTH = 5  # QBO allows sub-customers five levels deep; a deeper chain in the data is cut, not followed forever
BATCH = 500


@dataclass(frozen=True)
class Member:
    """A customer in a hierarchy: its id, name, parent and depth below the customer asked about (0 = itself)."""

    qbo_customer_id: str
    name: str
    parent_id: str | None
    depth: int


def parent_of(customer: Mapping[str, Any]) -> str | None:
    """The id of a QBO customer's parent, None for a top-level customer."""
    ref = customer.get("ParentRef") or {}
    value = ref.get("value") if isinstance(ref, Mapping) else None
    return str(value) if value not in (None, "") else None


def remember(connection_id: int, customers: Iterable[Mapping[str, Any]]) -> None:
    """Store each customer's parent and name (insert or update) and commit."""
    rows = [{"connection_id": connection_id, "qbo_customer_id": str(c["Id"]), "parent_id": parent_of(c),
             "display_name": str(c.get("DisplayName") or c["Id"])[:500], "updated_at": utcnow()}
            for c in customers if c.get("Id") is not None and c.get("status") != "Deleted"]
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # The table, not the entity: the ORM's bulk path splits the rows into a statement per run of rows with and
    # without a parent (it leaves None values out), where the table's INSERT takes every row in one executemany.
    statement = insert(QboCustomer.__table__)
    statement = statement.on_conflict_do_update(
        index_elements=["connection_id", "qbo_customer_id"],
        set_={"parent_id": statement.excluded.parent_id, "display_name": statement.excluded.display_name,
              "updated_at": statement.excluded.updated_at})
    try:
        for start in range(0, len(rows), BATCH):
            # One cached statement, many parameter sets (a VALUES list per size would be compiled each time).
            db.session.execute(statement, rows[start:start + BATCH])
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


def family(connection_id: int, qbo_customer_id: str) -> list[Member]:
    """The customer and everyone below it (depth first by level, then id); just the customer when it has no jobs."""
    own = db.session.scalar(_row(connection_id, qbo_customer_id))
    members = [Member(qbo_customer_id, own.display_name if own else qbo_customer_id,
                      own.parent_id if own else None, 0)]
    frontier = [qbo_customer_id]
    for depth in range(1, MAX_DEPTH + 1):
        children = db.session.scalars(select(QboCustomer).where(
            QboCustomer.connection_id == connection_id, QboCustomer.parent_id.in_(frontier))
            .order_by(QboCustomer.id)).all()
        seen = {m.qbo_customer_id for m in members}
        children = [c for c in children if c.qbo_customer_id not in seen]
        members += [Member(c.qbo_customer_id, c.display_name, c.parent_id, depth) for c in children]
        frontier = [c.qbo_customer_id for c in children]
        if not frontier:
            break
    return members


def ancestors(connection_id: int, qbo_customer_id: str) -> list[Member]:
    """The customer's parent, grandparent, ... nearest first (empty for a top-level or unknown customer)."""
    chain: list[Member] = []
    current = _parent_and_name(connection_id, qbo_customer_id)
    while current is not None and current.parent_id and len(chain) < MAX_DEPTH:
        if current.parent_id == qbo_customer_id or any(m.qbo_customer_id == current.parent_id for m in chain):
            break  # a cycle in the data: stop rather than loop
        parent = _parent_and_name(connection_id, current.parent_id)
        chain.append(Member(current.parent_id, parent.display_name if parent else current.parent_id,
                            parent.parent_id if parent else None, -len(chain) - 1))
        current = parent
    return chain


def contacts_for(connection_id: int, qbo_customer_ids: Iterable[str]) -> dict[str, str]:
    """The CRM contact representing each customer: its own linked contact, else its nearest linked ancestor's."""
    wanted = sorted(set(qbo_customer_ids))
    found = _linked_contacts(connection_id, wanted)
    climbing = {cid: cid for cid in wanted if cid not in found}  # customer -> the ancestor looked at now
    for _ in range(MAX_DEPTH):
        parents = _parents(connection_id, sorted(set(climbing.values())))
        climbing = {cid: parents[at] for cid, at in climbing.items() if parents.get(at) not in (None, cid)}
        if not climbing:
            break
        links = _linked_contacts(connection_id, sorted(set(climbing.values())))
        found.update({cid: links[at] for cid, at in climbing.items() if at in links})
        climbing = {cid: at for cid, at in climbing.items() if at not in links}
    return found


# Built once and run as Core (``db.read``): a sync asks these for every job it meets, and building a statement,
# or the ORM's work around running it, costs more than SQLite takes to answer it.
_PARENTS = select(QboCustomer.qbo_customer_id, QboCustomer.parent_id).where(
    QboCustomer.connection_id == bindparam("connection_id"),
    QboCustomer.qbo_customer_id.in_(bindparam("ids", expanding=True)))
_LINKED_CONTACTS = select(ContactLink.qbo_customer_id, ContactLink.crm_contact_id).where(
    ContactLink.connection_id == bindparam("connection_id"), ContactLink.state == LinkState.LINKED,
    ContactLink.qbo_customer_id.in_(bindparam("ids", expanding=True)))
_PARENT_AND_NAME = select(QboCustomer.parent_id, QboCustomer.display_name).where(
    QboCustomer.connection_id == bindparam("connection_id"), QboCustomer.qbo_customer_id == bindparam("id"))


def _parents(connection_id: int, customer_ids: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for start in range(0, len(customer_ids), BATCH):
        rows = read(_PARENTS, {"connection_id": connection_id, "ids": list(customer_ids[start:start + BATCH])})
        found.update({str(customer): str(parent) for customer, parent in rows if parent})
    return found


def _linked_contacts(connection_id: int, customer_ids: Sequence[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for start in range(0, len(customer_ids), BATCH):
        rows = read(_LINKED_CONTACTS, {"connection_id": connection_id, "ids": list(customer_ids[start:start + BATCH])})
        found.update({str(customer): str(contact) for customer, contact in rows if customer and contact})
    return found


def _parent_and_name(connection_id: int, qbo_customer_id: str) -> Any:
    """A remembered customer's ``parent_id`` and ``display_name`` (a row of the two columns), or None."""
    return read(_PARENT_AND_NAME, {"connection_id": connection_id, "id": qbo_customer_id}).first()


def _row(connection_id: int, qbo_customer_id: str) -> Any:
    return select(QboCustomer).where(QboCustomer.connection_id == connection_id,
                                     QboCustomer.qbo_customer_id == qbo_customer_id)

