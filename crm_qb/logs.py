"""Logging for crm-qb's processes, and the redaction that keeps credentials out of every log at every level.

With ``CRM_QB_LOG_LEVEL=DEBUG`` the OAuth libraries log whole token responses ("Obtained token {...}"), request
bodies with refresh tokens and authorization codes, and ``Authorization`` headers; access logs carry panel and
admin tokens in URLs. So every process crm-qb starts (worker, web, scheduler, up and the one-shot commands)
calls ``setup_logging``, which replaces the log record factory: each record is redacted when it is made, before
any handler or formatter sees it, whichever library logged it and whichever handler (gunicorn's, RQ's, ours)
writes it. Redaction replaces with ``[redacted]``:

- the values of credential-named fields in JSON, Python reprs, query strings and headers (``access_token``,
  ``refresh_token``, ``id_token``, ``client_secret``, ``code``, ``token``, ``api_key``, ``secret``,
  ``password``, ``crm_hook_secret``, ``verifier_token``, ...), when the value is at least 8 characters long;
- ``Bearer``/``Basic`` credentials, JSON Web Tokens, and crm-qb API keys (``cqb_...``);
- every configured secret by its literal value (SECRET_KEY, the encryption keys, the QBO client secret and
  verifier token, the operator token).

Tracebacks are formatted and redacted with the record. A record whose message cannot be formatted is left
as it is, so the handler reports that error as it always does.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable, Iterable
from typing import Any

REDACTED = "[redacted]"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
CREDENTIAL_NAMES = (
    "access_token", "refresh_token", "id_token", "client_secret", "client_assertion", "code", "token",
    "api_key", "apikey", "secret", "password", "passwd", "crm_hook_secret", "hook_secret", "verifier_token",
    "panel_secret", "x-crm-signature", "intuit-signature", "x-hubspot-signature-v3", "x-hubspot-signature",
    "authorization", "cookie", "set-cookie", "crm_token", "csrf_token",
)
_NAMES = "|".join(sorted((re.escape(n) for n in CREDENTIAL_NAMES), key=len, reverse=True))
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Authorization schemes first, so "Authorization: Bearer <x>" keeps the scheme's name.
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9\-._~+/]{8,}=*"), rf"\1\2{REDACTED}"),
    # name = value / name: value / "name": "value" / 'name': 'value' / name=value&...
    (re.compile(rf"(?i)(?<![A-Za-z0-9_])([\"']?(?:{_NAMES})[\"']?\s*[:=]\s*[\"']?)(?!{re.escape(REDACTED)})"
                r"([^\s\"'&,;}\]]{8,})"), rf"\1{REDACTED}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), REDACTED),  # a JWT / JWS
    (re.compile(r"\bcqb_[A-Za-z0-9_-]{16,}"), REDACTED),  # a crm-qb API key
)
MIN_LITERAL = 8  # shorter "secrets" (test fixtures, placeholders) would redact ordinary words


class Redactor:
    """Removes credentials from text: by pattern, and by the literal values of the configured secrets."""

    def __init__(self, literals: Iterable[str] = ()) -> None:
        self._literals = sorted({s for s in literals if s and len(s) >= MIN_LITERAL}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` with every credential replaced by ``[redacted]``."""
        for literal in self._literals:
            if literal in text:
                text = text.replace(literal, REDACTED)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return text


def redact_record(record: logging.LogRecord, redactor: Redactor) -> None:
    """Redact ``record``'s message, traceback and stack in place (the message is formatted first)."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: the handler reports it when it emits the record
        return
    record.msg, record.args = redactor.redact(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = redactor.redact("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
    if record.stack_info:
        record.stack_info = redactor.redact(record.stack_info)


def install_redaction(redactor: Redactor) -> None:
    """Make every log record of this process pass through ``redactor`` as it is created (idempotent)."""
    previous: Callable[..., logging.LogRecord] = logging.getLogRecordFactory()
    base = getattr(previous, "crm_qb_base", previous)

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        redact_record(record, redactor)
        return record

    factory.crm_qb_base = base  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


def setup_logging(level: str, secrets: Iterable[str] = ()) -> Redactor:
    """Log to stderr at ``level`` with every record redacted (``secrets``: literal values to remove too)."""
    redactor = Redactor(secrets)
    install_redaction(redactor)
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT)
    logging.getLogger().setLevel(level.upper())
    return redactor
