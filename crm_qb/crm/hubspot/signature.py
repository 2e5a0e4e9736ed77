"""HubSpot's v3 request signature (docs/hubspot/facts.md §8.3), as crm-qb verifies webhooks and card requests.

``base64(HMAC-SHA256(client secret, method + uri + raw body + timestamp))``, the timestamp in epoch milliseconds
from ``X-HubSpot-Request-Timestamp``, refused when more than five minutes away from now. The URI is the full URL
HubSpot called, with the percent-escapes HubSpot's documentation lists decoded first. Verification compares in
constant time and answers False for anything malformed; it never raises.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable

MAX_AGE_SECONDS = 300
HEADER_V3 = "X-HubSpot-Signature-v3"
HEADER_TIMESTAMP = "X-HubSpot-Request-Timestamp"
# The escapes HubSpot decodes before hashing (its request-validation page); others stay encoded.
DECODED_ESCAPES = {"%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'",
                   "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";"}
_ESCAPE = re.compile("|".join(re.escape(code) for code in DECODED_ESCAPES), re.IGNORECASE)


def v3_uri(uri: str) -> str:
    """``uri`` with the escapes HubSpot decodes for v3 replaced by their characters."""
    return _ESCAPE.sub(lambda match: DECODED_ESCAPES[match.group(0).upper()], uri)


def sign_v3(secret: str, method: str, uri: str, body: bytes, timestamp_ms: int) -> str:
    """The v3 signature of a request."""
    message = f"{method.upper()}{v3_uri(uri)}".encode() + body + str(timestamp_ms).encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode("ascii")


def timestamp_fresh(timestamp: str | None, now_ms: int, max_age_seconds: int = MAX_AGE_SECONDS) -> bool:
    """Whether the timestamp header is epoch milliseconds within ``max_age_seconds`` of now."""
    if not timestamp or not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 16:
        return False
    return abs(now_ms - int(timestamp)) <= max_age_seconds * 1000


def verify_v3(secret: str, method: str, uris: Iterable[str], body: bytes, signature: str | None,
              timestamp: str | None, now_ms: int) -> bool:
    """True when ``signature`` signs the request for one of ``uris`` with ``secret`` and the timestamp is fresh."""
    if not secret or not signature or not timestamp_fresh(timestamp, now_ms):
        return False
    given = signature.strip().encode("ascii", "replace")
    found = False
    for uri in uris:  # every candidate is checked, so the time taken does not say which one matched
        found |= hmac.compare_digest(sign_v3(secret, method, uri, body, int(str(timestamp))).encode("ascii"), given)
    return found
