"""Fixtures for the QBO sandbox tests: an in-process app, an OAuth-authorised API client, captured webhooks."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from werkzeug.serving import make_server

from crm_qb.sandbox.qbo import jsonio
from crm_qb.sandbox.qbo.app import create_app, sandbox_of
from crm_qb.sandbox.qbo.sandbox import SandboxConfig
from crm_qb.sandbox.qbo.store import RealmSettings

PAYLOADS = Path(__file__).parents[1] / "fixtures" / "qbo"  # copies of the fact sheet's payloads, with sources
PLAIN_REALM = "123146090000001"
REDIRECT = "https://crm.example.test/qbo/callback"


def load_payload(name: str) -> object:
    """A payload file from tests/fixtures/qbo (money parsed as Decimal)."""
    return jsonio.loads((PAYLOADS / name).read_text())


class Api:
    """A tiny QBO client over the Flask test client, the way a real client calls the API."""

    def __init__(self, client, realm_id: str, token: str) -> None:
        self.client, self.realm_id, self.token = client, realm_id, token

    def _url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"/v3/company/{self.realm_id}/{path}{sep}minorversion=75"

    def _headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}

    def get(self, path: str, **query):
        """GET and return the response (``.json_body`` holds Decimal money)."""
        url = f"/v3/company/{self.realm_id}/{path}"
        response = self.client.get(url, query_string={**query, "minorversion": "75"}, headers=self._headers())
        response.json_body = _decode(response)
        return response

    def post(self, path: str, body: object):
        """POST a JSON body and return the response."""
        response = self.client.post(self._url(path), data=jsonio.dumps(body), headers=self._headers(),
                                    content_type="application/json")
        response.json_body = _decode(response)
        return response

    def create(self, entity: str, body: dict) -> dict:
        """Create and return the object, asserting success."""
        response = self.post(entity.lower(), body)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.json_body[entity]

    def query(self, text: str) -> dict:
        """Run a query and return the QueryResponse object."""
        response = self.get("query", query=text)
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.json_body["QueryResponse"]


def _decode(response) -> object:
    if response.mimetype != "application/json":
        return None
    return jsonio.loads(response.get_data())


def basic(client_id: str, secret: str) -> dict:
    """The Authorization header of client_secret_basic."""
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def authorize(client, sandbox, realm_id: str | None = None, scope: str = "com.intuit.quickbooks.accounting"):
    """Run the consent redirect and return (code, query params of the redirect)."""
    params = {"client_id": sandbox.config.client_id, "response_type": "code", "scope": scope,
              "redirect_uri": REDIRECT, "state": "st4te"}
    if realm_id:
        params["realm"] = realm_id
    response = client.get("/connect/oauth2", query_string=params)
    assert response.status_code == 302
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    return query.get("code", [None])[0], query


def exchange(client, sandbox, code: str):
    """POST the authorization code to the token endpoint; return the response."""
    return client.post("/oauth2/v1/tokens/bearer",
                       data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
                       headers=basic(sandbox.config.client_id, sandbox.config.client_secret))


def access_token(client, sandbox, realm_id: str) -> str:
    """An access token for ``realm_id`` through the real OAuth flow."""
    code, _ = authorize(client, sandbox, realm_id)
    return exchange(client, sandbox, code).get_json()["access_token"]


class Hooks:
    """Captures webhook deliveries instead of POSTing them."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[str, bytes, dict]] = []

    def post(self, url: str, body: bytes, headers) -> int:
        self.deliveries.append((url, body, dict(headers)))
        return 200

    def events(self) -> list[dict]:
        """Every delivered CloudEvent, in order."""
        return [event for _url, body, _headers in self.deliveries for event in json.loads(body)]


@pytest.fixture
def live():
    """A sandbox served by a threaded werkzeug server on an ephemeral 127.0.0.1 port (its ``Sandbox``)."""
    app = create_app(SandboxConfig())
    server = make_server("127.0.0.1", 0, app, threaded=True)
    sandbox = sandbox_of(app)
    sandbox.base_url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield sandbox
    server.shutdown()
    thread.join(5)
    server.server_close()
    sandbox.stop()


@pytest.fixture
def hooks() -> Hooks:
    return Hooks()


@pytest.fixture
def app(hooks):
    application = create_app(SandboxConfig(webhook_post=hooks.post))
    sandbox = sandbox_of(application)
    sandbox.create_realm(RealmSettings(PLAIN_REALM, "Plain Company", "USD", multicurrency=False))
    yield application
    sandbox.stop()


@pytest.fixture
def sandbox(app):
    return sandbox_of(app)


# A fixed instant for sandboxes whose clock only moves when a test moves it (18:00 UTC = 10:00 in Los Angeles).
FROZEN_AT = datetime(2026, 3, 2, 18, 0, 0, tzinfo=UTC)


@pytest.fixture
def frozen_app(hooks):
    """An app whose sandbox clock stands at ``FROZEN_AT`` until moved (``sandbox.clock.advance``, /_sandbox/clock)."""
    application = create_app(SandboxConfig(webhook_post=hooks.post, clock=lambda: FROZEN_AT))
    yield application
    sandbox_of(application).stop()


@pytest.fixture
def frozen(frozen_app):
    return sandbox_of(frozen_app)


@pytest.fixture
def frozen_client(frozen_app):
    return frozen_app.test_client()


@pytest.fixture
def frozen_api(frozen_client, frozen) -> Api:
    """An authorised client for the demo realm of the ``frozen`` sandbox."""
    return Api(frozen_client, frozen.demo_realm_id, access_token(frozen_client, frozen, frozen.demo_realm_id))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def api(client, sandbox) -> Api:
    """An authorised client for the demo realm (multicurrency on, home USD)."""
    return Api(client, sandbox.demo_realm_id, access_token(client, sandbox, sandbox.demo_realm_id))


@pytest.fixture
def plain_api(client, sandbox) -> Api:
    """An authorised client for a realm with multicurrency off."""
    return Api(client, PLAIN_REALM, access_token(client, sandbox, PLAIN_REALM))


@pytest.fixture
def item(api) -> dict:
    return api.create("Item", {"Name": "Widget Service", "UnitPrice": Decimal("20")})


def sales_line(item_id: str, qty: str = "1", price: str | None = None) -> dict:
    """A SalesItemLine for ``item_id``."""
    detail = {"ItemRef": {"value": item_id}, "Qty": Decimal(qty)}
    if price is not None:
        detail["UnitPrice"] = Decimal(price)
    return {"DetailType": "SalesItemLineDetail", "SalesItemLineDetail": detail}
