"""OAuth 2: codes, token exchange, rotation with grace, revocation, gateway faults on /v3."""

from __future__ import annotations

from crm_qb.sandbox.qbo.app import create_app, sandbox_of
from crm_qb.sandbox.qbo.sandbox import SandboxConfig

from .conftest import REDIRECT, Api, authorize, basic, exchange, load_payload


def _refresh(client, sandbox, token: str):
    return client.post("/oauth2/v1/tokens/bearer", data={"grant_type": "refresh_token", "refresh_token": token},
                       headers=basic(sandbox.config.client_id, sandbox.config.client_secret))


def test_discovery_points_at_this_server(client):
    doc = client.get("/.well-known/openid_sandbox_configuration").get_json()
    assert doc["token_endpoint"] == "http://localhost/oauth2/v1/tokens/bearer"
    assert doc["authorization_endpoint"] == "http://localhost/connect/oauth2"
    assert doc["revocation_endpoint"] == "http://localhost/v2/oauth2/tokens/revoke"
    assert "realmid" in doc["claims_supported"]


def test_authorize_redirects_with_code_state_and_demo_realm(client, sandbox):
    code, query = authorize(client, sandbox)
    assert code and query["state"] == ["st4te"] and query["realmId"] == [sandbox.demo_realm_id]


def test_denial_redirects_with_access_denied(client, sandbox):
    response = client.get("/connect/oauth2", query_string={
        "client_id": sandbox.config.client_id, "response_type": "code", "redirect_uri": REDIRECT,
        "state": "s", "deny": "1"})
    assert "error=access_denied" in response.headers["Location"]


def test_token_response_has_intuit_keys_and_code_is_single_use(client, sandbox):
    code, _ = authorize(client, sandbox)
    first = exchange(client, sandbox, code)
    expected = set(load_payload("oauth_token_response.json")) - {"id_token"}  # id_token only with openid
    assert first.status_code == 200 and set(first.get_json()) == expected
    assert first.get_json()["expires_in"] == 3600 and first.get_json()["x_refresh_token_expires_in"] > 0
    again = exchange(client, sandbox, code)
    assert again.status_code == 400 and again.get_data() == b'{"error":"invalid_grant"}'


def test_openid_scope_adds_id_token_with_realmid(client, sandbox):
    code, _ = authorize(client, sandbox, scope="com.intuit.quickbooks.accounting openid")
    body = exchange(client, sandbox, code).get_json()
    assert set(body) == set(load_payload("oauth_token_response.json"))


def test_bad_client_secret_is_invalid_client(client, sandbox):
    code, _ = authorize(client, sandbox)
    response = client.post("/oauth2/v1/tokens/bearer", headers=basic(sandbox.config.client_id, "wrong"),
                           data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT})
    assert response.status_code == 401 and response.get_json() == {"error": "invalid_client"}


def test_refresh_rotates_and_superseded_token_fails_after_grace(client, sandbox):
    code, _ = authorize(client, sandbox)
    first = exchange(client, sandbox, code).get_json()
    second = _refresh(client, sandbox, first["refresh_token"]).get_json()
    assert second["refresh_token"] != first["refresh_token"]
    stale = _refresh(client, sandbox, first["refresh_token"])  # grace is 0 s in tests
    assert stale.status_code == 400 and stale.get_json() == {"error": "invalid_grant"}
    assert _refresh(client, sandbox, second["refresh_token"]).status_code == 200


def test_superseded_token_works_within_grace_period():
    app = create_app(SandboxConfig(refresh_grace_seconds=60.0))
    sandbox, client = sandbox_of(app), app.test_client()
    first = exchange(client, sandbox, authorize(client, sandbox)[0]).get_json()
    latest = _refresh(client, sandbox, first["refresh_token"]).get_json()["refresh_token"]
    again = _refresh(client, sandbox, first["refresh_token"]).get_json()
    assert again["refresh_token"] == latest
    sandbox.clock.advance(61)
    assert _refresh(client, sandbox, first["refresh_token"]).status_code == 400


def test_expired_access_token_gets_gateway_401_and_refresh_recovers(client, sandbox):
    tokens = exchange(client, sandbox, authorize(client, sandbox)[0]).get_json()
    api = Api(client, sandbox.demo_realm_id, tokens["access_token"])
    assert api.get("customer/1").status_code == 200
    sandbox.clock.advance(3601)
    expired = api.get("customer/1")
    assert expired.status_code == 401
    assert set(expired.get_json()) == set(load_payload("fault_auth_3200_gateway_401.json"))
    assert expired.get_json()["fault"]["error"][0]["code"] == "3200"
    api.token = _refresh(client, sandbox, tokens["refresh_token"]).get_json()["access_token"]
    assert api.get("customer/1").status_code == 200


def test_missing_token_is_401_and_other_realm_is_403(client, sandbox, api):
    assert client.get(f"/v3/company/{api.realm_id}/customer/1").status_code == 401
    other = Api(client, "123146090000001", api.token).get("customer/1")
    assert other.status_code == 403
    assert other.get_json() .keys() == load_payload("fault_authz_3100_gateway_403.json").keys()
    assert other.get_json()["fault"]["error"][0]["code"] == "3100"


def test_revoke_kills_access_and_refresh_tokens(client, sandbox):
    tokens = exchange(client, sandbox, authorize(client, sandbox)[0]).get_json()
    headers = basic(sandbox.config.client_id, sandbox.config.client_secret)
    response = client.post("/v2/oauth2/tokens/revoke", json={"token": tokens["refresh_token"]}, headers=headers)
    assert response.status_code == 200
    assert Api(client, sandbox.demo_realm_id, tokens["access_token"]).get("customer/1").status_code == 401
    assert _refresh(client, sandbox, tokens["refresh_token"]).status_code == 400
