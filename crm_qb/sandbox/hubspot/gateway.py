"""What every CRM API request passes before its view, in HubSpot's order: count, authenticate, rate-limit,
then injected faults and latency. Rate-limit headers go on every API answer (docs/hubspot/facts.md §9).
"""

from __future__ import annotations

import time
from datetime import datetime

from flask import Response, g, request

from crm_qb.sandbox.hubspot import errors
from crm_qb.sandbox.hubspot.definitions import iso_ms
from crm_qb.sandbox.hubspot.faults import fault_body
from crm_qb.sandbox.hubspot.http import json_response
from crm_qb.sandbox.hubspot.state import current_sandbox

API_PREFIXES = ("/crm/", "/account-info/")
NO_CREDENTIALS = ("Authentication credentials not found. This API supports OAuth 2.0 authentication and you can "
                  "find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview")


def is_api(path: str) -> bool:
    """True for paths that need a bearer token and count against the rate limits."""
    return path.startswith(API_PREFIXES)


def endpoint_key() -> str:
    """Return the request's endpoint as ``METHOD /rule`` (``/crm/v3/objects/<object_type>``)."""
    rule = request.url_rule.rule if request.url_rule is not None else request.path
    return f"{request.method} {rule}"


def before_api_request() -> Response | None:
    """Refuse the request as HubSpot would, or return None to let the view run."""
    if not is_api(request.path):
        return None
    sandbox = current_sandbox()
    status, retry_after, latency_ms = sandbox.faults.record(endpoint_key())
    check = sandbox.oauth.check(_bearer())
    if check.state != "ok":
        return _unauthorized(check.state, check.expired_at, sandbox.clock.now())
    verdict = sandbox.limiter.admit(search=request.path.endswith("/search"), oauth=check.oauth)
    g.hubspot_limit_headers = verdict.headers
    if latency_ms:
        time.sleep(latency_ms / 1000)
    if verdict.body is not None:
        return json_response(verdict.body, 429, verdict.headers)
    if status is not None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return json_response(fault_body(status), status, headers)
    return None


def after_api_request(response: Response) -> Response:
    """Add the rate-limit headers computed for this request."""
    for name, value in getattr(g, "hubspot_limit_headers", {}).items():
        response.headers.setdefault(name, value)
    return response


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _unauthorized(state: str, expired_at: datetime | None, now: datetime) -> Response:
    headers = {"X-HubSpot-Auth-Failure": "401 Unauthorized"}
    if state == "expired" and expired_at is not None:
        seconds = max(0, int((now - expired_at).total_seconds()))
        body = errors.error_body(f"The OAuth token used to make this call expired {seconds} second(s) ago.",
                                 "EXPIRED_AUTHENTICATION", context={"expire time": [iso_ms(expired_at)]})
    else:
        body = errors.error_body(NO_CREDENTIALS, "INVALID_AUTHENTICATION")
    return json_response(body, 401, headers)
