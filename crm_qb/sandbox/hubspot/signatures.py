"""HubSpot's request signatures v1, v2 and v3 (docs/hubspot/facts.md §8.3), for signing and for verifying.

HubSpot signs webhook deliveries and ``hubspot.fetch`` requests with the app's client secret. v3 is the one to
verify: ``base64(HMAC-SHA256(secret, method + uri + body + timestamp))`` with the timestamp in epoch
milliseconds, rejected when older than five minutes. Before hashing, HubSpot's documentation asks to decode a
fixed set of percent-escapes in the URI; signer and verifier both do that here, so a URL sent percent-encoded
verifies the same way as its decoded form. v1 and v2 are plain SHA-256 hex digests kept for old receivers.
Verification is constant-time and returns False on any malformed input; it never raises.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping

MAX_AGE_SECONDS = 300
# The escapes HubSpot's request-validation page lists for v3 (case-insensitive hex), decoded before hashing.
V3_DECODED_ESCAPES = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}
_ESCAPE = re.compile("|".join(re.escape(code) for code in V3_DECODED_ESCAPES), re.IGNORECASE)

HEADER_V3 = "X-HubSpot-Signature-v3"
HEADER_TIMESTAMP = "X-HubSpot-Request-Timestamp"
HEADER_LEGACY = "X-HubSpot-Signature"
HEADER_VERSION = "X-HubSpot-Signature-Version"


def v3_uri(uri: str) -> str:
    """Return ``uri`` with the percent-escapes HubSpot decodes for v3 replaced by their characters."""
    return _ESCAPE.sub(lambda match: V3_DECODED_ESCAPES[match.group(0).upper()], uri)


def sign_v1(secret: str, body: bytes) -> str:
    """Return the v1 signature: hex SHA-256 of client secret + body."""
    return hashlib.sha256(secret.encode() + body).hexdigest()


def sign_v2(secret: str, method: str, uri: str, body: bytes) -> str:
    """Return the v2 signature: hex SHA-256 of client secret + method + uri + body."""
    return hashlib.sha256(f"{secret}{method.upper()}{uri}".encode() + body).hexdigest()


def sign_v3(secret: str, method: str, uri: str, body: bytes, timestamp_ms: int) -> str:
    """Return the v3 signature: base64 HMAC-SHA256 over method + decoded uri + body + timestamp (ms)."""
    message = f"{method.upper()}{v3_uri(uri)}".encode() + body + str(timestamp_ms).encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode("ascii")


def webhook_headers(secret: str, method: str, uri: str, body: bytes, timestamp_ms: int) -> dict[str, str]:
    """Return the signature headers HubSpot puts on a webhook delivery (v1 and v3)."""
    return {HEADER_LEGACY: sign_v1(secret, body), HEADER_VERSION: "v1",
            HEADER_V3: sign_v3(secret, method, uri, body, timestamp_ms), HEADER_TIMESTAMP: str(timestamp_ms)}


def fetch_headers(secret: str, method: str, uri: str, body: bytes, timestamp_ms: int) -> dict[str, str]:
    """Return the signature headers HubSpot's proxy puts on a ``hubspot.fetch`` request (v2 and v3)."""
    return {HEADER_LEGACY: sign_v2(secret, method, uri, body), HEADER_VERSION: "v2",
            HEADER_V3: sign_v3(secret, method, uri, body, timestamp_ms), HEADER_TIMESTAMP: str(timestamp_ms)}


def verify_v3(secret: str, method: str, uri: str, body: bytes, headers: Mapping[str, str], now_ms: int,
              max_age_seconds: int = MAX_AGE_SECONDS) -> bool:
    """True when the v3 headers sign this request with ``secret`` and the timestamp is within the window."""
    given = _header(headers, HEADER_V3)
    stamp = _header(headers, HEADER_TIMESTAMP)
    if not secret or not given or not stamp or not stamp.isdigit():
        return False
    if abs(now_ms - int(stamp)) > max_age_seconds * 1000:
        return False
    expected = sign_v3(secret, method, uri, body, int(stamp))
    return hmac.compare_digest(expected.encode("ascii"), given.strip().encode("ascii", "replace"))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """Return a header value by case-insensitive name."""
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)
