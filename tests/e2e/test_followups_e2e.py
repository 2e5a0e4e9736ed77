"""Follow-ups end to end, against both CRM kinds: a real QBO invoice, synced into the contact's folder, becomes
a task on the contact when overdue (HubSpot: a task associated with the contact) and is completed when a payment
clears it; the billing summary on the contact (HubSpot: its "QuickBooks" property group) shows the overdue amount.
Everything travels as in production: QBO's webhooks to crm-qb's web process, workers calling both sides.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.support import wait_for
from tests.support.e2e import World

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # minutes of real processes: `scripts/test`, not CI


def test_an_overdue_invoice_becomes_a_task_completed_on_payment(world: World) -> None:
    world.configure("panel", push_summary=True)
    customer = world.create_customer(DisplayName="Ada Lovelace", GivenName="Ada", FamilyName="Lovelace",
                                     PrimaryEmailAddr={"Address": "ada@engines.example"})
    contact = wait_for(lambda: world.contact_with(email="ada@engines.example"), what="the contact")
    assert contact is not None
    item = world.qbo_entity("Item", Name="E2E hours", UnitPrice=120)
    today = datetime.now(UTC).date()
    invoice = world.qbo_entity("Invoice", CustomerRef={"value": customer["Id"]},
                               TxnDate=(today - timedelta(days=40)).isoformat(),
                               DueDate=(today - timedelta(days=10)).isoformat(), Line=[{
                                   "DetailType": "SalesItemLineDetail", "Amount": 240,
                                   "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": 2}}])
    [task] = wait_for(lambda: world.tasks(contact["id"]), timeout=40, what="the follow-up task on the contact")
    assert task["status"] == "open" and invoice["DocNumber"] in task["title"]
    wait_for(lambda: world.crm_side.overdue_balance(contact["id"]) == Decimal("240"), timeout=40,
             what="the billing summary with the overdue amount on the contact")

    world.pay(customer["Id"], Decimal("240"))
    wait_for(lambda: [t["status"] for t in world.tasks(contact["id"])] == ["done"], timeout=40,
             what="the task to be completed when the invoice is paid")
