"""Change data capture (30-day window, 1,000-object cap, deleted after active) and batch (30 items max)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from .conftest import load_payload, sales_line
from .test_payload_shapes import shape


def _since(sandbox, seconds_ago: float = 0) -> str:
    return (sandbox.clock.now() - timedelta(seconds=seconds_ago)).isoformat()


def test_cdc_groups_by_type_with_deleted_after_active(frozen_api, frozen):
    api, sandbox = frozen_api, frozen
    item = api.create("Item", {"Name": "Widget Service", "UnitPrice": Decimal("20")})
    sandbox.clock.advance(60)  # past the demo realm's seeding, which happened at FROZEN_AT
    since = _since(sandbox)
    customer = api.create("Customer", {"DisplayName": "CDC Customer"})
    first = api.create("Estimate", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"])]})
    second = api.create("Estimate", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"])]})
    sandbox.clock.advance(90)  # the delete happens at FROZEN_AT + 150 s: 10:02:30 in the company's zone
    api.post("estimate?operation=delete", {"Id": first["Id"], "SyncToken": "0"})
    response = api.get("cdc", entities="estimate,customer", changedSince=since).json_body
    groups = response["CDCResponse"][0]["QueryResponse"]
    assert [next(k for k in group if k not in ("startPosition", "maxResults", "totalCount")) for group in groups] \
        == ["Estimate", "Customer"]
    estimates = groups[0]["Estimate"]
    assert [e["Id"] for e in estimates] == [second["Id"], first["Id"]]
    assert estimates[1] == {"status": "Deleted", "domain": "QBO", "Id": first["Id"],
                            "MetaData": {"LastUpdatedTime": "2026-03-02T10:02:30-08:00"}}
    assert estimates[0]["MetaData"] == {"CreateTime": "2026-03-02T10:01:00-08:00",
                                        "LastUpdatedTime": "2026-03-02T10:01:00-08:00"}
    assert shape(estimates[1]) == shape(load_payload("cdc_response.json")["CDCResponse"][0]["QueryResponse"][1]
                                        ["Estimate"][2])
    assert estimates[0]["TotalAmt"] == 20  # the full payload of active objects


def test_cdc_without_changes_matches_intuit(api, sandbox):
    response = api.get("cdc", entities="invoice", changedSince=_since(sandbox, -3600)).json_body
    assert response["CDCResponse"] == load_payload("cdc_response_no_changes.json")["CDCResponse"]


def test_cdc_refuses_more_than_30_days_back(api, sandbox):
    old = (sandbox.clock.now() - timedelta(days=31)).isoformat()
    response = api.get("cdc", entities="customer", changedSince=old)
    assert response.status_code == 400 and "Fault" in response.json_body
    assert api.get("cdc", entities="customer", changedSince=(sandbox.clock.now() - timedelta(days=29))
                   .date().isoformat()).status_code == 200


def test_cdc_caps_at_1000_objects_oldest_first(api, sandbox):
    since = _since(sandbox)
    realm_id = api.realm_id
    for number in range(1003):
        sandbox.engine.create(realm_id, "Term", {"Name": f"Term {number}", "DueDays": number % 90})
    groups = api.get("cdc", entities="Term", changedSince=since).json_body["CDCResponse"][0]["QueryResponse"]
    terms = groups[0]["Term"]
    assert len(terms) == 1000 and groups[0]["maxResults"] == 1000 and groups[0]["totalCount"] == 1003
    assert terms[0]["Name"] == "Term 0" and terms[-1]["Name"] == "Term 999"


def test_batch_items_are_independent(api):
    response = api.post("batch", {"BatchItemRequest": [
        {"bId": "1", "operation": "create", "Customer": {"DisplayName": "Batch One"}},
        {"bId": "2", "operation": "create", "Customer": {"DisplayName": "Batch One"}},
        {"bId": "3", "operation": "create", "Customer": {"DisplayName": "Batch Two"}},
        {"bId": "4", "Query": "select * from Customer where"}]})
    items = {item["bId"]: item for item in response.json_body["BatchItemResponse"]}
    assert response.status_code == 200
    assert items["1"]["Customer"]["DisplayName"] == "Batch One"
    assert items["2"]["Fault"]["Error"][0]["code"] == "6240"
    assert items["3"]["Customer"]["DisplayName"] == "Batch Two"
    assert items["4"]["Fault"]["type"] == "ValidationFault"


def test_batch_allows_30_items_and_refuses_31(api):
    def items(count: int) -> dict:
        return {"BatchItemRequest": [{"bId": str(n), "Query": "select * from Term"} for n in range(count)]}

    assert len(api.post("batch", items(30)).json_body["BatchItemResponse"]) == 30
    refused = api.post("batch", items(31))
    assert refused.status_code == 400 and refused.json_body["Fault"]["Error"][0]["code"] == "1040"


def test_batch_void_uses_options_data(api, item):
    customer = api.create("Customer", {"DisplayName": "Batch Voider"})
    receipt = api.create("SalesReceipt", {"CustomerRef": {"value": customer["Id"]}, "Line": [sales_line(item["Id"])]})
    response = api.post("batch", {"BatchItemRequest": [{"bId": "v", "operation": "update", "optionsData": "void",
                                                        "SalesReceipt": {"Id": receipt["Id"], "SyncToken": "0"}}]})
    assert response.json_body["BatchItemResponse"][0]["SalesReceipt"]["TotalAmt"] == 0
