"""The bulk INSERT's processors for SQLite dates and times (``db._bind_processor``) write exactly the text the
columns' own processors write: aware datetimes in UTC, dates, and every other value through the column's own."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from functools import partial
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Date, DateTime
from sqlalchemy.dialects import postgresql, sqlite

from crm_qb.db import UTCDateTime, _bind_processor
from crm_qb.models.types import ExactDecimal, Key

SQLITE = sqlite.dialect()
_zones = st.builds(lambda minutes: timezone(timedelta(minutes=minutes)), st.integers(-14 * 60, 14 * 60))
_aware = st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31),
                      timezones=st.one_of(st.none(), _zones))


def _outcome(process: Callable[[Any], Any], value: object) -> Any:
    try:
        return process(value)
    except Exception as exc:  # both must refuse alike
        return (type(exc).__name__, str(exc))


def _own(column_type: Any) -> Callable[[Any], Any]:
    process = column_type.dialect_impl(SQLITE).bind_processor(SQLITE)
    assert process is not None
    return process  # type: ignore[no-any-return]


@given(_aware | st.none() | st.dates())
def test_utc_timestamps_as_the_column_writes_them(value: object) -> None:
    column_type = UTCDateTime()
    bulk = _bind_processor(column_type, SQLITE)
    assert "bulk_bind_processor" in bulk.__qualname__  # the bulk path, not the column's own
    assert _outcome(bulk, value) == _outcome(_own(column_type), value)


@given(st.dates() | st.datetimes() | st.none())
def test_dates_as_the_column_writes_them(value: object) -> None:
    column_type = Date()
    assert isinstance(_bind_processor(column_type, SQLITE), partial)  # the bulk path
    assert _outcome(_bind_processor(column_type, SQLITE), value) == _outcome(_own(column_type), value)


def test_examples_and_other_backends() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-8)))
    assert _bind_processor(UTCDateTime(), SQLITE)(at) == "2026-01-02 11:04:05.000000"
    assert _bind_processor(Date(), SQLITE)(date(999, 1, 2)) == "0999-01-02"
    assert _outcome(_bind_processor(UTCDateTime(), SQLITE), datetime(2026, 1, 2))[0] == "ValueError"  # naive
    assert _outcome(_bind_processor(Date(), SQLITE), "2026-01-02")[0] == "TypeError"
    assert UTCDateTime().bulk_bind_processor(postgresql.psycopg.dialect()) is None  # type: ignore[no-untyped-call]
    assert _bind_processor(DateTime(), SQLITE)(datetime(2026, 1, 2, tzinfo=UTC)) == "2026-01-02 00:00:00.000000"


@given(st.one_of(st.none(), st.integers(), st.text(alphabet=st.sampled_from(["a", "7", "\x00", "é"]), max_size=12)))
def test_keys_as_the_column_takes_or_refuses_them(value: object) -> None:
    for column_type in (Key(8), Key()):
        bulk = _bind_processor(column_type, SQLITE)
        assert "bulk_bind_processor" in bulk.__qualname__
        assert _outcome(bulk, value) == _outcome(_own(column_type), value)


@given(st.one_of(st.none(), st.decimals(allow_nan=False, allow_infinity=False), st.integers(), st.floats(),
                 st.sampled_from(["1.10", "x"])))  # fmt: skip
def test_amounts_as_the_column_writes_them(value: object) -> None:
    column_type = ExactDecimal(28, 12)
    bulk = _bind_processor(column_type, SQLITE)
    assert "bulk_bind_processor" in bulk.__qualname__
    assert _outcome(bulk, value) == _outcome(_own(column_type), value)
    assert ExactDecimal().bulk_bind_processor(postgresql.psycopg.dialect()) is None  # type: ignore[no-untyped-call]
