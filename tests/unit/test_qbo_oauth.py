"""OAuth 2 with Intuit: discovery, consent URL, code exchange, refresh, revoke and their failures."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from crm_qb.errors import PermanentError, TransientError
from crm_qb.qbo.oauth import (
    Discovery,
    DiscoveryError,
    InvalidGrantError,
    OAuthClient,
    OAuthError,
    OAuthUnavailableError,
    TokenSet,
    authorization_url,
    exchange_code,
    refresh,
    revoke,
)
from tests.support import QBO_FIXTURES

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
DISCOVERY_URL = "https://developer.intuit.com/.well-known/openid_sandbox_configuration/"
DOCUMENT = {
    "issuer": "https://oauth.platform.intuit.com/op/v1",
    "authorization_endpoint": "https://appcenter.intuit.com/connect/oauth2",
    "token_endpoint": "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
    "revocation_endpoint": "https://developer.api.intuit.com/v2/oauth2/tokens/revoke",
    "userinfo_endpoint": "https://sandbox-accounts.platform.intuit.com/v1/openid_connect/userinfo",
    "jwks_uri": "https://oauth.platform.intuit.com/op/v1/jwks",
}
DISCOVERY = Discovery.from_document(DOCUMENT)
TOKEN_BODY = (QBO_FIXTURES / "oauth_token_response.json").read_bytes()
BASIC = "Basic " + base64.b64encode(b"client-id:client-secret").decode()


def form(request: requests.PreparedRequest) -> dict[str, list[str]]:
    body = request.body.decode() if isinstance(request.body, bytes) else request.body
    return parse_qs(body)


def test_discovery_document_fields() -> None:
    assert DISCOVERY.token_endpoint == DOCUMENT["token_endpoint"]
    assert DISCOVERY.revocation_endpoint == DOCUMENT["revocation_endpoint"]
    assert DISCOVERY.jwks_uri == DOCUMENT["jwks_uri"]


def test_discovery_without_token_endpoint_is_refused() -> None:
    with pytest.raises(DiscoveryError, match="token_endpoint"):
        Discovery.from_document({k: v for k, v in DOCUMENT.items() if k != "token_endpoint"})


def test_discovery_with_plain_http_outside_loopback_is_refused() -> None:
    with pytest.raises(ValueError, match="https"):
        Discovery.from_document({**DOCUMENT, "token_endpoint": "http://oauth.example.com/token"})


@responses.activate
def test_client_loads_discovery_once_and_keeps_it() -> None:
    responses.get(DISCOVERY_URL, json=DOCUMENT)
    client = OAuthClient("client-id", "client-secret", "https://app.example.com/qbo/callback", DISCOVERY_URL)

    assert client.discovery == DISCOVERY
    assert client.discovery == DISCOVERY
    assert len(responses.calls) == 1


@responses.activate
def test_discovery_server_error_is_transient() -> None:
    responses.get(DISCOVERY_URL, status=503)

    with pytest.raises(OAuthUnavailableError):
        Discovery.load(DISCOVERY_URL)


def test_authorization_url_carries_intuits_parameters() -> None:
    url = authorization_url("client-id", "https://app.example.com/cb", "state-123", DISCOVERY)

    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == DOCUMENT["authorization_endpoint"]
    assert parse_qs(parts.query) == {
        "response_type": ["code"], "client_id": ["client-id"], "redirect_uri": ["https://app.example.com/cb"],
        "scope": ["com.intuit.quickbooks.accounting"], "state": ["state-123"],
    }


def test_authorization_url_joins_several_scopes_with_spaces() -> None:
    url = authorization_url("c", "https://a/cb", "s", DISCOVERY, scope="com.intuit.quickbooks.accounting openid")

    assert parse_qs(urlsplit(url).query)["scope"] == ["com.intuit.quickbooks.accounting openid"]


def test_authorization_url_needs_a_state() -> None:
    with pytest.raises(ValueError, match="state"):
        authorization_url("c", "https://a/cb", "", DISCOVERY)


@responses.activate
def test_exchange_code_posts_a_basic_auth_form_and_builds_a_token_set() -> None:
    responses.post(DOCUMENT["token_endpoint"], body=TOKEN_BODY, content_type="application/json",
                   headers={"intuit_tid": "tok-1"})

    tokens = exchange_code("client-id", "client-secret", "https://app.example.com/cb", "the-code", DISCOVERY,
                           realm_id="9130", clock=lambda: NOW)

    request = responses.calls[0].request
    assert request.headers["Authorization"] == BASIC
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form(request) == {"grant_type": ["authorization_code"], "code": ["the-code"],
                             "redirect_uri": ["https://app.example.com/cb"]}
    assert tokens == TokenSet("<access_token>", "<refresh_token>", NOW + timedelta(seconds=3600),
                              NOW + timedelta(seconds=8726400), "9130")


@responses.activate
def test_refresh_posts_the_refresh_token() -> None:
    responses.post(DOCUMENT["token_endpoint"], body=TOKEN_BODY, content_type="application/json")

    tokens = refresh("client-id", "client-secret", "old-refresh", DISCOVERY, clock=lambda: NOW)

    request = responses.calls[0].request
    assert request.headers["Authorization"] == BASIC
    assert form(request) == {"grant_type": ["refresh_token"], "refresh_token": ["old-refresh"]}
    assert tokens.refresh_token == "<refresh_token>"
    assert tokens.access_expires_at == NOW + timedelta(hours=1)
    assert tokens.realm_id is None


@responses.activate
def test_refresh_without_refresh_expiry_leaves_it_unknown() -> None:
    responses.post(DOCUMENT["token_endpoint"], json={"access_token": "a", "refresh_token": "r",
                                                     "token_type": "bearer", "expires_in": 3600})

    tokens = refresh("client-id", "client-secret", "old", DISCOVERY, clock=lambda: NOW)

    assert tokens.refresh_expires_at is None
    assert tokens.refresh_valid_at(NOW + timedelta(days=5000))


@responses.activate
def test_invalid_grant_is_permanent_and_says_why() -> None:
    responses.post(DOCUMENT["token_endpoint"], status=400,
                   body=(QBO_FIXTURES / "oauth_invalid_grant_error.json").read_bytes(), headers={"intuit_tid": "t-9"})

    with pytest.raises(InvalidGrantError) as caught:
        refresh("client-id", "client-secret", "superseded", DISCOVERY)

    assert isinstance(caught.value, PermanentError)
    assert caught.value.error == "invalid_grant"
    assert caught.value.intuit_tid == "t-9"
    assert "invalid_grant" in str(caught.value)


@responses.activate
def test_invalid_grant_with_description_keeps_the_reason() -> None:
    responses.post(DOCUMENT["token_endpoint"], status=400,
                   json={"error": "invalid_grant", "error_description": "Token invalid"})

    with pytest.raises(InvalidGrantError, match="Token invalid"):
        refresh("client-id", "client-secret", "superseded", DISCOVERY)


@responses.activate
def test_bad_client_credentials_are_permanent_but_not_invalid_grant() -> None:
    responses.post(DOCUMENT["token_endpoint"], status=401, json={"error": "invalid_client"})

    with pytest.raises(OAuthError) as caught:
        refresh("client-id", "wrong", "r", DISCOVERY)

    assert not isinstance(caught.value, InvalidGrantError)
    assert caught.value.error == "invalid_client"


@pytest.mark.parametrize("status", [429, 500, 502, 503])
@responses.activate
def test_token_service_failures_are_transient(status: int) -> None:
    responses.post(DOCUMENT["token_endpoint"], status=status, body=b"<html>down</html>")

    with pytest.raises(OAuthUnavailableError) as caught:
        refresh("client-id", "client-secret", "r", DISCOVERY)

    assert isinstance(caught.value, TransientError)


@responses.activate
def test_network_failure_is_transient() -> None:
    responses.post(DOCUMENT["token_endpoint"], body=requests.ConnectionError("refused"))

    with pytest.raises(OAuthUnavailableError):
        refresh("client-id", "client-secret", "r", DISCOVERY)


@responses.activate
def test_a_200_without_tokens_is_a_permanent_oauth_error() -> None:
    responses.post(DOCUMENT["token_endpoint"], json={"token_type": "bearer"})

    with pytest.raises(OAuthError, match="unusable"):
        refresh("client-id", "client-secret", "r", DISCOVERY)


@responses.activate
def test_revoke_posts_json_with_basic_auth() -> None:
    responses.post(DOCUMENT["revocation_endpoint"], status=200)

    revoke("client-id", "client-secret", "the-refresh-token", DISCOVERY)

    request = responses.calls[0].request
    assert request.headers["Authorization"] == BASIC
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body) == {"token": "the-refresh-token"}


@responses.activate
def test_revoke_refused_is_an_oauth_error() -> None:
    responses.post(DOCUMENT["revocation_endpoint"], status=400, json={"error": "invalid_request"})

    with pytest.raises(OAuthError):
        revoke("client-id", "client-secret", "t", DISCOVERY)


@responses.activate
def test_loopback_http_endpoints_are_used_over_http() -> None:
    local = Discovery("http://127.0.0.1:8765/oauth/authorize", "http://127.0.0.1:8765/oauth/token",
                      "http://127.0.0.1:8765/oauth/revoke")
    responses.post("http://127.0.0.1:8765/oauth/token", body=TOKEN_BODY, content_type="application/json")
    responses.post("http://127.0.0.1:8765/oauth/revoke", status=200)

    tokens = refresh("client-id", "client-secret", "r", local, clock=lambda: NOW)
    revoke("client-id", "client-secret", "r", local)
    url = authorization_url("client-id", "http://127.0.0.1:9000/cb", "s", local)

    assert tokens.access_token == "<access_token>"
    assert [call.request.url for call in responses.calls] == ["http://127.0.0.1:8765/oauth/token",
                                                              "http://127.0.0.1:8765/oauth/revoke"]
    assert url.startswith("http://127.0.0.1:8765/oauth/authorize?")


def test_plain_http_to_another_host_is_refused_before_any_request() -> None:
    remote = Discovery("http://auth.example.com/a", "http://auth.example.com/t", "http://auth.example.com/r")

    with pytest.raises(ValueError, match="loopback"):
        refresh("client-id", "client-secret", "r", remote)


def test_insecure_transport_is_not_enabled_process_wide(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    monkeypatch.delenv("OAUTHLIB_INSECURE_TRANSPORT", raising=False)
    authorization_url("client-id", "http://127.0.0.1:9000/cb", "s",
                      Discovery("http://127.0.0.1:1/a", "http://127.0.0.1:1/t", "http://127.0.0.1:1/r"))

    assert "OAUTHLIB_INSECURE_TRANSPORT" not in os.environ


def test_token_set_repr_hides_the_tokens() -> None:
    tokens = TokenSet("secret-access", "secret-refresh", NOW, NOW, "1")

    assert "secret" not in repr(tokens)


def test_access_validity_respects_skew() -> None:
    tokens = TokenSet("a", "r", NOW + timedelta(minutes=4), None)

    assert tokens.access_valid_at(NOW)
    assert not tokens.access_valid_at(NOW, timedelta(minutes=5))


def test_oauth_client_repr_hides_the_secret() -> None:
    client = OAuthClient("client-id", "very-secret", "https://a/cb", DISCOVERY_URL, discovery=DISCOVERY)

    assert "very-secret" not in repr(client)
