"""OpenID Connect as Intuit serves it: the discovery document, the signing keys (JWKS), RS256 ID tokens and the
UserInfo claims (docs/qbo/sandbox-fidelity.md, "Discovery, keys and UserInfo").

Intuit's discovery document has exactly twelve keys; clients read ``jwks_uri`` and ``userinfo_endpoint`` at start
(intuit-oauth's ``AuthClient`` fails without them) and verify an ID token's RS256 signature against the key
whose ``kid`` the token names. The signing key is made per sandbox, the first time it is needed, because an RSA
key takes a noticeable moment to generate and most sandboxes (one per test) never issue an ID token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import uuid

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ISSUER = "https://oauth.platform.intuit.com/op/v1"
JWKS_PATH = "/op/v1/jwks"
USERINFO_PATH = "/v1/openid_connect/userinfo"
OPENID_SCOPES = ("openid", "email", "profile", "address", "phone")


def discovery_document(base_url: str) -> dict:
    """Intuit's discovery document, key for key and in Intuit's order, with this server's endpoints."""
    return {
        "issuer": ISSUER,
        "authorization_endpoint": f"{base_url}/connect/oauth2",
        "token_endpoint": f"{base_url}/oauth2/v1/tokens/bearer",
        "userinfo_endpoint": f"{base_url}{USERINFO_PATH}",
        "revocation_endpoint": f"{base_url}/v2/oauth2/tokens/revoke",
        "jwks_uri": f"{base_url}{JWKS_PATH}",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": list(OPENID_SCOPES),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
    }


def subject_for(realm_id: str) -> str:
    """The ``sub`` of the one user who consents for a realm: a stable UUID, as Intuit's subjects look."""
    return str(uuid.UUID(bytes=hashlib.sha256(f"qbo-sandbox-user:{realm_id}".encode()).digest()[:16]))


def userinfo_claims(realm_id: str, scopes: set[str]) -> dict:
    """What Intuit's UserInfo endpoint answers for the realm's user, claim groups chosen by the granted scopes."""
    claims: dict = {"sub": subject_for(realm_id)}
    if "email" in scopes:
        claims.update(email=f"bookkeeper.{realm_id}@example.com", emailVerified=True)
    if "profile" in scopes:
        claims.update(givenName="Sandbox", familyName="Bookkeeper")
    if "phone" in scopes:
        claims.update(phoneNumber="+1 6505550100", phoneNumberVerified=False)
    if "address" in scopes:
        claims["address"] = {"streetAddress": "2500 Garcia Ave", "locality": "Mountain View", "region": "CA",
                             "postalCode": "94043", "country": "US"}
    return claims


class SigningKey:
    """One RSA key: the JWKS that publishes it and the RS256 signatures of ID tokens; thread-safe, made lazily."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: rsa.RSAPrivateKey | None = None

    def jwks(self) -> dict:
        """The JSON Web Key Set: one RSA signing key with its ``kid``."""
        numbers = self._private().public_key().public_numbers()
        return {"keys": [{"kty": "RSA", "e": _b64_int(numbers.e), "use": "sig", "kid": self.kid(),
                          "alg": "RS256", "n": _b64_int(numbers.n)}]}

    def kid(self) -> str:
        """The key id: a digest of the public modulus."""
        modulus = self._private().public_key().public_numbers().n
        return _b64(hashlib.sha256(str(modulus).encode()).digest())[:20]

    def sign(self, claims: dict) -> str:
        """A compact JWS (RS256) of ``claims`` whose header names this key."""
        header = _b64(json.dumps({"alg": "RS256", "kid": self.kid()}).encode())
        payload = _b64(json.dumps(claims).encode())
        signature = self._private().sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{header}.{payload}.{_b64(signature)}"

    def _private(self) -> rsa.RSAPrivateKey:
        with self._lock:
            if self._key is None:
                self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._key


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64_int(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))
