"""Connecting a connection to QuickBooks and disconnecting it (docs/architecture.md §6, docs/qbo/facts.md §1).

``GET /connections/<id>/qbo/connect`` sends the admin to Intuit's consent page with a random ``state``. The state
is kept in Redis for ten minutes as {connection, admin-session nonce}; ``GET /qbo/callback`` takes it out
atomically (so it works once), checks it belongs to the admin session of this browser, exchanges the code,
stores the tokens encrypted, reads the company's details and shows the connection's page.

The company is the one the consent was granted for, not whatever the callback's URL says: Intuit's signed ID token
(asked for with the ``openid`` scope) names it, and a callback naming another company is refused (403) and its new
tokens revoked (``crm_qb.qbo.idtoken``), so an admin cannot attach their connection to another tenant's company by
editing ``realmId``.

Reconnecting the same company (realm) resumes where the connection stopped: its mirrored data, CDC cursor and
settings are kept. Connecting a *different* company is refused (409): the mirrored links, folder items and
cursors belong to the first company and would be silently mixed; make a new connection for the other company.

``POST /connections/<id>/qbo/disconnect`` revokes the refresh token at Intuit (a failure there is logged and the
disconnect still completes locally), clears the tokens, marks the connection disconnected (nothing syncs) and
keeps every mirrored row.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TypeVar

from flask import Blueprint, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from crm_qb.db import db, utcnow
from crm_qb.errors import CrmQbError
from crm_qb.locks import RenewingLock, held
from crm_qb.models import AuditEntry, Connection, QboStatus
from crm_qb.qbo.company import refresh_company
from crm_qb.qbo.idtoken import IdTokenError
from crm_qb.qbo.oauth import DiscoveryError, GrantMismatchError, OAuthError, OAuthUnavailableError, TokenSet
from crm_qb.qbo.services import QboServices
from crm_qb.runtime import runtime
from crm_qb.sync.firstsync.service import open_first_sync
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

bp = Blueprint("qbo_oauth", __name__)

STATE_SECONDS = 600
LOCK_WAIT_SECONDS = 10.0

T = TypeVar("T")


@bp.get("/connections/<int:connection_id>/qbo/connect")
def connect(connection_id: int) -> BaseResponse:
    """Redirect to Intuit's consent page with the accounting scope and a single-use state for this session."""
    session = require_admin(connection_id)
    connection_or_404(connection_id)
    state = secrets.token_urlsafe(32)
    url = _oauth_call(lambda: _services().oauth.authorization_url(state), connection_id)
    _remember_state(state, connection_id, session.nonce)
    log.info("QBO connect started connection=%s", connection_id)
    return secured(redirect(url, 302))


@bp.get("/qbo/callback")
def callback() -> BaseResponse:
    """Finish the consent: check the state, exchange the code, store tokens and company details, show the page."""
    connection_id = _check_state(request.args.get("state", ""))
    if request.args.get("error"):
        raise _denied(connection_id, request.args.get("error", ""))
    code, realm_id = request.args.get("code", ""), request.args.get("realmId", "")
    if not code or not realm_id:
        raise PageError(400, "Incomplete answer from QuickBooks",
                        "QuickBooks sent no authorization code or company id. Please try connecting again.",
                        connection_id)
    connection = connection_or_404(connection_id)
    _refuse_other_company(connection, realm_id)
    services = _services()
    tokens = _exchange(services, code, realm_id, connection_id)
    _store_connected(services, connection_id, tokens)
    notice = "connected" if _read_company_now(services, connection_id) else "pending"
    return secured(redirect(page_url(connection_id, notice), 303))


@bp.post("/connections/<int:connection_id>/qbo/disconnect")
def disconnect(connection_id: int) -> BaseResponse:
    """Revoke the tokens (best effort), clear them and stop syncing; mirrored data is kept."""
    session = require_admin(connection_id)
    if not session.csrf_ok(request.form.get("csrf_token")):
        raise PageError(403, "Form expired", "The form was not sent from this connection's page (or it is too "
                        "old). Reload the page and try again.", connection_id)
    connection_or_404(connection_id)
    with _token_lock(connection_id):
        _revoke_quietly(connection_id)
        _mark_disconnected(connection_id)
    log.info("QBO disconnected connection=%s", connection_id)
    return secured(redirect(page_url(connection_id, "disconnected"), 303))


def _state_key(state: str) -> str:
    return runtime().keys.oauth_state(state)


def _remember_state(state: str, connection_id: int, nonce: str) -> None:
    value = json.dumps({"connection_id": connection_id, "nonce": nonce})
    runtime().redis.set(_state_key(state), value, ex=STATE_SECONDS)


def _check_state(state: str) -> int:
    """The connection of a valid state for this browser's admin session; the state is used up either way."""
    stored = runtime().redis.getdel(_state_key(state)) if state else None
    if stored is None:
        raise PageError(403, "Sign-in link expired or already used",
                        "This QuickBooks sign-in is unknown, expired or was already used. Start again from the "
                        "connection's page.")
    pending = json.loads(stored)
    connection_id = int(pending["connection_id"])
    try:
        session = require_admin(connection_id)
    except signing.AdminAuthError:
        session = None
    if session is None or not hmac.compare_digest(session.nonce, str(pending["nonce"])):
        log.warning("QBO callback with a state from another session connection=%s", connection_id)
        raise PageError(403, "Started in another browser",
                        "This QuickBooks sign-in was started from another browser or admin session, so it was "
                        "refused. Start again from the connection's page in this browser.")
    return connection_id


def _exchange(services: QboServices, code: str, realm_id: str, connection_id: int) -> TokenSet:
    """Exchange the code; refuse (403) a company other than the one Intuit's signed ID token says was granted."""
    try:
        return _oauth_call(lambda: services.oauth.exchange_code(code, realm_id), connection_id)
    except GrantMismatchError as exc:
        _refused(connection_id, {"granted": exc.granted, "claimed": exc.claimed})
        raise PageError(403, "The company does not match your consent",
                        f"You gave consent for QuickBooks company id {exc.granted}, but the answer that came back "
                        f"names company id {exc.claimed}. Nothing was connected and the new authorization was "
                        "revoked. Start again from the connection's page and choose the company there.",
                        connection_id) from None
    except IdTokenError as exc:
        _refused(connection_id, {"claimed": realm_id, "reason": str(exc)})
        raise PageError(403, "QuickBooks did not confirm the company",
                        f"Intuit's answer did not prove which company was granted ({exc}), so nothing was "
                        "connected. Please try connecting again.", connection_id) from None


def _refused(connection_id: int, diff: dict[str, object]) -> None:
    log.warning("QBO connect refused connection=%s: %s", connection_id, diff)
    db.session.add(AuditEntry(connection_id=connection_id, action="qbo.connect_refused", direction="admin",
                              entity="Connection", entity_id=str(connection_id), diff=diff, outcome="refused"))
    db.session.commit()


def _denied(connection_id: int, error: str) -> PageError:
    log.info("QBO consent not given connection=%s error=%s", connection_id, error[:64])
    if error == "access_denied":
        return PageError(400, "QuickBooks access was not granted",
                         "The connection to QuickBooks was cancelled or denied, so nothing changed. You can try "
                         "again from the connection's page.", connection_id)
    return PageError(400, "QuickBooks reported an error",
                     f"QuickBooks ended the sign-in with the error “{error[:100]}”. Nothing changed; please try "
                     "again.", connection_id)


def _refuse_other_company(connection: Connection, realm_id: str) -> None:
    if connection.qbo_realm_id and connection.qbo_realm_id != realm_id:
        name = connection.qbo_company_name or "another company"
        raise PageError(409, "A different QuickBooks company",
                        f"This connection belongs to {name} (company id {connection.qbo_realm_id}), but you chose "
                        f"company id {realm_id}. Its mirrored data belongs to the first company, so it was not "
                        "switched. Reconnect the same company, or create a new connection for the other one.",
                        connection.id)


def _services() -> QboServices:
    try:
        return runtime().qbo()
    except ValueError as exc:  # settings that name no usable QBO environment (e.g. local without overrides)
        log.error("QBO is not configured: %s", exc)
        raise PageError(500, "QuickBooks is not configured", str(exc)) from None


def _oauth_call(call: Callable[[], T], connection_id: int) -> T:
    """Run a call to Intuit's OAuth service, turning its failures into 502 pages."""
    try:
        return call()
    except OAuthUnavailableError as exc:
        log.warning("QBO OAuth unavailable connection=%s: %s", connection_id, exc)
        raise PageError(502, "QuickBooks is not answering", "Intuit's sign-in service could not be reached or "
                        "failed. Nothing changed; please try again in a few minutes.", connection_id) from None
    except (OAuthError, DiscoveryError) as exc:
        log.warning("QBO OAuth refused connection=%s: %s", connection_id, exc)
        raise PageError(502, "QuickBooks refused the connection",
                        f"Intuit refused the request: {exc}. Nothing changed; please connect again.",
                        connection_id) from None


def _store_connected(services: QboServices, connection_id: int, tokens: TokenSet) -> None:
    with _token_lock(connection_id):
        services.store.save(str(connection_id), tokens)
    db.session.expire_all()  # the store wrote through its own session
    connection = connection_or_404(connection_id)
    connection.qbo_is_sandbox = runtime().settings.qbo_environment != "production"
    first_time = connection.cdc_cursor is None  # never synced: CDC cannot see the company's older records
    _audit(connection_id, "qbo.connected", {"realm_id": tokens.realm_id})
    db.session.commit()
    log.info("QBO connected connection=%s realm=%s", connection_id, tokens.realm_id)
    jobs = runtime().jobs
    wake_connection(jobs, connection_id)  # events that waited while disconnected
    if first_time:
        # Nothing is written yet: a first-sync run is opened and its preview computed; a person (or the
        # connection's first_sync.auto_start) starts it (crm_qb/sync/firstsync).
        open_first_sync(jobs, connection_id)


def _read_company_now(services: QboServices, connection_id: int) -> bool:
    """Read the company's details now; on failure leave it to a job and return False."""
    connection = connection_or_404(connection_id)
    try:
        # No retries here: a throttled or failing QuickBooks must not hold the browser; the job retries.
        with services.client_for(connection, max_retries=0, slot_timeout=10) as client:
            refresh_company(db.session, connection, client)
        db.session.commit()
        return True
    except CrmQbError as exc:
        db.session.rollback()
        log.warning("QBO company details not read connection=%s (%s); queued", connection_id, type(exc).__name__)
    runtime().jobs.load_company(connection_id)
    return False


def _revoke_quietly(connection_id: int) -> None:
    """Revoke the stored refresh token at Intuit; failures are logged, never raised (disconnect goes on)."""
    try:
        services = _services()
        stored = services.store.load(str(connection_id))
        if stored is not None:
            services.oauth.revoke(stored.tokens.refresh_token)
    except (CrmQbError, PageError) as exc:
        log.warning("QBO revoke failed connection=%s (%s); disconnecting locally", connection_id,
                    type(exc).__name__)


def _mark_disconnected(connection_id: int) -> None:
    db.session.expire_all()
    connection = connection_or_404(connection_id)
    connection.qbo_access_token_encrypted = connection.qbo_refresh_token_encrypted = None
    connection.qbo_access_expires_at = connection.qbo_refresh_expires_at = None
    connection.qbo_status = QboStatus.DISCONNECTED
    connection.qbo_status_reason = f"Disconnected by an administrator on {utcnow():%Y-%m-%d %H:%M} UTC."
    _audit(connection_id, "qbo.disconnected", {"realm_id": connection.qbo_realm_id})
    db.session.commit()


def _audit(connection_id: int, action: str, diff: dict[str, object]) -> None:
    db.session.add(AuditEntry(connection_id=connection_id, action=action, direction="admin", entity="Connection",
                              entity_id=str(connection_id), diff=diff, outcome="ok"))


def _token_lock(connection_id: int) -> AbstractContextManager[RenewingLock]:
    """Hold the connection's token lock (TokenManager's) so a refresh in flight cannot undo a connect or disconnect."""
    rt = runtime()
    busy = PageError(503, "Busy", "QuickBooks tokens are being refreshed right now. Please try again in a minute.",
                     connection_id)
    return held(rt.redis, rt.keys.token_lock(connection_id), lambda: busy, wait=LOCK_WAIT_SECONDS)


register_page_errors(bp)
