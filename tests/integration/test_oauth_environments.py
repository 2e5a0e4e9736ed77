"""The authorize URL and the API base follow CRM_QB_QBO_ENVIRONMENT and its overrides (README, Configuration)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import responses
from flask import Flask

from crm_qb.app import create_app
from crm_qb.db import db
from crm_qb.models import Connection
from crm_qb.runtime import runtime
from tests.conftest import make_settings
from tests.support.connections import add_connection
from tests.support.oauth import live_sandbox, query_of, sign_in

INTUIT_DISCOVERY = {
    "production": "https://developer.intuit.com/.well-known/openid_configuration/",
    "sandbox": "https://developer.intuit.com/.well-known/openid_sandbox_configuration/",
}
INTUIT_DOCUMENT = {
    "issuer": "https://oauth.platform.intuit.com/op/v1",
    "authorization_endpoint": "https://appcenter.intuit.com/connect/oauth2",
    "token_endpoint": "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
    "revocation_endpoint": "https://developer.api.intuit.com/v2/oauth2/tokens/revoke",
}
API_BASES = {"production": "https://quickbooks.api.intuit.com",
             "sandbox": "https://sandbox-quickbooks.api.intuit.com"}
APP_BASES = {"production": "https://app.qbo.intuit.com", "sandbox": "https://app.sandbox.qbo.intuit.com"}


@pytest.fixture
def backend() -> str:
    """The database is not the subject here: SQLite only."""
    return "sqlite"


@pytest.fixture
def make_app(app: Flask, tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """Build more apps on the test's database with other QBO settings; disposed afterwards."""
    made: list[Flask] = []

    def build(**overrides: str) -> Flask:
        folder = tmp_path / f"app{len(made)}"
        options = {"qbo_client_id": "client-1", "qbo_client_secret": "secret-1", **overrides}
        built = create_app(make_settings(folder, str(app.config["SQLALCHEMY_DATABASE_URI"]), **options))
        made.append(built)
        return built

    yield build
    for built in made:
        with built.app_context():
            db.engine.dispose()


def _client_base(app: Flask, connection_id: int) -> str:
    with app.app_context():
        row = db.session.get(Connection, connection_id)
        with runtime(app).qbo().client_for(row) as client:
            return client.api_base


@pytest.mark.parametrize("environment", ["production", "sandbox"])
def test_intuit_environments_use_intuits_addresses(make_app: Callable[..., Flask], environment: str) -> None:
    app = make_app(qbo_environment=environment)
    conn = add_connection(app, realm_id="4620816365")
    endpoints = runtime(app).qbo().endpoints
    assert (endpoints.discovery_url, endpoints.api_base, endpoints.app_base) == (
        INTUIT_DISCOVERY[environment], API_BASES[environment], APP_BASES[environment])
    assert _client_base(app, conn.id) == API_BASES[environment]
    client = app.test_client()
    sign_in(client, app, conn.id)
    with responses.RequestsMock() as mock:
        mock.get(INTUIT_DISCOVERY[environment], json=INTUIT_DOCUMENT)
        location = client.get(f"/connections/{conn.id}/qbo/connect").headers["Location"]
    assert location.startswith("https://appcenter.intuit.com/connect/oauth2?")
    assert query_of(location)["client_id"] == "client-1"


def test_overrides_replace_the_environments_defaults(make_app: Callable[..., Flask]) -> None:
    app = make_app(qbo_environment="production", qbo_api_base="https://qbo-proxy.example.test/",
                   qbo_discovery_url="https://idp.example.test/discovery")
    conn = add_connection(app, realm_id="4620816365")
    assert _client_base(app, conn.id) == "https://qbo-proxy.example.test"
    assert runtime(app).qbo().endpoints.app_base == APP_BASES["production"]
    client = app.test_client()
    sign_in(client, app, conn.id)
    with responses.RequestsMock() as mock:
        mock.get("https://idp.example.test/discovery",
                 json={**INTUIT_DOCUMENT, "authorization_endpoint": "https://idp.example.test/authorize"})
        location = client.get(f"/connections/{conn.id}/qbo/connect").headers["Location"]
    assert location.startswith("https://idp.example.test/authorize?")


def test_the_local_environment_uses_the_project_sandbox(make_app: Callable[..., Flask]) -> None:
    with live_sandbox() as sandbox:
        app = make_app(**sandbox.settings_overrides())
        conn = add_connection(app, realm_id=sandbox.info["realm_id"])
        assert _client_base(app, conn.id) == sandbox.info["api_base"]
        client = app.test_client()
        sign_in(client, app, conn.id)
        location = client.get(f"/connections/{conn.id}/qbo/connect").headers["Location"]
    assert location.startswith(f"{sandbox.base_url}/connect/oauth2?")


def test_local_without_overrides_is_a_clear_error(make_app: Callable[..., Flask]) -> None:
    app = make_app(qbo_environment="local")
    with pytest.raises(ValueError, match="CRM_QB_QBO_DISCOVERY_URL, CRM_QB_QBO_API_BASE, CRM_QB_QBO_APP_BASE"):
        runtime(app).qbo()
    conn = add_connection(app)
    client = app.test_client()
    sign_in(client, app, conn.id)
    response = client.get(f"/connections/{conn.id}/qbo/connect")
    body = response.get_data(as_text=True)
    assert response.status_code == 500 and "QuickBooks is not configured" in body
    assert "QBO_DISCOVERY_URL" in body and "Traceback" not in body


def test_an_unreachable_discovery_document_is_a_502_page(make_app: Callable[..., Flask]) -> None:
    app = make_app(qbo_environment="sandbox")
    conn = add_connection(app)
    client = app.test_client()
    sign_in(client, app, conn.id)
    with responses.RequestsMock() as mock:
        mock.get(INTUIT_DISCOVERY["sandbox"], status=503)
        response = client.get(f"/connections/{conn.id}/qbo/connect")
    assert response.status_code == 502 and "not answering" in response.get_data(as_text=True)
