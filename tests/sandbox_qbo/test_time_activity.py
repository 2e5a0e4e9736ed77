"""TimeActivity (with the Employee, Vendor and service Item it names): shapes against Intuit's payloads, rules,
faults, updates, queries, CDC, webhooks, and billing through an invoice's links (docs/qbo/time-activity.md)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest

from .conftest import load_payload
from .test_payload_shapes import shape


def _code(response) -> str:
    return response.json_body["Fault"]["Error"][0]["code"]


@pytest.fixture
def people(plain_api) -> dict:
    """An employee, a vendor, a customer, a service item and the "Hours" item, in the realm without multicurrency."""
    return {
        "employee": plain_api.create("Employee", {"GivenName": "Emily", "FamilyName": "Platt",
                                                  "PrimaryEmailAddr": {"Address": "emily@example.com"}}),
        "vendor": plain_api.create("Vendor", {"DisplayName": "Priya Patel", "Vendor1099": True}),
        "customer": plain_api.create("Customer", {"DisplayName": "Amy's Bird Sanctuary"}),
        "item": plain_api.create("Item", {"Name": "Design", "Type": "Service", "UnitPrice": 75}),
        "hours": plain_api.create("Item", {"Name": "Hours", "Type": "Service"}),
    }


def _billable(people: dict, **extra) -> dict:
    body = {"NameOf": "Employee", "EmployeeRef": {"value": people["employee"]["Id"]},
            "CustomerRef": {"value": people["customer"]["Id"]}, "ItemRef": {"value": people["item"]["Id"]},
            "BillableStatus": "Billable", "HourlyRate": 75, "Hours": 2, "Minutes": 30, "Description": "Sketches"}
    return {**body, **extra}


def _strip(value: dict, *keys: str) -> dict:
    return {key: item for key, item in value.items() if key not in keys}


# -- shapes against Intuit's payloads ------------------------------------------------------------------------


def test_intuit_create_requests_are_accepted(plain_api, people):
    for name, ref in (("timeactivity_create_request.json", "employee"),
                      ("timeactivity_create_request_vendor.json", "vendor")):
        body = load_payload(name)
        key = "EmployeeRef" if ref == "employee" else "VendorRef"
        body.update({key: {"value": people[ref]["Id"]}, "ItemRef": {"value": people["item"]["Id"]}})
        created = plain_api.create("TimeActivity", body)
        assert created["TxnDate"] == "2024-08-01"  # a date-time in a Date field keeps its date
        assert (created["Hours"], created["Minutes"], created["BillableStatus"]) == (8, 0, "NotBillable")
        assert created[key] == {"value": people[ref]["Id"], "name": people[ref]["DisplayName"]}


def test_hours_entries_have_the_shape_of_the_2025_sandbox_capture(plain_api, people):
    created = plain_api.create("TimeActivity", _billable(people))
    sample = load_payload("timeactivity_query_response_2025_sandbox.json")["QueryResponse"]["TimeActivity"][2]
    assert shape(created) == shape(sample)  # Billable row: TimeChargeId, CostRate, Seconds included
    read = plain_api.get(f"timeactivity/{created['Id']}").json_body
    assert shape(_strip(read["TimeActivity"], "CostRate", "Seconds", "TimeChargeId")) == shape(
        _strip(load_payload("timeactivity_read.json")["TimeActivity"], "ProjectRef"))


def test_start_and_end_times_land_on_the_txn_date_in_the_company_zone(plain_api, people):
    body = load_payload("timeactivity_create_request_startend.json")
    body.update(TxnDate="2015-07-28", EmployeeRef={"value": people["employee"]["Id"]},
                CustomerRef={"value": people["customer"]["Id"]})
    created = plain_api.post("timeactivity", body).json_body
    sample = load_payload("timeactivity_create_response_startend.json")
    assert created["TimeActivity"]["StartTime"] == sample["TimeActivity"]["StartTime"] == "2015-07-28T09:00:00-07:00"
    assert created["TimeActivity"]["EndTime"] == sample["TimeActivity"]["EndTime"]
    assert created["TimeActivity"]["ItemRef"] == {"value": people["hours"]["Id"], "name": "Hours"}  # the default
    expected = _strip(sample["TimeActivity"], "ProjectRef")
    assert shape(_strip(created["TimeActivity"], "CostRate")) == shape(expected)
    moved = dict(body, StartTime="2013-07-05T08:00:00-08:00", EndTime="1999-01-01T17:00:00-08:00")
    assert plain_api.create("TimeActivity", moved)["StartTime"] == "2015-07-28T09:00:00-07:00"  # date part ignored


def test_full_update_and_delete_answer_like_intuit(plain_api, people):
    created = plain_api.create("TimeActivity", _billable(people))
    body = load_payload("timeactivity_full_update_request.json")
    body.update(Id=created["Id"], SyncToken=created["SyncToken"], EmployeeRef={"value": people["employee"]["Id"]},
                CustomerRef={"value": people["customer"]["Id"]}, ItemRef={"value": people["item"]["Id"]})
    body.pop("ProjectRef")
    updated = plain_api.post("timeactivity", body).json_body
    sample = load_payload("timeactivity_full_update_response.json")
    assert updated["TimeActivity"]["SyncToken"] == "1" and updated["TimeActivity"]["Hours"] == 5
    assert updated["TimeActivity"]["Description"] == "Updated descirption"
    assert shape(_strip(updated["TimeActivity"], "CostRate", "Seconds", "TimeChargeId")) == shape(
        _strip(sample["TimeActivity"], "ProjectRef"))
    deleted = plain_api.post("timeactivity?operation=delete", {"Id": created["Id"], "SyncToken": "1"}).json_body
    assert shape(deleted) == shape(load_payload("timeactivity_delete_response.json"))
    assert _code(plain_api.get(f"timeactivity/{created['Id']}")) == "610"


def test_sparse_update_with_sync_token(plain_api, people):
    created = plain_api.create("TimeActivity", _billable(people))
    sparse = plain_api.post("timeactivity", {"Id": created["Id"], "SyncToken": "0", "sparse": True, "Minutes": 45})
    assert sparse.json_body["TimeActivity"]["Minutes"] == 45 and sparse.json_body["TimeActivity"]["Hours"] == 2
    assert sparse.json_body["TimeActivity"]["TxnDate"] == created["TxnDate"]
    assert sparse.json_body["TimeActivity"]["TimeChargeId"] == created["TimeChargeId"]
    stale = plain_api.post("timeactivity", {"Id": created["Id"], "SyncToken": "0", "sparse": True, "Hours": 1})
    assert _code(stale) == "5010"
    unbill = plain_api.post("timeactivity", {"Id": created["Id"], "SyncToken": "1", "sparse": True,
                                             "BillableStatus": "NotBillable"}).json_body["TimeActivity"]
    assert "TimeChargeId" not in unbill


def test_defaults(plain_api, sandbox, people):
    created = plain_api.create("TimeActivity", {"NameOf": "Vendor", "VendorRef": {"value": people["vendor"]["Id"]},
                                                "Hours": 1})
    today = sandbox.engine.today(sandbox.store.realm(plain_api.realm_id)).isoformat()
    assert created["TxnDate"] == today and created["BillableStatus"] == "NotBillable"
    assert created["HourlyRate"] == 0 and created["Taxable"] is False and created["CostRate"] == 0
    assert created["Minutes"] == 0 and created["Seconds"] == 0 and "TimeChargeId" not in created
    assert created["ItemRef"]["name"] == "Hours" and "CustomerRef" not in created


# -- validation and faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "code"), [
    ({"NameOf": None}, "2020"),
    ({"NameOf": "Robot"}, "2170"),
    ({"EmployeeRef": None}, "2020"),
    ({"EmployeeRef": {"value": "99999"}}, "610"),
    ({"Hours": None, "Minutes": None}, "2020"),
    ({"Minutes": 75}, "2080"),
    ({"Hours": "1.5"}, "2080"),
    ({"Hours": -1}, "2080"),
    ({"Hours": 8761}, "2080"),
    ({"StartTime": "08:00:00", "EndTime": "17:00:00"}, "6000"),
    ({"CustomerRef": None}, "2020"),
    ({"HourlyRate": None}, "2020"),
    ({"HourlyRate": -5}, "2080"),
    ({"BillableStatus": "HasBeenBilled"}, "6000"),
    ({"BillableStatus": "Maybe"}, "2170"),
    ({"ItemRef": {"value": "99999"}}, "2500"),
    ({"Description": "x" * 4001}, "2050"),
    ({"TxnDate": "someday"}, "2060"),
    ({"CustomerRef": {"value": "99999"}}, "610"),
])
def test_invalid_time_activities_are_refused(plain_api, people, change, code):
    body = {key: value for key, value in {**_billable(people), **change}.items() if value is not None}
    response = plain_api.post("timeactivity", body)
    assert response.status_code == 400 and _code(response) == code, response.get_data(as_text=True)


def test_references_must_be_active_and_items_services(plain_api, people):
    goods = plain_api.create("Item", {"Name": "Bird Seed", "Type": "NonInventory"})
    assert _code(plain_api.post("timeactivity", _billable(people, ItemRef={"value": goods["Id"]}))) == "6000"
    plain_api.post("employee", {"Id": people["employee"]["Id"], "SyncToken": "0", "sparse": True, "Active": False})
    assert _code(plain_api.post("timeactivity", _billable(people))) == "610"
    vendor_as_employee = _billable(people, EmployeeRef={"value": people["vendor"]["Id"]})
    assert _code(plain_api.post("timeactivity", vendor_as_employee)) == "610"  # that Id is no employee


def test_end_before_start_is_refused_and_breaks_count(plain_api, people):
    base = {"NameOf": "Employee", "EmployeeRef": {"value": people["employee"]["Id"]}, "TxnDate": "2026-03-02"}
    assert _code(plain_api.post("timeactivity", dict(base, StartTime="17:00:00", EndTime="08:00:00"))) == "6000"
    with_break = plain_api.create("TimeActivity", dict(base, StartTime="08:00:00", EndTime="17:00:00",
                                                       BreakHours=1))
    assert with_break["BreakHours"] == 1 and with_break["StartTime"] == "2026-03-02T08:00:00-08:00"


# -- query, CDC, webhooks ----------------------------------------------------------------------------------------


def test_query_filters_and_sorts_on_what_intuit_marks(plain_api, people):
    plain_api.create("TimeActivity", _billable(people, TxnDate="2026-01-10"))
    plain_api.create("TimeActivity", _billable(people, TxnDate="2026-02-10", BillableStatus="NotBillable"))
    found = plain_api.query("select * from TimeActivity where TxnDate > '2026-01-31'")["TimeActivity"]
    assert [row["TxnDate"] for row in found] == ["2026-02-10"]
    billable = plain_api.query("select * from TimeActivity where BillableStatus = 'Billable' "
                               "orderby MetaData.LastUpdatedTime")["TimeActivity"]
    assert [row["TxnDate"] for row in billable] == ["2026-01-10"]
    assert plain_api.query("select count(*) from TimeActivity") == {"totalCount": 2}
    for refused in ("select * from TimeActivity where EmployeeRef = '1'",
                    "select * from TimeActivity where CustomerRef = '1'",
                    "select * from TimeActivity orderby BillableStatus"):
        response = plain_api.get("query", query=refused)
        assert response.status_code == 400 and _code(response) == "4001", refused


def test_cdc_refuses_time_activity_and_never_carries_it(plain_api, sandbox, people):
    since = (sandbox.clock.now() - timedelta(seconds=1)).isoformat()
    plain_api.create("TimeActivity", _billable(people))
    refused = plain_api.get("cdc", entities="TimeActivity", changedSince=since)
    assert refused.status_code == 400 and "TimeActivity" in refused.json_body["Fault"]["Error"][0]["Detail"]
    assert _code(plain_api.get("cdc", entities="Customer,TimeActivity", changedSince=since)) == "2000"
    groups = plain_api.get("cdc", entities="Customer,Employee", changedSince=since).json_body
    names = {key for group in groups["CDCResponse"][0]["QueryResponse"] for key in group}
    assert "TimeActivity" not in names and "Customer" in names


@pytest.mark.parametrize("fmt", ["legacy", "cloudevents"])
def test_time_activity_changes_send_webhooks(plain_api, client, sandbox, hooks, people, fmt):
    client.post("/_sandbox/webhooks", json={"url": "http://127.0.0.1:9/hooks", "format": fmt, "delay_ms": 0})
    created = plain_api.create("TimeActivity", _billable(people))
    plain_api.post("timeactivity", {"Id": created["Id"], "SyncToken": "0", "sparse": True, "Hours": 3})
    plain_api.post("timeactivity?operation=delete", {"Id": created["Id"], "SyncToken": "1"})
    sandbox.dispatcher.deliver_due()
    bodies = [json.loads(body) for _url, body, _headers in hooks.deliveries]
    if fmt == "cloudevents":
        seen = [(event["type"], event["intuitentityid"]) for body in bodies for event in body]
        assert seen == [(f"qbo.timeactivity.{verb}.v1", created["Id"]) for verb in ("created", "updated", "deleted")]
    else:
        seen = [(entity["name"], entity["operation"]) for body in bodies for note in body["eventNotifications"]
                for entity in note["dataChangeEvent"]["entities"]]
        assert seen == [("TimeActivity", operation) for operation in ("Create", "Update", "Delete")]


# -- billing through an invoice ---------------------------------------------------------------------------------


def _invoice_billing(plain_api, people, activity, *, header=True, line=True) -> object:
    detail = {"ItemRef": {"value": people["item"]["Id"]}, "Qty": Decimal("2.5"), "UnitPrice": 75}
    invoice_line = {"DetailType": "SalesItemLineDetail", "Amount": Decimal("187.50"), "SalesItemLineDetail": detail}
    if line:
        invoice_line["LinkedTxn"] = [{"TxnId": activity["Id"], "TxnType": "TimeActivity", "TxnLineId": "1"}]
    body = {"CustomerRef": {"value": people["customer"]["Id"]}, "Line": [invoice_line]}
    if header:
        body["LinkedTxn"] = [{"TxnId": activity["Id"], "TxnType": "TimeActivity"}]
    return plain_api.post("invoice", body)


def test_an_invoice_linking_time_bills_it(plain_api, sandbox, people):
    activity = plain_api.create("TimeActivity", _billable(people))
    sandbox.clock.advance(5)
    invoice = _invoice_billing(plain_api, people, activity).json_body["Invoice"]
    excerpt = load_payload("invoice_timeactivity_link_excerpt.json")
    assert invoice["LinkedTxn"] == [{"TxnId": activity["Id"], "TxnType": "TimeActivity"}]
    assert shape(invoice["LinkedTxn"]) == shape(excerpt["LinkedTxn"])
    assert invoice["Line"][0]["LinkedTxn"] == [{"TxnId": activity["Id"], "TxnType": "TimeActivity",
                                                "TxnLineId": "1"}]
    assert shape(invoice["Line"][0]["LinkedTxn"]) == shape(excerpt["Line"][0]["LinkedTxn"])
    billed = plain_api.get(f"timeactivity/{activity['Id']}").json_body["TimeActivity"]
    assert billed["BillableStatus"] == "HasBeenBilled" and billed["SyncToken"] == "1"
    assert billed["MetaData"]["LastUpdatedTime"] > activity["MetaData"]["LastUpdatedTime"]
    assert billed["TimeChargeId"] == activity["TimeChargeId"]
    has_been_billed = plain_api.query("select * from TimeActivity where BillableStatus = 'HasBeenBilled'")
    assert [row["Id"] for row in has_been_billed["TimeActivity"]] == [activity["Id"]]


def test_only_the_header_link_bills_time(plain_api, people):
    activity = plain_api.create("TimeActivity", _billable(people))
    invoice = _invoice_billing(plain_api, people, activity, header=False).json_body["Invoice"]
    assert "LinkedTxn" not in invoice["Line"][0] and invoice["LinkedTxn"] == []  # dropped silently
    unbilled = plain_api.get(f"timeactivity/{activity['Id']}").json_body["TimeActivity"]
    assert unbilled["BillableStatus"] == "Billable"
    header_only = _invoice_billing(plain_api, people, activity, line=False).json_body["Invoice"]
    assert header_only["LinkedTxn"] == [{"TxnId": activity["Id"], "TxnType": "TimeActivity"}]
    assert plain_api.get(f"timeactivity/{activity['Id']}").json_body["TimeActivity"]["BillableStatus"] \
        == "HasBeenBilled"


def test_time_that_cannot_be_billed_is_refused(plain_api, people):
    unbillable = plain_api.create("TimeActivity", _billable(people, BillableStatus="NotBillable"))
    assert _code(_invoice_billing(plain_api, people, unbillable)) == "6000"
    stranger = plain_api.create("Customer", {"DisplayName": "Stranger"})
    foreign = plain_api.create("TimeActivity", _billable(people, CustomerRef={"value": stranger["Id"]}))
    assert _code(_invoice_billing(plain_api, people, foreign)) == "6000"
    activity = plain_api.create("TimeActivity", _billable(people))
    _invoice_billing(plain_api, people, activity)
    assert _code(_invoice_billing(plain_api, people, activity)) == "6000"  # already billed elsewhere
    assert _code(_invoice_billing(plain_api, people, {"Id": "99999"})) == "610"


def test_a_sub_customers_time_can_be_billed_to_the_parent(plain_api, people):
    job = plain_api.create("Customer", {"DisplayName": "Aviary", "ParentRef": {"value": people["customer"]["Id"]}})
    activity = plain_api.create("TimeActivity", _billable(people, CustomerRef={"value": job["Id"]}))
    assert _invoice_billing(plain_api, people, activity).status_code == 200


def test_billed_time_is_frozen_until_the_invoice_lets_go(plain_api, client, people):
    activity = plain_api.create("TimeActivity", _billable(people))
    invoice = _invoice_billing(plain_api, people, activity).json_body["Invoice"]
    edit = plain_api.post("timeactivity", {"Id": activity["Id"], "SyncToken": "1", "sparse": True, "Hours": 9})
    assert edit.status_code == 400 and _code(edit) == "6000"
    assert _code(plain_api.post("timeactivity?operation=delete", {"Id": activity["Id"], "SyncToken": "1"})) == "6000"
    ui_edit = client.patch(f"/_sandbox/realms/{plain_api.realm_id}/entities/TimeActivity/{activity['Id']}",
                           json={"Hours": 9})
    assert ui_edit.status_code == 400 and ui_edit.get_json()["error"]["code"] == "6000"
    plain_api.post("invoice?operation=delete", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]})
    released = plain_api.get(f"timeactivity/{activity['Id']}").json_body["TimeActivity"]
    assert released["BillableStatus"] == "Billable" and released["SyncToken"] == "2"
    assert plain_api.post("timeactivity", {"Id": activity["Id"], "SyncToken": "2", "sparse": True, "Hours": 9}) \
        .status_code == 200


@pytest.mark.parametrize("release", ["void", "full_update"])
def test_voiding_the_invoice_or_dropping_the_link_unbills_the_time(plain_api, people, release):
    activity = plain_api.create("TimeActivity", _billable(people))
    invoice = _invoice_billing(plain_api, people, activity).json_body["Invoice"]
    if release == "void":
        plain_api.post("invoice?operation=void", {"Id": invoice["Id"], "SyncToken": invoice["SyncToken"]})
    else:
        body = {key: value for key, value in invoice.items() if key not in ("LinkedTxn", "MetaData")}
        assert plain_api.post("invoice", body).status_code == 200  # a full update without the link removes it
    assert plain_api.get(f"timeactivity/{activity['Id']}").json_body["TimeActivity"]["BillableStatus"] == "Billable"


def test_merging_customers_moves_their_time(plain_api, client, people):
    duplicate = plain_api.create("Customer", {"DisplayName": "Amy Duplicate"})
    activity = plain_api.create("TimeActivity", _billable(people, CustomerRef={"value": duplicate["Id"]}))
    client.post(f"/_sandbox/realms/{plain_api.realm_id}/customers/merge",
                json={"from": duplicate["Id"], "into": people["customer"]["Id"]})
    moved = plain_api.get(f"timeactivity/{activity['Id']}").json_body["TimeActivity"]
    assert moved["CustomerRef"]["value"] == people["customer"]["Id"]


# -- the control API as the bookkeeper ------------------------------------------------------------------------


def test_the_bookkeeper_creates_people_items_and_time(client, plain_api):
    base = f"/_sandbox/realms/{plain_api.realm_id}/entities"
    employee = client.post(f"{base}/Employee", json={"GivenName": "Ann", "FamilyName": "Ops"}).get_json()["Employee"]
    vendor = client.post(f"{base}/Vendor", json={"DisplayName": "Con Tractor"}).get_json()["Vendor"]
    item = client.post(f"{base}/Item", json={"Name": "Audit", "UnitPrice": 90}).get_json()["Item"]
    answer = client.post(f"{base}/TimeActivity", json={"NameOf": "Vendor", "VendorRef": {"value": vendor["Id"]},
                                                       "ItemRef": {"value": item["Id"]}, "Hours": 1})
    assert answer.status_code == 201 and answer.get_json()["TimeActivity"]["VendorRef"]["name"] == "Con Tractor"
    assert employee["DisplayName"] == "Ann Ops" and item["Type"] == "Service"


def test_the_bookkeeper_bills_time_as_the_ui_does(client, plain_api, sandbox, hooks, people):
    first = plain_api.create("TimeActivity", _billable(people, Hours=0, Minutes=20, HourlyRate=90,
                                                       TxnDate="2026-03-02"))
    second = plain_api.create("TimeActivity", _billable(people, Hours=1, Minutes=0, HourlyRate=75))
    client.post("/_sandbox/webhooks", json={"url": "http://127.0.0.1:9/hooks", "delay_ms": 0})
    answer = client.post(f"/_sandbox/realms/{plain_api.realm_id}/time/bill",
                         json={"time_activity_ids": [first["Id"], second["Id"]]})
    assert answer.status_code == 201, answer.get_data(as_text=True)
    invoice = answer.get_json()["Invoice"]
    assert invoice["CustomerRef"]["value"] == people["customer"]["Id"]
    assert invoice["TotalAmt"] == 105  # 30.00 for 20 minutes at 90, plus 75.00
    line = invoice["Line"][0]
    assert line["Amount"] == 30 and line["SalesItemLineDetail"]["ServiceDate"] == "2026-03-02"
    assert line["SalesItemLineDetail"]["UnitPrice"] == 90 and line["Description"] == "Sketches"
    assert [link["TxnId"] for link in invoice["LinkedTxn"]] == [first["Id"], second["Id"]]
    for activity in (first, second):
        status = plain_api.get(f"timeactivity/{activity['Id']}").json_body["TimeActivity"]["BillableStatus"]
        assert status == "HasBeenBilled"
    sandbox.dispatcher.deliver_due()
    assert [event["type"] for event in hooks.events()] == ["qbo.invoice.created.v1"]
    again = client.post(f"/_sandbox/realms/{plain_api.realm_id}/time/bill", json={"time_activity_ids": [first["Id"]]})
    assert again.status_code == 400 and again.get_json()["error"]["code"] == "6000"
    assert client.post(f"/_sandbox/realms/{plain_api.realm_id}/time/bill", json={}).status_code == 400


def test_the_demo_realm_has_people_to_map_and_services_to_bill(api):
    employees = api.query("select * from Employee")["Employee"]
    emails = {row["DisplayName"]: row.get("PrimaryEmailAddr", {}).get("Address") for row in employees}
    assert emails == {"Emily Platt": "emily.platt@example.com", "John Johnson": "john.johnson@example.com"}
    contractor = api.query("select * from Vendor where DisplayName = 'Priya Patel'")["Vendor"][0]
    assert contractor["Vendor1099"] is True and contractor["PrimaryEmailAddr"]["Address"] == "priya.patel@example.com"
    services = {row["Name"] for row in api.query("select * from Item where Type = 'Service'")["Item"]}
    assert {"Design", "Hours", "Consulting"} <= services
    time = api.query("select * from TimeActivity")["TimeActivity"]
    assert sorted(row["BillableStatus"] for row in time) == ["Billable", "NotBillable"]


# -- the people and items time names, against Intuit's payloads ----------------------------------------------


_READ_ONLY = {"Id", "SyncToken", "MetaData", "domain", "sparse", "Balance", "time"}


def _writable_sample(sample: dict) -> dict:
    return {key: value for key, value in sample.items() if key not in _READ_ONLY}


@pytest.mark.parametrize(("entity", "payload"), [("Employee", "employee_read.json"), ("Vendor", "vendor_read.json")])
def test_people_read_back_in_intuits_shape(plain_api, entity, payload):
    sample = load_payload(payload)
    body = _writable_sample(sample[entity])
    address = "PrimaryAddr" if entity == "Employee" else "BillAddr"
    body[address] = _strip(body[address], "Id")  # QBO numbers addresses itself
    created = plain_api.create(entity, body)
    assert created[address]["Id"]
    read = plain_api.get(f"{entity.lower()}/{created['Id']}").json_body
    assert shape(read) == shape(sample)


def test_employee_query_and_service_items_in_intuits_shape(plain_api):
    sample = load_payload("employee_query_response.json")
    plain_api.create("Employee", _writable_sample(sample["QueryResponse"]["Employee"][0]))
    answer = plain_api.get("query", query="select * from Employee where DisplayName = 'Emily Platt'").json_body
    assert shape(answer) == shape(sample)
    items = load_payload("item_query_response_service.json")
    for item in items["QueryResponse"]["Item"]:
        plain_api.create("Item", _writable_sample(_strip(item, "FullyQualifiedName")))
    answer = plain_api.get("query", query="select * from Item maxresults 2").json_body
    assert shape(answer) == shape(items)
