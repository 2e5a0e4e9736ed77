"""The Payment & Billing summary's open balance agrees with QBO's customer Balance, unapplied credit memos and
unapplied payments included, and shows them as such (issue 10 item 7).

Real QBO sandbox (which keeps the customer's Balance as QBO does: open invoices less unapplied payments and credit
memos, and lets a payment apply a credit memo), real reference CRM, signed webhooks and a real worker.
"""

from __future__ import annotations

from typing import Any

import requests

from tests.support import sync as support
from tests.support.sync import Harness

qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness


def _make(h: Harness, entity: str, body: dict[str, Any]) -> dict[str, Any]:
    made = h.qbo.post(f"/_sandbox/realms/{h.qbo.realm_id}/entities/{entity}", body)[entity]
    h.qbo_hook(made["Id"], "created", entity=entity.lower())
    return made  # type: ignore[no-any-return]


def _line(amount: str) -> list[dict[str, Any]]:
    return [{"Amount": amount, "DetailType": "SalesItemLineDetail",
             "SalesItemLineDetail": {"ItemRef": {"value": "1"}, "Qty": 1, "UnitPrice": amount}}]


def _summary(h: Harness, contact_id: str, key: str) -> dict[str, Any]:
    return h.quickbooks(contact_id, key)["summary"]  # type: ignore[no-any-return]


def test_open_balance_agrees_with_qbos_balance_and_shows_unapplied_money(harness: Harness) -> None:
    h, key = harness, harness.api_key()
    customer = h.qbo.create_customer(DisplayName="Credit Customer", PrimaryEmailAddr={"Address": "cc@example.com"})
    h.qbo_hook(customer["Id"], "created")
    h.work()
    contact_id = str(h.link_of_customer(customer["Id"]).crm_contact_id)

    invoice = _make(h, "Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": _line("90.00")})
    memo = _make(h, "CreditMemo", {"CustomerRef": {"value": customer["Id"]}, "Line": _line("20.00")})
    h.work()
    summary = _summary(h, contact_id, key)
    assert h.qbo.customer(customer["Id"])["Balance"] == 70
    assert summary["open_balance"] == {"by_currency": {"USD": "70.00"}, "home": "70.00"}
    assert summary["unapplied_credits"] == {"by_currency": {"USD": "20.00"}, "home": "20.00"}

    payment = _make(h, "Payment", {"CustomerRef": {"value": customer["Id"]}, "TotalAmt": "10.00"})  # nothing applied
    h.work()
    summary = _summary(h, contact_id, key)
    assert h.qbo.customer(customer["Id"])["Balance"] == 60
    assert summary["open_balance"]["by_currency"] == {"USD": "60.00"}
    assert summary["unapplied_payments"]["by_currency"] == {"USD": "10.00"}

    # The bookkeeper applies the credit memo to the invoice (a zero payment): QBO's Balance stays 60.
    requests.post(f"{h.qbo.url}/_sandbox/realms/{h.qbo.realm_id}/payments", timeout=10, json={
        "customer_id": customer["Id"], "amount": "0", "invoices": [{"id": invoice["Id"], "amount": "20.00"}],
        "credits": [{"id": memo["Id"], "amount": "20.00"}]}).raise_for_status()
    for entity, txn_id in (("invoice", invoice["Id"]), ("creditmemo", memo["Id"]), ("payment", payment["Id"])):
        h.qbo_hook(txn_id, "updated", entity=entity)
    h.work()
    summary = _summary(h, contact_id, key)
    assert h.qbo.customer(customer["Id"])["Balance"] == 60
    assert summary["open_balance"]["by_currency"] == {"USD": "60.00"}
    assert summary["unapplied_credits"]["by_currency"] == {}
    assert summary["unapplied_payments"]["by_currency"] == {"USD": "10.00"}

    html = h.panel_html(contact_id)
    assert "Unapplied payments" in html and "Unapplied credits" not in html
