"""HTTP endpoints of the sandbox's OAuth 2 / OpenID server: discovery, authorize, token, revoke, JWKS, UserInfo."""

from __future__ import annotations

import base64
import binascii
from urllib.parse import urlencode

from flask import Blueprint, Response, redirect, request

from .http import json_response
from .oauth import OAuthError
from .oidc import JWKS_PATH, USERINFO_PATH, discovery_document, userinfo_claims
from .sandbox import Sandbox

DISCOVERY_PATHS = ("/.well-known/openid_sandbox_configuration", "/.well-known/openid_sandbox_configuration/",
                   "/.well-known/openid-sandbox-configuration", "/.well-known/openid_configuration",
                   "/.well-known/openid_configuration/")


def make_oauth_blueprint(sandbox: Sandbox, base_url) -> Blueprint:
    """The OAuth blueprint; ``base_url()`` returns this server's base URL for the discovery document."""
    bp = Blueprint("qbo_oauth", __name__)

    def discovery() -> Response:
        return json_response(discovery_document(base_url()))

    for number, path in enumerate(DISCOVERY_PATHS):
        bp.add_url_rule(path, f"discovery_{number}", discovery, methods=["GET"], strict_slashes=True)

    @bp.get("/connect/oauth2")
    def authorize() -> Response:
        return _authorize(sandbox)

    @bp.post("/oauth2/v1/tokens/bearer")
    def token() -> Response:
        return _token(sandbox)

    @bp.post("/v2/oauth2/tokens/revoke")
    def revoke() -> Response:
        return _revoke(sandbox)

    @bp.get(JWKS_PATH)
    def jwks() -> Response:
        return json_response(sandbox.oauth.signing_key.jwks())

    @bp.route(USERINFO_PATH, methods=["GET", "POST"])
    def userinfo() -> Response:
        return _userinfo(sandbox)

    return bp


def _authorize(sandbox: Sandbox) -> Response:
    """Consent at once and redirect with code, state and realmId (or error=access_denied when deny=1)."""
    args = request.args
    redirect_uri = args.get("redirect_uri")
    if args.get("client_id") != sandbox.config.client_id or not redirect_uri:
        return Response("invalid_client: unknown client_id or missing redirect_uri", status=400,
                        mimetype="text/plain")
    state = args.get("state", "")
    realm_id = args.get("realm") or sandbox.demo_realm_id
    if args.get("response_type") != "code":
        return redirect(_with_query(redirect_uri, {"error": "unsupported_response_type", "state": state}))
    if args.get("deny") in ("1", "true"):
        return redirect(_with_query(redirect_uri, {"error": "access_denied", "state": state}))
    if sandbox.store.realm(realm_id) is None:
        return Response(f"unknown realm {realm_id}", status=400, mimetype="text/plain")
    code = sandbox.oauth.issue_code(realm_id, redirect_uri, args.get("scope", ""))
    return redirect(_with_query(redirect_uri, {"code": code, "state": state, "realmId": realm_id}))


def _with_query(url: str, params: dict) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def _client_credentials() -> tuple[str | None, str | None]:
    """client_secret_basic first, then client_secret_post."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        client_id, _, secret = decoded.partition(":")
        return client_id, secret
    return request.form.get("client_id"), request.form.get("client_secret")


def _token(sandbox: Sandbox) -> Response:
    if not sandbox.oauth.client_ok(*_client_credentials()):
        return _oauth_error(OAuthError("invalid_client", 401))
    form = request.form
    try:
        if form.get("grant_type") == "authorization_code":
            body = sandbox.oauth.exchange_code(form.get("code", ""), form.get("redirect_uri"))
        elif form.get("grant_type") == "refresh_token":
            body = sandbox.oauth.refresh(form.get("refresh_token", ""))
        else:
            raise OAuthError("unsupported_grant_type")
    except OAuthError as error:
        return _oauth_error(error)
    response = json_response(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def _revoke(sandbox: Sandbox) -> Response:
    if not sandbox.oauth.client_ok(*_client_credentials()):
        return _oauth_error(OAuthError("invalid_client", 401))
    body = request.get_json(silent=True) or {}
    token = body.get("token") if isinstance(body, dict) else None
    if not token:
        return _oauth_error(OAuthError("invalid_request"))
    # RFC 7009: an unknown token is not an error for the caller.
    sandbox.oauth.revoke(str(token))
    return Response("", status=200)


def _userinfo(sandbox: Sandbox) -> Response:
    """The OpenID claims of the user who consented, for a bearer access token granted with ``openid``."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    granted = sandbox.oauth.scopes_for(token.strip()) if scheme.lower() == "bearer" else None
    if granted is None:
        response = json_response({"error": "invalid_token"}, 401)
        response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        return response
    realm_id, scopes = granted
    if "openid" not in scopes:
        # RFC 6750 section 3.1: a token without the scope the resource needs.
        response = json_response({"error": "insufficient_scope"}, 403)
        response.headers["WWW-Authenticate"] = 'Bearer error="insufficient_scope", scope="openid"'
        return response
    return json_response(userinfo_claims(realm_id, scopes))


def _oauth_error(error: OAuthError) -> Response:
    return json_response({"error": error.code}, error.status)
