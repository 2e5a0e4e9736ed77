"""Flask's cookie sessions, except for webhook deliveries: no session is opened for a path under ``/webhooks/``.

Intuit, HubSpot and the CRMs post machine to machine, without cookies, and no webhook view reads or writes
``flask.session``. Opening Flask's default session still builds a signing serializer (itsdangerous, with a
JSON round trip to probe it) and parses the cookies on every request, which cost a webhook about a tenth of
the bare endpoint's CPU (docs/benchmarks-history.md). A webhook gets Flask's null session instead: reading it finds
nothing, writing it raises, and nothing is saved or sent back. Every other path keeps the default.
"""

from __future__ import annotations

from flask import Flask, Request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

SESSIONLESS_PREFIX = "/webhooks/"


class SessionsExceptWebhooks(SecureCookieSessionInterface):
    """The default cookie sessions; none for a webhook (Flask then uses its null session, and saves nothing)."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if request.path.startswith(SESSIONLESS_PREFIX):
            return None
        return super().open_session(app, request)
