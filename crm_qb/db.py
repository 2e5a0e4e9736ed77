"""The database extension and the declarative base every model uses.

Constraint names follow one convention so Alembic migrations are deterministic on SQLite and PostgreSQL alike.
SQLite gets WAL mode and a busy timeout so the web, worker and scheduler processes can share one file without
"database is locked" errors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import Date, DateTime, Executable, MetaData, Table, TypeDecorator, event, insert
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 15_000


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite forgets the zone; this puts it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given where a timezone-aware one is required")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def bulk_bind_processor(self, dialect: Any) -> Callable[[Any], Any] | None:
        """For bulk INSERTs on SQLite: an aware datetime as the text SQLite's DATETIME writes for it in UTC, in one
        step (``insert_many``: every folder item, link and audit entry has two or three timestamps); anything
        else through the column's own processor. None where that text is not SQLAlchemy's default format."""
        adapted = self.dialect_impl(dialect)
        generic = adapted.bind_processor(dialect)
        if dialect.name != "sqlite" or generic is None or _storage_format(getattr(adapted, "impl", None)) != (
                _SQLITE_DATETIME):
            return None

        def process(value: Any) -> Any:
            if type(value) is datetime and value.tzinfo is not None:
                at = value.astimezone(UTC)
                return _SQLITE_DATETIME_TEXT % (at.year, at.month, at.day, at.hour, at.minute, at.second,
                                                at.microsecond)
            return generic(value)

        return process


# SQLAlchemy's storage formats of SQLite dates and times (``sqlite.DATETIME``, ``sqlite.DATE``), and the same text
# from a tuple: the bulk processors write them without building a dict per value.
_SQLITE_DATETIME = ("%(year)04d-%(month)02d-%(day)02d %(hour)02d:%(minute)02d:%(second)02d.%(microsecond)06d")
_SQLITE_DATETIME_TEXT = "%04d-%02d-%02d %02d:%02d:%02d.%06d"
_SQLITE_DATE = "%(year)04d-%(month)02d-%(day)02d"


def _storage_format(impl: Any) -> str | None:
    """The storage format of a SQLite date or time type (SQLAlchemy's, or one given to it), None for others."""
    return getattr(impl, "_storage_format", None)


class Base(DeclarativeBase):
    """Declarative base with the project's constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def built_on(dialect_name: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """An Alembic ``include_object`` for a database of ``dialect_name``: leaves out what the models build only on
    another database (``Index(...).ddl_if(dialect=...)``, e.g. the PostgreSQL-only GIN index of contact_links),
    which Alembic's comparison would otherwise ask to add there. Reads SQLAlchemy's ``_ddl_if`` (its DDLIf tuple:
    no public accessor)."""

    def include(obj: Any, _name: str | None, _type: str, _reflected: bool, _compare_to: Any) -> bool:
        only = getattr(obj, "_ddl_if", None)
        return only is None or only.dialect is None or only.dialect == dialect_name

    return include


def configure_sqlite(engine: Engine) -> None:
    """Turn on WAL, a busy timeout and foreign keys for every new SQLite connection of ``engine``."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


# -- reads -------------------------------------------------------------------------------------------------------


def read(statement: Executable, params: Mapping[str, Any]) -> CursorResult[*tuple[Any, ...]]:
    """Run a SELECT of columns (no entities) on the session's connection and transaction, as Core runs it.

    The rows are those ``db.session.execute(statement, params)`` gives (the same SQL, connection and result
    processing; no entity is loaded, so the identity map has nothing to do with it), and pending changes are
    flushed first when the session autoflushes, as there. What is left out is the ORM's work per statement,
    about two thirds of a short read's CPU: a backfill reads a job's parent and its links several times per job.
    """
    session = db.session
    if session.autoflush:
        session.flush()
    return session.connection().execute(statement, params)


# -- bulk inserts -----------------------------------------------------------------------------------------------

# (table, keys, dialect name) -> the INSERT's SQL and, per placeholder, how to get its value from a row.
_INSERT_PLANS: dict[tuple[str, tuple[str, ...], str], tuple[str, list[tuple[str | None, Any, Any]]] | None] = {}


def insert_many(table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT ``rows`` (mappings with the same keys) into ``table`` in the session's transaction, in one go.

    The same as ``db.session.execute(insert(table), rows)``: each value goes through its column type's own bind
    processor, and a column left out gets its Python-side default, evaluated per row. The processed values go to
    the driver at once, without SQLAlchemy's per-row parameter assembly, which cost a backfill more CPU than the
    rows themselves (a row per transaction, link, audit entry and first-sync record): on SQLite as one
    executemany, on PostgreSQL as one ``COPY … FROM STDIN``. SQLAlchemy's own path there (``insertmanyvalues``)
    sends a statement of some thousand placeholders, which psycopg parses in Python each time (it caches only
    short statements): half of a first sync's CPU went to its records (docs/benchmarks-history.md, "The first
    sync's CPU halved"). For a table with a SQL-side default the plan cannot evaluate, SQLAlchemy does it.
    Errors are SQLAlchemy's either way (an ``IntegrityError`` for a duplicate key).
    """
    if not rows:
        return
    connection = db.session.connection()
    dialect = connection.dialect
    plan = _insert_plan(table, tuple(rows[0]), dialect) if dialect.name in ("sqlite", "postgresql") else None
    if plan is None:
        db.session.execute(insert(table), list(rows))
        return
    sql, values = plan
    try:
        params = [tuple([(process(row[key]) if process else row[key]) if key is not None
                         else (process(default()) if process else default())
                         for key, process, default in values]) for row in rows]
    except Exception:  # a value its column refuses: SQLAlchemy's path raises it as it always has
        db.session.execute(insert(table), list(rows))
        raise
    if dialect.name == "postgresql":
        _copy_rows(connection, sql, params)
    else:
        connection.exec_driver_sql(sql, params)


def _copy_rows(connection: Any, sql: str, params: Sequence[tuple[Any, ...]]) -> None:
    """Send ``params`` with psycopg's ``COPY`` on the session's connection (its transaction: psycopg opens one
    for a COPY as for any statement outside autocommit); a driver error raised as SQLAlchemy raises it."""
    import psycopg  # only for PostgreSQL

    try:
        with connection.connection.driver_connection.cursor() as cursor, cursor.copy(sql) as copy:
            for row in params:
                copy.write_row(row)
    except psycopg.Error as exc:
        raise DBAPIError.instance(sql, None, exc, psycopg.Error, dialect=connection.dialect) from exc


def _insert_plan(table: Table, keys: tuple[str, ...],
                 dialect: Any) -> tuple[str, list[tuple[str | None, Any, Any]]] | None:
    cache_key = (table.name, keys, dialect.name)
    if cache_key not in _INSERT_PLANS:
        _INSERT_PLANS[cache_key] = _make_insert_plan(table, keys, dialect)
    return _INSERT_PLANS[cache_key]


def _make_insert_plan(table: Table, keys: tuple[str, ...],
                      dialect: Any) -> tuple[str, list[tuple[str | None, Any, Any]]] | None:
    """The SQL that inserts rows of ``keys`` (SQLite: an ``INSERT``; PostgreSQL: a ``COPY``) and, per value in
    order, (row key or None, bind processor or None, Python default or None); None when SQLAlchemy must build the
    statement itself."""
    copy = dialect.name == "postgresql"
    if not (dialect.positional or copy) or not set(keys) <= set(table.c.keys()):
        return None
    compiled = insert(table).compile(dialect=dialect, column_keys=list(keys))
    # PostgreSQL's INSERT returns the new id, which a COPY leaves to the column's own sequence
    returning = [column for column in compiled.returning or () if not (copy and column.primary_key)]
    names = list(compiled.binds) if copy else compiled.positiontup
    if names is None or compiled.postfetch or returning:
        return None
    prefetched = {column.key for column in compiled.insert_prefetch}
    values: list[tuple[str | None, Any, Any]] = []
    for name in names:
        column = table.c[name]
        process = _bind_processor(column.type, dialect)
        if name in keys:
            values.append((name, process, None))
            continue
        default = column.default
        if name not in prefetched or default is None or not (default.is_scalar or default.is_callable):
            return None
        arg = getattr(default, "arg")  # noqa: B009 (ColumnDefault's; DefaultGenerator does not declare it)
        values.append((None, process, (lambda arg=arg: arg(None)) if default.is_callable else (lambda arg=arg: arg)))
    if copy:
        quote = dialect.identifier_preparer
        columns = ", ".join(quote.quote(table.c[name].name) for name in names)
        return f"COPY {quote.format_table(table)} ({columns}) FROM STDIN", values
    return str(compiled), values


def _bind_processor(column_type: Any, dialect: Any) -> Any:
    """The column type's bind processor for a bulk INSERT: its ``bulk_bind_processor`` when it has one that
    applies (the same values with less work per value: JSON, keys and amounts in ``models/types.py``, UTC
    timestamps here), a SQLite date's ``isoformat``, else its own. Each is tested against the column's own."""
    bulk = getattr(column_type, "bulk_bind_processor", None)
    process = bulk(dialect) if bulk is not None else None
    if process is not None:
        return process
    own = column_type.dialect_impl(dialect).bind_processor(dialect)
    if dialect.name == "sqlite" and type(column_type) is Date and own is not None and (
            _storage_format(column_type.dialect_impl(dialect)) == _SQLITE_DATE):
        return partial(_sqlite_date, own)
    return own


def _sqlite_date(own: Callable[[Any], Any], value: Any) -> Any:
    """A date as SQLite's DATE writes it (``isoformat``: the same zero-padded text), anything else as ``own``."""
    return value.isoformat() if type(value) is date else own(value)
