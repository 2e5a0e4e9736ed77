"""Response headers every answer carries, so no page or JSON answer is cached, sniffed or framed by accident.

- Every response: ``X-Content-Type-Options: nosniff`` (a JSON error is never rendered as HTML).
- JSON (the API, webhooks, health): ``Cache-Control: no-store``: the API's answers hold customers' balances and
  short-lived panel URLs, which no proxy or browser cache should keep.
- HTML a view did not secure itself (werkzeug's error pages under ``/panel`` or ``/admin``): no caching, no
  referrer, no framing, no scripts. The panel and the admin pages set their own, stricter or wider
  (``frame-ancestors`` of the CRM's web origin), and those are left as they are.
"""

from __future__ import annotations

from flask import Flask, Response

HTML_DEFAULTS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'self'",
}


def install_security_headers(app: Flask) -> None:
    """Add the headers above to every response of ``app``."""
    app.after_request(secure_response)


def secure_response(response: Response) -> Response:
    """``response`` with the headers every crm-qb answer carries (values a view set itself are kept)."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.mimetype == "application/json":
        response.headers.setdefault("Cache-Control", "no-store")
    elif response.mimetype == "text/html":
        for name, value in HTML_DEFAULTS.items():
            response.headers.setdefault(name, value)
    return response
