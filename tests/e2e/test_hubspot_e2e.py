"""HubSpot end to end: the local HubSpot, the QBO sandbox, crm-qb web and two workers, all real processes.

What only HubSpot has, on top of the customer flows the parametrized suite runs for both CRM kinds: an overdue
invoice becomes a HubSpot task associated with the contact and is completed when paid; the billing summary lands
in the contact's "QuickBooks" property group; the app card's request, signed by HubSpot's proxy, is answered;
HubSpot's merge (a new record) moves the link and its archive unlinks it. Every change reaches crm-qb as HubSpot's
v3-signed webhook over HTTP.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from redis import Redis
from sqlalchemy import select

from crm_qb.app import create_app
from crm_qb.config import Settings
from crm_qb.db import db
from crm_qb.models import Connection, ContactLink, LinkState
from tests.support import free_port, stop, wait_for
from tests.support.e2e import World, start_crm_sandbox, start_sandbox, wire

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # minutes of real processes: `scripts/test`, not CI


@pytest.fixture
def world(settings: Settings, tmp_path: Path, redis_client: Redis,
          spawn: Callable[..., subprocess.Popen[bytes]]) -> Iterator[World]:
    """The QBO sandbox, the local HubSpot, crm-qb web and two workers; summaries pushed to HubSpot."""
    qbo_proc, qbo_info = start_sandbox(["crm_qb.cli", "sandbox", "qbo", "--port", str(free_port())],
                                       tmp_path / "qbo.log")
    hs_proc, hs_info = start_crm_sandbox("hubspot", free_port(), tmp_path / "hubspot.log")
    try:
        made = wire(settings, tmp_path, spawn, qbo_info, hs_info, free_port(), crm_kind="hubspot")
        _set_connection(made, settings={"panel": {"push_summary": True}})
        yield made
    finally:
        for process in (qbo_proc, hs_proc):
            stop(process)


def _set_connection(world: World, **values: Any) -> None:
    with create_app(world.settings).app_context():
        row = db.session.get(Connection, world.connection_id)
        assert row is not None
        for name, value in values.items():
            setattr(row, name, value)
        db.session.commit()
        db.session.remove()


def _link_of(world: World, contact_id: str) -> ContactLink | None:
    with create_app(world.settings).app_context():
        found = db.session.scalar(select(ContactLink).where(ContactLink.connection_id == world.connection_id,
                                                            ContactLink.crm_contact_id == contact_id))
        db.session.remove()
    return found


def _hubspot(world: World, path: str, **params: str) -> Any:
    answer = requests.get(f"{world.crm}{path}", params=params, timeout=10,
                          headers={"Authorization": f"Bearer {world.crm_token}"})
    answer.raise_for_status()
    return answer.json()


def _tasks(world: World, contact_id: str) -> list[dict[str, Any]]:
    ids = [r["toObjectId"] for r in _hubspot(world, f"/crm/v4/objects/contacts/{contact_id}/associations/tasks")
           ["results"]]
    return [_hubspot(world, f"/crm/v3/objects/tasks/{i}", properties="hs_task_subject,hs_task_status")
            for i in ids]


def _qbo(world: World, method: str, path: str, body: dict[str, Any]) -> Any:
    answer = requests.request(method, f"{world.qbo}/_sandbox/realms/{world.realm}{path}", json=body, timeout=10)
    answer.raise_for_status()
    return answer.json()


def test_an_overdue_invoice_becomes_a_hubspot_task_completed_on_payment(world: World) -> None:
    customer = world.create_customer(DisplayName="Ada Lovelace", GivenName="Ada", FamilyName="Lovelace",
                                     PrimaryEmailAddr={"Address": "ada@engines.example"})
    contact = wait_for(lambda: world.contact_with(email="ada@engines.example"), what="the HubSpot contact")
    item = _qbo(world, "POST", "/entities/Item", {"Name": "E2E hours", "UnitPrice": 120})["Item"]
    today = datetime.now(UTC).date()
    invoice = _qbo(world, "POST", "/entities/Invoice", {
        "CustomerRef": {"value": customer["Id"]}, "TxnDate": (today - timedelta(days=40)).isoformat(),
        "DueDate": (today - timedelta(days=10)).isoformat(), "Line": [{
            "DetailType": "SalesItemLineDetail", "Amount": 240,
            "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": 2}}]})["Invoice"]
    tasks = wait_for(lambda: _tasks(world, contact["id"]) or None, timeout=40, what="the follow-up task in HubSpot")
    assert len(tasks) == 1 and tasks[0]["properties"]["hs_task_status"] == "NOT_STARTED"
    assert invoice["DocNumber"] in tasks[0]["properties"]["hs_task_subject"]

    def summary_pushed() -> bool:
        props = _hubspot(world, f"/crm/v3/objects/contacts/{contact['id']}",
                         properties="qb_open_balance,qb_overdue_balance")["properties"]
        return Decimal(props.get("qb_overdue_balance") or "0") == Decimal("240")

    wait_for(summary_pushed, timeout=40, what="the billing summary in the QuickBooks property group")

    _qbo(world, "POST", "/payments", {"customer_id": customer["Id"], "amount": 240})
    wait_for(lambda: _tasks(world, contact["id"])[0]["properties"]["hs_task_status"] == "COMPLETED", timeout=40,
             what="the task to be completed when the invoice is paid")


def test_the_app_card_is_answered_for_hubspots_signed_proxy_call(world: World) -> None:
    world.create_customer(DisplayName="Card Holder", PrimaryEmailAddr={"Address": "card@example.com"})
    contact = wait_for(lambda: world.contact_with(email="card@example.com"), what="the HubSpot contact")
    url = f"{world.web}/hubspot/card/contacts/{contact['id']}?limit=5"

    def fetched() -> dict[str, Any] | None:  # the contact shows in HubSpot a moment before its link commits
        answer = requests.post(f"{world.crm}/_sandbox/card/fetch", json={"url": url}, timeout=20).json()
        assert answer["status"] == 200, answer
        return dict(answer) if answer["body"]["link"]["state"] == "linked" else None

    answer = wait_for(fetched, what="the card to show the linked customer")
    assert answer["body"]["summary"]["currency"] == "USD"
    panel = requests.get(answer["body"]["panel_url"], timeout=10)
    assert panel.status_code == 200 and "Card Holder" in panel.text
    forged = requests.get(url + "&portalId=62515", timeout=10)
    assert forged.status_code == 401


def test_a_company_only_customer_waits_for_review_instead_of_failing(world: World) -> None:
    customer = world.create_customer(DisplayName="Only A Company Ltd", CompanyName="Only A Company Ltd")

    def reviewed() -> ContactLink | None:
        with create_app(world.settings).app_context():
            found = db.session.scalar(select(ContactLink).where(
                ContactLink.connection_id == world.connection_id, ContactLink.qbo_customer_id == customer["Id"]))
            db.session.remove()
        return found if found is not None and found.state == LinkState.REVIEW else None

    link = wait_for(reviewed, timeout=40, what="the company-only customer to wait in review")
    assert "person's name" in (link.review_reason or "")
    assert world.contacts() == []


def test_hubspot_merge_moves_the_link_and_archive_unlinks(world: World) -> None:
    kept = world.crm_user("POST", "/contacts", {"first_name": "Merge", "last_name": "Keeper",
                                                "email": "keeper@example.com"})
    wait_for(lambda: (_link_of(world, kept["id"]) or ContactLink()).state == LinkState.LINKED, timeout=40,
             what="the first contact to link")
    other = world.crm_user("POST", "/contacts", {"first_name": "Merge", "last_name": "Other",
                                                 "email": "other@example.com"})
    merged = requests.post(f"{world.crm}/_sandbox/objects/contacts/merge", timeout=10, json={
        "primaryObjectId": kept["id"], "objectIdToMerge": other["id"]}).json()
    wait_for(lambda: (_link_of(world, merged["id"]) or ContactLink()).state == LinkState.LINKED, timeout=40,
             what="the link to move to HubSpot's new record")
    requests.delete(f"{world.crm}/_sandbox/objects/contacts/{merged['id']}", timeout=10).raise_for_status()
    wait_for(lambda: (_link_of(world, merged["id"]) or ContactLink()).state == LinkState.UNLINKED, timeout=40,
             what="the archived contact to be unlinked")
