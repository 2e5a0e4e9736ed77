"""Column types shared by the models: exact decimals, JSON, and enums stored by value."""

from __future__ import annotations

import enum
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, Enum, Numeric, String, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB

JSONType = JSON().with_variant(JSONB(), "postgresql")


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
        value = Decimal(value)
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Any) -> Decimal | None:
        return None if value is None else Decimal(str(value))


def value_enum(enum_class: type[enum.Enum], length: int = 32) -> Enum:
    """An Enum column storing the members' values (not names), as a plain VARCHAR on every backend."""
    return Enum(
        enum_class,
        values_callable=lambda members: [m.value for m in members],
        native_enum=False,
        length=length,
        validate_strings=True,
    )
