"""The backfill's contact creator hands its waits to the caller's other work (``finished(..., idle)``)."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

from crm_qb.crm.protocol import Contact
from crm_qb.sync.customers.qbo_side import NewContact
from crm_qb.sync.pipeline.overlap import ContactCreator


class SlowCrm:
    """Creates contacts in batches, each batch only once the test lets it."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.batches: list[int] = []

    def create_contacts(self, bodies: Sequence[Mapping[str, Any]]) -> list[Contact]:
        assert self.go.wait(10)
        self.batches.append(len(bodies))
        return [Contact.from_json({"id": f"c{len(self.batches)}-{n}", "version": 1,
                                   "updated_at": "2024-05-01T12:00:00Z", "first_name": body["first_name"]})
                for n, body in enumerate(bodies)]

    def close(self) -> None:
        """Nothing to close."""


def test_waiting_for_a_batch_runs_the_callers_other_work_until_it_is_done() -> None:
    crm = SlowCrm()
    creator = ContactCreator(crm)  # type: ignore[arg-type]
    try:
        creator.add(NewContact({"Id": "1"}, {"first_name": "Ann"}), ["n:ann"])
        done_meanwhile: list[int] = []

        def idle() -> bool:
            done_meanwhile.append(len(done_meanwhile))
            if len(done_meanwhile) == 3:
                crm.go.set()  # the CRM answers while the third piece of other work runs
            return len(done_meanwhile) < 5

        assert creator.blocks(["n:ann"], 1, None)
        batches = list(creator.finished(True, idle))
        assert [[planned.customer["Id"] for planned, _made in batch] for batch in batches] == [["1"]]
        assert 3 <= len(done_meanwhile) <= 5 and crm.batches == [1]
        assert not creator.blocks(["n:ann"], 1, None)
        assert list(creator.finished(True, idle)) == [] and len(done_meanwhile) <= 5, "nothing left to wait for"
    finally:
        creator.close()


class FakeQbo:
    """Query pages over 23 rows; the read at ``refuse`` (once) finds its token expired."""

    def __init__(self, refuse: int | None = None) -> None:
        self.rows = [{"Id": str(n)} for n in range(1, 24)]
        self.calls: list[int] = []
        self.refuse = refuse

    def query_page(self, entity: str, where: str, start: int, size: int) -> list[dict[str, Any]]:
        from crm_qb.sync.pipeline.overlap import TokenRanOutError

        if start == self.refuse:
            self.refuse = None
            raise TokenRanOutError("expired")
        self.calls.append(start)  # answered
        return self.rows[start - 1:start - 1 + size]


class FakePager:
    def __init__(self, walk_client: FakeQbo, caller_client: FakeQbo) -> None:
        from concurrent.futures import ThreadPoolExecutor
        from types import SimpleNamespace

        self.walk_pool = ThreadPoolExecutor(1)
        self.walk_client = walk_client
        self.token = SimpleNamespace(value="t")
        self.ctx = SimpleNamespace(qbo=caller_client)

    def _fresh_token(self) -> str:
        return "t"


def test_a_walk_reads_ahead_never_past_the_end_and_reads_a_refused_page_itself() -> None:
    from crm_qb.sync.pipeline.overlap import _Walk

    for refuse, size in [(None, 5), (11, 5), (None, 23), (21, 5), (1, 1000)]:
        thread_side, caller_side = FakeQbo(refuse), FakeQbo()
        pager = FakePager(thread_side, caller_side)
        try:
            pages = list(_Walk(pager, "Invoice", "", size))  # type: ignore[arg-type]
        finally:
            pager.walk_pool.shutdown(wait=True)
        assert [row for page in pages for row in page] == thread_side.rows, (refuse, size)
        asked = sorted(thread_side.calls + caller_side.calls)
        full_pages = len(thread_side.rows) // size
        assert asked == [1 + size * n for n in range(full_pages + 1)], "each page answered once, none past a short one"
        assert caller_side.calls == ([refuse] if refuse else [])
