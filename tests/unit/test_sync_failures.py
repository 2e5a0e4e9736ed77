"""What a failure says about its side (pipeline/failures.py): down (an outage begins) or, for live work, slow."""

from __future__ import annotations

import pytest

from crm_qb.crm.errors import CrmAnswerTimeoutError, CrmRateLimitedError, CrmUnavailableError
from crm_qb.qbo.faults import AnswerTimeoutError, NetworkError, ServerError
from crm_qb.sync.pipeline.failures import answer_timed_out, kind_of, side_down
from crm_qb.sync.rules.retry import TRANSIENT, WAIT


@pytest.mark.parametrize(("exc", "side"), [
    (ServerError(message="503", http_status=503), "qbo"), (NetworkError("refused"), "qbo"),
    (AnswerTimeoutError("no answer in 30 s"), "qbo"),
    (CrmUnavailableError("503"), "crm"), (CrmAnswerTimeoutError("no answer in 15 s"), "crm"),
    (CrmRateLimitedError("429"), None), (ValueError("a bug"), None),
])
def test_a_side_that_does_not_answer_is_down(exc: Exception, side: str | None) -> None:
    assert side_down(exc) == side


def test_a_live_jobs_timeout_says_slow_not_down() -> None:
    """Live work waits only as long as a slow side takes (slowlane): its timeout moves the connection to the lane,
    it starts no outage; a refusal or a 5xx is down however short the wait was."""
    for timed_out in (AnswerTimeoutError("no answer in 5 s"), CrmAnswerTimeoutError("no answer in 2 s")):
        assert answer_timed_out(timed_out) and side_down(timed_out, live=True) is None
        assert kind_of(timed_out) == TRANSIENT  # its event still counts an attempt: the call may have been applied
    for down, side in ((NetworkError("refused"), "qbo"), (ServerError(message="502", http_status=502), "qbo"),
                       (CrmUnavailableError("refused"), "crm")):
        assert not answer_timed_out(down) and side_down(down, live=True) == side
    assert kind_of(CrmRateLimitedError("429")) == WAIT
