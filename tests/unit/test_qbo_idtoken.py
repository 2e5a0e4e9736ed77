"""Verifying Intuit's ID token: only a token signed by the key set, for our client, unexpired, names a company."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from crm_qb.qbo.idtoken import IdTokenError, UnknownKeyError, realm_of
from crm_qb.sandbox.qbo.oidc import ISSUER, SigningKey

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
KEY, OTHER_KEY = SigningKey(), SigningKey()


def _claims(**changes: Any) -> dict[str, Any]:
    claims = {"iss": ISSUER, "aud": ["client-1"], "sub": "u", "realmid": "4620816365",
              "iat": int(NOW.timestamp()), "exp": int(NOW.timestamp()) + 3600}
    claims.update(changes)
    return {key: value for key, value in claims.items() if value is not None}


def _check(token: str, jwks: dict[str, Any] | None = None) -> str:
    return realm_of(token, jwks or KEY.jwks(), client_id="client-1", issuer=ISSUER, now=NOW)


def test_a_valid_token_names_its_company() -> None:
    assert _check(KEY.sign(_claims())) == "4620816365"


@pytest.mark.parametrize(("claims", "message"), [
    (_claims(aud=["another-client"]), "another client"),
    (_claims(iss="https://attacker.example"), "issuer"),
    (_claims(exp=int(NOW.timestamp()) - 3600), "expired"),
    (_claims(realmid=None), "no realmid"),
])
def test_a_token_not_for_us_or_without_a_company_is_refused(claims: dict[str, Any], message: str) -> None:
    with pytest.raises(IdTokenError, match=message):
        _check(KEY.sign(claims))


def test_a_token_whose_claims_were_edited_does_not_verify() -> None:
    header, _payload, signature = KEY.sign(_claims()).split(".")
    forged = base64.urlsafe_b64encode(json.dumps(_claims(realmid="9999")).encode()).rstrip(b"=").decode()
    with pytest.raises(IdTokenError, match="signature"):
        _check(f"{header}.{forged}.{signature}")


def test_a_token_signed_by_another_key_is_refused() -> None:
    with pytest.raises(UnknownKeyError):
        _check(OTHER_KEY.sign(_claims()))


@pytest.mark.parametrize("token", ["", "a.b", "not.base64!.x", "e30.e30.AA"])
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(IdTokenError):
        _check(token)


def test_only_rs256_is_accepted() -> None:
    header = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    payload = base64.urlsafe_b64encode(json.dumps(_claims()).encode()).rstrip(b"=").decode()
    with pytest.raises(IdTokenError, match="RS256"):
        _check(f"{header}.{payload}.")
