"""Everything time-dependent in the sandbox reads its clock, so a test moving /_sandbox/clock moves all of it:
MetaData times, the ``time`` of answers, TxnDate defaults and CURRENT_DATE, the CDC window, token and code
expiry, ID token times, webhook timestamps, the 429 body and the rate window."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

from .conftest import FROZEN_AT, Api, access_token, authorize, basic, exchange

TEN_DAYS = 10 * 86400
LATER = FROZEN_AT + timedelta(days=10)  # 2026-03-12T18:00Z = 11:00 in Los Angeles (daylight time from 03-08)


def _move(client, seconds: float) -> None:
    assert client.post("/_sandbox/clock", json={"advance_seconds": seconds}).status_code == 200


def test_metadata_answer_times_and_default_dates_follow_the_clock(frozen_client, frozen_api, frozen):
    _move(frozen_client, TEN_DAYS)
    frozen_api.token = access_token(frozen_client, frozen, frozen_api.realm_id)  # the old one expired meanwhile
    response = frozen_api.post("customer", {"DisplayName": "Clocked"})
    assert response.json_body["Customer"]["MetaData"] == {"CreateTime": "2026-03-12T11:00:00-07:00",
                                                          "LastUpdatedTime": "2026-03-12T11:00:00-07:00"}
    assert response.json_body["time"] == "2026-03-12T11:00:00.000-07:00"
    invoice = frozen_api.create("Invoice", {"CustomerRef": {"value": response.json_body["Customer"]["Id"]},
                                            "Line": [{"Amount": 5, "DetailType": "SalesItemLineDetail",
                                                      "SalesItemLineDetail": {"ItemRef": {"value": "1"}}}]})
    assert invoice["TxnDate"] == "2026-03-12"
    dated = frozen_api.query("select * from Invoice where TxnDate = CURRENT_DATE")["Invoice"]
    assert [row["Id"] for row in dated] == [invoice["Id"]]


def test_the_cdc_window_and_answer_time_follow_the_clock(frozen_client, frozen_api, frozen):
    day_one = FROZEN_AT.isoformat()
    assert frozen_api.get("cdc", entities="Customer", changedSince=day_one).status_code == 200
    _move(frozen_client, 31 * 86400)
    late = frozen_api.get("cdc", entities="Customer", changedSince=day_one)
    assert late.status_code == 401  # the access token expired long ago, by the same clock
    frozen_api.token = access_token(frozen_client, frozen, frozen_api.realm_id)
    refused = frozen_api.get("cdc", entities="Customer", changedSince=day_one)
    assert refused.status_code == 400 and refused.json_body["Fault"]["Error"][0]["element"] == "changedSince"
    answer = frozen_api.get("cdc", entities="Customer",
                            changedSince=(FROZEN_AT + timedelta(days=30)).isoformat()).json_body
    assert answer["time"].startswith("2026-04-02T11:00:00")


def test_tokens_codes_and_id_tokens_follow_the_clock(frozen_client, frozen):
    code, _ = authorize(frozen_client, frozen, scope="openid com.intuit.quickbooks.accounting")
    _move(frozen_client, 601)  # authorization codes live ten minutes
    assert exchange(frozen_client, frozen, code).get_json() == {"error": "invalid_grant"}
    code, _ = authorize(frozen_client, frozen, scope="openid com.intuit.quickbooks.accounting")
    tokens = exchange(frozen_client, frozen, code).get_json()
    claims = json.loads(base64.urlsafe_b64decode(tokens["id_token"].split(".")[1] + "=="))
    assert claims["iat"] == int((FROZEN_AT + timedelta(seconds=601)).timestamp())
    api = Api(frozen_client, frozen.demo_realm_id, tokens["access_token"])
    _move(frozen_client, 3599)
    assert api.get("customer/1").status_code == 200
    _move(frozen_client, 1)
    assert api.get("customer/1").status_code == 401
    _move(frozen_client, 8726400)  # past the refresh token's lifetime
    refreshed = frozen_client.post("/oauth2/v1/tokens/bearer", headers=basic(frozen.config.client_id,
                                                                              frozen.config.client_secret),
                                   data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]})
    assert refreshed.get_json() == {"error": "invalid_grant"}


def test_webhook_timestamps_follow_the_clock(frozen_client, frozen_api, frozen, hooks):
    for fmt in ("cloudevents", "legacy"):
        frozen_client.post("/_sandbox/webhooks", json={"url": "http://127.0.0.1:9/h", "format": fmt, "delay_ms": 0})
        _move(frozen_client, 3600)
        frozen_api.token = access_token(frozen_client, frozen, frozen_api.realm_id)
        frozen_api.create("Term", {"Name": f"Clock {fmt}"})
        frozen.dispatcher.deliver_due()
    cloudevent = json.loads(hooks.deliveries[0][1])[0]
    legacy = json.loads(hooks.deliveries[1][1])["eventNotifications"][0]["dataChangeEvent"]["entities"][0]
    assert cloudevent["time"] == "2026-03-02T19:00:00.000Z"
    assert legacy["lastUpdated"] == "2026-03-02T20:00:00.000Z"


def test_the_throttle_body_and_the_rate_window_follow_the_clock(frozen_client, frozen_api):
    frozen_client.post("/_sandbox/limits", json={"per_minute": 1})
    assert frozen_api.get("customer/1").status_code == 200
    _move(frozen_client, 30)
    throttled = frozen_api.get("customer/1")
    assert throttled.status_code == 429
    stamped = datetime.fromisoformat(ET.fromstring(throttled.get_data()).attrib["time"])
    assert stamped == FROZEN_AT + timedelta(seconds=30)
    _move(frozen_client, 30)  # the first request is now a full window old
    assert frozen_api.get("customer/1").status_code == 200
