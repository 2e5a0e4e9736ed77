"""OAuth 2: codes, token exchange, rotation with grace, revocation, gateway faults on /v3."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from crm_qb.sandbox.qbo.app import create_app, sandbox_of
from crm_qb.sandbox.qbo.sandbox import SandboxConfig

from .conftest import REDIRECT, Api, authorize, basic, exchange, load_payload


def _refresh(client, sandbox, token: str):
    return client.post("/oauth2/v1/tokens/bearer", data={"grant_type": "refresh_token", "refresh_token": token},
                       headers=basic(sandbox.config.client_id, sandbox.config.client_secret))


# The keys of Intuit's published discovery documents, sandbox and production alike (docs/qbo/sandbox-fidelity.md).
INTUIT_DISCOVERY_KEYS = [
    "issuer", "authorization_endpoint", "token_endpoint", "userinfo_endpoint", "revocation_endpoint", "jwks_uri",
    "response_types_supported", "subject_types_supported", "id_token_signing_alg_values_supported",
    "scopes_supported", "token_endpoint_auth_methods_supported", "claims_supported"]
# The claims Intuit's UserInfo endpoint answers with every OpenID scope granted (same doc).
INTUIT_USERINFO_KEYS = {"sub", "email", "emailVerified", "givenName", "familyName", "phoneNumber",
                        "phoneNumberVerified", "address"}
OPENID = "openid email profile phone address com.intuit.quickbooks.accounting"


@pytest.mark.parametrize("path", ["/.well-known/openid_sandbox_configuration",
                                  "/.well-known/openid_sandbox_configuration/",
                                  "/.well-known/openid-sandbox-configuration", "/.well-known/openid_configuration"])
def test_discovery_has_every_key_intuit_publishes_and_points_here(client, path):
    doc = client.get(path).get_json()
    assert list(doc) == INTUIT_DISCOVERY_KEYS
    assert doc["issuer"] == "https://oauth.platform.intuit.com/op/v1"
    assert doc["token_endpoint"] == "http://localhost/oauth2/v1/tokens/bearer"
    assert doc["authorization_endpoint"] == "http://localhost/connect/oauth2"
    assert doc["revocation_endpoint"] == "http://localhost/v2/oauth2/tokens/revoke"
    assert doc["jwks_uri"] == "http://localhost/op/v1/jwks"
    assert doc["userinfo_endpoint"] == "http://localhost/v1/openid_connect/userinfo"
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    assert doc["scopes_supported"] == ["openid", "email", "profile", "address", "phone"]
    assert doc["claims_supported"] == ["aud", "exp", "iat", "iss", "realmid", "sub"]


def test_every_endpoint_the_discovery_names_answers(client, sandbox):
    doc = client.get("/.well-known/openid_sandbox_configuration").get_json()
    paths = {key: urlsplit(doc[key]).path for key in INTUIT_DISCOVERY_KEYS if key.endswith(("endpoint", "uri"))}
    assert client.get(paths["jwks_uri"]).status_code == 200
    assert client.get(paths["userinfo_endpoint"]).status_code == 401  # no token
    assert client.post(paths["token_endpoint"]).status_code == 401  # no client credentials
    assert client.post(paths["revocation_endpoint"]).status_code == 401
    assert client.get(paths["authorization_endpoint"]).status_code == 400  # no client_id


def _verify_rs256(token: str, jwks: dict) -> dict:
    """Check an ID token's signature against the JWKS key its header names; return the claims."""
    header_b64, payload_b64, signature_b64 = token.split(".")
    header = json.loads(_unb64(header_b64))
    key = next(key for key in jwks["keys"] if key["kid"] == header["kid"])
    assert header["alg"] == key["alg"] == "RS256" and key["kty"] == "RSA" and key["use"] == "sig"
    public = rsa.RSAPublicNumbers(int.from_bytes(_unb64(key["e"]), "big"),
                                  int.from_bytes(_unb64(key["n"]), "big")).public_key()
    public.verify(_unb64(signature_b64), f"{header_b64}.{payload_b64}".encode(), padding.PKCS1v15(),
                  hashes.SHA256())  # raises InvalidSignature when it does not verify
    return json.loads(_unb64(payload_b64))


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_id_token_is_rs256_signed_by_the_published_key(client, sandbox):
    code, query = authorize(client, sandbox, scope=OPENID)
    tokens = exchange(client, sandbox, code).get_json()
    claims = _verify_rs256(tokens["id_token"], client.get("/op/v1/jwks").get_json())
    assert claims["iss"] == "https://oauth.platform.intuit.com/op/v1" and claims["aud"] == [sandbox.config.client_id]
    assert claims["realmid"] == query["realmId"][0] and claims["exp"] - claims["iat"] == 3600
    assert set(claims) == {"aud", "exp", "iat", "iss", "realmid", "sub"}  # the claims_supported


def test_userinfo_answers_the_openid_claims_of_the_granted_scopes(client, sandbox):
    code, _ = authorize(client, sandbox, scope=OPENID)
    tokens = exchange(client, sandbox, code).get_json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    info = client.get("/v1/openid_connect/userinfo", headers=bearer).get_json()
    assert set(info) == INTUIT_USERINFO_KEYS
    assert set(info["address"]) == {"streetAddress", "locality", "region", "postalCode", "country"}
    assert info["emailVerified"] is True
    id_claims = json.loads(_unb64(tokens["id_token"].split(".")[1]))
    assert info["sub"] == id_claims["sub"]
    assert client.post("/v1/openid_connect/userinfo", headers=bearer).get_json() == info
    code, _ = authorize(client, sandbox, scope="openid email")
    narrow = exchange(client, sandbox, code).get_json()["access_token"]
    assert set(client.get("/v1/openid_connect/userinfo", headers={"Authorization": f"Bearer {narrow}"})
               .get_json()) == {"sub", "email", "emailVerified"}


def test_userinfo_needs_a_live_token_with_the_openid_scope(client, sandbox):
    code, _ = authorize(client, sandbox)  # accounting only
    plain = exchange(client, sandbox, code).get_json()["access_token"]
    refused = client.get("/v1/openid_connect/userinfo", headers={"Authorization": f"Bearer {plain}"})
    assert refused.status_code == 403 and refused.get_json() == {"error": "insufficient_scope"}
    unknown = client.get("/v1/openid_connect/userinfo", headers={"Authorization": "Bearer nope"})
    assert unknown.status_code == 401 and "invalid_token" in unknown.headers["WWW-Authenticate"]


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
