"""What a stored failure means, in words a person can act on (pure: the stored reason text in, a sentence out).

A failed inbound event keeps ``"<ExceptionName>: <message>"`` (``sync/pipeline/events.record_failure``); a failed
record in the audit log keeps the same in its message. The operator needs three things from it: what went wrong
in plain words, the raw code the other side gave (QBO fault code or HTTP status, CRM error code) and, for QBO,
the ``intuit_tid`` Intuit support asks for. The QBO fault text carries ``(code 6240, HTTP 400, intuit_tid …)``
(``qbo/faults.py``); the CRM's errors carry their own message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Exception names the sync raises, each with the sentence an operator reads (docs/qbo/facts.md for the codes).
WORDS: dict[str, str] = {
    "DuplicateNameError": "QuickBooks refused the name: a customer, vendor or employee already uses it (6240).",
    "DisplayNameUnavailableError": "QuickBooks refused every distinct name tried for the new customer (6240); "
                                   "rename the contact in the CRM.",
    "StaleObjectError": "The QuickBooks record kept changing while crm-qb wrote to it (5010).",
    "StillRacingError": "Both sides kept changing while crm-qb wrote; a later retry usually succeeds.",
    "ObjectNotFoundError": "QuickBooks no longer has this record (it was deleted or merged).",
    "BooksClosedError": "QuickBooks refused the change: the books are closed for that date.",
    "ValidationFault": "QuickBooks refused the data sent (a business or format rule).",
    "RequestRejectedError": "QuickBooks rejected the request.",
    "CompanyInactiveError": "The QuickBooks company is inactive or its subscription lapsed.",
    "AuthenticationError": "QuickBooks did not accept crm-qb's authorization; reconnect QuickBooks.",
    "AuthorizationError": "QuickBooks says this user may not do that; reconnect with an admin user.",
    "ThrottledError": "QuickBooks' rate limit (429) was hit and retries ran out.",
    "ServerError": "QuickBooks was unavailable (5xx) and retries ran out.",
    "NetworkError": "QuickBooks could not be reached and retries ran out.",
    "CrmValidationError": "The CRM refused the data sent (a validation error).",
    "CrmAuthError": "The CRM did not accept crm-qb's token; check the CRM token of the connection.",
    "ContactNotFoundError": "The CRM contact no longer exists.",
    "CrmNotFoundError": "The CRM record no longer exists.",
    "CrmProtocolError": "The CRM answered in a shape crm-qb does not understand.",
    "CrmUnavailableError": "The CRM was unavailable and retries ran out.",
    "CrmRateLimitedError": "The CRM's rate limit was hit and retries ran out.",
    "VersionConflictError": "The CRM contact kept changing while crm-qb wrote to it (412).",
    "ConnectionBusyError": "Another sync of this connection held it too long; retries ran out.",
    "NeedsReconnectError": "QuickBooks must be reconnected.",
    "ValueNotStorable": "A value was too long or contained a NUL character and could not be stored.",
}
UNKNOWN = "An unexpected error stopped this change; the raw error below says what."
_TID = re.compile(r"intuit_tid\s+([A-Za-z0-9._:-]+)")
_CODE = re.compile(r"\bcode\s+([A-Za-z0-9_.-]+)")
_HTTP = re.compile(r"\bHTTP\s+(\d{3})\b")


@dataclass(frozen=True)
class Explained:
    """A failure as a person reads it: the sentence, the raw error, the code and the intuit_tid if any."""

    words: str
    error: str
    kind: str | None
    code: str | None
    intuit_tid: str | None


def explain(reason: str | None, intuit_tid: str | None = None) -> Explained:
    """Explain a stored failure reason ``"<ExceptionName>: <message>"`` (or a bare message)."""
    raw = (reason or "").strip()
    head, sep, _rest = raw.partition(":")
    kind = head.strip() if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", head.strip()) else None
    words = WORDS.get(kind or "", UNKNOWN) if raw else "No reason was recorded."
    code = _first(_CODE, raw) or _first(_HTTP, raw)
    return Explained(words, raw, kind, code, intuit_tid or _first(_TID, raw))


def _first(pattern: re.Pattern[str], text: str) -> str | None:
    found = pattern.search(text)
    return found.group(1) if found else None
