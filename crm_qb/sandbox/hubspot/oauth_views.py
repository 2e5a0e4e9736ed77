"""HubSpot's OAuth endpoints: authorize, token (v1, v3 and dated), token metadata, revoke, introspect."""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Blueprint, Response, redirect, request

from crm_qb.sandbox.hubspot import errors
from crm_qb.sandbox.hubspot.http import json_response, no_content
from crm_qb.sandbox.hubspot.oauth import oauth_error
from crm_qb.sandbox.hubspot.state import current_sandbox

bp = Blueprint("hubspot_oauth", __name__)


@bp.get("/oauth/authorize")
@bp.get("/oauth/<int:portal_id>/authorize")
def authorize(portal_id: int | None = None) -> Response:
    """Consent at once and redirect to ``redirect_uri`` with ``code`` and ``state`` (``deny=1``: refuse)."""
    sandbox = current_sandbox()
    args = request.args
    redirect_uri = args.get("redirect_uri")
    if portal_id is not None and portal_id != sandbox.portal_id:
        return Response(f"This sandbox is portal {sandbox.portal_id}.", status=400, mimetype="text/plain")
    if args.get("deny") == "1" and redirect_uri:
        return _back(redirect_uri, {"error": "access_denied", "state": args.get("state")})
    try:
        code = sandbox.oauth.authorize(args.get("client_id"), redirect_uri, args.get("scope", ""))
    except ValueError as exc:
        return Response(f"Cannot authorize: {exc}.", status=400, mimetype="text/plain")
    return _back(str(redirect_uri), {"code": code, "state": args.get("state")})


def _back(redirect_uri: str, params: dict[str, str | None]) -> Response:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return redirect(f"{redirect_uri}{'&' if '?' in redirect_uri else '?'}{query}", 302)


@bp.post("/oauth/v1/token")
def token_v1() -> Response:
    """Exchange a code or refresh token (form-encoded; v1 also reads the query string, as its spec allows)."""
    form = {**request.args.to_dict(), **request.form.to_dict()}
    return json_response(current_sandbox().oauth.token(form))


@bp.post("/oauth/v3/token")
@bp.post("/oauth/2026-03/token")
def token_v3() -> Response:
    """Exchange a code or refresh token; every parameter must be in the form body."""
    return json_response(current_sandbox().oauth.token(request.form.to_dict()))


@bp.get("/oauth/v1/access-tokens/<token>")
def access_token_info(token: str) -> Response:
    """Return an access token's metadata (hub_id, user, scopes, expires_in...)."""
    info = current_sandbox().oauth.access_info(token)
    if info is None:
        raise errors.resource_not_found("The access token is unknown or has expired")
    return json_response(info)


@bp.get("/oauth/v1/refresh-tokens/<token>")
def refresh_token_info(token: str) -> Response:
    """Return a refresh token's metadata."""
    info = current_sandbox().oauth.refresh_info(token)
    if info is None:
        raise errors.resource_not_found("The refresh token is unknown or has been deleted")
    return json_response(info)


@bp.delete("/oauth/v1/refresh-tokens/<token>")
def delete_refresh_token(token: str) -> Response:
    """Delete a refresh token (later refreshes fail with BAD_REFRESH_TOKEN); 204."""
    if not current_sandbox().oauth.revoke(token):
        raise errors.resource_not_found("The refresh token is unknown or has been deleted")
    return no_content()


@bp.post("/oauth/v3/token/revoke")
def revoke_v3() -> Response:
    """Revoke a refresh token given in the form body with the app's credentials."""
    sandbox = current_sandbox()
    form = request.form
    if form.get("client_id") != sandbox.client_id or form.get("client_secret") != sandbox.client_secret:
        raise oauth_error("BAD_CLIENT_ID")
    sandbox.oauth.revoke(form.get("token", ""))
    return Response(status=200)


@bp.post("/oauth/v3/token/introspect")
def introspect_v3() -> Response:
    """Describe a token: ``active`` plus its metadata when it is live."""
    sandbox = current_sandbox()
    token = request.form.get("token", "")
    info = sandbox.oauth.access_info(token) or sandbox.oauth.refresh_info(token)
    if info is None:
        return json_response({"active": False})
    use = "access_token" if info["token_type"] == "access" else "refresh_token"
    return json_response({"active": True, **info, "client_id": sandbox.client_id, "app_id": sandbox.config.app_id,
                          "token_use": use})
