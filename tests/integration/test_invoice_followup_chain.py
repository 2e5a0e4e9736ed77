"""The whole chain: a QBO invoice past due is synced into the folder and becomes CRM tasks at once; paying it in
QBO completes them — webhooks, the drain, the folder and the follow-up scan working together."""

from __future__ import annotations

from datetime import date, timedelta

import requests

from tests.support import sync as support
from tests.support.sync import Harness

qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness


def _invoice(harness: Harness, customer_id: str, amount: str, due: date) -> str:
    body = {"CustomerRef": {"value": customer_id}, "TxnDate": (due - timedelta(days=30)).isoformat(),
            "DueDate": due.isoformat(), "DocNumber": "INV-77",
            "Line": [{"Amount": amount, "DetailType": "SalesItemLineDetail",
                      "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": amount}}]}
    return str(harness.qbo.post(f"/_sandbox/realms/{harness.qbo.realm_id}/entities/Invoice", body)["Invoice"]["Id"])


def _tasks(harness: Harness, contact_id: str) -> list[dict[str, object]]:
    return harness.crm_api("GET", f"/contacts/{contact_id}/tasks")["tasks"]  # type: ignore[no-any-return]


def test_an_overdue_invoice_becomes_tasks_right_after_it_syncs_and_they_close_when_it_is_paid(
        harness: Harness) -> None:
    customer = harness.qbo.create_customer(DisplayName="Katherine Johnson")
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    contact_id = str(harness.link_of_customer(customer["Id"]).crm_contact_id)

    invoice_id = _invoice(harness, customer["Id"], "250.00", date.today() - timedelta(days=15))
    harness.qbo_hook(invoice_id, "created", entity="invoice")
    harness.work()  # the drain mirrors the invoice and asks for its follow-ups; the same burst runs that scan
    [task] = _tasks(harness, contact_id)  # first seen 15 days overdue: the 14-day rule only, not 1 and 14
    assert task["status"] == "open" and task["title"] == "Overdue invoice INV-77: USD 250.00 (14 days overdue)"
    assert "Invoice INV-77 for Katherine Johnson is 15 days overdue" in str(task["description"])

    requests.post(f"{harness.qbo.url}/_sandbox/realms/{harness.qbo.realm_id}/payments", timeout=10,
                  json={"customer_id": customer["Id"], "amount": "250.00"}).raise_for_status()
    harness.qbo_hook(invoice_id, "updated", entity="invoice")
    harness.work()
    [task] = _tasks(harness, contact_id)
    assert task["status"] == "done", task
