"""Reference lists follow QBO: a Term or PaymentMethod created, changed or merged away is stored at once.

A webhook (or a CDC answer) names the entries; the drain reads them in one query per list (inactive ones too) and
stores them with ``crm_qb.qbo.company.store_references``, in the transaction that settles their events. An entry
QBO no longer returns (a payment method merged into another) is kept, inactive, under its last name: old
customers and transactions still point at it. The job's name caches are updated too, so customers synced later
in the same batch are named by the new entry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select

from crm_qb.db import db
from crm_qb.models import QboReference
from crm_qb.qbo.company import (
    KIND_OF_ENTITY,
    PAYMENT_METHOD,
    Reference,
    gone_reference,
    parse_reference,
    store_references,
)
from crm_qb.sync.context import SyncContext
from crm_qb.sync.pipeline.events import mark_processed

log = logging.getLogger(__name__)

ENTITIES: tuple[str, ...] = tuple(KIND_OF_ENTITY)


def is_reference(entity: str) -> bool:
    """Whether ``entity`` is a reference list crm-qb keeps (Term, PaymentMethod)."""
    return entity in KIND_OF_ENTITY


def apply_references(ctx: SyncContext, entity: str, ids: Iterable[str], found: Mapping[str, Mapping[str, Any]],
                     events: Sequence[int]) -> str:
    """Store the entries ``ids`` of one list as QBO returned them (``found``; a missing one is gone) and settle
    ``events``, in one transaction; return what happened."""
    kind = KIND_OF_ENTITY[entity]
    wanted = sorted(set(ids))
    try:
        previous = _stored(ctx.connection_id, kind, wanted)
        references = [parse_reference(kind, found[i]) if i in found else gone_reference(kind, i, previous.get(i))
                      for i in wanted]
        changed = store_references(db.session, ctx.connection_id, references)
        mark_processed(events, ctx.connection_id)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    _remember_names(ctx, references)
    log.info("connection %s: %s %s entr%s stored (%s changed) job=%s", ctx.connection_id, len(references), entity,
             "y" if len(references) == 1 else "ies", changed, ctx.job_id)
    return f"{changed} changed"


def _stored(connection_id: int, kind: str, ids: list[str]) -> dict[str, QboReference]:
    rows = db.session.scalars(select(QboReference).where(
        QboReference.connection_id == connection_id, QboReference.kind == kind, QboReference.qbo_id.in_(ids)))
    return {row.qbo_id: row for row in rows}


def _remember_names(ctx: SyncContext, references: Iterable[Reference]) -> None:
    for ref in references:
        names = ctx.payment_method_names if ref.kind == PAYMENT_METHOD else ctx.term_names
        names[ref.qbo_id] = ref.name
