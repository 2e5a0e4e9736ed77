"""Installing crm-qb's HubSpot app for a connection: HubSpot's OAuth (docs/hubspot/facts.md §1).

``GET /connections/<id>/hubspot/connect`` (from the connection's admin session) sends the admin to HubSpot's
consent page with a single-use ``state`` kept in Redis for ten minutes; ``GET /hubspot/oauth/callback`` takes
the state back (once, and only in the admin session that started it), redeems the code, stores the grant
encrypted under the connection's HubSpot token lock (so a refresh in flight cannot overwrite it), records the
portal (``hub_id``), creates the "QuickBooks" properties, wakes the events that waited and shows the page. A
connection that already belongs to one portal refuses another (its links are that portal's contacts).
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets

from flask import Blueprint, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from crm_qb.crm.errors import CrmError
from crm_qb.crm.hubspot.api import HubSpotApi, StaticToken
from crm_qb.crm.hubspot.connector import HubSpotConnector
from crm_qb.crm.hubspot.oauth import HubSpotOAuth, TokenGrant
from crm_qb.crm.hubspot.tokens import store_grant
from crm_qb.db import db
from crm_qb.locks import held
from crm_qb.models import AuditEntry
from crm_qb.runtime import runtime
from crm_qb.sync.pipeline.events import wake_connection
from crm_qb.web import signing
from crm_qb.web.connection_page import (
    PageError,
    connection_or_404,
    page_url,
    register_page_errors,
    require_admin,
    secured,
)

log = logging.getLogger(__name__)

bp = Blueprint("hubspot_oauth", __name__)

STATE_SECONDS = 600
LOCK_WAIT_SECONDS = 10.0


@bp.get("/connections/<int:connection_id>/hubspot/connect")
def connect(connection_id: int) -> BaseResponse:
    """Redirect to HubSpot's consent page for crm-qb's app, with a single-use state for this admin session."""
    session = require_admin(connection_id)
    connection = connection_or_404(connection_id)
    if connection.crm_kind != "hubspot":
        raise PageError(400, "Not a HubSpot connection", "This connection's CRM is not HubSpot.", connection_id)
    rt = runtime()
    if not rt.hubspot.oauth_ready:
        raise PageError(500, "HubSpot is not configured", "Set CRM_QB_HUBSPOT_CLIENT_ID and "
                        "CRM_QB_HUBSPOT_CLIENT_SECRET to install crm-qb's HubSpot app.", connection_id)
    state = secrets.token_urlsafe(32)
    rt.redis.set(rt.keys.hubspot_oauth_state(state), json.dumps({"connection_id": connection_id,
                                                                  "nonce": session.nonce}), ex=STATE_SECONDS)
    log.info("HubSpot connect started connection=%s", connection_id)
    return secured(redirect(HubSpotOAuth(rt.hubspot).authorize_url(state), 302))


@bp.get("/hubspot/oauth/callback")
def callback() -> BaseResponse:
    """Check the state, redeem the code, store the grant and portal, create the properties, show the page."""
    connection_id = _check_state(request.args.get("state", ""))
    if request.args.get("error") or not request.args.get("code"):
        raise PageError(400, "HubSpot access was not granted", "HubSpot sent no authorization code "
                        f"({request.args.get('error', 'none')[:60]}); nothing changed.", connection_id)
    rt = runtime()
    try:
        grant = HubSpotOAuth(rt.hubspot).exchange_code(request.args["code"])
    except CrmError as exc:
        log.warning("HubSpot code exchange failed connection=%s correlationId=%s", connection_id, exc.correlation_id)
        raise PageError(502, "HubSpot refused the connection", f"{exc}. Nothing changed; please connect again.",
                        connection_id) from None
    _store(connection_id, grant)
    _create_properties(connection_id, grant)
    wake_connection(rt.jobs, connection_id)
    return secured(redirect(page_url(connection_id, "hubspot_connected"), 303))


def _check_state(state: str) -> int:
    rt = runtime()
    stored = rt.redis.getdel(rt.keys.hubspot_oauth_state(state)) if state else None
    if stored is None:
        raise PageError(403, "Sign-in link expired or already used", "This HubSpot install is unknown, expired or "
                        "was already used. Start again from the connection's page.")
    pending = json.loads(stored)
    connection_id = int(pending["connection_id"])
    try:
        session = require_admin(connection_id)
    except signing.AdminAuthError:
        session = None
    if session is None or not hmac.compare_digest(session.nonce, str(pending["nonce"])):
        raise PageError(403, "Started in another browser", "This HubSpot install was started from another browser "
                        "or admin session. Start again from the connection's page in this browser.")
    return connection_id


def _store(connection_id: int, grant: TokenGrant) -> None:
    rt = runtime()
    busy = PageError(503, "Busy", "HubSpot tokens are being refreshed right now; try again in a minute.",
                     connection_id)
    with held(rt.redis, rt.keys.hubspot_token_lock(connection_id), lambda: busy, wait=LOCK_WAIT_SECONDS):
        connection = connection_or_404(connection_id)
        if connection.crm_account_id and grant.hub_id and connection.crm_account_id != grant.hub_id:
            raise PageError(409, "A different HubSpot account", f"This connection belongs to HubSpot portal "
                            f"{connection.crm_account_id}, but you installed the app in portal {grant.hub_id}. "
                            "Install it in the same portal, or create a new connection.", connection_id)
        store_grant(connection, grant, rt.secrets)
        db.session.add(AuditEntry(connection_id=connection_id, action="hubspot.connected", direction="admin",
                                  entity="Connection", entity_id=str(connection_id),
                                  diff={"portal_id": grant.hub_id}, outcome="ok"))
        db.session.commit()
    log.info("HubSpot connected connection=%s portal=%s", connection_id, grant.hub_id)


def _create_properties(connection_id: int, grant: TokenGrant) -> None:
    """Create the QuickBooks properties now; a failure is logged (a write creates them later when missing)."""
    connection = connection_or_404(connection_id)
    crm = HubSpotConnector(HubSpotApi(connection.crm_base_url, StaticToken(grant.access_token), max_retries=1))
    try:
        crm.ensure_properties()
    except CrmError as exc:
        log.warning("HubSpot properties not created connection=%s (%s)", connection_id, type(exc).__name__)
    finally:
        crm.close()


register_page_errors(bp)
