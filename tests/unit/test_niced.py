"""workers.niced: work on a thread of its own at a lower CPU priority, the calling thread left as it was."""

from __future__ import annotations

import threading

import pytest

from workers import niced

pytestmark = pytest.mark.skipif(not niced.supported(), reason="per-thread niceness is Linux's")


def test_the_work_runs_niced_on_another_thread_and_its_threads_inherit_it() -> None:
    caller, before = threading.get_native_id(), niced.thread_niceness()
    seen: dict[str, int] = {}

    def work() -> str:
        seen["tid"], seen["nice"] = threading.get_native_id(), niced.thread_niceness()
        child = threading.Thread(target=lambda: seen.__setitem__("child", niced.thread_niceness()))
        child.start()
        child.join()
        return "done"

    assert niced.run(before + 7, work) == "done"
    assert seen["tid"] != caller and seen["nice"] == before + 7 and seen["child"] == before + 7
    assert niced.thread_niceness() == before  # the caller can still run live work at its own priority


def test_its_exception_is_raised_in_the_caller() -> None:
    def work() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        niced.run(5, work)


def test_a_thread_already_nicer_stays_as_it_is_and_the_cap_is_19() -> None:
    before = niced.thread_niceness()
    inner = niced.run(before + 12, lambda: niced.run(before + 3, niced.thread_niceness))
    assert inner == before + 12
    assert niced.run(40, niced.thread_niceness) == 19


def test_zero_runs_the_work_inline() -> None:
    assert niced.run(0, threading.get_native_id) == threading.get_native_id()
