"""Signing and verifying webhook bodies, for both directions.

QBO signs with ``intuit-signature: base64(HMAC-SHA256(verifier_token, raw_body))`` (docs/qbo/facts.md §8.4).
The CRM signs with ``X-CRM-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>``
(docs/architecture.md §5). Verification is constant-time and returns False, never raises, on any malformed input.
"""

from __future__ import annotations

import base64
import hmac
import re

# HMAC objects, not the one-shot ``hmac.digest``: CPython's one-shot releases the GIL around the HMAC however short
# the body, and in a gthread worker each release hands the GIL to a waiting request thread (a context switch or two
# per webhook under load); an object releases it only for bodies of 2 KiB or more (docs/benchmarks-history.md).

CRM_REPLAY_WINDOW_SECONDS = 300
# Unix seconds in ASCII digits, at most 12 of them (year 33658): anything else is not a timestamp, and a longer
# number must not reach float arithmetic (a 400-digit ``t`` overflowed it).
_CRM_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def sign_qbo(body: bytes, verifier_token: str) -> str:
    """Return the ``intuit-signature`` header value Intuit would send for ``body``."""
    digest = hmac.new(verifier_token.encode(), body, "sha256").digest()
    return base64.b64encode(digest).decode("ascii")


def verify_qbo(body: bytes, header: str | None, verifier_token: str) -> bool:
    """True when ``header`` is the valid Intuit signature of ``body``."""
    if not header or not verifier_token:
        return False
    expected = sign_qbo(body, verifier_token)
    return hmac.compare_digest(expected.encode("ascii"), header.strip().encode("ascii", "replace"))


def sign_crm(body: bytes, secret: str, timestamp: int) -> str:
    """Return the ``X-CRM-Signature`` header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, "sha256").hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_crm(body: bytes, header: str | None, secret: str, now: float,
               window: int = CRM_REPLAY_WINDOW_SECONDS) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and is within ``window`` seconds of now."""
    if not header or not secret:
        return False
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    timestamp, given = parts.get("t", "").strip(), parts.get("v1", "").strip()
    if not _CRM_TIMESTAMP.fullmatch(timestamp) or not given:
        return False
    if abs(now - int(timestamp)) > window:
        return False
    expected = sign_crm(body, secret, int(timestamp)).split("v1=", 1)[1]
    return hmac.compare_digest(expected.encode("ascii"), given.encode("ascii", "replace"))
