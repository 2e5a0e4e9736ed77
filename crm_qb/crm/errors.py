"""Typed errors of the CRM connectors; each is transient (retry) or permanent (record and surface).

Every error carries the HTTP ``status`` and the CRM's JSON error ``code`` when the CRM gave them, and its
message includes the CRM's own message, so a person can tell what the CRM refused and why. HubSpot also gives
every error a ``correlationId`` for its support (docs/hubspot/facts.md §10); it is kept as ``correlation_id``
and named in the message.
"""

from __future__ import annotations

from crm_qb.errors import CrmQbError, PermanentError, TransientError


class CrmError(CrmQbError):
    """Base of every error raised while talking to a CRM."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 correlation_id: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.correlation_id = status, code, correlation_id


class CrmTransientError(CrmError, TransientError):
    """The CRM could not answer now (5xx, throttling, network); retry later, after ``retry_after`` if set."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 retry_after: float | None = None, correlation_id: str | None = None) -> None:
        super().__init__(message, status=status, code=code, correlation_id=correlation_id)
        self.retry_after = retry_after


class CrmUnavailableError(CrmTransientError):
    """The CRM answered 5xx, or could not be reached, or timed out, on every attempt."""


class CrmAnswerTimeoutError(CrmUnavailableError):
    """A call was sent and no answer came within the connector's read timeout (the CRM may have done it)."""


class CrmRateLimitedError(CrmTransientError):
    """The CRM answered 429 on every attempt; ``retry_after`` is its last hint."""


class VersionConflictError(CrmTransientError):
    """412: the contact changed since the version sent in If-Match; re-read, re-merge and write again."""


class CrmPermanentError(CrmError, PermanentError):
    """The CRM refused the request for a reason a retry cannot fix."""


class CrmAuthError(CrmPermanentError):
    """401/403: the connection's CRM token is wrong, expired or lacks permission."""


class CrmNeedsReconnectError(CrmAuthError):
    """The CRM refused the connection's grant for good (revoked, uninstalled): a person must connect it again."""

    def __init__(self, connection_id: int | str, reason: str) -> None:
        super().__init__(f"the CRM must be reconnected for connection {connection_id}: {reason}")
        self.connection_id, self.reason = connection_id, reason

    def __reduce__(self) -> tuple[type[CrmNeedsReconnectError], tuple[int | str, str]]:
        return (type(self), (self.connection_id, self.reason))


class CrmNotFoundError(CrmPermanentError):
    """404: the object does not exist (any more) in the CRM."""


class ContactNotFoundError(CrmNotFoundError):
    """404 for a contact id."""


class TaskNotFoundError(CrmNotFoundError):
    """404 for a task id."""


class ActivityNotFoundError(CrmNotFoundError):
    """404 for an activity id (deleted in the CRM)."""


class CrmValidationError(CrmPermanentError):
    """400/422: the CRM rejected the body; ``field`` names the offending field when the CRM said."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None,
                 field: str | None = None, correlation_id: str | None = None) -> None:
        super().__init__(message, status=status, code=code, correlation_id=correlation_id)
        self.field = field


class CrmUnrepresentableError(CrmValidationError):
    """The CRM cannot hold this record as a contact at all (HubSpot: no email and no person's name); a person
    decides what to do with it, so the sync puts it in review rather than retrying or failing it."""


class CrmDuplicateError(CrmValidationError):
    """409: the CRM already has such a record (HubSpot: a contact with that email); ``existing_id`` names it."""

    def __init__(self, message: str, *, existing_id: str | None = None, status: int | None = 409,
                 code: str | None = None, correlation_id: str | None = None) -> None:
        super().__init__(message, status=status, code=code, correlation_id=correlation_id)
        self.existing_id = existing_id


class CrmProtocolError(CrmPermanentError):
    """The CRM answered outside the contract (unexpected status, or a body that is not the JSON expected)."""
