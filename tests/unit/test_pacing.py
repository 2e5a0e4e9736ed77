"""Bulk work's pacer (crm_qb.sync.pacing): it pauses while live work is under way, never for long, and looks at
the live work at most once an interval."""

from __future__ import annotations

from crm_qb.sync.pacing import LivePacer
from tests.support.clock import FakeTime as Clock


def _pacer(busy: list[bool], clock: Clock) -> tuple[LivePacer, list[int]]:
    asked = [0]

    def probe() -> bool:
        asked[0] += 1
        return busy.pop(0) if busy else False

    return LivePacer(probe, interval=0.02, step=0.005, max_wait=0.5, clock=clock, sleep=clock.sleep), asked


def test_no_live_work_no_pause_and_one_look_per_interval() -> None:
    clock = Clock()
    pacer, asked = _pacer([], clock)
    pacer()
    pacer()  # within the interval: not asked again
    assert (asked[0], clock.slept, pacer.paused) == (1, [], 0)
    clock.now += 0.021
    pacer()
    assert asked[0] == 2 and pacer.checks == 2


def test_it_pauses_while_live_work_is_under_way_and_goes_on_when_it_ends() -> None:
    clock = Clock()
    pacer, asked = _pacer([True, True, True, False], clock)
    pacer()
    assert clock.slept == [0.005] * 3 and asked[0] == 4
    assert pacer.paused == 1 and abs(pacer.paused_seconds - 0.015) < 1e-9


def test_endless_live_work_holds_it_back_for_max_wait_then_lets_it_run_an_interval() -> None:
    clock = Clock()
    pacer, _ = _pacer([True] * 10_000, clock)
    pacer()
    assert 0.5 - 1e-9 <= sum(clock.slept) <= 0.505 + 1e-9  # bounded (to a step): the bulk work still moves
    before = len(clock.slept)
    pacer()  # its interval of work
    assert len(clock.slept) == before
    clock.now += 0.02
    pacer()
    assert len(clock.slept) > before
