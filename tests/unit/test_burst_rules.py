"""When a drain waits for a burst of webhooks to arrive (crm_qb/sync/pipeline/burst.py): the pure rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_qb.sync.pipeline.burst import BURST_EVENTS, PAUSE, Arrivals, arriving, settled

NOW = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


def test_a_single_edit_is_no_burst() -> None:
    assert not arriving(Arrivals(NOW, 1, NOW))
    assert not arriving(Arrivals(NOW, BURST_EVENTS - 1, NOW))


def test_many_events_just_received_are_a_burst() -> None:
    assert arriving(Arrivals(NOW, BURST_EVENTS, NOW))


def test_a_burst_has_arrived_when_nothing_came_for_the_pause() -> None:
    assert not settled(Arrivals(NOW, 50, NOW - PAUSE + timedelta(milliseconds=1)))
    assert settled(Arrivals(NOW, 50, NOW - PAUSE))
    assert settled(Arrivals(NOW, 0, None))
