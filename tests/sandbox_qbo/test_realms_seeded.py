"""Seeded realms through the control API: created, queryable, consistent with the engine's rules."""

from __future__ import annotations

from decimal import Decimal

from .conftest import Api, access_token, sales_line


def test_seeded_realm_is_served_and_keeps_ledger_rules(client, sandbox):
    response = client.post("/_sandbox/realms", json={"customers": 40, "transactions": 160, "multicurrency": True,
                                                     "seed": 3})
    assert response.status_code == 201
    realm_id = response.get_json()["realm_id"]
    api = Api(client, realm_id, access_token(client, sandbox, realm_id))
    assert api.query("select count(*) from Customer where Active in (true, false)")["totalCount"] == 40
    assert api.get("preferences").json_body["Preferences"]["CurrencyPrefs"]["MultiCurrencyEnabled"] is True
    invoices = api.query("select * from Invoice maxresults 1000").get("Invoice", [])
    assert invoices
    open_invoice = next(inv for inv in invoices if inv["Balance"] > 0)
    customer = api.get(f"customer/{open_invoice['CustomerRef']['value']}").json_body["Customer"]
    item = api.query("select * from Item")["Item"][0]
    created = api.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"])]})
    assert int(created["Id"]) > max(int(inv["Id"]) for inv in invoices)  # the id sequence moved past the seed
    after = api.get(f"customer/{customer['Id']}").json_body["Customer"]
    assert after["Balance"] == customer["Balance"] + created["TotalAmt"]
    payment = api.create("Payment", {"CustomerRef": {"value": customer["Id"]}, "TotalAmt": Decimal("1.00"),
                                     "ExchangeRate": created.get("ExchangeRate", 1), "Line": [
                                         {"Amount": Decimal("1.00"),
                                          "LinkedTxn": [{"TxnId": open_invoice["Id"], "TxnType": "Invoice"}]}]})
    reread = api.get(f"invoice/{open_invoice['Id']}").json_body["Invoice"]
    assert reread["Balance"] == open_invoice["Balance"] - 1
    assert {"TxnId": payment["Id"], "TxnType": "Payment"} in reread["LinkedTxn"]
    counts = client.get(f"/_sandbox/realms/{realm_id}/requests").get_json()
    assert counts["by_endpoint"]["POST /invoice"] == 1


def test_bad_seed_request_is_400(client):
    assert client.post("/_sandbox/realms", json={"customers": -1}).status_code == 400
    assert client.post("/_sandbox/realms", json={"customers": 0, "transactions": 5}).status_code == 400
