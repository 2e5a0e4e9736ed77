"""HubSpot request signatures v1/v2/v3: HubSpot's published vectors, URI decoding, the 5-minute window."""

from __future__ import annotations

import pytest
from hubspot.utils.signature import Signature

from crm_qb.sandbox.hubspot.signatures import (
    fetch_headers,
    sign_v1,
    sign_v2,
    sign_v3,
    v3_uri,
    verify_v3,
    webhook_headers,
)
from tests.sandbox_hubspot.conftest import payload_bytes

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
BODY = b"{'example_field':'example_value'}"
URL = "https://www.example.com/webhook_uri"
STAMP = 1693657560000


def test_v3_matches_hubspots_published_vector() -> None:
    assert sign_v3(SECRET, "POST", URL, BODY, STAMP) == "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="


def test_v1_and_v2_match_the_official_clients_vectors() -> None:
    assert sign_v1(SECRET, BODY) == "69fc6631a867edd4f9e9e627fc5c1148e3fbdd8b21837b6d2b8901c1fa57f750"
    assert sign_v2(SECRET, "POST", URL, BODY) == "4fe4e3a7d3cf09db53be39d0a58130e2aaba074ec123a9e355b876a689a1c383"


def test_v1_matches_the_documented_webhook_example() -> None:
    body = payload_bytes("webhook_contact_creation.json").strip()
    assert sign_v1(SECRET, body) == "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"


@pytest.mark.parametrize("method,uri,body", [
    ("POST", "https://hooks.example.com/webhooks/hubspot?x=1&y=2", b'[{"eventId":1}]'),
    ("GET", "https://api.example.com/card/contacts/51?portalId=62515&userEmail=a@b.c", b""),
])
def test_v3_agrees_with_the_official_client(method: str, uri: str, body: bytes) -> None:
    ours = sign_v3(SECRET, method, uri, body, STAMP)
    theirs = Signature.get_signature(SECRET, body.decode(), "v3", uri, method, str(STAMP))
    assert ours == theirs


def test_v3_decodes_the_listed_escapes_before_hashing() -> None:
    encoded = "https://x.example/card?userEmail=a%40b.c&path=%2Fa%2Cb%3A%3B%21%24%27%28%29%2A%3F"
    assert v3_uri(encoded) == "https://x.example/card?userEmail=a@b.c&path=/a,b:;!$'()*?"
    assert v3_uri("https://x.example/?q=a%20b%2b") == "https://x.example/?q=a%20b%2b"  # others stay escaped
    decoded = v3_uri(encoded)
    assert sign_v3(SECRET, "GET", encoded, b"", STAMP) == sign_v3(SECRET, "GET", decoded, b"", STAMP)
    assert sign_v3(SECRET, "GET", decoded, b"", STAMP) == Signature.get_signature(
        SECRET, "", "v3", decoded, "GET", str(STAMP))


def test_verify_accepts_fresh_and_rejects_stale_tampered_or_missing() -> None:
    headers = webhook_headers(SECRET, "POST", URL, BODY, STAMP)
    assert verify_v3(SECRET, "POST", URL, BODY, headers, STAMP + 1000)
    assert verify_v3(SECRET, "post", URL, BODY, {k.lower(): v for k, v in headers.items()}, STAMP)
    assert not verify_v3(SECRET, "POST", URL, BODY, headers, STAMP + 300_001)  # older than five minutes
    assert not verify_v3(SECRET, "POST", URL, BODY + b" ", headers, STAMP)
    assert not verify_v3(SECRET, "POST", URL + "?a=1", BODY, headers, STAMP)
    assert not verify_v3("other", "POST", URL, BODY, headers, STAMP)
    assert not verify_v3(SECRET, "POST", URL, BODY, {}, STAMP)
    assert not verify_v3(SECRET, "POST", URL, BODY, {**headers, "X-HubSpot-Request-Timestamp": "soon"}, STAMP)


def test_header_sets() -> None:
    assert webhook_headers(SECRET, "POST", URL, BODY, STAMP)["X-HubSpot-Signature-Version"] == "v1"
    fetch = fetch_headers(SECRET, "GET", URL, b"", STAMP)
    assert fetch["X-HubSpot-Signature-Version"] == "v2" and fetch["X-HubSpot-Request-Timestamp"] == str(STAMP)
    assert fetch["X-HubSpot-Signature"] == sign_v2(SECRET, "GET", URL, b"")
