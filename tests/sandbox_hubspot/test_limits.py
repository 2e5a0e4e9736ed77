"""Rate limits: burst per rolling window, daily, search per second; HubSpot's 429 body and headers."""

from __future__ import annotations

from flask.testing import FlaskClient

from crm_qb.sandbox.hubspot.limits import Limits
from crm_qb.sandbox.hubspot.state import Sandbox, sandbox_of
from tests.sandbox_hubspot.conftest import AUTH, CLIENT_ID, CLIENT_SECRET, payload


def sandbox(client: FlaskClient) -> Sandbox:
    """The sandbox behind a test client."""
    return sandbox_of(client.application)


def test_burst_limit_answers_hubspots_429_and_rolls_with_the_clock(client: FlaskClient) -> None:
    sandbox(client).limiter.configure(Limits(burst=3))
    answers = [client.get("/crm/v3/objects/contacts", headers=AUTH) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a.headers["X-HubSpot-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert answers[0].headers["X-HubSpot-RateLimit-Max"] == "3"
    assert answers[0].headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    body = answers[3].get_json()
    documented = payload("rate_limit_429.json")
    assert set(body) == set(documented)
    assert body["policyName"] == "TEN_SECONDLY_ROLLING" and body["errorType"] == "RATE_LIMIT"
    sandbox(client).clock.advance(10.001)
    assert client.get("/crm/v3/objects/contacts", headers=AUTH).status_code == 200
    assert sandbox(client).limiter.usage()["throttled"] == 1


def test_daily_limit_and_its_headers_reset_at_midnight(client: FlaskClient) -> None:
    box = sandbox(client)
    box.limiter.configure(Limits(daily=2))
    first = client.get("/crm/v3/objects/contacts", headers=AUTH)
    assert first.headers["X-HubSpot-RateLimit-Daily"] == "2"
    assert first.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "1"
    client.get("/crm/v3/objects/contacts", headers=AUTH)
    refused = client.get("/crm/v3/objects/contacts", headers=AUTH)
    assert refused.status_code == 429 and refused.get_json()["policyName"] == "DAILY"
    assert refused.get_json()["message"] == "You have reached your daily limit."
    box.clock.advance(86_400)
    assert client.get("/crm/v3/objects/contacts", headers=AUTH).status_code == 200


def test_oauth_calls_share_the_burst_but_not_the_daily_limit(client: FlaskClient) -> None:
    box = sandbox(client)
    box.limiter.configure(Limits(burst=3, daily=1))
    code = box.oauth.authorize(CLIENT_ID, "https://app.example/cb", "oauth")
    token = client.post("/oauth/v1/token", data={"grant_type": "authorization_code", "code": code,
                                                 "redirect_uri": "https://app.example/cb", "client_id": CLIENT_ID,
                                                 "client_secret": CLIENT_SECRET}).get_json()["access_token"]
    oauth = {"Authorization": f"Bearer {token}"}
    first = client.get("/crm/v3/objects/contacts", headers=oauth)
    assert first.status_code == 200 and "X-HubSpot-RateLimit-Daily" not in first.headers
    assert client.get("/crm/v3/objects/contacts", headers=AUTH).status_code == 200  # private app: daily now spent
    assert client.get("/crm/v3/objects/contacts", headers=oauth).status_code == 200  # OAuth: no daily limit
    assert client.get("/crm/v3/objects/contacts", headers=oauth).status_code == 429  # burst of 3 shared


def test_search_has_its_own_per_second_limit(client: FlaskClient) -> None:
    sandbox(client).limiter.configure(Limits(search_per_second=2))
    body = {"filterGroups": []}
    answers = [client.post("/crm/v3/objects/contacts/search", json=body, headers=AUTH) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].get_json()["message"] == "You have reached your secondly limit."
    assert client.get("/crm/v3/objects/contacts", headers=AUTH).status_code == 200


def test_unauthenticated_calls_are_not_counted(client: FlaskClient) -> None:
    sandbox(client).limiter.configure(Limits(burst=1))
    assert client.get("/crm/v3/objects/contacts").status_code == 401
    assert client.get("/crm/v3/objects/contacts", headers=AUTH).status_code == 200
