"""Multicurrency: currencies fixed at creation, ExchangeRate as home units per foreign unit, home amounts."""

from __future__ import annotations

from decimal import Decimal

from .conftest import sales_line


def test_foreign_invoice_home_amounts_round_half_up(api, item):
    customer = api.create("Customer", {"DisplayName": "Londoner", "CurrencyRef": {"value": "GBP"}})
    assert customer["CurrencyRef"] == {"value": "GBP", "name": "British Pound Sterling"}
    invoice = api.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "ExchangeRate": Decimal("1.2345"),
                                     "Line": [sales_line(item["Id"], "1", "10.05")]})
    assert invoice["CurrencyRef"]["value"] == "GBP" and invoice["TotalAmt"] == Decimal("10.05")
    assert invoice["HomeTotalAmt"] == Decimal("12.41")  # 12.406725 rounded half up
    assert invoice["HomeBalance"] == Decimal("12.41")
    payment = api.create("Payment", {"CustomerRef": {"value": customer["Id"]}, "TotalAmt": Decimal("5.05"),
                                     "ExchangeRate": Decimal("1.2345"), "Line": [
                                         {"Amount": Decimal("5.05"),
                                          "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]})
    assert payment["CurrencyRef"]["value"] == "GBP" and "HomeTotalAmt" not in payment
    after = api.get(f"invoice/{invoice['Id']}").json_body["Invoice"]
    assert after["Balance"] == Decimal("5.00") and after["HomeBalance"] == Decimal("6.17")  # 6.1725 half up


def test_foreign_invoice_without_rate_stores_one(api, item):
    customer = api.create("Customer", {"DisplayName": "Parisian", "CurrencyRef": {"value": "EUR"}})
    invoice = api.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"])]})
    assert invoice["ExchangeRate"] == 1 and invoice["HomeTotalAmt"] == invoice["TotalAmt"]


def test_home_currency_transaction_has_currency_but_no_home_amounts(api, item):
    customer = api.create("Customer", {"DisplayName": "Local"})
    invoice = api.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"])]})
    assert invoice["CurrencyRef"]["value"] == "USD"
    assert not {"ExchangeRate", "HomeTotalAmt", "HomeBalance"} & set(invoice)


def test_customer_currency_cannot_change_and_must_match_transactions(api, item):
    customer = api.create("Customer", {"DisplayName": "Fixed Currency", "CurrencyRef": {"value": "EUR"}})
    change = api.post("customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True,
                                   "CurrencyRef": {"value": "USD"}})
    assert change.json_body["Fault"]["Error"][0]["code"] == "6000"
    wrong = api.post("invoice", {"CustomerRef": {"value": customer["Id"]}, "CurrencyRef": {"value": "USD"},
                                 "Line": [sales_line(item["Id"])]})
    assert wrong.json_body["Fault"]["Error"][0]["code"] == "6000"


def test_realm_without_multicurrency_has_no_currency_fields(plain_api):
    item = plain_api.create("Item", {"Name": "Plain Item", "UnitPrice": 5})
    customer = plain_api.create("Customer", {"DisplayName": "Plain"})
    assert "CurrencyRef" not in customer
    foreign = plain_api.post("customer", {"DisplayName": "Foreign", "CurrencyRef": {"value": "EUR"}})
    assert foreign.status_code == 400
    invoice = plain_api.create("Invoice", {"CustomerRef": {"value": customer["Id"]},
                                           "Line": [sales_line(item["Id"])]})
    assert not {"CurrencyRef", "ExchangeRate", "HomeTotalAmt"} & set(invoice)
    prefs = plain_api.get("preferences").json_body["Preferences"]["CurrencyPrefs"]
    assert prefs["MultiCurrencyEnabled"] is False


def test_exchange_rate_update_and_read(api):
    current = api.get("exchangerate", sourcecurrencycode="EUR", asofdate="2025-03-01").json_body["ExchangeRate"]
    updated = api.post("exchangerate", {"SourceCurrencyCode": "EUR", "AsOfDate": "2025-03-01",
                                        "Rate": Decimal("2.5"), "SyncToken": current["SyncToken"]})
    assert updated.json_body["ExchangeRate"]["Rate"] == Decimal("2.5")
    again = api.get("exchangerate", sourcecurrencycode="EUR", asofdate="2025-03-01").json_body["ExchangeRate"]
    assert again["Rate"] == Decimal("2.5") and again["SyncToken"] == "1"
    home = api.get("exchangerate", sourcecurrencycode="USD")
    assert home.status_code == 400
