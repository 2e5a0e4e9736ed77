"""Property-based fuzzing of HubSpot's two ways in: signed webhook batches and signed app-card requests.

Whatever a holder of the app's secret (or a stranger) sends, the answer is one the contract names, never a 500.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st

from crm_qb.config import Settings
from crm_qb.connections import create_hubspot_connection
from crm_qb.runtime import runtime
from crm_qb.sandbox.hubspot.signatures import fetch_headers, webhook_headers
from tests.conftest import make_settings
from tests.integration.test_fuzz_ingress import FUZZ, _assert_contract, ids, json_values, maybe, numbers, texts
from tests.support.folder import APP_BASE

PUBLIC, SECRET = "https://crm-qb.example.com", "fuzz-app-secret"
SUBSCRIPTIONS = ["contact.creation", "contact.propertyChange", "contact.deletion", "contact.merge",
                 "contact.restore", "company.creation", "object.creation"]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """crm-qb as the HubSpot app, reached at PUBLIC."""
    return make_settings(tmp_path, database_url, public_url=PUBLIC, hubspot_client_secret=SECRET,
                         qbo_environment="production", qbo_app_base=APP_BASE)


@pytest.fixture
def portal(app: Flask) -> str:
    """A HubSpot connection of portal 62515."""
    with app.app_context():
        create_hubspot_connection(runtime(app).secrets, api_base="http://127.0.0.1:9", token="t", portal_id="62515")
    return "62515"


whole = st.one_of(st.integers(min_value=0, max_value=10**20), st.just(62515), ids)


@st.composite
def hubspot_bodies(draw: st.DrawFn) -> Any:
    event = {"eventId": draw(whole), "subscriptionType": draw(st.one_of(st.sampled_from(SUBSCRIPTIONS), maybe)),
             "portalId": draw(st.one_of(st.just(62515), whole)), "occurredAt": draw(whole),
             "objectId": draw(whole), "propertyName": draw(st.one_of(texts, maybe)),
             "mergedObjectIds": draw(st.one_of(st.lists(whole, max_size=3), maybe)),
             "newObjectId": draw(whole), "primaryObjectId": draw(whole)}
    return draw(st.one_of(st.just([event]), st.lists(st.just(event), max_size=3), maybe))


@FUZZ
@given(body=st.one_of(hubspot_bodies(), json_values))
def test_any_signed_hubspot_batch_is_200_or_a_400_naming_the_field(app: Flask, client: FlaskClient, portal: str,
                                                                   body: Any) -> None:
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    headers = webhook_headers(SECRET, "POST", PUBLIC + "/webhooks/hubspot", raw, int(time.time() * 1000))
    response = client.post("/webhooks/hubspot", data=raw, content_type="application/json", headers=headers)
    _assert_contract(response, {200, 400})


@FUZZ
@given(stamp=st.one_of(texts, numbers), signature=texts)
def test_any_hubspot_signature_headers_are_401(app: Flask, client: FlaskClient, portal: str, stamp: str,
                                               signature: str) -> None:
    headers = {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": stamp}
    safe = {k: v.replace("\r", "").replace("\n", "").encode("utf-8", "replace").decode("latin-1")
            for k, v in headers.items()}
    response = client.post("/webhooks/hubspot", data=b'[{"portalId": 62515}]', content_type="application/json",
                           headers=safe)
    _assert_contract(response, {401})


@FUZZ
@given(contact=st.one_of(st.text(min_size=1, max_size=300), numbers),
       params=st.fixed_dictionaries({}, optional={"limit": st.one_of(numbers, texts),
                                                  "portalId": st.one_of(st.just("62515"), numbers, texts)}))
def test_any_signed_card_request_is_answered_without_500(app: Flask, client: FlaskClient, portal: str,
                                                         contact: str, params: dict[str, str]) -> None:
    path = f"/hubspot/card/contacts/{quote(contact, safe='')}"
    query = urlencode(params)
    full = path + (f"?{query}" if query else "")
    headers = fetch_headers(SECRET, "GET", PUBLIC + full, b"", int(time.time() * 1000))
    _assert_contract(client.get(full, headers=headers), {200, 400, 401, 404})
