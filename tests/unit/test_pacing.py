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


class FakeCpu:
    """The bulk process's CPU seconds: they move only when the test says it worked."""

    def __init__(self) -> None:
        self.used = 0.0

    def __call__(self) -> float:
        return self.used


def _shared(busy: list[bool], clock: Clock, share: float, cpu: FakeCpu) -> LivePacer:
    return LivePacer(lambda: busy.pop(0) if busy else False, interval=0.02, step=0.005, max_wait=0.5, share=share,
                     live_memory=1.0, max_rest=2.0, clock=clock, cpu=cpu, sleep=clock.sleep)


def test_while_live_work_is_about_it_rests_so_as_to_keep_to_its_share_of_a_core() -> None:
    clock, cpu = Clock(), FakeCpu()
    pacer = _shared([True, False], clock, 0.25, cpu)
    pacer()  # live work under way: one step, then it ends; nothing used yet, so nothing owed
    assert clock.slept == [0.005]
    clock.now += 0.1
    cpu.used += 0.1  # the bulk work computes 0.1 s
    pacer()  # live work seen 0.1 s ago, none now: it still rests three times the CPU it used
    assert abs(clock.slept[-1] - 0.3) < 1e-9
    clock.now += 2.0
    cpu.used += 2.0  # then computes 2 s without live work...
    pacer()  # ... which is now too long ago: no rest, however much it used
    assert abs(clock.slept[-1] - 0.3) < 1e-9 and len(clock.slept) == 2


def test_waiting_owes_no_rest() -> None:
    """A bulk job waiting for a rate limit or a slow answer takes no CPU from the live work: it rests for what it
    computed only."""
    clock, cpu = Clock(), FakeCpu()
    pacer = _shared([True, False, False], clock, 0.25, cpu)
    pacer()
    clock.now += 0.5  # half a second waiting for the CRM's window...
    cpu.used += 0.01  # ... and 10 ms of work
    pacer()
    assert abs(clock.slept[-1] - 0.03) < 1e-9


def _live_all_along(clock: Clock, share: float, cpu: FakeCpu) -> LivePacer:
    """A pacer that sees live work about the whole time and never under way at a look."""
    return LivePacer(lambda: False, interval=0.02, share=share, live_memory=float("inf"), _live_seen=clock.now,
                     max_rest=2.0, clock=clock, cpu=cpu, sleep=clock.sleep)


def test_a_long_items_rest_is_taken_max_rest_at_a_time_and_the_rest_at_the_next_looks() -> None:
    clock, cpu = Clock(), FakeCpu()
    pacer = _live_all_along(clock, 0.25, cpu)
    pacer()
    clock.now += 0.9
    cpu.used += 0.9  # one item of 0.9 s: 2.7 s owed
    pacer()
    assert clock.slept[-1] == 2.0
    clock.now += 0.03
    cpu.used += 0.01  # a short item: its 0.03 s, and the 0.7 s still owed
    pacer()
    assert abs(clock.slept[-1] - 0.73) < 1e-9
    clock.now += 0.03
    cpu.used += 0.01
    pacer()
    assert abs(clock.slept[-1] - 0.03) < 1e-9  # paid off: only the new item's rest


def test_a_debt_is_forgiven_once_no_live_work_is_about() -> None:
    clock, cpu = Clock(), FakeCpu()
    pacer = _shared([True] + [False] * 10, clock, 0.25, cpu)
    pacer()
    clock.now += 0.9
    cpu.used += 0.9
    pacer()  # 2 s taken, 0.7 s owed
    clock.now += 1.5  # live work last seen longer ago than live_memory: the bulk work runs flat out
    cpu.used += 0.5
    pacer()
    assert len(clock.slept) == 2
    clock.now, pacer._live_seen = clock.now + 0.02, clock.now  # live work about again
    cpu.used += 0.01
    pacer()
    assert abs(clock.slept[-1] - 0.03) < 1e-9  # the old debt is not asked again


def test_long_items_keep_to_the_share_over_a_stretch_of_live_work() -> None:
    """Items longer than max_rest allows (a first sync's page of 500 customers): the share still holds over the
    stretch, where forgiving what a rest could not take gave them more than a third of the time at a quarter."""
    clock, cpu = Clock(), FakeCpu()
    pacer = _live_all_along(clock, 0.25, cpu)
    started = clock.now
    for k in range(300):
        pacer()
        item = 0.9 if k % 3 == 0 else 0.05  # a long page now and then between short items
        clock.now += item
        cpu.used += item
    pacer()
    assert 0.23 <= cpu.used / (clock.now - started) <= 0.26


def test_over_a_stretch_of_live_work_the_bulk_work_gets_its_share_and_not_much_less() -> None:
    """Live work every other look, the bulk work computing 50 ms between looks: it has about a quarter of the time
    (the rest is its rests and the steps while live work runs, bounded by max_wait)."""
    clock, cpu = Clock(), FakeCpu()
    pacer = _shared([True, False] * 1000, clock, 0.25, cpu)
    started = clock.now
    for _ in range(200):
        pacer()
        clock.now += 0.05
        cpu.used += 0.05
    assert 0.2 <= cpu.used / (clock.now - started) <= 0.26


def test_share_one_is_the_plain_pacer() -> None:
    clock, cpu = Clock(), FakeCpu()
    pacer = _shared([True, False, False], clock, 1.0, cpu)
    pacer()
    clock.now += 0.1
    cpu.used += 0.1
    pacer()
    assert clock.slept == [0.005]


def test_the_share_is_the_hosts_split_among_its_bulk_processes_at_work() -> None:
    """Two bulk processes at work on one host (a first sync in one worker's bulk child, its backlog's drains in
    another's) each keep to half the share, so together they take the share and not twice it; when the other
    one stops, this one has the whole share again."""
    clock, cpu = Clock(), FakeCpu()
    at_work = [2]
    pacer = LivePacer(lambda: False, sharers=lambda: at_work[0], interval=0.02, share=0.25,
                      live_memory=float("inf"), _live_seen=clock.now, max_rest=2.0, clock=clock, cpu=cpu,
                      sleep=clock.sleep)
    started = clock.now
    for _ in range(200):
        pacer()
        clock.now += 0.05
        cpu.used += 0.05
    pacer()
    assert 0.12 <= cpu.used / (clock.now - started) <= 0.13  # an eighth: half of a quarter
    assert abs(clock.slept[-1] - 0.05 * 7) < 1e-9  # 1 - 1/8 over 1/8: seven times what it used
    at_work[0] = 1
    clock.now += 0.05
    cpu.used += 0.05
    pacer()
    assert abs(clock.slept[-1] - 0.05 * 3) < 1e-9  # alone again: three times, a quarter's rest


def test_a_process_back_from_a_wait_still_owes_its_rest_when_the_host_had_live_work_meanwhile() -> None:
    """A bulk process that did not look for longer than live_memory (it waited for its next job while another
    process drained) pays what it owes when ``recent`` says a live job of the host ran within live_memory, though
    none runs at its look; without that, it would be forgiven, as when no live work is about."""
    for recent, owed in ((True, 0.3), (False, None)):
        clock, cpu = Clock(), FakeCpu()
        pacer = LivePacer(lambda: False, recent=lambda r=recent: r, interval=0.02, share=0.25, live_memory=1.0,
                          max_rest=2.0, clock=clock, cpu=cpu, sleep=clock.sleep, _live_seen=clock.now)
        pacer()
        clock.now += 0.1
        cpu.used += 0.1  # the end of a bulk job, just after live work was seen
        clock.now += 3.0  # then three seconds without a look: the process waits for its next bulk job
        pacer()
        if owed is None:
            assert clock.slept == []  # no live work about: forgiven
        else:
            assert len(clock.slept) == 1 and abs(clock.slept[0] - owed) < 1e-9
