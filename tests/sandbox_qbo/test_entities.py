"""Entity rules: SyncToken, DisplayName uniqueness, requestid, payments and balances, void and delete."""

from __future__ import annotations

from decimal import Decimal

from .conftest import sales_line


def _code(response) -> str:
    return response.json_body["Fault"]["Error"][0]["code"]


def test_stale_sync_token_is_5010_and_current_one_succeeds(api):
    customer = api.create("Customer", {"DisplayName": "Stale Co"})
    first = api.post("customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Notes": "a"})
    assert first.json_body["Customer"]["SyncToken"] == "1"
    stale = api.post("customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "Notes": "b"})
    assert stale.status_code == 400 and _code(stale) == "5010"
    assert api.get(f"customer/{customer['Id']}").json_body["Customer"]["Notes"] == "a"


def test_full_update_clears_omitted_fields_sparse_keeps_them(api):
    customer = api.create("Customer", {"DisplayName": "Full Co", "Notes": "keep?", "GivenName": "Ann"})
    sparse = api.post("customer", {"Id": customer["Id"], "SyncToken": "0", "sparse": True, "GivenName": "Bea"})
    assert sparse.json_body["Customer"]["Notes"] == "keep?"
    full = api.post("customer", {"Id": customer["Id"], "SyncToken": "1", "DisplayName": "Full Co"})
    assert "Notes" not in full.json_body["Customer"] and "GivenName" not in full.json_body["Customer"]


def test_display_name_unique_across_customers_vendors_employees_inactive_included(api):
    api.create("Vendor", {"DisplayName": "Shared Name"})
    assert _code(api.post("customer", {"DisplayName": "shared  name"})) == "6240"
    employee = api.create("Employee", {"GivenName": "Eve", "FamilyName": "Staff"})
    assert employee["DisplayName"] == "Eve Staff"
    assert _code(api.post("vendor", {"DisplayName": "Eve Staff"})) == "6240"
    gone = api.create("Customer", {"DisplayName": "Gone Customer"})
    api.post("customer", {"Id": gone["Id"], "SyncToken": "0", "sparse": True, "Active": False})
    assert _code(api.post("employee", {"DisplayName": "Gone Customer"})) == "6240"
    renamed = api.post("customer", {"Id": gone["Id"], "SyncToken": "1", "sparse": True, "DisplayName": "Shared Name"})
    assert _code(renamed) == "6240"


def test_inactive_customers_hidden_from_queries_unless_asked(api):
    gone = api.create("Customer", {"DisplayName": "Hidden Customer"})
    api.post("customer", {"Id": gone["Id"], "SyncToken": "0", "sparse": True, "Active": False})
    names = {c["DisplayName"] for c in api.query("select * from Customer")["Customer"]}
    assert "Hidden Customer" not in names
    every = api.query("select * from Customer where Active in (true, false)")["Customer"]
    assert "Hidden Customer" in {c["DisplayName"] for c in every}


def test_customers_cannot_be_deleted_only_made_inactive(api):
    customer = api.create("Customer", {"DisplayName": "Undeletable"})
    response = api.post("customer?operation=delete", {"Id": customer["Id"], "SyncToken": "0"})
    assert response.status_code == 400 and _code(response) == "500"


def test_inactivating_customer_with_balance_is_6220(api, item):
    customer = api.create("Customer", {"DisplayName": "Owes Money"})
    api.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"], "2")]})
    current = api.get(f"customer/{customer['Id']}").json_body["Customer"]
    assert current["Balance"] == Decimal("40.00")
    response = api.post("customer", {"Id": customer["Id"], "SyncToken": current["SyncToken"], "sparse": True,
                                     "Active": False})
    assert _code(response) == "6220"


def test_requestid_repeats_the_first_response(api):
    first = api.post("customer?requestid=req-1", {"DisplayName": "Idempotent Co"})
    second = api.post("customer?requestid=req-1", {"DisplayName": "Idempotent Co"})
    assert first.status_code == second.status_code == 200
    assert first.get_data() == second.get_data()
    found = api.query("select * from Customer where DisplayName = 'Idempotent Co'")["Customer"]
    assert len(found) == 1
    fault = api.post("customer?requestid=req-2", {"DisplayName": "Idempotent Co"})
    assert fault.get_data() == api.post("customer?requestid=req-2", {"DisplayName": "Other"}).get_data()
    assert api.post(f"customer?requestid={'x' * 51}", {"DisplayName": "Long"}).status_code == 400


def test_payments_change_invoice_and_customer_balances_and_void_restores(api, item):
    customer = api.create("Customer", {"DisplayName": "Payer"})
    ref = {"value": customer["Id"]}
    invoice = api.create("Invoice", {"CustomerRef": ref, "Line": [sales_line(item["Id"], "5")]})
    assert invoice["TotalAmt"] == invoice["Balance"] == Decimal("100.00")
    payment = api.create("Payment", {"CustomerRef": ref, "TotalAmt": Decimal("70"), "Line": [
        {"Amount": Decimal("60"), "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]})
    assert payment["UnappliedAmt"] == Decimal("10.00")
    paid = api.get(f"invoice/{invoice['Id']}").json_body["Invoice"]
    assert paid["Balance"] == Decimal("40.00") and paid["SyncToken"] == "1"
    assert {"TxnId": payment["Id"], "TxnType": "Payment"} in paid["LinkedTxn"]
    assert api.get(f"customer/{customer['Id']}").json_body["Customer"]["Balance"] == Decimal("30.00")
    api.post("payment?operation=update&include=void", {"Id": payment["Id"], "SyncToken": "0", "sparse": True})
    restored = api.get(f"invoice/{invoice['Id']}").json_body["Invoice"]
    assert restored["Balance"] == Decimal("100.00") and restored["LinkedTxn"] == []
    assert api.get(f"customer/{customer['Id']}").json_body["Customer"]["Balance"] == Decimal("100.00")


def test_overpaying_an_invoice_is_refused(api, item):
    customer = api.create("Customer", {"DisplayName": "Over Payer"})
    invoice = api.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"])]})
    response = api.post("payment", {"CustomerRef": {"value": customer["Id"]}, "TotalAmt": 50, "Line": [
        {"Amount": 50, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]})
    assert _code(response) == "6000"


def test_deleting_a_payment_restores_balance_and_paid_invoice_cannot_be_deleted(api, item):
    customer = api.create("Customer", {"DisplayName": "Deleter"})
    invoice = api.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"])]})
    payment = api.create("Payment", {"CustomerRef": {"value": customer["Id"]}, "TotalAmt": 20, "Line": [
        {"Amount": 20, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]})
    blocked = api.post("invoice?operation=delete", {"Id": invoice["Id"], "SyncToken": "1"})
    assert _code(blocked) == "6000"
    api.post("payment?operation=delete", {"Id": payment["Id"], "SyncToken": "0"})
    assert api.get(f"invoice/{invoice['Id']}").json_body["Invoice"]["Balance"] == Decimal("20.00")
    assert _code(api.get(f"payment/{payment['Id']}")) == "610"


def test_voiding_a_paid_invoice_leaves_the_payment_unapplied(api, item):
    customer = api.create("Customer", {"DisplayName": "Voider"})
    invoice = api.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"])],
                                     "PrivateNote": "rush"})
    payment = api.create("Payment", {"CustomerRef": {"value": customer["Id"]}, "TotalAmt": 20, "Line": [
        {"Amount": 20, "LinkedTxn": [{"TxnId": invoice["Id"], "TxnType": "Invoice"}]}]})
    voided = api.post("invoice?operation=void", {"Id": invoice["Id"], "SyncToken": "1"}).json_body["Invoice"]
    assert voided["PrivateNote"] == "Voided - rush" and voided["TotalAmt"] == 0
    assert api.get(f"payment/{payment['Id']}").json_body["Payment"]["UnappliedAmt"] == Decimal("20.00")
    assert api.get(f"customer/{customer['Id']}").json_body["Customer"]["Balance"] == Decimal("-20.00")


def test_invoice_needs_known_item_and_active_customer(api, item):
    customer = api.create("Customer", {"DisplayName": "Ref Checker"})
    unknown_item = api.post("invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line("9999")]})
    assert _code(unknown_item) == "2500"
    unknown_customer = api.post("invoice", {"CustomerRef": {"value": "9999"}, "Line": [sales_line(item["Id"])]})
    assert _code(unknown_customer) == "610"
    assert _code(api.post("invoice", {"Line": [sales_line(item["Id"])]})) == "2020"


def test_invoice_due_date_from_terms_and_doc_numbers_increase(api, item):
    term = api.create("Term", {"Name": "Net 10", "DueDays": 10})
    customer = api.create("Customer", {"DisplayName": "Termed", "SalesTermRef": {"value": term["Id"]}})
    first = api.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "TxnDate": "2025-01-01",
                                   "Line": [sales_line(item["Id"])]})
    second = api.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"])]})
    assert first["DueDate"] == "2025-01-11" and int(second["DocNumber"]) == int(first["DocNumber"]) + 1


def test_sub_customer_has_fully_qualified_name_and_parent_balance_with_jobs(api, item):
    parent = api.create("Customer", {"DisplayName": "Parent Co"})
    job = api.create("Customer", {"DisplayName": "Kitchen", "ParentRef": {"value": parent["Id"]}})
    assert job["Job"] is True and job["FullyQualifiedName"] == "Parent Co:Kitchen" and job["Level"] == 1
    api.create("Invoice", {"CustomerRef": {"value": job["Id"]}, "Line": [sales_line(item["Id"])]})
    reread = api.get(f"customer/{parent['Id']}").json_body["Customer"]
    assert reread["Balance"] == 0 and reread["BalanceWithJobs"] == Decimal("20.00")


def test_send_marks_email_sent(api, item):
    customer = api.create("Customer", {"DisplayName": "Mailed"})
    invoice = api.create("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"])]})
    sent = api.post(f"invoice/{invoice['Id']}/send?sendTo=a@example.com", {}).json_body["Invoice"]
    assert sent["EmailStatus"] == "EmailSent" and sent["BillEmail"] == {"Address": "a@example.com"}


def test_preferences_and_company_info(api):
    prefs = api.get("preferences").json_body["Preferences"]
    assert prefs["CurrencyPrefs"] == {"HomeCurrency": {"value": "USD"}, "MultiCurrencyEnabled": True}
    off = api.post("preferences", {"Id": "1", "SyncToken": prefs["SyncToken"], "sparse": True,
                                   "CurrencyPrefs": {"MultiCurrencyEnabled": False}})
    assert off.json_body["Fault"]["Error"][0]["code"] == "6000"
    info = api.get(f"companyinfo/{api.realm_id}").json_body["CompanyInfo"]
    assert info["CompanyName"]
    assert api.query("select * from Preferences")["Preferences"][0]["Id"] == "1"


def test_unparseable_query_is_a_query_fault_not_a_500(api):
    response = api.get("query", query="select name from Customer where")
    assert response.status_code == 400
    assert response.json_body["Fault"]["type"] == "ValidationFault"
    assert response.json_body["Fault"]["Error"][0]["code"] in ("4000", "4001")
    count = api.query("select count(*) from Customer")
    assert count["totalCount"] >= 4


def test_query_by_post_with_application_text(api):
    response = api.client.post(f"/v3/company/{api.realm_id}/query?minorversion=75",
                               data="select * from Customer where Id = '1'",
                               headers={"Authorization": f"Bearer {api.token}"}, content_type="application/text")
    assert response.status_code == 200 and len(response.get_json()["QueryResponse"]["Customer"]) == 1


def test_a_number_no_decimal_holds_is_refused_as_invalid_json(api):
    """A body Python's Decimal cannot read (exponent out of range) is a 400 fault, as any unreadable body."""
    response = api.client.post(api._url("customer"), data=b'{"DisplayName": "X", "Balance": 10e999999999999999999}',
                               headers=api._headers(), content_type="application/json")

    assert response.status_code == 400
    assert response.get_json()["Fault"]["Error"][0]["code"] == "2010"
