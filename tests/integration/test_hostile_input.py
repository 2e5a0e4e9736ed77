"""Hostile input is a 4xx, never a 500 (issue 11 items 6 and 7).

Each case below answered 500 (or, for a wrong type, 202 with junk stored) before the fix. The JSON endpoints answer
with the contract's error shape ``{"error": {"code", "message"}}``; the HTML pages (panel, admin) with their error
page and the same status.
"""

from __future__ import annotations

import json
import time

import pytest
from flask import Flask
from flask.testing import FlaskClient

from crm_qb.signatures import sign_crm
from tests.support.connections import add_connection, count_events, crm_body, post_crm, post_qbo
from tests.support.folder import link

UPDATED = {"id": "evt-1", "type": "contact.updated", "occurred_at": "2026-11-20T10:00:00Z",
           "contact": {"id": "c-1", "first_name": "Zoë"}}


def _json_error(response: object, status: int) -> dict[str, str]:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:300])  # type: ignore[attr-defined]
    body = response.json  # type: ignore[attr-defined]
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return body["error"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("timestamp", ["9" * 400, "²", "1" * 20, "-5", "1e3", ""])
def test_a_crm_signature_with_a_malformed_timestamp_is_401(app: Flask, client: FlaskClient, timestamp: str) -> None:
    conn = add_connection(app)
    body = crm_body(UPDATED)
    mac = sign_crm(body, conn.crm_hook_secret, int(time.time())).split("v1=", 1)[1]
    response = client.post(f"/webhooks/crm/{conn.id}", data=body, content_type="application/json",
                           headers={"X-CRM-Signature": f"t={timestamp},v1={mac}"})
    assert _json_error(response, 401)["code"] == "invalid_signature"
    assert count_events(app) == 0


HUGE_IDS = [2**63, 2**63 - 1, 2**31, 10**30]


@pytest.mark.parametrize("big", HUGE_IDS)
def test_connection_ids_beyond_any_row_are_404(app: Flask, client: FlaskClient, big: int) -> None:
    assert _json_error(post_crm(client, big, "s", crm_body(UPDATED)), 404)
    assert _json_error(client.get(f"/api/v1/connections/{big}/contacts/c1/quickbooks",
                                  headers={"Authorization": "Bearer x"}), 404)
    for path in (f"/panel/{big}/contacts/c1?token=x", f"/panel/{big}/embed/c1?token=x",
                 f"/admin/connections/{big}", f"/admin/connections/{big}/audit",
                 f"/connections/{big}/qbo/connect"):
        assert client.get(path).status_code == 404, path


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"eventNotifications": [{"realmId": "1", "dataChangeEvent": "x"}]},
         "eventNotifications[0].dataChangeEvent"),
        ({"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": "x"}}]},
         "eventNotifications[0].dataChangeEvent.entities"),
        ({"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": ["x"]}}]},
         "eventNotifications[0].dataChangeEvent.entities[0]"),
        ({"eventNotifications": [{"realmId": {"a": 1}, "dataChangeEvent": {"entities": []}}]},
         "eventNotifications[0].realmId"),
        ({"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": [
            {"name": ["Customer"], "id": "1", "operation": "Update", "lastUpdated": "2026-01-01T00:00:00Z"}]}}]},
         "eventNotifications[0].dataChangeEvent.entities[0].name"),
        ({"eventNotifications": "x"}, "eventNotifications"),
        ([{"id": {"x": 1}, "type": "qbo.customer.updated.v1", "intuitaccountid": "1"}], "[0].id"),
        ([{"id": "1", "type": "qbo.customer.updated.v1", "intuitaccountid": "1", "intuitentityid": [1]}],
         "[0].intuitentityid"),
        ([{"id": "1", "type": "qbo.customer.updated.v1", "intuitaccountid": "1", "time": 5}], "[0].time"),
        (["x"], "[0]"),
    ],
)
def test_a_signed_qbo_body_of_the_wrong_shape_is_400(app: Flask, client: FlaskClient, body: object,
                                                     field: str) -> None:
    error = _json_error(post_qbo(client, json.dumps(body).encode()), 400)
    assert error["code"] == "invalid_body" and error["message"].startswith(f"{field}:"), error
    assert count_events(app) == 0


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize("depth", [100_000, 1_000, 100])
def test_a_signed_body_nested_too_deep_is_400(app: Flask, client: FlaskClient, depth: int) -> None:
    conn = add_connection(app)
    qbo = _json_error(post_qbo(client, _nested(depth)), 400)
    assert qbo["message"].startswith("body: ")
    crm = _json_error(post_crm(client, conn.id, conn.crm_hook_secret, b'{"events": ' + _nested(depth) + b"}"), 400)
    assert crm["message"].startswith(("body: ", "events"))
    assert count_events(app) == 0


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({**UPDATED, "contact": {"id": {"nested": "junk"}}}, "events[0].contact.id"),
        ({**UPDATED, "contact": {"id": 17}}, "events[0].contact.id"),
        ({**UPDATED, "contact": {"id": ""}}, "events[0].contact.id"),
        ({**UPDATED, "contact": ["c-1"]}, "events[0].contact"),
        ({"id": "e", "type": "contact.deleted", "occurred_at": "2026-11-20T10:00:00Z", "contact_id": {"a": 1}},
         "events[0].contact_id"),
        ({"id": "e", "type": "contact.merged", "occurred_at": "2026-11-20T10:00:00Z", "contact_id": "c-2",
          "merged_into": ["c-1"]}, "events[0].merged_into"),
        ({**UPDATED, "id": 5}, "events[0].id"),
        ({**UPDATED, "occurred_at": 1700000000}, "events[0].occurred_at"),
    ],
)
def test_a_signed_crm_hook_with_a_wrong_type_is_400(app: Flask, client: FlaskClient, event: dict[str, object],
                                                    field: str) -> None:
    conn = add_connection(app)
    error = _json_error(post_crm(client, conn.id, conn.crm_hook_secret, crm_body(event)), 400)
    assert error["message"].startswith(f"{field}:"), error
    assert count_events(app) == 0


BAD_PAGES = [str(10**30), str(2**62), str(2**63), "²", "٣", "1.5", "-1", "0", " 1"]


@pytest.mark.parametrize("page", BAD_PAGES)
def test_an_impossible_page_is_400_on_the_api(app: Flask, client: FlaskClient, page: str) -> None:
    conn = add_connection(app)
    link(app, conn.id, "c1", "1")
    response = client.get(f"/api/v1/connections/{conn.id}/contacts/c1/quickbooks",
                          query_string={"page": page}, headers={"Authorization": f"Bearer {conn.api_key}"})
    assert _json_error(response, 400)["code"] == "invalid_page"
    per_page = client.get(f"/api/v1/connections/{conn.id}/contacts/c1/quickbooks",
                          query_string={"per_page": page}, headers={"Authorization": f"Bearer {conn.api_key}"})
    assert _json_error(per_page, 400)["code"] == "invalid_per_page"


@pytest.mark.parametrize("page", BAD_PAGES)
def test_an_impossible_page_is_400_on_the_panel_and_the_audit_page(app: Flask, client: FlaskClient,
                                                                   page: str) -> None:
    from crm_qb.runtime import runtime
    from crm_qb.web import signing
    from crm_qb.web.panel_tokens import make_panel_token
    from tests.support.connections import connection_row

    conn = add_connection(app)
    with app.app_context():
        token = make_panel_token(runtime(app).settings.secret_key, connection_row(app, conn.id), "c1")
        link = signing.link_token(runtime(app).settings.secret_key, conn.id)
    panel = client.get(f"/panel/{conn.id}/contacts/c1", query_string={"token": token, "page": page})
    assert panel.status_code == 400 and "page" in panel.get_data(as_text=True)
    assert client.get(f"/admin/connections/{conn.id}", query_string={"token": link}).status_code == 303
    audit = client.get(f"/admin/connections/{conn.id}/audit", query_string={"page": page})
    assert audit.status_code == 400 and "page" in audit.get_data(as_text=True)
    conflicts = client.get(f"/admin/connections/{conn.id}/conflicts", query_string={"page": page})
    assert conflicts.status_code == 400
