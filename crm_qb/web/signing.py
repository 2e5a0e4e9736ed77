"""Signed admin links and the admin session they start.

``crm-qb admin-url <connection>`` prints a link carrying a token signed with the app's ``SECRET_KEY`` (its own
salt, so no other signed value of the app can pass for it) that names one connection and an expiry time. Opening
it starts an *admin session*: a signed, HttpOnly cookie scoped to that one connection, holding a random nonce
(which binds OAuth ``state`` values to this browser) and a CSRF token for the page's forms. One browser
administers one connection at a time: opening another connection's link replaces the session.

Links and sessions carry the connection's *admin epoch*. Raising it (``crm-qb admin-url <id> --revoke-sessions``,
or "Sign out everywhere" on the admin page) voids every link and session issued before, at once, without
touching SECRET_KEY or any other connection.

Expiry times are written into the signed payload (rather than itsdangerous' signing timestamp) so they are
checked against one injectable clock.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

LINK_SALT = "crm-qb.admin-link"
SESSION_SALT = "crm-qb.admin-session"
SESSION_COOKIE = "crm_qb_admin"
LINK_SECONDS = 3600
SESSION_SECONDS = 8 * 3600


class AdminAuthError(Exception):
    """A link or session that does not grant access; the message says why, for the user."""


@dataclass(frozen=True)
class AdminSession:
    """Who may administer what: one connection, until ``expires_at``; ``nonce`` binds OAuth states to it."""

    connection_id: int
    nonce: str
    csrf_token: str
    expires_at: float
    epoch: int = 0

    def csrf_ok(self, submitted: str | None) -> bool:
        """Whether ``submitted`` is this session's CSRF token (constant-time)."""
        return bool(submitted) and hmac.compare_digest(str(submitted), self.csrf_token)


def link_token(secret_key: str, connection_id: int, seconds: int = LINK_SECONDS, now: float | None = None,
               epoch: int = 0) -> str:
    """A token for the admin page of ``connection_id`` (at admin ``epoch``), valid for ``seconds`` from ``now``."""
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds!r}")
    expires = (time.time() if now is None else now) + seconds
    return URLSafeSerializer(secret_key, salt=LINK_SALT).dumps({"c": connection_id, "e": int(expires), "g": epoch})


def admin_url(public_url: str, secret_key: str, connection_id: int, seconds: int = LINK_SECONDS,
              epoch: int = 0) -> str:
    """The signed link to the admin page of ``connection_id`` (at admin ``epoch``) under ``public_url``."""
    token = link_token(secret_key, connection_id, seconds, epoch=epoch)
    return f"{public_url.rstrip('/')}/admin/connections/{connection_id}?token={token}"


def read_link(secret_key: str, token: str, connection_id: int, now: float | None = None, epoch: int = 0) -> None:
    """Accept ``token`` for ``connection_id`` at admin ``epoch`` or raise AdminAuthError saying why not."""
    payload = _load(secret_key, LINK_SALT, token, "This admin link is not valid (it was altered or mistyped).")
    _check_scope(payload, connection_id, now, "This admin link has expired. Ask for a new one with "
                                               "`crm-qb admin-url`.")
    _check_epoch(payload, epoch, "This admin link was revoked. Ask for a new one with `crm-qb admin-url`.")


def new_session(connection_id: int, now: float | None = None, epoch: int = 0) -> AdminSession:
    """A fresh admin session for ``connection_id`` (at admin ``epoch``) with new random nonce and CSRF token."""
    expires = (time.time() if now is None else now) + SESSION_SECONDS
    return AdminSession(connection_id, secrets.token_urlsafe(24), secrets.token_urlsafe(24), expires, epoch)


def dump_session(secret_key: str, session: AdminSession) -> str:
    """The signed cookie value of ``session``."""
    return URLSafeSerializer(secret_key, salt=SESSION_SALT).dumps(
        {"c": session.connection_id, "n": session.nonce, "x": session.csrf_token, "e": int(session.expires_at),
         "g": session.epoch})


def read_session(secret_key: str, cookie: str | None, connection_id: int, now: float | None = None,
                 epoch: int = 0) -> AdminSession:
    """The admin session in ``cookie`` if it grants ``connection_id`` at admin ``epoch``; AdminAuthError otherwise."""
    if not cookie:
        raise AdminAuthError("You are not signed in to this connection's admin page. Open the link printed by "
                             "`crm-qb admin-url` first.")
    payload = _load(secret_key, SESSION_SALT, cookie, "Your admin session is not valid. Open a new admin link.")
    _check_scope(payload, connection_id, now, "Your admin session has expired. Open a new admin link.")
    _check_epoch(payload, epoch, "Your admin session was signed out. Open a new admin link.")
    return AdminSession(int(payload["c"]), str(payload["n"]), str(payload["x"]), float(payload["e"]), epoch)


def _load(secret_key: str, salt: str, value: str, message: str) -> dict[str, Any]:
    try:
        payload = URLSafeSerializer(secret_key, salt=salt).loads(value)
    except BadSignature:
        raise AdminAuthError(message) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("c"), int) or "e" not in payload:
        raise AdminAuthError(message)
    return payload


def _check_epoch(payload: dict[str, Any], epoch: int, revoked: str) -> None:
    if payload.get("g", 0) != epoch:
        raise AdminAuthError(revoked)


def _check_scope(payload: dict[str, Any], connection_id: int, now: float | None, expired: str) -> None:
    if payload["c"] != connection_id:
        raise AdminAuthError("This admin link or session is for another connection.")
    if (time.time() if now is None else now) >= float(payload["e"]):
        raise AdminAuthError(expired)
