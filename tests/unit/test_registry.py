"""The transaction registry: every layer knows every registered type, and a malformed or missing type fails loudly.

The walk below is what makes "add a type = one registry entry (+ its status rule)" true: for each registered type
it asks ingress, the pipeline, the folder, the API/panel and the summary what they make of it.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from crm_qb.qbo.deeplinks import AppLinks
from crm_qb.sync.pipeline import events
from crm_qb.sync.pipeline.events import EventRef
from crm_qb.sync.pipeline.units import qbo_units
from crm_qb.sync.rules import status as st
from crm_qb.sync.transactions import registry
from crm_qb.sync.transactions.mirror import fields_of
from crm_qb.web.panel import BADGE_COLOURS, TYPE_PLURALS
from crm_qb.web.readmodels.folder import STATUSES, parse_folder_query
from crm_qb.web.readmodels.summary import METRICS, SummaryRow, summarize
from webhooks.notices import parse_qbo

NAMES = registry.NAMES
BASE = "https://app.qbo.intuit.com"


def _cloudevent(name: str, operation: str = "updated") -> list[dict[str, Any]]:
    return [{"specversion": "1.0", "id": f"ev-{name}", "source": "intuit.x",
             "type": f"qbo.{name.lower()}.{operation}.v1", "time": "2025-09-10T21:31:25.179851517Z",
             "intuitentityid": "42", "intuitaccountid": "9130"}]


def _legacy(name: str) -> dict[str, Any]:
    return {"eventNotifications": [{"realmId": "9130", "dataChangeEvent": {"entities": [
        {"name": name, "id": "42", "operation": "Update", "lastUpdated": "2025-09-10T21:31:25Z"}]}}]}


@pytest.mark.parametrize("name", NAMES)
def test_ingress_stores_every_registered_type_as_pending(name: str) -> None:
    for body in (_cloudevent(name), _legacy(name)):
        [notice] = parse_qbo(json.loads(json.dumps(body)))
        assert (notice.entity, notice.synced) == (name, True)
    assert events.is_synced(name)


def test_an_unregistered_transaction_type_is_stored_as_ignored_not_silently_synced() -> None:
    [notice] = parse_qbo(_cloudevent("Bill"))
    assert (notice.entity, notice.synced) == ("Bill", False)


class _RecordingQbo:
    """A QBO client that answers every bulk read with nothing and records what was asked."""

    def __init__(self) -> None:
        self.reads: list[tuple[str, tuple[str, ...]]] = []

    def read_many(self, entity: str, ids: Any, **_: Any) -> dict[str, Any]:
        self.reads.append((entity, tuple(sorted(ids))))
        return {}


@pytest.mark.parametrize("name", NAMES)
def test_a_drain_turns_an_event_of_every_registered_type_into_a_transaction_unit(name: str) -> None:
    qbo = _RecordingQbo()
    ctx: Any = type("Ctx", (), {"qbo": qbo, "connection_id": 1, "qbo_changes": None})()
    # the one unit that settles the event (billable time may follow an invoice with a unit that settles none)
    [unit] = [u for u in qbo_units(ctx, [EventRef(7, name, "42", "Update", None, {})]) if u.events]
    assert (unit.events, unit.label) == ((7,), f"{name} 42")
    assert (name, ("42",)) in qbo.reads


@pytest.mark.parametrize("name", NAMES)
def test_the_folder_api_and_panel_know_every_registered_type(name: str) -> None:
    txn_type = registry.get(name.upper())
    assert parse_folder_query([name.lower()], [], None, None).types == (name,)
    assert TYPE_PLURALS[name] == txn_type.plural
    assert txn_type.link(AppLinks(BASE + "/", "77"), "0042") == (
        f"{BASE}/app/login?pagereq={txn_type.page}%3FtxnId%3D0042&deeplinkcompanyid=77")
    for status in txn_type.statuses:
        assert status in STATUSES and registry.badge_tone(status) in BADGE_COLOURS
        assert parse_folder_query([], [status.lower()], None, None).statuses == (status,)


@pytest.mark.parametrize("name", NAMES)
def test_every_registered_type_mirrors_into_a_folder_row_with_one_of_its_statuses(name: str) -> None:
    txn_type = registry.get(name)
    txn = {"Id": "42", "CustomerRef": {"value": "24"}, "TotalAmt": Decimal("10.00"), "Balance": Decimal("10.00"),
           "UnappliedAmt": Decimal("0"), "DueDate": "2024-06-01"}
    fields = fields_of(txn_type, txn, "USD", date(2024, 6, 15))
    assert fields["status"] in txn_type.statuses
    voided = txn_type.status_of({**txn, "TotalAmt": Decimal(0), "PrivateNote": "Voided"}, date(2024, 6, 15))
    assert (voided.label == st.VOIDED) is txn_type.voidable


@pytest.mark.parametrize("name", NAMES)
def test_the_summary_counts_every_registered_type_in_its_role(name: str) -> None:
    txn_type = registry.get(name)
    status = next(s for s in txn_type.statuses if s != st.VOIDED)
    row = SummaryRow(name, "1", status, "USD", date(2024, 6, 1), Decimal(10), Decimal(4), Decimal(10), Decimal(4))
    figures = summarize([row])
    assert figures.counts == {name: 1}
    if txn_type.summary.total:
        assert txn_type.summary.total in METRICS and figures.home[txn_type.summary.total] == Decimal(10)
    unapplied = txn_type.summary.unapplied
    expected_open = Decimal(4) if txn_type.summary.open_balance else Decimal(-4) if unapplied else Decimal(0)
    assert figures.home["open"] == expected_open  # unapplied money lowers what is open, as in QBO's Balance
    if unapplied:
        assert unapplied in METRICS and figures.home[unapplied] == Decimal(4)
    assert (figures.last_payment is not None) is txn_type.summary.last_payment


def test_lookups_are_strict_and_name_the_known_types() -> None:
    with pytest.raises(registry.UnknownTransactionType, match=r"'Bill'.*Invoice, Payment"):
        registry.get("Bill")
    with pytest.raises(ValueError, match="'Bill'"):
        registry.txn_status("Bill", {}, date(2025, 1, 1))


@pytest.mark.parametrize(("change", "message"), [
    ({"statuses": {"Lost": "bad"}}, "'Lost' is not in sync/rules/status.py LABELS"),
    ({"statuses": {st.OPEN: "purple", st.VOIDED: "neutral"}}, "tone 'purple'"),
    ({"voidable": False}, "a voidable type has the Voided status"),
    ({"time_dependent": (st.EXPIRED,)}, "date-dependent status 'Expired'"),
    ({"page": "invoice?x=1"}, "is not one word"),
])
def test_a_malformed_entry_stops_start_up(change: dict[str, Any], message: str) -> None:
    broken = dataclasses.replace(registry.get("Invoice"), **change)
    with pytest.raises(ValueError, match=r"transaction type Invoice: .*" + re.escape(message)):
        registry.check((broken,))
