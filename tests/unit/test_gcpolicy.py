"""``bulk_collection`` raises the collector's thresholds while any thread is inside it, then restores them."""

from __future__ import annotations

import gc
import threading

from crm_qb.gcpolicy import BULK_THRESHOLDS, bulk_collection


def test_thresholds_are_raised_inside_and_restored_after_nesting() -> None:
    before = gc.get_threshold()
    gc.set_threshold(650, 9, 8)
    try:
        with bulk_collection():
            assert gc.get_threshold() == BULK_THRESHOLDS
            with bulk_collection():
                assert gc.get_threshold() == BULK_THRESHOLDS
            assert gc.get_threshold() == BULK_THRESHOLDS
        assert gc.get_threshold() == (650, 9, 8)
    finally:
        gc.set_threshold(*before)


def test_the_last_thread_out_restores_them_whatever_the_order() -> None:
    before = gc.get_threshold()
    gc.set_threshold(640, 7, 6)
    first_in, second_in, first_may_leave = threading.Event(), threading.Event(), threading.Event()
    seen: list[tuple[int, int, int]] = []

    def first() -> None:
        with bulk_collection():
            first_in.set()
            first_may_leave.wait(5)
        seen.append(gc.get_threshold())  # the second thread is still inside

    try:
        thread = threading.Thread(target=first)
        thread.start()
        assert first_in.wait(5)
        with bulk_collection():
            second_in.set()
            first_may_leave.set()
            thread.join(5)
            assert seen == [BULK_THRESHOLDS]
        assert gc.get_threshold() == (640, 7, 6)
    finally:
        gc.set_threshold(*before)


def test_an_error_inside_restores_them() -> None:
    before = gc.get_threshold()
    try:
        with bulk_collection():
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
