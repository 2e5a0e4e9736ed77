"""``create_many``: the connector's batch when it has one, else one create per body; one result per body."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from crm_qb.crm.batch import Created, create_many, read_many
from crm_qb.crm.errors import CrmAuthError, CrmValidationError
from crm_qb.crm.protocol import Contact


def _contact(n: int) -> Contact:
    return Contact(id=f"c{n}", version=1, updated_at=datetime(2026, 12, 2, tzinfo=UTC))


class OneByOne:
    """A connector without batch creates: refuses bodies marked bad."""

    def __init__(self) -> None:
        self.calls = 0

    def create_contact(self, fields: Mapping[str, Any]) -> Contact:
        self.calls += 1
        if fields.get("bad"):
            raise CrmValidationError("refused", status=400)
        if fields.get("auth"):
            raise CrmAuthError("token", status=401)
        return _contact(self.calls)


class Batching(OneByOne):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def create_contacts(self, bodies: Sequence[Mapping[str, Any]]) -> list[Created]:
        self.batches.append(len(bodies))
        return [_contact(n) for n in range(len(bodies))]


def test_a_connector_without_batches_creates_one_by_one_and_keeps_refusals_per_body() -> None:
    crm = OneByOne()
    results = create_many(crm, [{}, {"bad": True}, {}])  # type: ignore[arg-type]
    assert [type(r).__name__ for r in results] == ["Contact", "CrmValidationError", "Contact"]


def test_an_auth_failure_stops_the_whole_call() -> None:
    with pytest.raises(CrmAuthError):
        create_many(OneByOne(), [{}, {"auth": True}, {}])  # type: ignore[arg-type]


def test_a_batching_connector_gets_every_body_at_once() -> None:
    crm = Batching()
    assert len(create_many(crm, [{}] * 7)) == 7  # type: ignore[arg-type]
    assert crm.batches == [7] and crm.calls == 0


class Reading(OneByOne):
    """A connector with batch reads; a merged-away id answers its survivor (as HubSpot's batch read may)."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[list[str]] = []

    def read_contacts(self, ids: Sequence[str]) -> list[Contact]:
        self.asked.append(list(ids))
        return [Contact(id="survivor" if i == "merged" else i, version=1, updated_at=datetime(2026, 12, 2, tzinfo=UTC))
                for i in ids if i != "gone"]


def test_read_many_keeps_only_contacts_answered_under_the_id_asked_for() -> None:
    crm = Reading()
    found = read_many(crm, ["a", "merged", "gone", "b"])  # type: ignore[arg-type]
    assert sorted(found) == ["a", "b"] and crm.asked == [["a", "merged", "gone", "b"]]


def test_read_many_without_batch_reads_or_ids_reads_nothing() -> None:
    assert read_many(OneByOne(), ["a", "b"]) == {}  # type: ignore[arg-type]
    crm = Reading()
    assert read_many(crm, []) == {} and crm.asked == []  # type: ignore[arg-type]
