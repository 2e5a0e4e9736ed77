"""HubSpot's v3 signature as crm-qb verifies it, against HubSpot's own test vector (docs/hubspot/facts.md §8.3)."""

from __future__ import annotations

from crm_qb.crm.hubspot.signature import sign_v3, timestamp_fresh, v3_uri, verify_v3

SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
URI = "https://www.example.com/webhook_uri"
BODY = b"{'example_field':'example_value'}"
STAMP = 1693657560000
EXPECTED = "K36dawei4A+QBNolUOqo7s91KQDWQ5MXZ/QufNYuk/Y="


def test_hubspots_vector() -> None:
    assert sign_v3(SECRET, "post", URI, BODY, STAMP) == EXPECTED
    assert verify_v3(SECRET, "POST", [URI], BODY, EXPECTED, str(STAMP), STAMP + 299_000)


def test_the_five_minute_window_both_ways() -> None:
    assert not verify_v3(SECRET, "POST", [URI], BODY, EXPECTED, str(STAMP), STAMP + 301_000)
    assert not verify_v3(SECRET, "POST", [URI], BODY, EXPECTED, str(STAMP), STAMP - 301_000)
    assert not timestamp_fresh("\uff11\uff16", STAMP)  # full-width digits: str.isdigit() would take them
    assert not timestamp_fresh(None, STAMP) and not timestamp_fresh("9" * 40, 0)


def test_any_change_breaks_it() -> None:
    assert not verify_v3(SECRET, "POST", [URI], BODY + b" ", EXPECTED, str(STAMP), STAMP)
    assert not verify_v3(SECRET, "GET", [URI], BODY, EXPECTED, str(STAMP), STAMP)
    assert not verify_v3(SECRET, "POST", [URI + "?a=1"], BODY, EXPECTED, str(STAMP), STAMP)
    assert not verify_v3("other", "POST", [URI], BODY, EXPECTED, str(STAMP), STAMP)
    assert not verify_v3(SECRET, "POST", [URI], BODY, "é" + EXPECTED, str(STAMP), STAMP)
    assert not verify_v3("", "POST", [URI], BODY, EXPECTED, str(STAMP), STAMP)


def test_one_of_several_uris_and_the_decoded_escapes() -> None:
    assert verify_v3(SECRET, "POST", ["http://internal/x", URI], BODY, EXPECTED, str(STAMP), STAMP)
    assert v3_uri("https://h/p%3Fq%40x%2fy%20z") == "https://h/p?q@x/y%20z"
    signed = sign_v3(SECRET, "GET", "https://h/c?userEmail=a%40b.c", b"", STAMP)
    assert verify_v3(SECRET, "GET", ["https://h/c?userEmail=a@b.c"], b"", signed, str(STAMP), STAMP)
