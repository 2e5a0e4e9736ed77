"""When a drain waits for a burst of webhooks to arrive (crm_qb/sync/pipeline/burst.py): the pure rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_qb.sync.pipeline.burst import BURST_ARRIVALS, PAUSE, Arrivals, arriving, settled

NOW = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


def test_a_single_edit_is_no_burst() -> None:
    assert not arriving(Arrivals(NOW, 1, NOW, arrivals=1))
    assert not arriving(Arrivals(NOW, 0, None, arrivals=0))


def test_one_notification_of_many_entities_has_arrived_whole_and_is_no_burst() -> None:
    assert not arriving(Arrivals(NOW, 40, NOW, arrivals=1))


def test_events_still_coming_in_separate_arrivals_are_a_burst() -> None:
    """The drain woken by a burst's first webhook meets the second before the fifth: arrivals, not events, count."""
    assert arriving(Arrivals(NOW, BURST_ARRIVALS, NOW, arrivals=BURST_ARRIVALS))
    assert arriving(Arrivals(NOW, 300, NOW, arrivals=12))


def test_a_burst_has_arrived_when_nothing_came_for_the_pause() -> None:
    assert not settled(Arrivals(NOW, 50, NOW - PAUSE + timedelta(milliseconds=1)))
    assert settled(Arrivals(NOW, 50, NOW - PAUSE))
    assert settled(Arrivals(NOW, 0, None))
