"""``hubspot.fetch`` as HubSpot's proxy performs it, so the app card's backend can be exercised locally.

HubSpot's proxy calls the app's backend for the card (docs/hubspot/card.md): it appends ``userId``,
``portalId``, ``userEmail`` and ``appId`` to the query string, sends the JSON body (for methods with one),
signs the request with the app's client secret (v3, and v2 for old receivers) over the full URL it calls, does
not follow redirects, times out after 15 seconds by default, and retries once after a failed connection or a
5xx answer (docs/hubspot/facts.md §11).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import requests

from crm_qb.sandbox.hubspot.signatures import fetch_headers

DEFAULT_TIMEOUT_SECONDS = 15.0
MAX_TIMEOUT_SECONDS = 120.0


@dataclass(frozen=True)
class FetchUser:
    """The HubSpot user on whose screen the card runs."""

    user_id: int
    email: str


def with_context(url: str, portal_id: int, app_id: int, user: FetchUser) -> str:
    """Return ``url`` with the query parameters HubSpot's proxy appends."""
    parts = urlsplit(url)
    added = urlencode({"userId": user.user_id, "userEmail": user.email, "appId": app_id, "portalId": portal_id})
    query = f"{parts.query}&{added}" if parts.query else added
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def proxied_fetch(secret: str, url: str, now_ms: int, *, method: str = "GET", body: Any = None,
                  portal_id: int, app_id: int, user: FetchUser,
                  timeout: float = DEFAULT_TIMEOUT_SECONDS) -> dict[str, Any]:
    """Call the backend as HubSpot's proxy would; return {"status", "body", "url"} (status None: unreachable)."""
    full = with_context(url, portal_id, app_id, user)
    raw = b"" if body is None or method.upper() == "GET" else json.dumps(body, separators=(",", ":")).encode()
    headers = fetch_headers(secret, method, full, raw, now_ms)
    if raw:
        headers["Content-Type"] = "application/json"
    status, answer = None, None
    with requests.Session() as session:
        session.trust_env = False
        for _attempt in range(2):
            try:
                response = session.request(method.upper(), full, data=raw or None, headers=headers,
                                           timeout=min(timeout, MAX_TIMEOUT_SECONDS), allow_redirects=False)
            except requests.RequestException:
                continue
            status, answer = response.status_code, _decode(response)
            if status < 500:
                break
    return {"status": status, "body": answer, "url": full}


def _decode(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text
