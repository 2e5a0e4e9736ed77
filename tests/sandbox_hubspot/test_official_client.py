"""HubSpot's official Python client (hubspot-api-client), pointed at the sandbox with only host/base_url changed."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import hubspot
import pytest
import requests
from hubspot.crm.associations.v4 import AssociationSpec
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectId,
    BatchReadInputSimplePublicObjectId,
    Filter,
    FilterGroup,
    PublicMergeInput,
    PublicObjectSearchRequest,
    SimplePublicObjectBatchInputForCreate,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import ApiException, NotFoundException, UnauthorizedException
from hubspot.crm.objects.tasks import SimplePublicObjectInputForCreate as TaskInput
from hubspot.crm.properties import PropertyCreate, PropertyGroupCreate
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException
from hubspot.oauth.exceptions import ApiException as OAuthApiException

from crm_qb.sandbox.hubspot.limits import Limits
from crm_qb.sandbox.hubspot.server import RunningServer
from tests.sandbox_hubspot.conftest import CLIENT_ID, CLIENT_SECRET


def contact(hs: hubspot.Client, **properties: str) -> str:
    """Create a contact through the client and return its id."""
    created = hs.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties=properties))
    return str(created.id)


def test_create_get_update_archive(hs: hubspot.Client) -> None:
    created = hs.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "ada@example.com", "firstname": "Ada"}))
    assert created is not None, "a create answered with a status the client does not map (must be 201)"
    assert created.properties["email"] == "ada@example.com"
    assert created.properties["hs_object_id"] == created.id
    assert created.created_at.tzinfo is not None

    read = hs.crm.contacts.basic_api.get_by_id(created.id, properties=["email", "firstname", "phone"])
    assert read.properties["firstname"] == "Ada" and read.properties["phone"] is None

    by_email = hs.crm.contacts.basic_api.get_by_id("ada@example.com", id_property="email")
    assert by_email.id == created.id

    updated = hs.crm.contacts.basic_api.update(created.id, SimplePublicObjectInput(properties={"lastname": "King"}))
    assert updated.properties["lastname"] == "King"
    assert updated.updated_at >= read.updated_at

    assert hs.crm.contacts.basic_api.archive(created.id) is None
    with pytest.raises(NotFoundException) as missing:
        hs.crm.contacts.basic_api.get_by_id(created.id)
    body = json.loads(missing.value.body)
    assert body["category"] == "OBJECT_NOT_FOUND" and body["status"] == "error" and body["correlationId"]
    archived = hs.crm.contacts.basic_api.get_by_id(created.id, archived=True)
    assert archived.archived is True


def test_duplicate_email_is_a_409_naming_the_existing_contact(hs: hubspot.Client) -> None:
    first = contact(hs, email="dup@example.com")
    with pytest.raises(ApiException) as conflict:
        contact(hs, email="DUP@example.com")
    assert conflict.value.status == 409
    assert json.loads(conflict.value.body)["message"] == f"Contact already exists. Existing ID: {first}"


def test_get_all_pages_through_every_contact(hs: hubspot.Client) -> None:
    ids = {contact(hs, email=f"p{i}@example.com") for i in range(7)}
    page = hs.crm.contacts.basic_api.get_page(limit=3, properties=["email"])
    assert len(page.results) == 3 and page.paging.next.after
    everything = hs.crm.contacts.get_all(properties=["email"])
    assert {c.id for c in everything} == ids


def test_batch_create_read_update_archive(hs: hubspot.Client) -> None:
    api = hs.crm.contacts.batch_api
    created = api.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
        SimplePublicObjectInputForCreate(properties={"email": f"b{i}@example.com"}) for i in range(3)]))
    assert created.status == "COMPLETE" and len(created.results) == 3
    ids = [r.id for r in created.results]

    read = api.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": i} for i in [*ids, "999999"]], properties=["email"], properties_with_history=[]))
    assert {r.id for r in read.results} == set(ids)
    assert read.num_errors == 1 and read.errors[0].category == "OBJECT_NOT_FOUND"
    assert read.errors[0].context["ids"] == ["999999"]

    updated = api.update(BatchInputSimplePublicObjectBatchInput(inputs=[
        {"id": i, "properties": {"lastname": "Batch"}} for i in ids]))
    assert all(r.properties["lastname"] == "Batch" for r in updated.results)

    assert api.archive(BatchInputSimplePublicObjectId(inputs=[{"id": i} for i in ids])) is None
    assert hs.crm.contacts.basic_api.get_page().results == []


def test_batch_create_with_trace_ids_reports_partial_failures_as_207(hs: hubspot.Client) -> None:
    existing = contact(hs, email="taken@example.com")
    result = hs.crm.contacts.batch_api.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
        SimplePublicObjectBatchInputForCreate(properties={"email": "new@example.com"}, object_write_trace_id="a"),
        SimplePublicObjectBatchInputForCreate(properties={"email": "taken@example.com"}, object_write_trace_id="b"),
    ]))
    assert [r.properties["email"] for r in result.results] == ["new@example.com"]
    assert result.num_errors == 1
    error = result.errors[0]
    assert error.category == "CONFLICT" and existing in error.message
    assert error.context["objectWriteTraceId"] == ["b"]


def test_batch_create_without_trace_ids_fails_whole_batch(hs: hubspot.Client) -> None:
    contact(hs, email="taken@example.com")
    with pytest.raises(ApiException) as conflict:
        hs.crm.contacts.batch_api.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
            SimplePublicObjectInputForCreate(properties={"email": "fresh@example.com"}),
            SimplePublicObjectInputForCreate(properties={"email": "taken@example.com"})]))
    assert conflict.value.status == 409
    with pytest.raises(NotFoundException):
        hs.crm.contacts.basic_api.get_by_id("fresh@example.com", id_property="email")


def test_search_by_lastmodifieddate_with_sorts_and_paging(hs: hubspot.Client) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    ids = [contact(hs, email=f"s{i}@example.com", firstname="Sam") for i in range(5)]
    request = PublicObjectSearchRequest(
        filter_groups=[FilterGroup(filters=[
            Filter(property_name="lastmodifieddate", operator="GTE", value=str(int(before.timestamp() * 1000))),
            Filter(property_name="firstname", operator="EQ", value="sam")])],
        sorts=[{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        properties=["email", "lastmodifieddate"], limit=2)
    first = hs.crm.contacts.search_api.do_search(request)
    assert first.total == 5 and len(first.results) == 2 and first.paging.next.after == "2"
    request.after = first.paging.next.after
    second = hs.crm.contacts.search_api.do_search(request)
    assert [r.id for r in first.results + second.results] == ids[:4]

    later = PublicObjectSearchRequest(filter_groups=[FilterGroup(filters=[
        Filter(property_name="lastmodifieddate", operator="GT", value=first.results[0].properties["lastmodifieddate"])
    ])], sorts=["-createdate"], limit=10)
    newest_first = hs.crm.contacts.search_api.do_search(later)
    assert [r.id for r in newest_first.results] == [i for i in reversed(ids)
                                                     if i in {r.id for r in newest_first.results}]


def test_merge_returns_a_new_contact_and_old_ids_follow_it(hs: hubspot.Client) -> None:
    primary = contact(hs, email="p@example.com", firstname="Primary")
    other = contact(hs, email="o@example.com", phone="555")
    merged = hs.crm.contacts.basic_api.merge(PublicMergeInput(primary_object_id=primary, object_id_to_merge=other))
    assert merged.id not in (primary, other)
    assert merged.properties["email"] == "p@example.com"
    again = hs.crm.contacts.basic_api.get_by_id(other, properties=["phone", "hs_additional_emails",
                                                                   "hs_merged_object_ids"])
    assert again.id == merged.id and again.properties["phone"] == "555"
    assert again.properties["hs_additional_emails"] == "o@example.com"
    assert set(again.properties["hs_merged_object_ids"].split(";")) == {primary, other}


def test_owners_list_with_trailing_slash_and_by_id(hs: hubspot.Client) -> None:
    page = hs.crm.owners.owners_api.get_page(email="jsmith@example.com", limit=10)
    assert len(page.results) == 1 and page.results[0].type == "PERSON"
    owner = page.results[0]
    assert hs.crm.owners.owners_api.get_by_id(int(owner.id)).email == "jsmith@example.com"
    assert hs.crm.owners.owners_api.get_by_id(owner.user_id, id_property="userId").id == owner.id


def test_task_associated_to_contact_on_create(hs: hubspot.Client, live: RunningServer) -> None:
    contact_id = contact(hs, email="t@example.com")
    task = hs.crm.objects.tasks.basic_api.create(TaskInput(
        properties={"hs_task_subject": "Invoice 1001 is 14 days overdue", "hs_task_status": "NOT_STARTED",
                    "hs_timestamp": "2026-12-01T10:00:00Z", "hubspot_owner_id": "1001"},
        associations=[{"to": {"id": contact_id},
                       "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 204}]}]))
    assert task.properties["hs_task_status"] == "NOT_STARTED"
    assert task.properties["hs_timestamp"] == "2026-12-01T10:00:00.000Z"
    linked = hs.crm.associations.v4.basic_api.get_page("contacts", contact_id, "tasks")
    assert [r.to_object_id for r in linked.results] == [task.id]
    assert any(t.type_id == 203 for t in linked.results[0].association_types)
    done = hs.crm.objects.tasks.basic_api.update(task.id, {"properties": {"hs_task_status": "COMPLETED"}})
    assert done.properties["hs_task_status"] == "COMPLETED"
    with_ids = hs.crm.contacts.basic_api.get_by_id(contact_id, associations=["tasks"])
    assert with_ids.associations["tasks"].results[0].id == task.id


def test_associations_v4_create_list_delete_company(hs: hubspot.Client) -> None:
    contact_id = contact(hs, email="c@example.com")
    company = hs.crm.companies.basic_api.create({"properties": {"name": "Acme", "domain": "acme.test"}})
    pair = hs.crm.associations.v4.basic_api.create(
        "contacts", contact_id, "companies", company.id,
        [AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=1)])
    assert pair.labels == ["Primary"] and pair.to_object_id == company.id
    back = hs.crm.associations.v4.basic_api.get_page("companies", company.id, "contacts")
    assert {t.type_id for t in back.results[0].association_types} == {2, 280}
    hs.crm.associations.v4.basic_api.archive("contacts", contact_id, "companies", company.id)
    assert hs.crm.associations.v4.basic_api.get_page("contacts", contact_id, "companies").results == []


def test_calls_and_meetings_with_durations(hs: hubspot.Client) -> None:
    call = hs.crm.objects.calls.basic_api.create({"properties": {
        "hs_timestamp": "2026-12-01T09:00:00Z", "hs_call_title": "Review", "hs_call_duration": "3600000"}})
    assert call.properties["hs_call_duration"] == "3600000"
    meeting = hs.crm.objects.meetings.basic_api.create({"properties": {
        "hs_timestamp": "2026-12-01T09:00:00Z", "hs_meeting_title": "Kick-off",
        "hs_meeting_start_time": "2026-12-01T09:00:00Z", "hs_meeting_end_time": "1764583200000"}})
    assert meeting.properties["hs_meeting_end_time"] == "2025-12-01T10:00:00.000Z"


def test_quickbooks_property_group_and_properties(hs: hubspot.Client) -> None:
    group = hs.crm.properties.groups_api.create(
        "contacts", PropertyGroupCreate(name="quickbooks", label="QuickBooks", display_order=-1))
    assert group.name == "quickbooks" and group.archived is False
    created = hs.crm.properties.core_api.create("contacts", PropertyCreate(
        name="qb_open_balance", label="Open balance", type="number", field_type="number", group_name="quickbooks"))
    assert created.name == "qb_open_balance" and created.hubspot_defined is False
    names = {p.name for p in hs.crm.properties.core_api.get_all("contacts").results}
    assert {"qb_open_balance", "email", "firstname"} <= names
    assert hs.crm.properties.groups_api.get_by_name("contacts", "quickbooks").label == "QuickBooks"
    contact_id = contact(hs, email="q@example.com", qb_open_balance="120.50")
    assert hs.crm.contacts.basic_api.get_by_id(contact_id, properties=["qb_open_balance"]).properties[
        "qb_open_balance"] == "120.5"
    with pytest.raises(PropertiesApiException) as exists:
        hs.crm.properties.groups_api.create("contacts", PropertyGroupCreate(name="quickbooks", label="Again"))
    assert exists.value.status == 409


def test_invalid_property_value_is_a_validation_error(hs: hubspot.Client) -> None:
    with pytest.raises(ApiException) as invalid:
        contact(hs, email="x@example.com", lifecyclestage="nonsense")
    body = json.loads(invalid.value.body)
    assert invalid.value.status == 400 and body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Property values were not valid: ")
    assert "INVALID_OPTION" in body["message"]


def test_429_is_raised_with_hubspot_body(hs: hubspot.Client, live: RunningServer) -> None:
    live.sandbox.limiter.configure(Limits(burst=2))
    hs.crm.contacts.basic_api.get_page()
    hs.crm.contacts.basic_api.get_page()
    with pytest.raises(ApiException) as limited:
        hs.crm.contacts.basic_api.get_page()
    assert limited.value.status == 429
    assert json.loads(limited.value.body)["policyName"] == "TEN_SECONDLY_ROLLING"
    assert limited.value.headers["X-HubSpot-RateLimit-Remaining"] == "0"


def test_oauth_code_exchange_and_refresh_through_the_clients_oauth_api(hs: hubspot.Client, live: RunningServer,
                                                                       http: requests.Session) -> None:
    answer = http.get(f"{live.url}/oauth/authorize", params={
        "client_id": CLIENT_ID, "redirect_uri": "https://app.example/callback", "scope": "crm.objects.contacts.read",
        "state": "s1"}, allow_redirects=False)
    assert answer.status_code == 302 and "state=s1" in answer.headers["Location"]
    code = answer.headers["Location"].split("code=")[1].split("&")[0]
    tokens = hs.oauth.tokens_api.create(grant_type="authorization_code", code=code,
                                        redirect_uri="https://app.example/callback", client_id=CLIENT_ID,
                                        client_secret=CLIENT_SECRET)
    assert tokens.expires_in == 1800 and tokens.token_type == "bearer"
    info = hs.oauth.access_tokens_api.get(tokens.access_token)
    assert info.hub_id == live.sandbox.portal_id and info.app_id == live.sandbox.config.app_id
    oauth_client = hubspot.Client.create(access_token=tokens.access_token, host=live.url)
    assert oauth_client.crm.contacts.basic_api.get_page().results == []

    refreshed = hs.oauth.tokens_api.create(grant_type="refresh_token", refresh_token=tokens.refresh_token,
                                           client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    assert refreshed.access_token != tokens.access_token and refreshed.refresh_token == tokens.refresh_token
    assert hs.oauth.refresh_tokens_api.get(tokens.refresh_token).hub_id == live.sandbox.portal_id

    hs.oauth.refresh_tokens_api.archive(tokens.refresh_token)
    with pytest.raises(OAuthApiException) as dead:
        hs.oauth.tokens_api.create(grant_type="refresh_token", refresh_token=tokens.refresh_token,
                                   client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    body = json.loads(dead.value.body)
    assert dead.value.status == 400 and body["status"] == "BAD_REFRESH_TOKEN" and body["error"] == "invalid_grant"


def test_expired_oauth_token_is_a_401_expired_authentication(hs: hubspot.Client, live: RunningServer) -> None:
    grant_code = live.sandbox.oauth.authorize(CLIENT_ID, "https://app.example/cb", "oauth")
    tokens = hs.oauth.tokens_api.create(grant_type="authorization_code", code=grant_code,
                                        redirect_uri="https://app.example/cb", client_id=CLIENT_ID,
                                        client_secret=CLIENT_SECRET)
    live.sandbox.clock.advance(1801)
    oauth_client = hubspot.Client.create(access_token=tokens.access_token, host=live.url)
    with pytest.raises(UnauthorizedException) as expired:
        oauth_client.crm.contacts.basic_api.get_page()
    body = json.loads(expired.value.body)
    assert body["category"] == "EXPIRED_AUTHENTICATION" and "expire time" in body["context"]


def test_api_request_with_base_url(hs: hubspot.Client) -> None:
    contact(hs, email="raw@example.com")
    response = hs.api_request({"method": "GET", "path": "/crm/v3/objects/contacts", "qs": {"limit": 1}})
    assert response.status_code == 200 and len(response.json()["results"]) == 1
