"""What a drain saw of its two clients decides the slow lane: the slower side, answers from both (slowlane)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from crm_qb.answer_times import AnswerTimes
from crm_qb.sync.pipeline import slowlane


@dataclass
class Client:
    """Either side's client as ``Observed.of`` reads it."""

    answer_times: AnswerTimes = field(default_factory=AnswerTimes)
    realm_id: str = "9130"


def test_either_side_can_be_slow_and_only_quick_answers_of_the_slow_sides_count() -> None:
    qbo, crm = Client(AnswerTimes(0.2, 3)), Client(AnswerTimes(2.5, 1))
    seen = slowlane.Observed.of(7, qbo, crm)  # type: ignore[arg-type]
    assert (seen.connection_id, seen.realm_id) == (7, "9130")
    assert seen.slowest == {"qbo": 0.2, "crm": 2.5} and seen.answers == {"qbo": 3, "crm": 1}
    assert seen.slow and seen.slow_sides == ["crm"] and not seen.quick(["qbo"])  # one slow answer: nobody quick

    both = slowlane.Observed.of(7, Client(AnswerTimes(5.0, 1)), Client(AnswerTimes(9.0, 1)))  # type: ignore[arg-type]
    assert both.slow_sides == ["qbo", "crm"]
    # each side by its own bound: 3 s is slow for a CRM (2 s), not for QuickBooks (5 s)
    assert slowlane.Observed.of(7, Client(AnswerTimes(3.0, 1)), Client(AnswerTimes(3.0, 1))).slow_sides == ["crm"]  # type: ignore[arg-type]

    only_qbo = slowlane.Observed.of(7, Client(AnswerTimes(0.1, 2)), Client())  # type: ignore[arg-type]
    assert only_qbo.quick(["qbo"]) and not only_qbo.quick(["crm"]) and not only_qbo.quick(["qbo", "crm"])
    assert not slowlane.Observed.of(7, Client(), Client()).quick(["qbo"])  # type: ignore[arg-type]


def test_answer_times_count_answers_and_every_wait() -> None:
    times = AnswerTimes()
    with times.waiting():
        pass
    with pytest.raises(TimeoutError), times.waiting():
        raise TimeoutError("no answer")
    assert times.count == 1 and times.slowest >= 0


def test_live_options_wait_no_longer_than_a_slow_answer() -> None:
    assert slowlane.live_qbo_options() == {"timeout": slowlane.SLOW_ANSWER_SECONDS, "retry_timeouts": False}
    assert slowlane.live_crm_options() == {"max_wait": slowlane.SLOW_CRM_ANSWER_SECONDS, "retry_timeouts": False}
    assert slowlane.slow_after("qbo") == 5.0 and slowlane.slow_after("crm") == 2.0
