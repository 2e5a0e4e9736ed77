"""Links between transactions: payments that apply credit memos, invoices made from estimates (and, across a
restart of a persisted sandbox, invoices billing time)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from crm_qb.sandbox.qbo.app import create_app, sandbox_of
from crm_qb.sandbox.qbo.faults import QboFault
from crm_qb.sandbox.qbo.sandbox import SandboxConfig

from .conftest import sales_line


def _code(response) -> str:
    return response.json_body["Fault"]["Error"][0]["code"]


def _setup(api, item, name: str, invoice_qty: str = "5", credit_qty: str = "1"):
    """A customer with an invoice (20 per unit) and a credit memo; returns (customer, invoice, credit memo)."""
    customer = api.create("Customer", {"DisplayName": name})
    ref = {"value": customer["Id"]}
    invoice = api.create("Invoice", {"CustomerRef": ref, "Line": [sales_line(item["Id"], invoice_qty)]})
    memo = api.create("CreditMemo", {"CustomerRef": ref, "Line": [sales_line(item["Id"], credit_qty)]})
    return customer, invoice, memo


def _apply(api, customer, total: str, invoice=None, invoice_amount="0", memo=None, credit_amount="0"):
    lines = []
    if invoice:
        lines.append({"Amount": Decimal(invoice_amount),
                      "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]})
    if memo:
        lines.append({"Amount": Decimal(credit_amount),
                      "LinkedTxn": [{"TxnId": memo["Id"], "TxnType": "CreditMemo"}]})
    return api.post("payment", {"CustomerRef": {"value": customer["Id"]}, "TotalAmt": Decimal(total),
                                "Line": lines})


def _read(api, entity: str, obj: dict) -> dict:
    return api.get(f"{entity.lower()}/{obj['Id']}").json_body[entity]


def test_a_zero_payment_applies_a_credit_memo_to_an_invoice(api, item):
    customer, invoice, memo = _setup(api, item, "Credit Applier")
    assert memo["RemainingCredit"] == memo["Balance"] == Decimal("20.00")
    assert _read(api, "Customer", customer)["Balance"] == Decimal("80.00")  # 100 owed - 20 of credit
    response = _apply(api, customer, "0", invoice, "20", memo, "20")
    assert response.status_code == 200, response.get_data(as_text=True)
    payment = response.json_body["Payment"]
    assert payment["TotalAmt"] == 0 and payment["UnappliedAmt"] == 0
    memo_now, invoice_now = _read(api, "CreditMemo", memo), _read(api, "Invoice", invoice)
    assert memo_now["RemainingCredit"] == memo_now["Balance"] == 0 and memo_now["SyncToken"] == "1"
    assert {"TxnId": payment["Id"], "TxnType": "Payment"} in memo_now["LinkedTxn"]
    assert invoice_now["Balance"] == Decimal("80.00")
    assert _read(api, "Customer", customer)["Balance"] == Decimal("80.00")  # the credit moved, the total did not


def test_cash_and_credit_together_pay_an_invoice_in_full(api, item):
    customer, invoice, memo = _setup(api, item, "Cash And Credit")
    response = _apply(api, customer, "80", invoice, "100", memo, "20")
    assert response.json_body["Payment"]["UnappliedAmt"] == 0
    assert _read(api, "Invoice", invoice)["Balance"] == 0
    assert _read(api, "Customer", customer)["Balance"] == 0


def test_credit_cannot_exceed_what_the_memo_has_or_what_the_payment_pays(api, item):
    customer, invoice, memo = _setup(api, item, "Over Credit")
    assert _code(_apply(api, customer, "0", invoice, "30", memo, "30")) == "6000"  # memo has only 20
    assert _code(_apply(api, customer, "0", invoice, "10", memo, "20")) == "6000"  # credit above what it pays
    other = api.create("Customer", {"DisplayName": "Someone Else"})
    assert _code(_apply(api, other, "0", None, "0", memo, "5")) == "6000"  # not their memo
    assert _read(api, "CreditMemo", memo)["RemainingCredit"] == Decimal("20.00")


def test_voiding_or_deleting_the_payment_gives_the_credit_back(api, item):
    customer, invoice, memo = _setup(api, item, "Credit Returned")
    first = _apply(api, customer, "0", invoice, "15", memo, "15").json_body["Payment"]
    assert _read(api, "CreditMemo", memo)["RemainingCredit"] == Decimal("5.00")
    api.post("payment?operation=update&include=void", {"Id": first["Id"], "SyncToken": "0", "sparse": True})
    assert _read(api, "CreditMemo", memo)["RemainingCredit"] == Decimal("20.00")
    second = _apply(api, customer, "0", invoice, "20", memo, "20").json_body["Payment"]
    assert _read(api, "CreditMemo", memo)["Balance"] == 0
    api.post("payment?operation=delete", {"Id": second["Id"], "SyncToken": "0"})
    memo_now = _read(api, "CreditMemo", memo)
    assert memo_now["Balance"] == Decimal("20.00") and memo_now["LinkedTxn"] == []
    assert _read(api, "Invoice", invoice)["Balance"] == Decimal("100.00")


def test_an_applied_credit_memo_cannot_be_deleted_or_voided(api, item):
    customer, invoice, memo = _setup(api, item, "Used Credit")
    _apply(api, customer, "0", invoice, "20", memo, "20")
    current = _read(api, "CreditMemo", memo)
    assert _code(api.post("creditmemo?operation=delete", {"Id": memo["Id"], "SyncToken": current["SyncToken"]})) \
        == "6000"
    assert _code(api.post("creditmemo?operation=void", {"Id": memo["Id"], "SyncToken": current["SyncToken"]})) \
        == "6000"


def test_voiding_the_invoice_returns_the_credit_used_for_it(api, item):
    customer, invoice, memo = _setup(api, item, "Void After Credit")
    payment = _apply(api, customer, "0", invoice, "20", memo, "20").json_body["Payment"]
    current = _read(api, "Invoice", invoice)
    api.post("invoice?operation=void", {"Id": invoice["Id"], "SyncToken": current["SyncToken"]})
    assert _read(api, "CreditMemo", memo)["RemainingCredit"] == Decimal("20.00")
    after = _read(api, "Payment", payment)
    assert after["Line"] == [] and after["UnappliedAmt"] == 0
    assert _read(api, "Customer", customer)["Balance"] == Decimal("-20.00")  # the unapplied credit memo


def test_the_control_api_records_a_payment_that_uses_credit(client, api, item):
    customer, invoice, memo = _setup(api, item, "UI Credit")
    answer = client.post(f"/_sandbox/realms/{api.realm_id}/payments", json={
        "customer_id": customer["Id"], "amount": 0, "credits": [{"id": memo["Id"], "amount": 20}]})
    assert answer.status_code == 201, answer.get_data(as_text=True)
    kinds = [line["LinkedTxn"][0]["TxnType"] for line in answer.get_json()["Payment"]["Line"]]
    assert kinds == ["Invoice", "CreditMemo"]
    assert _read(api, "Invoice", invoice)["Balance"] == Decimal("80.00")


def _estimate(api, customer, item, qty: str = "2") -> dict:
    return api.create("Estimate", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"], qty)]})


def test_an_invoice_from_an_estimate_links_both_ways_and_closes_the_estimate(api, sandbox, item, hooks, client):
    customer = api.create("Customer", {"DisplayName": "Estimate Converter"})
    estimate = _estimate(api, customer, item)
    assert estimate["TxnStatus"] == "Pending" and "LinkedTxn" not in estimate
    client.post("/_sandbox/webhooks", json={"url": "http://127.0.0.1:9/hooks", "delay_ms": 0})
    invoice = api.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"], "2")],
                                     "LinkedTxn": [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]})
    assert invoice["LinkedTxn"] == [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]
    closed = _read(api, "Estimate", estimate)
    assert closed["TxnStatus"] == "Closed" and closed["SyncToken"] == "1"
    assert closed["LinkedTxn"] == [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]
    sandbox.dispatcher.deliver_due()
    assert [(e["type"], e["intuitentityid"]) for e in hooks.events()] == [
        ("qbo.invoice.created.v1", invoice["Id"]), ("qbo.estimate.updated.v1", estimate["Id"])]


def test_an_estimate_links_to_one_invoice_only(api, item):
    customer = api.create("Customer", {"DisplayName": "One Link Only"})
    estimate = _estimate(api, customer, item)
    link = [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]
    api.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"])],
                           "LinkedTxn": link})
    second = api.post("invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"])],
                                  "LinkedTxn": link})
    assert second.status_code == 400 and _code(second) == "6000"
    other = _estimate(api, customer, item)
    both = api.post("invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"])],
                                "LinkedTxn": [{"TxnId": other["Id"], "TxnType": "Estimate"},
                                              {"TxnId": _estimate(api, customer, item)["Id"], "TxnType": "Estimate"}]})
    assert _code(both) == "6000"


def test_linking_a_missing_or_foreign_estimate_is_refused(api, item):
    customer = api.create("Customer", {"DisplayName": "Estimate Owner"})
    stranger = api.create("Customer", {"DisplayName": "Estimate Stranger"})
    estimate = _estimate(api, customer, item)
    missing = api.post("invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"])],
                                   "LinkedTxn": [{"TxnId": "99999", "TxnType": "Estimate"}]})
    assert _code(missing) == "610"
    foreign = api.post("invoice", {"CustomerRef": {"value": stranger["Id"]}, "Line": [sales_line(item["Id"])],
                                   "LinkedTxn": [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]})
    assert _code(foreign) == "6000"


def test_removing_the_invoice_reopens_the_estimate(api, item):
    customer = api.create("Customer", {"DisplayName": "Estimate Reopened"})
    estimate = _estimate(api, customer, item)
    accepted = api.post("estimate", {"Id": estimate["Id"], "SyncToken": "0", "sparse": True,
                                     "TxnStatus": "Accepted", "AcceptedDate": "2026-01-05"}).json_body["Estimate"]
    invoice = api.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"])],
                                     "LinkedTxn": [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]})
    linked = _read(api, "Estimate", estimate)
    assert _code(api.post("estimate?operation=delete", {"Id": estimate["Id"], "SyncToken": linked["SyncToken"]})) \
        == "6000"
    api.post("invoice?operation=delete", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]})
    reopened = _read(api, "Estimate", estimate)
    assert reopened["TxnStatus"] == "Accepted" and "LinkedTxn" not in reopened
    assert int(reopened["SyncToken"]) == int(accepted["SyncToken"]) + 2


def test_a_sparse_invoice_update_keeps_the_estimate_link(api, item):
    customer = api.create("Customer", {"DisplayName": "Sparse Keeper"})
    estimate = _estimate(api, customer, item)
    invoice = api.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"])],
                                     "LinkedTxn": [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]})
    updated = api.post("invoice", {"Id": invoice["Id"], "SyncToken": "0", "sparse": True, "PrivateNote": "note"})
    assert updated.json_body["Invoice"]["LinkedTxn"] == [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]
    assert _read(api, "Estimate", estimate)["TxnStatus"] == "Closed"


def test_links_survive_a_restart_of_a_persisted_sandbox(tmp_path):
    path = str(tmp_path / "sandbox.db")
    first = sandbox_of(create_app(SandboxConfig(persist_path=path)))
    realm = first.demo_realm_id
    engine = first.engine
    activity = next(row for row in engine.rows(realm, "TimeActivity") if row["BillableStatus"] == "Billable")
    estimate = engine.rows(realm, "Estimate")[0]
    customer = activity["CustomerRef"]["value"]
    invoice = engine.create(realm, "Invoice", {
        "CustomerRef": {"value": estimate["CustomerRef"]["value"]}, "Line": [{"Amount": 1,
         "DetailType": "SalesItemLineDetail", "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}],
        "LinkedTxn": [{"TxnId": estimate["Id"], "TxnType": "Estimate"}]})
    billing = engine.create(realm, "Invoice", {
        "CustomerRef": {"value": customer}, "Line": [{"Amount": 1, "DetailType": "SalesItemLineDetail",
                                                      "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}],
        "LinkedTxn": [{"TxnId": activity["Id"], "TxnType": "TimeActivity"}]})
    first.stop()
    again = sandbox_of(create_app(SandboxConfig(persist_path=path)))
    try:
        assert again.store.realm(realm).estimate_invoice == {estimate["Id"]: invoice["Id"]}
        assert again.store.realm(realm).time_billed_by == {activity["Id"]: billing["Id"]}
        with pytest.raises(QboFault, match="already been billed"):
            again.engine.create(realm, "Invoice", {
                "CustomerRef": {"value": customer}, "Line": [{"Amount": 1, "DetailType": "SalesItemLineDetail",
                                                              "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}],
                "LinkedTxn": [{"TxnId": activity["Id"], "TxnType": "TimeActivity"}]})
        person = again.engine.rows(realm, "Employee")[0]
        fresh = again.engine.create(realm, "TimeActivity", {
            "NameOf": "Employee", "EmployeeRef": {"value": person["Id"]}, "CustomerRef": {"value": customer},
            "BillableStatus": "Billable", "HourlyRate": 10, "Hours": 1})
        assert fresh["TimeChargeId"] > activity["TimeChargeId"]  # the sequence moved past the restored ones
    finally:
        again.stop()
