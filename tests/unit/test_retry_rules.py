"""The retry schedule: waiting costs nothing, transient failures last a day, anything else eight attempts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crm_qb.sync.rules.retry import (
    ERROR,
    TRANSIENT,
    TRANSIENT_SCHEDULE,
    WAIT,
    next_delay,
    parse_schedule,
    total_span,
)


@pytest.mark.parametrize(("kind", "attempts", "delay"), [
    (WAIT, 1, timedelta(0)), (WAIT, 10_000, timedelta(0)),
    (TRANSIENT, 1, timedelta(seconds=5)), (TRANSIENT, 2, timedelta(seconds=30)),
    (TRANSIENT, 7, timedelta(minutes=30)), (TRANSIENT, 8, timedelta(hours=1)), (TRANSIENT, 30, timedelta(hours=1)),
    (TRANSIENT, 31, None),
    (ERROR, 1, timedelta(seconds=5)), (ERROR, 7, timedelta(hours=1)), (ERROR, 8, None),
])
def test_next_delay(kind: str, attempts: int, delay: timedelta | None) -> None:
    assert next_delay(kind, attempts) == delay


def test_transient_failures_outlast_a_day_of_outage() -> None:
    assert timedelta(hours=24) <= total_span(TRANSIENT_SCHEDULE) < timedelta(hours=25)


def test_a_given_schedule_replaces_the_transient_one() -> None:
    schedule = parse_schedule("1, 2.5, 10*3")
    assert schedule == (1.0, 2.5, 10.0, 10.0, 10.0)
    assert next_delay(TRANSIENT, 5, schedule) == timedelta(seconds=10)
    assert next_delay(TRANSIENT, 6, schedule) is None
    assert next_delay(ERROR, 6, schedule) == timedelta(minutes=30)  # the error schedule is not configurable


@pytest.mark.parametrize("text", ["", "x", "5,-1", "5*0", "inf", "5*x", "1*100000"])
def test_a_malformed_schedule_names_the_bad_part(text: str) -> None:
    with pytest.raises(ValueError, match=r"expected|at least one"):
        parse_schedule(text)


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown failure kind 'later'"):
        next_delay("later", 1)
