"""Which QuickBooks company a consent was granted for: the ``realmid`` claim of Intuit's signed ID token.

The OAuth callback names the company in its query (``realmId``), which anyone holding the browser can rewrite: a
tenant admin could consent for their own company and present the callback with another tenant's company id. The
token endpoint's answer to the ``openid`` scope carries an ID token, a JWT that Intuit signs with RS256 and whose
``realmid`` claim names the company the grant is for (docs/qbo/facts.md §1: the claim is in the discovery
document's ``claims_supported``; realm ids are "retrievable from the ID token"). crm-qb trusts that claim only after
checking the signature against the keys at the discovery document's ``jwks_uri``, the issuer, the audience (our
client id) and the expiry; the callback refuses any difference from the URL's company (docs/architecture.md §6).

Pure functions over the token and the key set; fetching the key set is ``load_jwks``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from crm_qb.errors import PermanentError, TransientError

CLOCK_SKEW_SECONDS = 300


class IdTokenError(PermanentError):
    """The ID token is missing, malformed, not signed by Intuit's key, or not for us: no company is confirmed."""


class UnknownKeyError(IdTokenError):
    """The token names a key the key set lacks (Intuit may have rotated keys: fetch the set again once)."""


def realm_of(id_token: str, jwks: Mapping[str, Any], *, client_id: str, issuer: str | None,
             now: datetime) -> str:
    """The verified ``realmid`` of ``id_token``; IdTokenError when anything about it does not hold."""
    header, claims, signed, signature = _parts(id_token)
    if header.get("alg") != "RS256":
        raise IdTokenError(f"ID token algorithm must be RS256, got {header.get('alg')!r}")
    try:
        _key(jwks, header.get("kid")).verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise IdTokenError("ID token signature does not verify against Intuit's keys") from None
    _check_claims(claims, client_id=client_id, issuer=issuer, now=now)
    realm = claims.get("realmid")
    if not isinstance(realm, str) or not realm:
        raise IdTokenError("ID token carries no realmid claim")
    return realm


def load_jwks(url: str, timeout: float = 30.0) -> dict[str, Any]:
    """The JSON Web Key Set at ``url`` (the discovery document's ``jwks_uri``)."""
    try:
        response = requests.get(url, headers={"Accept": "application/json"}, timeout=timeout)
    except requests.RequestException as exc:
        raise TransientError(f"Intuit's signing keys unreachable: {type(exc).__name__}") from exc
    if response.status_code >= 500 or response.status_code == 429:
        raise TransientError(f"Intuit's signing keys: HTTP {response.status_code}")
    try:
        document = response.json()
    except ValueError:
        document = None
    if response.status_code != 200 or not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise IdTokenError(f"no usable key set at {url} (HTTP {response.status_code})")
    return document


def _parts(id_token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    pieces = id_token.split(".") if isinstance(id_token, str) else []
    if len(pieces) != 3:
        raise IdTokenError("ID token is not a compact JWS")
    try:
        header, claims = json.loads(_unb64(pieces[0])), json.loads(_unb64(pieces[1]))
        signature = _unb64(pieces[2])
    except ValueError:
        raise IdTokenError("ID token is not valid base64url JSON") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise IdTokenError("ID token header and claims must be JSON objects")
    return header, claims, f"{pieces[0]}.{pieces[1]}".encode("ascii"), signature


def _key(jwks: Mapping[str, Any], kid: object) -> rsa.RSAPublicKey:
    for jwk in jwks.get("keys") or []:
        if isinstance(jwk, dict) and jwk.get("kty") == "RSA" and (kid is None or jwk.get("kid") == kid):
            try:
                numbers = rsa.RSAPublicNumbers(_int(jwk["e"]), _int(jwk["n"]))
                return numbers.public_key()
            except (KeyError, ValueError) as exc:
                raise IdTokenError(f"Intuit's key {kid!r} is malformed") from exc
    raise UnknownKeyError(f"ID token names key {kid!r}, which Intuit's key set lacks")


def _check_claims(claims: Mapping[str, Any], *, client_id: str, issuer: str | None, now: datetime) -> None:
    if issuer and claims.get("iss") != issuer:
        raise IdTokenError(f"ID token issuer {claims.get('iss')!r} is not {issuer!r}")
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if client_id not in audiences:
        raise IdTokenError("ID token was issued to another client")
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or expires + CLOCK_SKEW_SECONDS < now.timestamp():
        raise IdTokenError("ID token has expired")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _int(text: str) -> int:
    return int.from_bytes(_unb64(text), "big")
