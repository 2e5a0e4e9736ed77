"""The parent/child protocol of the backfill's transaction process (``crm_qb.sync.pipeline.mirrorproc``), with a
small child that reports pages as its window allows."""

from __future__ import annotations

import sys
import time

from crm_qb.errors import TransientError
from crm_qb.qbo.faults import AuthenticationError, ThrottledError
from crm_qb.qbo.tokens import NeedsReconnectError
from crm_qb.sync.pipeline.mirrorproc import WINDOW, MirrorChild, MirrorProcessError, decode_error, encode_error

PAGES = 3 * WINDOW
_CHILD = f"""
import sys
from crm_qb.sync.pipeline.mirrorproc import Answers, write
sys.stdin.readline()
answers = Answers(sys.stdin)
for n in range({PAGES}):
    if not answers.wait_turn():
        sys.exit(0)
    write(sys.stdout, {{"page": {{"entity": "Invoice", "counts": {{"seen": 1}}, "n": n}}}})
    answers.sent += 1
write(sys.stdout, {{"done": True}})
"""


def _messages(child: MirrorChild) -> list[dict[str, object]]:
    taken = []
    while (message := child.take(block=True)) is not None:
        taken.append(message)
    return taken


def test_a_child_whose_pages_are_answered_walks_to_the_end() -> None:
    child = MirrorChild.start([sys.executable, "-c", _CHILD], b"task")
    try:
        messages = _messages(child)
    finally:
        child.stop()
    assert [m["page"]["n"] for m in messages if "page" in m] == list(range(PAGES))  # type: ignore[index]
    assert messages[-1] == {"done": True} and child.finished and child.process.returncode == 0


def test_a_child_stops_within_its_window_once_the_parent_stops_answering() -> None:
    """The parent answers only while its sync lock is held: unanswered, the child commits WINDOW pages, no more,
    and ends when the parent stops it."""
    child = MirrorChild.start([sys.executable, "-c", _CHILD], b"task", check=lambda: False)
    try:
        taken = [child.take(block=True) for _ in range(WINDOW)]
        time.sleep(0.5)
        assert child.take(block=False) is None  # no page beyond the window
        assert child.process.poll() is None  # waiting for an answer
    finally:
        child.stop()
    assert [m["page"]["n"] for m in taken] == list(range(WINDOW))  # type: ignore[index]
    assert child.process.returncode == 0
    last = child.take(block=True)
    assert last is not None and "without finishing" in last["error"]["text"]  # type: ignore[index]


def test_an_error_crosses_typed_or_as_a_transient_failure_with_its_text() -> None:
    class Local(Exception):
        def __init__(self, a: int, b: int) -> None:  # does not unpickle from its args
            super().__init__(f"{a}/{b}")

    typed = decode_error(encode_error(TransientError("QBO is down"))["error"])
    assert isinstance(typed, TransientError) and str(typed) == "QBO is down"
    # The errors that stop a backfill rather than retry it keep their type and fields.
    auth = decode_error(encode_error(AuthenticationError(code="3200", message="no", http_status=401))["error"])
    assert isinstance(auth, AuthenticationError) and (auth.code, auth.http_status) == ("3200", 401)
    gone = decode_error(encode_error(NeedsReconnectError("5", "the grant is gone"))["error"])
    assert isinstance(gone, NeedsReconnectError)
    throttled = decode_error(encode_error(ThrottledError(code="003001", retry_after=60.0))["error"])
    assert isinstance(throttled, ThrottledError) and throttled.retry_after == 60.0
    unknown = decode_error(encode_error(Local(1, 2))["error"])
    assert isinstance(unknown, MirrorProcessError) and "Local: 1/2" in str(unknown)
    assert isinstance(unknown, TransientError)  # the job is retried
