"""Which HubSpot connections a signed request from HubSpot speaks for (webhooks and app-card requests alike).

HubSpot signs both with v3 (docs/hubspot/facts.md §8.3, §11) over the URL it called. That URL is rebuilt from
``CRM_QB_PUBLIC_URL`` + path + raw query (behind a proxy this server sees another host); the URL this server saw
is accepted too, for a deployment without a proxy. The app's client secret (``CRM_QB_HUBSPOT_CLIENT_SECRET``)
vouches for every portal; a connection's own secret (``connection add --hubspot-client-secret``, e.g. a private
app's) vouches for its own portal only.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from flask import request
from sqlalchemy import select

from crm_qb.crm.hubspot.signature import HEADER_TIMESTAMP, HEADER_V3, verify_v3
from crm_qb.db import db
from crm_qb.models import Connection
from crm_qb.runtime import runtime

KIND = "hubspot"


def trusted_connections(body: bytes, portals: set[str]) -> list[Connection] | None:
    """The connections of ``portals`` this request is signed for; None when no secret we know signed it."""
    candidates = _connections(portals)
    if _signed(runtime().settings.hubspot_client_secret, body):
        return candidates
    secrets = runtime().secrets
    own = [c for c in candidates if _signed(secrets.decrypt(c.crm_hook_secret_encrypted), body)]
    return own or None


def _signed(secret: str, body: bytes) -> bool:
    return verify_v3(secret, request.method, request_uris(), body, request.headers.get(HEADER_V3),
                     request.headers.get(HEADER_TIMESTAMP), int(time.time() * 1000))


def request_uris() -> Iterable[str]:
    """The URL HubSpot called as crm-qb's public address names it, and as this server saw it."""
    query = request.query_string.decode("latin-1")
    public = runtime().settings.public_url.rstrip("/") + request.path + (f"?{query}" if query else "")
    return list(dict.fromkeys((public, request.url)))


def _connections(portals: set[str]) -> list[Connection]:
    if not portals:
        return []
    return list(db.session.scalars(select(Connection).where(
        Connection.crm_kind == KIND, Connection.crm_account_id.in_(sorted(portals))).order_by(Connection.id)))
