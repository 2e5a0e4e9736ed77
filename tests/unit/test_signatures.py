"""Webhook signatures, checked against an independent HMAC computation."""

from __future__ import annotations

import base64
import hashlib

import pytest

from crm_qb.signatures import sign_crm, sign_qbo, verify_crm, verify_qbo
from tests.support import fixture_bytes

BODY = fixture_bytes("qbo/webhook_legacy.json")


def _hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 by its definition (RFC 2104) on hashlib alone: independent of the hmac module crm-qb uses."""
    block = key.ljust(64, b"\0") if len(key) <= 64 else hashlib.sha256(key).digest().ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block) + message).digest()
    return hashlib.sha256(bytes(b ^ 0x5C for b in block) + inner).digest()


def test_qbo_signature_is_base64_hmac_sha256_of_the_raw_body() -> None:
    independent = base64.b64encode(_hmac_sha256(b"verifier", BODY)).decode()
    assert sign_qbo(BODY, "verifier") == independent
    assert verify_qbo(BODY, independent, "verifier")


@pytest.mark.parametrize(
    "header", [None, "", "garbage", "é", sign_qbo(BODY, "other-token"), sign_qbo(BODY + b" ", "verifier")]
)
def test_qbo_signature_rejects_anything_else(header: str | None) -> None:
    assert not verify_qbo(BODY, header, "verifier")


def test_qbo_signature_needs_a_configured_token() -> None:
    assert not verify_qbo(BODY, sign_qbo(BODY, ""), "")


def test_crm_signature_matches_an_independent_computation() -> None:
    mac = _hmac_sha256(b"secret", b"1700000000." + BODY).hex()
    assert sign_crm(BODY, "secret", 1700000000) == f"t=1700000000,v1={mac}"
    assert verify_crm(BODY, f"t=1700000000,v1={mac}", "secret", now=1700000100)


@pytest.mark.parametrize(
    ("header", "now"),
    [
        (sign_crm(BODY, "secret", 1700000000), 1700000000 + 301),  # replayed after 5 minutes
        (sign_crm(BODY, "secret", 1700000000), 1700000000 - 301),  # from the future
        (sign_crm(BODY, "wrong", 1700000000), 1700000000),
        ("v1=abc", 1700000000),
        ("t=abc,v1=abc", 1700000000),
        ("t=1700000000", 1700000000),
        ("", 1700000000),
        (None, 1700000000),
    ],
)
def test_crm_signature_rejects_stale_forged_and_malformed_headers(header: str | None, now: int) -> None:
    assert not verify_crm(BODY, header, "secret", now=now)
