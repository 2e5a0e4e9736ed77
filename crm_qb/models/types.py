"""Column types shared by the models: exact decimals, enums stored by value, and text, JSON and keys that every
backend stores alike.

Why the text types exist: PostgreSQL refuses the NUL character (U+0000) in ``text``/``varchar`` and in ``jsonb``,
while SQLite stores it. A CRM contact's notes or a QBO customer's Notes with a NUL therefore failed on PostgreSQL
only, and failed every retry of the batch that carried it. The rule, the same on both backends:

- free text and JSON (``PlainText``, ``JSONType``, ``Label``) drop NUL on the way in: it carries no meaning in a
  name, a note or a payload, and the canonical contact form drops it too (``crm_qb/sync/rules/canonical.py``),
  so a stored base equals the value it is compared with and nothing bounces between the two sides;
- ``Label`` (a name shown to people) is also cut to its column's length;
- ``Key`` (an identifier: a QBO or CRM id, a realm, an entity or operation name) is never altered, because a
  shortened id names another record: a value too long for its column, or with a NUL, is refused with
  ``ValueNotStorable`` on both backends (SQLite would otherwise store it and PostgreSQL refuse it). Ingress does
  not let such a value reach the database: ``fit_values`` finds it first and the event is stored as *rejected*
  with the reason (docs/architecture.md §7).
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import JSON, Enum, Numeric, String, Table, TypeDecorator
from sqlalchemy import Text as SqlText
from sqlalchemy.dialects.postgresql import JSONB

from crm_qb.errors import PermanentError

NUL = "\x00"


class ValueNotStorable(PermanentError, ValueError):
    """An identifier that no backend may store as given (too long for its column, or with a NUL)."""


# Values that hold no string: returned at once. Checked before ``Mapping``, whose abstract isinstance check is
# slow, because every number and date of every JSON column of every row passes through here.
_NO_TEXT = (int, float, Decimal, type(None))


def drop_nul(value: Any) -> Any:
    """``value`` with every NUL removed from its strings (dict keys included), recursing into lists and dicts."""
    if isinstance(value, str):
        return value.replace(NUL, "") if NUL in value else value
    if isinstance(value, _NO_TEXT):
        return value
    if isinstance(value, dict | Mapping):
        return {drop_nul(key): drop_nul(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [drop_nul(item) for item in value]
    return value


class StoredJSON(TypeDecorator[Any]):
    """JSON (``jsonb`` on PostgreSQL) whose strings lose their NUL characters on the way in."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(JSONB())
        return dialect.type_descriptor(JSON())

    # Python None is stored as JSON ``null``, as a plain JSON column stores it.
    should_evaluate_none = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return json_without_nul(value)

    def bulk_bind_processor(self, dialect: Any) -> Callable[[Any], Any] | None:
        """A bind processor for bulk INSERTs on SQLite that writes a plain dict or list once, not twice.

        The column's own processor serialises such a value to look for an escaped NUL (``json_without_nul``),
        then SQLite's JSON type serialises it again with the same ``json.dumps``: when the first text has no NUL,
        it is the second one, so it is stored as it is. Anything else (a NUL to drop, None, a value the C
        encoder refuses) goes through the column's own processor, which gives it what it always gave. None when
        the dialect's JSON writing is not plain ``json.dumps`` (another backend, a serializer of its own).
        """
        generic = self.dialect_impl(dialect).bind_processor(dialect)
        impl = JSON()
        if (
            dialect.name != "sqlite"
            or generic is None
            or getattr(dialect, "_json_serializer", None) is not None
            or impl._str_impl.bind_processor(dialect) is not None
        ):
            return None

        def process(value: Any) -> Any:
            if type(value) is dict or type(value) is list:
                try:
                    text = json.dumps(value)
                except (TypeError, ValueError):
                    return generic(value)
                if "\\u0000" not in text:
                    return text
            return generic(value)

        return process


JSONType = StoredJSON()


def json_without_nul(value: Any) -> Any:
    """``drop_nul(value)`` for a JSON column's value, without walking it in Python when it holds no NUL.

    A plain dict or list is written by the C encoder first (every NUL in a string or key comes out as the
    escape ``\\u0000``; text that merely looks like it comes out as ``\\\\u0000``, which also matches and is then
    walked): with no match nothing would change and the value itself is returned. A bulk insert passes every
    JSON column of every row through here (a backfill's folder items, links and audit entries).
    """
    if type(value) is dict or type(value) is list:
        try:
            if "\\u0000" not in json.dumps(value):
                return value
        except (TypeError, ValueError):  # not plain JSON: walked as before
            pass
    return drop_nul(value)


class PlainText(TypeDecorator[str]):
    """Unbounded text without NUL characters."""

    impl = SqlText
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return drop_nul(value)


class Label(TypeDecorator[str]):
    """A name people read: NUL dropped, cut to the column's length."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if not isinstance(value, str):
            return value
        value = drop_nul(value)
        length = column_length(self)
        return value[:length] if length else value


class Key(TypeDecorator[str]):
    """An identifier stored exactly as given, or refused (``ValueNotStorable``) when no backend can store it."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if isinstance(value, str):
            problem = key_problem(value, column_length(self))
            if problem:
                raise ValueNotStorable(f"value {value[:40]!r}… {problem}")
        return value

    def bulk_bind_processor(self, dialect: Any) -> Callable[[Any], Any] | None:
        """For bulk INSERTs (``db.insert_many``): a plain id that fits is passed as it is, without the two calls
        of the column's own processor (a folder item has six keys); anything else goes through that processor,
        which refuses what it refuses. None when the column's type adds processing of its own."""
        generic = self.dialect_impl(dialect).bind_processor(dialect)
        if generic is None or self.impl_instance.bind_processor(dialect) is not None:
            return None
        length = column_length(self) or 0

        def process(value: Any) -> Any:
            if type(value) is str and (len(value) <= length or not length) and NUL not in value:
                return value
            return generic(value)

        return process


@cache
def column_length(column_type: TypeDecorator[Any]) -> int | None:
    """The length a String-based column type was declared with (None: unbounded); asked once per column type
    (a bulk INSERT asks it for every key of every row)."""
    length = getattr(column_type.impl_instance, "length", None)
    return int(length) if length else None


def key_problem(value: str, length: int | None) -> str | None:
    """Why ``value`` cannot be stored in a ``Key`` column of ``length`` characters, or None when it can."""
    if NUL in value:
        return "contains a NUL character"
    if length and len(value) > length:
        return f"is {len(value)} characters long, more than the {length} its column holds"
    return None


def storable_key(key: str, length: int) -> str:
    """A unique key of at most ``length`` characters for ``key``: itself when it fits, else a prefix and a hash.

    For deduplication keys, which only need to be equal for equal inputs: a long or NUL-bearing key keeps its
    readable start and gains a SHA-256 of the whole, so two different keys never collide by being cut.
    """
    if len(key) <= length and NUL not in key:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    keep = max(0, length - len(digest) - len("#sha256:"))
    return f"{key.replace(NUL, '')[:keep]}#sha256:{digest}"


def fit_values(table: Table, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Values for an INSERT into ``table`` that every backend stores, and what had to be cut to get there.

    Each ``Key`` value that is too long or has a NUL is cut (and its NUL dropped) and named in the problems, so
    the caller can store the row as rejected with that reason instead of failing the whole batch.
    """
    fitted, problems = dict(values), []
    for name, value in values.items():
        column_type = table.c[name].type
        if not isinstance(value, str) or not isinstance(column_type, Key):
            continue
        length = column_length(column_type)
        problem = key_problem(value, length)
        if problem:
            problems.append(f"{name} {problem}")
            fitted[name] = drop_nul(value)[:length]
    return fitted, problems


class ExactDecimal(TypeDecorator[Decimal]):
    """A Decimal that survives the round trip exactly: NUMERIC on PostgreSQL, text on SQLite.

    SQLite has no decimal type and would turn 0.1 into a binary float; money must never pass through float.
    """

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int = 18, scale: int = 2) -> None:
        super().__init__()
        self.precision = precision
        self.scale = scale

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(48))
        return dialect.type_descriptor(Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, float):
            raise TypeError(f"money must be Decimal, not float ({value!r})")
        if not isinstance(value, Decimal):
            value = Decimal(value)
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(str(value))

    def bulk_bind_processor(self, dialect: Any) -> Callable[[Any], Any] | None:
        """For bulk INSERTs on SQLite: a Decimal as its text at once (a folder item has five amounts); anything
        else through the column's own processor. None elsewhere (PostgreSQL takes the Decimal itself)."""
        generic = self.dialect_impl(dialect).bind_processor(dialect)
        if (
            dialect.name != "sqlite"
            or generic is None
            or self.load_dialect_impl(dialect).bind_processor(dialect) is not None
        ):
            return None

        def process(value: Any) -> Any:
            return str(value) if type(value) is Decimal else generic(value)

        return process


def value_enum(enum_class: type[enum.Enum], length: int = 32) -> Enum:
    """An Enum column storing the members' values (not names), as a plain VARCHAR on every backend."""
    return Enum(
        enum_class,
        values_callable=lambda members: [m.value for m in members],
        native_enum=False,
        length=length,
        validate_strings=True,
    )
