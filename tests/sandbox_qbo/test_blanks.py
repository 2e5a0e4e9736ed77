"""Unset fields sent as empty strings (as client libraries send them) are absent, never malformed values.

The bodies below are shaped like python-quickbooks' ``to_json()`` of a new object: every attribute the library
models is sent, the unset ones as "" and unset references as {"value": "", "name": ""}.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from crm_qb.sandbox.qbo.blanks import drop_blanks

from .conftest import sales_line

UNSET_REF = {"value": "", "name": "", "type": ""}


def _code(response) -> str:
    return response.json_body["Fault"]["Error"][0]["code"]


def _blank_keys(value: object, path: str = "") -> list[str]:
    """Every path in a response whose value is an empty string (QBO never returns one)."""
    if isinstance(value, dict):
        return [found for key, item in value.items() for found in _blank_keys(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [found for index, item in enumerate(value) for found in _blank_keys(item, f"{path}[{index}]")]
    return [path] if value == "" else []


def _library_invoice(customer_id: str, item_id: str) -> dict:
    line = {"Id": None, "LineNum": 0, "Description": None, "Amount": "40.00", "DetailType": "SalesItemLineDetail",
            "LinkedTxn": [], "CustomField": [],
            "SalesItemLineDetail": {"UnitPrice": "20", "Qty": "2", "ServiceDate": "", "TaxInclusiveAmt": 0,
                                    "ItemRef": {"value": item_id, "name": "", "type": ""},
                                    "ClassRef": UNSET_REF, "TaxCodeRef": UNSET_REF}}
    return {"SyncToken": 0, "sparse": False, "domain": "QBO", "Deposit": 0, "Balance": 0, "AllowIPNPayment": True,
            "PrivateNote": "", "DueDate": "", "ShipDate": "", "TrackingNum": "", "TotalAmt": "", "TxnDate": "",
            "ApplyTaxAfterDiscount": False, "PrintStatus": "NotSet", "EmailStatus": "NotSet", "ExchangeRate": 1,
            "GlobalTaxCalculation": "TaxExcluded", "InvoiceLink": "", "HomeBalance": 0, "HomeTotalAmt": 0,
            "FreeFormAddress": False, "SalesTermRef": UNSET_REF, "CustomerRef": {"value": customer_id, "name": ""},
            "CustomField": [], "Line": [line], "LinkedTxn": []}


def test_a_library_invoice_with_unset_dates_and_amounts_is_created_with_qbo_defaults(api, sandbox, item):
    term = api.create("Term", {"Name": "Net 10", "DueDays": 10})
    customer = api.create("Customer", {"DisplayName": "Library Buyer", "SalesTermRef": {"value": term["Id"]}})
    response = api.post("invoice", _library_invoice(customer["Id"], item["Id"]))
    assert response.status_code == 200, response.get_data(as_text=True)
    invoice = response.json_body["Invoice"]
    today = sandbox.engine.today(sandbox.store.realm(api.realm_id))
    assert invoice["TxnDate"] == today.isoformat()
    assert invoice["DueDate"] == (today.fromordinal(today.toordinal() + 10)).isoformat()  # from the customer's term
    assert invoice["TotalAmt"] == Decimal("40.00") and invoice["Balance"] == Decimal("40.00")
    assert "ServiceDate" not in invoice["Line"][0]["SalesItemLineDetail"]
    assert _blank_keys(response.json_body) == []


def test_a_library_customer_with_blank_names_email_and_address(api):
    response = api.post("customer", {
        "Title": "", "GivenName": "Lena", "MiddleName": "", "FamilyName": "Blank", "Suffix": "",
        "FullyQualifiedName": "", "CompanyName": "", "DisplayName": "", "PrintOnCheckName": "", "Notes": "",
        "PrimaryEmailAddr": {"Address": ""}, "PrimaryPhone": {"FreeFormNumber": ""},
        "BillAddr": {"Line1": "", "City": "", "PostalCode": "", "Country": "", "Lat": "", "Long": ""},
        "OpenBalanceDate": "", "ParentRef": UNSET_REF, "SalesTermRef": UNSET_REF})
    assert response.status_code == 200, response.get_data(as_text=True)  # not 2210 for the blank address
    customer = response.json_body["Customer"]
    assert customer["DisplayName"] == "Lena Blank" and customer["Job"] is False
    for absent in ("PrimaryEmailAddr", "PrimaryPhone", "BillAddr", "Notes", "ParentRef", "SalesTermRef"):
        assert absent not in customer
    assert _blank_keys(response.json_body) == []


@pytest.mark.parametrize(("entity", "body"), [
    ("Vendor", {"DisplayName": "Blank Vendor", "CompanyName": "", "AcctNum": "", "TaxIdentifier": ""}),
    ("Employee", {"GivenName": "Bea", "FamilyName": "Blank", "MiddleName": "", "EmployeeNumber": "",
                  "ReleasedDate": "", "HiredDate": None, "PrimaryEmailAddr": {"Address": ""}}),
    ("Item", {"Name": "Blank Item", "Description": "", "Sku": "", "UnitPrice": "", "IncomeAccountRef": UNSET_REF}),
    ("Term", {"Name": "Blank Term", "DueDays": "", "DiscountPercent": ""}),
    ("PaymentMethod", {"Name": "Blank Method", "Type": ""}),
])
def test_name_lists_take_blank_fields_as_absent(api, entity, body):
    response = api.post(entity.lower(), body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert _blank_keys(response.json_body) == []


@pytest.mark.parametrize("entity", ["Estimate", "SalesReceipt", "CreditMemo", "RefundReceipt"])
def test_sales_forms_take_blank_dates_and_notes_as_absent(api, sandbox, item, entity):
    customer = api.create("Customer", {"DisplayName": f"{entity} Blank"})
    response = api.post(entity.lower(), {
        "CustomerRef": {"value": customer["Id"]}, "TxnDate": "", "ExpirationDate": "", "ShipDate": "",
        "PrivateNote": "", "DocNumber": "", "TotalAmt": "", "PaymentMethodRef": UNSET_REF,
        "Line": [sales_line(item["Id"])]})
    assert response.status_code == 200, response.get_data(as_text=True)
    obj = response.json_body[entity]
    assert obj["TxnDate"] == sandbox.engine.today(sandbox.store.realm(api.realm_id)).isoformat()
    assert obj["DocNumber"]  # a blank DocNumber is numbered automatically like an absent one
    assert _blank_keys(response.json_body) == []


def test_a_payment_with_blank_date_and_reference_number(api, item):
    customer = api.create("Customer", {"DisplayName": "Blank Payer"})
    response = api.post("payment", {"CustomerRef": {"value": customer["Id"]}, "TotalAmt": "15.00", "TxnDate": "",
                                    "PaymentRefNum": "", "PrivateNote": "", "PaymentMethodRef": UNSET_REF,
                                    "DepositToAccountRef": UNSET_REF, "Line": []})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json_body["Payment"]["UnappliedAmt"] == Decimal("15.00")
    assert _blank_keys(response.json_body) == []


def test_a_blank_required_amount_is_missing_not_malformed(api):
    customer = api.create("Customer", {"DisplayName": "No Amount"})
    response = api.post("payment", {"CustomerRef": {"value": customer["Id"]}, "TotalAmt": ""})
    assert response.status_code == 400 and _code(response) == "2020"  # required, not 2080/2060


def test_sparse_update_blank_clears_the_field_but_never_the_display_name(api):
    customer = api.create("Customer", {"DisplayName": "Clear Me", "Notes": "keep?", "GivenName": "Cleo",
                                       "PrimaryEmailAddr": {"Address": "cleo@example.com"}})
    response = api.post("customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Notes": "",
                                     "PrimaryEmailAddr": {"Address": ""}, "DisplayName": ""})
    assert response.status_code == 200, response.get_data(as_text=True)
    updated = response.json_body["Customer"]
    assert "Notes" not in updated and "PrimaryEmailAddr" not in updated
    assert updated["GivenName"] == "Cleo" and updated["DisplayName"] == "Clear Me"


def test_full_update_blank_fields_are_cleared(api, item):
    customer = api.create("Customer", {"DisplayName": "Full Blank"})
    invoice = api.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "PrivateNote": "first",
                                     "Line": [sales_line(item["Id"])]})
    body = dict(_library_invoice(customer["Id"], item["Id"]), Id=invoice["Id"], SyncToken=invoice["SyncToken"],
                TxnDate=invoice["TxnDate"])
    response = api.post("invoice", body)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert "PrivateNote" not in response.json_body["Invoice"]
    assert response.json_body["Invoice"]["TxnDate"] == invoice["TxnDate"]


def test_batch_items_with_blanks(api, item):
    customer = api.create("Customer", {"DisplayName": "Batch Blank"})
    response = api.post("batch", {"BatchItemRequest": [
        {"bId": "1", "operation": "create", "Invoice": _library_invoice(customer["Id"], item["Id"])}]})
    assert "Invoice" in response.json_body["BatchItemResponse"][0], response.get_data(as_text=True)


@pytest.mark.parametrize(("field", "value", "code"), [
    ("TxnDate", "next tuesday", "2060"), ("DueDate", "2025-13-40", "2060"), ("Deposit", "lots", "2080")])
def test_malformed_values_are_faults(api, item, field, value, code):
    customer = api.create("Customer", {"DisplayName": f"Malformed {field}"})
    response = api.post("invoice", {"CustomerRef": {"value": customer["Id"]}, field: value,
                                    "Line": [sales_line(item["Id"])]})
    assert response.status_code == 400 and _code(response) == code


def test_a_malformed_quantity_is_a_fault_not_a_server_error(api, item):
    customer = api.create("Customer", {"DisplayName": "Bad Qty"})
    line = sales_line(item["Id"])
    line["SalesItemLineDetail"]["Qty"] = "two"
    response = api.post("invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [line]})
    assert response.status_code == 400 and _code(response) == "2080"


@pytest.mark.parametrize(("given", "expected"), [
    ({"a": "", "b": None, "c": "  ", "d": "x"}, {"d": "x"}),
    ({"Ref": {"value": "", "name": ""}}, {}),
    ({"SubTotalLineDetail": {}, "Line": []}, {"SubTotalLineDetail": {}, "Line": []}),
    ({"Line": [{"Amount": 1, "Description": ""}, {"Description": ""}]}, {"Line": [{"Amount": 1}]}),
    ({"Addr": {"Line1": "", "City": "Oslo"}}, {"Addr": {"City": "Oslo"}}),
    ({"Active": False, "Qty": 0}, {"Active": False, "Qty": 0}),
])
def test_drop_blanks(given, expected):
    assert drop_blanks(given) == expected
