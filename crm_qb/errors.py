"""The error hierarchy of crm-qb.

Every failure is either *transient* (retry later with backoff: throttling, 5xx, timeouts, lost connections)
or *permanent* (record the reason, show it to a user, never retry blindly). Jobs decide what to do by this
split alone, so every module raises a subclass of one of the two.
"""

from __future__ import annotations


class CrmQbError(Exception):
    """Base of every error crm-qb raises on purpose."""


class TransientError(CrmQbError):
    """A failure worth retrying; ``retry_after`` (seconds) is a hint from the remote side, if it gave one."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(CrmQbError):
    """A failure that retrying cannot fix: bad input, a refused write, a revoked authorisation."""


class ConfigError(PermanentError):
    """A setting is missing or malformed; the message names the setting."""
