"""Runs and their records in the database: open, move between states, save a page, count, page through.

State changes are guarded updates (``UPDATE … WHERE state IN (…)``), so two clicks on "Start", or a job and a
retry of it, cannot both move a run: the database decides, as it decides duplicates elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, update

from crm_qb.db import db, insert_many, utcnow
from crm_qb.errors import PermanentError
from crm_qb.models import SyncRun, SyncRunRecord
from crm_qb.sync.firstsync.outcomes import COUNT_KEYS, count_key
from crm_qb.sync.firstsync.runner import RecordRow

FIRST, HISTORY = "first", "history"
WAITING, PREVIEWING, PREVIEWED, RUNNING, DONE, FAILED = "waiting", "previewing", "previewed", "running", "done", \
    "failed"
STATES = (WAITING, PREVIEWING, PREVIEWED, RUNNING, DONE, FAILED)
PREVIEW, RUN = "preview", "run"


def latest(connection_id: int, kind: str) -> SyncRun | None:
    """The connection's newest run of ``kind`` (None: never opened)."""
    return db.session.scalar(select(SyncRun).where(SyncRun.connection_id == connection_id, SyncRun.kind == kind)
                             .order_by(SyncRun.id.desc()).limit(1))


def run_of(run_id: int) -> SyncRun | None:
    """The run with this id, read fresh."""
    db.session.expire_all()
    return db.session.get(SyncRun, run_id)


class RunGoneError(PermanentError):
    """The run does not exist (its connection was deleted)."""


def fresh(run_id: int) -> SyncRun:
    """The run, read fresh; RunGoneError when it no longer exists."""
    run = run_of(run_id)
    if run is None:
        raise RunGoneError(f"sync run {run_id} does not exist")
    return run


def open_run(connection_id: int, kind: str, *, auto_start: bool = False, date_from: date | None = None,
             date_to: date | None = None) -> SyncRun:
    """Add a waiting run and commit it."""
    run = SyncRun(connection_id=connection_id, kind=kind, state=WAITING, auto_start=auto_start,
                  date_from=date_from, date_to=date_to, preview={}, progress={}, checkpoint={})
    db.session.add(run)
    db.session.commit()
    return run


def move(run_id: int, sources: Sequence[str], target: str, **values: Any) -> bool:
    """Move the run from one of ``sources`` to ``target`` (setting ``values``); False when it was not in them."""
    done = db.session.execute(update(SyncRun).where(SyncRun.id == run_id, SyncRun.state.in_(list(sources)))
                              .values(state=target, updated_at=utcnow(), **values))
    db.session.commit()
    return bool(getattr(done, "rowcount", 0))


def set_values(run_id: int, **values: Any) -> None:
    """Set columns of the run and commit."""
    db.session.execute(update(SyncRun).where(SyncRun.id == run_id).values(updated_at=utcnow(), **values))
    db.session.commit()


def clear(run_id: int, stage: str) -> None:
    """Forget a stage's records (a preview computed again)."""
    db.session.execute(SyncRunRecord.__table__.delete().where(SyncRunRecord.run_id == run_id,
                                                              SyncRunRecord.stage == stage))
    db.session.commit()


def save_page(run_id: int, stage: str, rows: Iterable[RecordRow], progress: dict[str, Any] | None = None,
              checkpoint: dict[str, Any] | None = None, planned: dict[tuple[str, str], str] | None = None) -> None:
    """Store a page's records (replacing earlier ones of the same objects) with the run's progress and checkpoint,
    in one commit."""
    rows = list(rows)
    existing = _existing(run_id, stage, rows)
    now = utcnow()
    new: list[dict[str, Any]] = []
    for row in rows:
        key = (row.entity, row.object_id)
        # a new attempt is a new outcome: a failure dismissed before shows again if this one fails too
        values = {**vars(row), "planned": row.planned or (planned or {}).get(key), "updated_at": now,
                  "dismissed_at": None}
        found = existing.get(key)
        if found is None:
            new.append({"run_id": run_id, "stage": stage, "attempts": 1, **values})
        else:
            for name, value in values.items():
                setattr(found, name, value)
            found.attempts = (found.attempts or 0) + 1
    insert_many(SyncRunRecord.__table__, new)
    extra: dict[str, Any] = {}
    if progress is not None:
        extra["progress"] = progress
    if checkpoint is not None:
        extra["checkpoint"] = checkpoint
    if extra:
        db.session.execute(update(SyncRun).where(SyncRun.id == run_id).values(updated_at=now, **extra))
    db.session.commit()


def _existing(run_id: int, stage: str, rows: Sequence[RecordRow]) -> dict[tuple[str, str], SyncRunRecord]:
    found: dict[tuple[str, str], SyncRunRecord] = {}
    for entity, ids in _ids_by_entity((row.entity, row.object_id) for row in rows).items():
        for start in range(0, len(ids), 500):
            query = select(SyncRunRecord).where(SyncRunRecord.run_id == run_id, SyncRunRecord.stage == stage,
                                                SyncRunRecord.entity == entity,
                                                SyncRunRecord.object_id.in_(ids[start:start + 500]))
            found.update({(r.entity, r.object_id): r for r in db.session.scalars(query)})
    return found


def _ids_by_entity(keys: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """The object ids of ``keys`` per entity, sorted: a query names the entity, so the unique index (run, stage,
    entity, object id) finds each id. Without it PostgreSQL read every record of the run's stage for each query
    and compared it with the whole list: 20 to 80 ms a page once a first sync held 12,000 records
    (docs/benchmarks-history.md, "Reads without BEGIN")."""
    by_entity: dict[str, set[str]] = {}
    for entity, object_id in keys:
        by_entity.setdefault(entity, set()).add(object_id)
    return {entity: sorted(ids) for entity, ids in by_entity.items()}


def planned_actions(run_id: int, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """What the preview planned for each (entity, object id) among ``keys``."""
    found: dict[tuple[str, str], str] = {}
    for entity, ids in _ids_by_entity(keys).items():
        for start in range(0, len(ids), 500):
            rows = db.session.execute(select(SyncRunRecord.object_id, SyncRunRecord.action).where(
                SyncRunRecord.run_id == run_id, SyncRunRecord.stage == PREVIEW, SyncRunRecord.entity == entity,
                SyncRunRecord.object_id.in_(ids[start:start + 500]))).all()
            found.update({(entity, object_id): action for object_id, action in rows})
    return found


def counts(run_id: int, stage: str) -> dict[str, int]:
    """DESIGN §11's counts of a stage, plus ``failed`` (records that failed) and ``seen`` (records walked)."""
    rows = db.session.execute(select(SyncRunRecord.action, SyncRunRecord.planned, func.count())
                              .where(SyncRunRecord.run_id == run_id, SyncRunRecord.stage == stage)
                              .group_by(SyncRunRecord.action, SyncRunRecord.planned)).all()
    result = dict.fromkeys((*COUNT_KEYS, "failed", "seen"), 0)
    for action, planned, n in rows:
        key = count_key(action, planned)
        if key:
            result[key] += n
        result["failed"] += n if action == "failed" else 0
        result["seen"] += n
    return result


def phase_counts(run_id: int, stage: str) -> dict[str, int]:
    """Records walked per phase."""
    rows = db.session.execute(select(SyncRunRecord.phase, func.count()).where(
        SyncRunRecord.run_id == run_id, SyncRunRecord.stage == stage).group_by(SyncRunRecord.phase)).all()
    return {phase: int(n) for phase, n in rows}


def records(run_id: int, stage: str, actions: Sequence[str] = (), page: int = 1,
            per_page: int = 50) -> tuple[list[SyncRunRecord], int]:
    """One page of a stage's records (optionally of some actions, counting failures under what they planned),
    in the order they were walked, and how many there are."""
    where = [SyncRunRecord.run_id == run_id, SyncRunRecord.stage == stage]
    if actions:
        where.append(SyncRunRecord.action.in_(list(actions)) | (
            (SyncRunRecord.action == "failed") & SyncRunRecord.planned.in_(list(actions))))
    total = int(db.session.scalar(select(func.count()).select_from(SyncRunRecord).where(*where)) or 0)
    rows = list(db.session.scalars(select(SyncRunRecord).where(*where).order_by(SyncRunRecord.id)
                                   .offset((page - 1) * per_page).limit(per_page)))
    return rows, total


def failed_records(run_id: int, record_ids: Sequence[int] | None = None) -> list[SyncRunRecord]:
    """Every record the run failed (only those of ``record_ids`` when given)."""
    query = select(SyncRunRecord).where(SyncRunRecord.run_id == run_id, SyncRunRecord.stage == RUN,
                                        SyncRunRecord.action == "failed")
    if record_ids is not None:
        query = query.where(SyncRunRecord.id.in_(list(record_ids)))
    return list(db.session.scalars(query.order_by(SyncRunRecord.id)))


def _open_failure(*where: ColumnElement[bool]) -> Select[SyncRunRecord, str]:
    """Failed records of finished runs that nobody dismissed (the Failures page's "sync_record" kind); a run still
    under way shows its failures on its progress page until it is done."""
    return select(SyncRunRecord, SyncRun.kind).join(SyncRun, SyncRun.id == SyncRunRecord.run_id).where(
        SyncRun.state == DONE, SyncRunRecord.stage == RUN, SyncRunRecord.action == "failed",
        SyncRunRecord.dismissed_at.is_(None), *where)


def open_failures(connection_id: int, record_id: int | None = None,
                  limit: int = 200) -> list[tuple[SyncRunRecord, str]]:
    """The connection's open failed records with their run's kind, newest try first (or the one ``record_id``)."""
    where = [SyncRun.connection_id == connection_id]
    if record_id is not None:
        where.append(SyncRunRecord.id == record_id)
    rows = db.session.execute(_open_failure(*where).order_by(SyncRunRecord.updated_at.desc(),
                                                             SyncRunRecord.id.desc()).limit(limit)).all()
    return [(record, kind) for record, kind in rows]


def open_failure_counts(connection_id: int | None = None) -> dict[int, int]:
    """How many open failed records each connection has (only ``connection_id``'s when given)."""
    where = [SyncRun.connection_id == connection_id] if connection_id is not None else []
    query = _open_failure(*where).with_only_columns(SyncRun.connection_id, func.count()).group_by(
        SyncRun.connection_id)
    return {int(cid): int(n) for cid, n in db.session.execute(query).all()}


def failure_times(connection_id: int, since: datetime) -> list[datetime]:
    """The last tries of the records the connection's runs failed since ``since``, dismissed or not and of runs
    still under way too (the health chart counts failures when they happened)."""
    return list(db.session.scalars(select(SyncRunRecord.updated_at).join(SyncRun, SyncRun.id == SyncRunRecord.run_id)
                                   .where(SyncRun.connection_id == connection_id, SyncRunRecord.stage == RUN,
                                          SyncRunRecord.action == "failed", SyncRunRecord.updated_at >= since)))


def dismiss_records(record_ids: Sequence[int]) -> None:
    """Mark failed records dismissed (in the caller's transaction); the report still shows them failed."""
    db.session.execute(update(SyncRunRecord).where(SyncRunRecord.id.in_(list(record_ids)))
                       .values(dismissed_at=utcnow()))


def walk(run_id: int, stage: str, chunk: int = 500) -> Iterator[SyncRunRecord]:
    """Every record of a stage, ``chunk`` rows in memory at a time (the CSV download)."""
    after = 0
    while True:
        rows = list(db.session.scalars(select(SyncRunRecord).where(
            SyncRunRecord.run_id == run_id, SyncRunRecord.stage == stage, SyncRunRecord.id > after)
            .order_by(SyncRunRecord.id).limit(chunk)))
        yield from rows
        if len(rows) < chunk:
            return
        after = rows[-1].id
