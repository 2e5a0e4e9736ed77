"""Log redaction (crm_qb.logs): what the OAuth libraries, access logs and crm-qb itself print, without secrets."""

from __future__ import annotations

import logging

import pytest

from crm_qb.logs import REDACTED, Redactor, install_redaction

CASES = [
    ("Obtained token {'access_token': 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig', 'refresh_token': 'AB11xyz0000',"
     " 'expires_in': 3600}", ["eyJhbGci", "AB11xyz0000"], ["expires_in': 3600"]),
    ("Request body was grant_type=refresh_token&refresh_token=AB11abcdefghij&x=1", ["AB11abcdefghij"],
     ["grant_type=refresh_token"]),
    ("Request headers were {'Authorization': 'Basic Y2xpZW50OnNlY3JldA=='}", ["Y2xpZW50OnNlY3JldA=="], ["Basic"]),
    ('content {"access_token":"tok_abcdefghijk","token_type":"bearer"}', ["tok_abcdefghijk"], ['"token_type"']),
    ("GET /panel/1/contacts/c1?token=eyJjIjoxfQ.abcdefghij HTTP/1.1", ["eyJjIjoxfQ"], ["/panel/1/contacts/c1"]),
    ("GET /qbo/callback?code=AB11codecodecode&state=s&realmId=9130", ["AB11codecodecode"], ["realmId=9130"]),
    ("api key cqb_abcdefghijklmnopqrstuvwxyz", ["cqb_abcdefghijklmnop"], ["api key"]),
    ('{"client_secret": "sandbox-secret-1", "verifier_token": "sandbox-verifier-1"}',
     ["sandbox-secret-1", "sandbox-verifier-1"], ['"client_secret"']),
    ("X-CRM-Signature: t=1700000000,v1=deadbeefdeadbeef", ["t=1700000000"], ["X-CRM-Signature"]),
    ("sync customer 1 connection=1 job=drain-qbo-123: processed; fault code=5010", [],
     ["sync customer 1 connection=1 job=drain-qbo-123: processed; fault code=5010"]),
]


@pytest.mark.parametrize(("text", "gone", "kept"), CASES)
def test_credentials_are_redacted_and_the_rest_kept(text: str, gone: list[str], kept: list[str]) -> None:
    redacted = Redactor().redact(text)
    assert not [secret for secret in gone if secret in redacted], redacted
    assert all(part in redacted for part in kept), redacted
    assert (REDACTED in redacted) == bool(gone)


def test_configured_secrets_are_redacted_by_value() -> None:
    redactor = Redactor(["the-secret-key-1", "short"])
    assert redactor.redact("key the-secret-key-1 and short") == f"key {REDACTED} and short"


def test_every_record_is_redacted_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    install_redaction(Redactor(["literal-secret-value"]))
    log = logging.getLogger("test.redaction")
    try:
        raise ValueError("refresh failed: refresh_token=AB11leakedvalue")
    except ValueError:
        log.exception("token %s for %s", "literal-secret-value", {"access_token": "eyJabcdefghij.klmnopqrst.uv"})
    record = caplog.records[-1]
    text = record.getMessage() + (record.exc_text or "")
    assert "literal-secret-value" not in text and "eyJabcdefghij" not in text and "AB11leakedvalue" not in text
    assert "ValueError" in (record.exc_text or "")
