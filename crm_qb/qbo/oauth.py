"""OAuth 2 with Intuit: discovery, the consent URL, code exchange, refresh and revocation (docs/qbo/facts.md §1).

Token calls use requests-oauthlib's ``OAuth2Session`` with ``client_secret_basic`` (an ``Authorization:
Basic`` header and a form-encoded body), as Intuit's own client does.

Plain http is accepted only for loopback hosts (the project's QBO sandbox on 127.0.0.1). oauthlib's only
switch for that is the process-wide ``OAUTHLIB_INSECURE_TRANSPORT`` variable, read on every call; setting it,
even briefly, would relax the check for every thread of the process and race with other threads. Instead the
loopback endpoint is handed to oauthlib spelled ``https://`` and that one session gets a transport adapter,
mounted for that exact origin only, which sends the request over ``http://``. Nothing global changes, and a
non-loopback ``http://`` endpoint is refused before any request is made.

requests-oauthlib logs request bodies and tokens at DEBUG: keep the ``requests_oauthlib`` and ``oauthlib``
loggers at INFO or above in production.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from crm_qb.errors import PermanentError, TransientError
from crm_qb.qbo.faults import header
from crm_qb.qbo.idtoken import IdTokenError, UnknownKeyError, load_jwks, realm_of

log = logging.getLogger(__name__)

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
# What a connection asks for: the Accounting API, and ``openid`` so that Intuit's token answer carries a signed ID
# token naming the company the grant is for (its ``realmid`` claim; ``idtoken``).
CONNECT_SCOPE = f"{ACCOUNTING_SCOPE} openid"
DEFAULT_TIMEOUT = 30.0


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class OAuthError(PermanentError):
    """Intuit's token service refused the request (bad client credentials, a bad redirect URI...)."""

    def __init__(self, message: str, *, error: str = "", http_status: int | None = None,
                 intuit_tid: str | None = None) -> None:
        super().__init__(message)
        self.error = error
        self.http_status = http_status
        self.intuit_tid = intuit_tid

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.args[0], self.error, self.http_status, self.intuit_tid))


def _rebuild(cls: type[OAuthError], message: str, error: str, status: int | None, tid: str | None) -> OAuthError:
    return cls(message, error=error, http_status=status, intuit_tid=tid)


class InvalidGrantError(OAuthError):
    """The code or refresh token is no longer valid (rotated, revoked, expired): the user must reconnect."""


class OAuthUnavailableError(TransientError):
    """Intuit's OAuth service did not answer usefully (network, 5xx, 429); retry later."""


class DiscoveryError(PermanentError):
    """The discovery document is unusable (not JSON, an endpoint missing)."""


class GrantMismatchError(PermanentError):
    """The callback names another company than the one the consent was granted for (its tokens were revoked)."""

    def __init__(self, granted: str, claimed: str) -> None:
        super().__init__(f"the consent was granted for company {granted}, not for company {claimed}")
        self.granted, self.claimed = granted, claimed


@dataclass(frozen=True)
class Discovery:
    """Intuit's OAuth endpoints, as read from a discovery document."""

    authorization_endpoint: str
    token_endpoint: str
    revocation_endpoint: str
    issuer: str | None = None
    userinfo_endpoint: str | None = None
    jwks_uri: str | None = None

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> Discovery:
        """Build from a parsed discovery document; DiscoveryError names a missing endpoint."""
        required = ("authorization_endpoint", "token_endpoint", "revocation_endpoint")
        missing = [name for name in required if not document.get(name)]
        if missing:
            raise DiscoveryError(f"discovery document lacks {', '.join(missing)}")
        for name in required:
            check_transport(document[name])
        fields: dict[str, Any] = {name: document.get(name) for name in (*required, "issuer", "userinfo_endpoint",
                                                                          "jwks_uri")}
        return cls(**fields)

    @classmethod
    def load(cls, url: str, session: requests.Session | None = None,
             timeout: float = DEFAULT_TIMEOUT) -> Discovery:
        """Fetch and parse the discovery document at ``url``."""
        check_transport(url)
        http = session or requests.Session()
        try:
            response = http.get(url, headers={"Accept": "application/json"}, timeout=timeout)
        except requests.RequestException as exc:
            raise OAuthUnavailableError(f"discovery document unreachable: {type(exc).__name__}") from exc
        finally:
            if session is None:
                http.close()
        if response.status_code >= 500 or response.status_code == 429:
            raise OAuthUnavailableError(f"discovery document: HTTP {response.status_code}")
        if response.status_code != 200:
            raise DiscoveryError(f"discovery document at {url}: HTTP {response.status_code}")
        try:
            return cls.from_document(response.json())
        except ValueError as exc:
            raise DiscoveryError(f"discovery document at {url} is not JSON") from exc


@dataclass(frozen=True)
class TokenSet:
    """The tokens of one connection and when they expire (aware UTC); tokens are kept out of repr."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_expires_at: datetime
    refresh_expires_at: datetime | None
    realm_id: str | None = None

    def access_valid_at(self, when: datetime, skew: timedelta = timedelta(0)) -> bool:
        """Whether the access token is still good at ``when`` with ``skew`` to spare."""
        return when + skew < self.access_expires_at

    def refresh_valid_at(self, when: datetime) -> bool:
        """Whether the refresh token is still good at ``when`` (unknown expiry counts as good)."""
        return self.refresh_expires_at is None or when < self.refresh_expires_at


def token_set_from_response(token: Mapping[str, Any], now: datetime, realm_id: str | None = None) -> TokenSet:
    """A TokenSet from a token endpoint answer received at ``now``."""
    refresh_in = token.get("x_refresh_token_expires_in")
    return TokenSet(
        access_token=str(token["access_token"]),
        refresh_token=str(token["refresh_token"]),
        access_expires_at=now + timedelta(seconds=int(token.get("expires_in", 3600))),
        refresh_expires_at=None if refresh_in is None else now + timedelta(seconds=int(refresh_in)),
        realm_id=realm_id,
    )


def authorization_url(client_id: str, redirect_uri: str, state: str, discovery: Discovery,
                      scope: str = ACCOUNTING_SCOPE) -> str:
    """The Intuit consent URL to redirect the user to; ``state`` must be checked on the callback."""
    if not state:
        raise ValueError("state must be a non-empty CSRF token")
    endpoint = discovery.authorization_endpoint
    oauth = OAuth2Session(client_id, redirect_uri=redirect_uri, scope=scope.split())
    with oauth:
        url, _ = oauth.authorization_url(_as_https(endpoint), state=state)
    return endpoint + url[len(_as_https(endpoint)):]


def exchange_code(client_id: str, client_secret: str, redirect_uri: str, code: str, discovery: Discovery,
                  realm_id: str | None = None, *, clock: Callable[[], datetime] = utcnow,
                  timeout: float = DEFAULT_TIMEOUT) -> TokenSet:
    """Trade the callback's authorization code for tokens."""
    token = fetch_code_token(client_id, client_secret, redirect_uri, code, discovery, timeout=timeout)
    log.info("QBO authorization code exchanged realm=%s", realm_id)
    return token_set_from_response(token, clock(), realm_id)


def fetch_code_token(client_id: str, client_secret: str, redirect_uri: str, code: str, discovery: Discovery, *,
                     timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
    """The token endpoint's answer to an authorization code (tokens, and an ``id_token`` with openid)."""
    with _session(client_id, discovery.token_endpoint, redirect_uri=redirect_uri) as oauth:
        token = _token_call(lambda: oauth.fetch_token(
            _as_https(discovery.token_endpoint), code=code, auth=HTTPBasicAuth(client_id, client_secret),
            timeout=timeout, include_client_id=False))
    return dict(token)


def refresh(client_id: str, client_secret: str, refresh_token: str, discovery: Discovery, *,
            clock: Callable[[], datetime] = utcnow, timeout: float = DEFAULT_TIMEOUT) -> TokenSet:
    """A new TokenSet for ``refresh_token``; the answer's refresh token replaces the old one at once."""
    with _session(client_id, discovery.token_endpoint) as oauth:
        token = _token_call(lambda: oauth.refresh_token(
            _as_https(discovery.token_endpoint), refresh_token=refresh_token,
            auth=HTTPBasicAuth(client_id, client_secret), timeout=timeout))
    return token_set_from_response(token, clock())


def revoke(client_id: str, client_secret: str, token: str, discovery: Discovery, *,
           timeout: float = DEFAULT_TIMEOUT) -> None:
    """Revoke a refresh (or access) token at Intuit; the connection's grant ends."""
    endpoint = discovery.revocation_endpoint
    with _session(client_id, endpoint) as oauth:
        def call() -> requests.Response:
            response = oauth.post(_as_https(endpoint), json={"token": token},
                                  auth=HTTPBasicAuth(client_id, client_secret),
                                  headers={"Accept": "application/json"}, timeout=timeout,
                                  withhold_token=True)  # type: ignore[call-arg]  # in requests-oauthlib, not its stub
            return _check_token_response(response)
        _token_call(call)
    log.info("QBO token revoked")


class OAuthClient:
    """The app's OAuth client: credentials plus a discovery document loaded once and kept on the object."""

    def __init__(self, client_id: str, client_secret: str, redirect_uri: str, discovery_url: str, *,
                 clock: Callable[[], datetime] = utcnow, timeout: float = DEFAULT_TIMEOUT,
                 discovery: Discovery | None = None) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.discovery_url = discovery_url
        self._clock = clock
        self._timeout = timeout
        self._discovery = discovery
        self._jwks: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"OAuthClient(client_id={self.client_id!r}, discovery_url={self.discovery_url!r})"

    @property
    def discovery(self) -> Discovery:
        """The discovery document, fetched on first use and cached on this object."""
        if self._discovery is None:
            self._discovery = Discovery.load(self.discovery_url, timeout=self._timeout)
        return self._discovery

    def authorization_url(self, state: str, scope: str = CONNECT_SCOPE) -> str:
        """The consent URL for this app (the Accounting API and openid, so the grant names its company)."""
        return authorization_url(self.client_id, self.redirect_uri, state, self.discovery, scope)

    def exchange_code(self, code: str, realm_id: str | None = None) -> TokenSet:
        """Trade an authorization code for tokens bound to the company Intuit's signed ID token names.

        ``realm_id`` is what the callback's URL claims. The answer's ID token decides (``idtoken.realm_of``): a
        different company raises GrantMismatchError after revoking the new tokens; an answer without a valid ID
        token raises IdTokenError. The TokenSet carries the verified company.
        """
        token = fetch_code_token(self.client_id, self._client_secret, self.redirect_uri, code, self.discovery,
                                 timeout=self._timeout)
        granted = self._granted_realm(token)
        if realm_id is not None and granted != realm_id:
            self._revoke_quietly(str(token.get("refresh_token") or ""))
            log.warning("QBO consent for company %s presented as company %s: refused", granted, realm_id)
            raise GrantMismatchError(granted, realm_id)
        log.info("QBO authorization code exchanged realm=%s (confirmed by the ID token)", granted)
        return token_set_from_response(token, self._clock(), granted)

    def _granted_realm(self, token: Mapping[str, Any]) -> str:
        """The company the token answer's ID token was signed for; IdTokenError when there is none to trust."""
        id_token = token.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise IdTokenError("Intuit's token answer carries no ID token (was the openid scope granted?)")
        discovery = self.discovery
        if not discovery.jwks_uri:
            raise IdTokenError("the discovery document names no jwks_uri to verify the ID token with")
        jwks_uri, now = discovery.jwks_uri, self._clock()

        def verified(refetch: bool) -> str:
            return realm_of(id_token, self._keys(jwks_uri, refetch=refetch), client_id=self.client_id,
                            issuer=discovery.issuer, now=now)

        try:
            return verified(refetch=False)
        except UnknownKeyError:  # Intuit rotated its keys since we fetched them: fetch once more
            return verified(refetch=True)

    def _keys(self, jwks_uri: str, *, refetch: bool) -> dict[str, Any]:
        """Intuit's signing keys, fetched on first use and kept (fetched again when asked: a rotation)."""
        if self._jwks is None or refetch:
            check_transport(jwks_uri)
            try:
                self._jwks = load_jwks(jwks_uri, timeout=self._timeout)
            except TransientError as exc:
                raise OAuthUnavailableError(str(exc)) from exc
        return self._jwks

    def _revoke_quietly(self, refresh_token: str) -> None:
        """Revoke tokens crm-qb will not use; a failure is logged, never raised."""
        try:
            if refresh_token:
                self.revoke(refresh_token)
        except (OAuthError, OAuthUnavailableError) as exc:
            log.warning("QBO revoke of refused tokens failed: %s", type(exc).__name__)

    def refresh(self, refresh_token: str) -> TokenSet:
        """Refresh; fits TokenManager's ``oauth_refresh``."""
        return refresh(self.client_id, self._client_secret, refresh_token, self.discovery,
                       clock=self._clock, timeout=self._timeout)

    def revoke(self, token: str) -> None:
        """Revoke a token."""
        revoke(self.client_id, self._client_secret, token, self.discovery, timeout=self._timeout)


def check_transport(url: str) -> None:
    """Refuse any endpoint that is not https, except http on a loopback host."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(parts.hostname or "")):
        return
    raise ValueError(f"OAuth endpoints must use https (http only on loopback hosts), got {url!r}")


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _HttpDowngradeAdapter(HTTPAdapter):
    """Sends requests addressed to ``https://<loopback origin>`` over plain http; see the module docstring."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if request.url and request.url.startswith("https://"):
            request.url = "http://" + request.url[len("https://"):]
        return super().send(request, *args, **kwargs)


def _session(client_id: str, endpoint: str, redirect_uri: str | None = None) -> OAuth2Session:
    """An OAuth2Session for one call; loopback http endpoints get the downgrade adapter for that origin."""
    check_transport(endpoint)
    oauth = OAuth2Session(client_id, redirect_uri=redirect_uri)
    for hook in ("access_token_response", "refresh_token_response"):
        oauth.register_compliance_hook(hook, _check_token_response)
    if urlsplit(endpoint).scheme == "http":
        origin = _origin(_as_https(endpoint))
        oauth.mount(origin + "/", _HttpDowngradeAdapter())
    return oauth


def _as_https(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="https")) if parts.scheme == "http" else url


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _check_token_response(response: requests.Response) -> requests.Response:
    """Log the call's intuit_tid and turn a failed answer into a typed error before oauthlib parses it."""
    tid = header(response.headers, "intuit_tid")
    log.info("QBO OAuth call status=%s intuit_tid=%s", response.status_code, tid)
    if response.status_code == 200:
        return response
    if response.status_code >= 500 or response.status_code == 429:
        raise OAuthUnavailableError(f"Intuit OAuth service answered HTTP {response.status_code} "
                                    f"(intuit_tid {tid})")
    error, description = _error_body(response.content)
    message = f"Intuit refused the token request: {error or 'HTTP ' + str(response.status_code)}"
    message += f" ({description})" if description else ""
    cls = InvalidGrantError if error == "invalid_grant" else OAuthError
    raise cls(message, error=error, http_status=response.status_code, intuit_tid=tid)


def _error_body(body: bytes) -> tuple[str, str]:
    """The ``error`` and ``error_description`` of a token endpoint error body, if it is JSON."""
    try:
        document = json.loads(body)
    except ValueError:
        return "", ""
    if not isinstance(document, dict):
        return "", ""
    return str(document.get("error") or ""), str(document.get("error_description") or "")


def _token_call(call: Callable[[], Any]) -> Any:
    """Run a token request, mapping network failures and malformed answers to typed errors."""
    try:
        return call()
    except (OAuthError, OAuthUnavailableError):
        raise
    except requests.RequestException as exc:
        raise OAuthUnavailableError(f"Intuit OAuth service unreachable: {type(exc).__name__}") from exc
    except Exception as exc:  # oauthlib raises its own errors for a 200 it cannot use; none is retryable
        if type(exc).__module__.startswith("oauthlib"):
            raise OAuthError(f"Intuit's token answer was unusable: {type(exc).__name__}") from exc
        raise
