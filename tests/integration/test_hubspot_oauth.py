"""HubSpot OAuth against the local HubSpot on 127.0.0.1: install and callback, refresh before expiry, one refresh
at a time across workers, a 401 refreshed once, and a revoked grant marking the connection "needs reconnect"."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from crm_qb.config import Settings
from crm_qb.connections import create_hubspot_connection
from crm_qb.crm.errors import CrmNeedsReconnectError
from crm_qb.crm.factory import connector_for
from crm_qb.crm.hubspot.connector import HubSpotConnector
from crm_qb.crm.hubspot.oauth import HubSpotOAuth, TokenGrant
from crm_qb.db import db, utcnow
from crm_qb.models import CRM_CONNECTED, CRM_NEEDS_RECONNECT, Connection
from crm_qb.runtime import runtime
from crm_qb.sandbox.hubspot.server import RunningServer, start_server
from crm_qb.sandbox.hubspot.state import SandboxConfig
from tests.conftest import make_settings
from tests.support.oauth import sign_in

# What this file tests does not depend on the database: its SQLite variants run in CI, its PostgreSQL ones with the
# slow tests (tests/conftest.py), to keep CI under 15 minutes.
pytestmark = pytest.mark.postgresql_slow


CLIENT_ID, CLIENT_SECRET = "hs-client-id", "hs-client-secret"


@pytest.fixture
def hubspot() -> Iterator[RunningServer]:
    """The local HubSpot with crm-qb's app (client id and secret)."""
    running = start_server("127.0.0.1", 0, SandboxConfig(client_id=CLIENT_ID, client_secret=CLIENT_SECRET))
    yield running
    running.stop()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, hubspot: RunningServer) -> Settings:
    """crm-qb as the HubSpot app of that portal."""
    return make_settings(tmp_path, database_url, hubspot_api_base=hubspot.url, hubspot_app_base=hubspot.url,
                         hubspot_client_id=CLIENT_ID, hubspot_client_secret=CLIENT_SECRET)


def waiting_connection(app: Flask, hubspot: RunningServer) -> int:
    """A HubSpot connection made with ``connection add --crm hubspot --hubspot-oauth``."""
    with app.app_context():
        made = create_hubspot_connection(runtime(app).secrets, api_base=hubspot.url, token=None)
        return int(made.connection.id)


def install(app: Flask, client: FlaskClient, hubspot: RunningServer, connection_id: int) -> None:
    """The admin presses "Connect HubSpot", consents in HubSpot, and comes back to the callback."""
    sign_in(client, app, connection_id)
    page = client.get(f"/admin/connections/{connection_id}").get_data(as_text=True)
    assert f'href="/connections/{connection_id}/hubspot/connect"' in page
    start = client.get(f"/connections/{connection_id}/hubspot/connect")
    assert start.status_code == 302, start.get_data(as_text=True)
    location = start.headers["Location"]
    assert location.startswith(f"{hubspot.url}/oauth/authorize?")
    params = parse_qs(urlsplit(location).query)
    assert params["client_id"] == [CLIENT_ID] and "crm.objects.contacts.write" in params["scope"][0].split()
    consent = requests.get(location, allow_redirects=False, timeout=10)
    assert consent.status_code in (302, 303), consent.text
    back = urlsplit(consent.headers["Location"])
    done = client.get(f"{back.path}?{back.query}")
    assert done.status_code == 303, done.get_data(as_text=True)


def row(app: Flask, connection_id: int) -> Connection:
    with app.app_context():
        found = db.session.get(Connection, connection_id)
        assert found is not None
        db.session.expunge(found)
        return found


def connector(app: Flask, connection_id: int) -> HubSpotConnector:
    with app.app_context():
        found = db.session.get(Connection, connection_id)
        assert found is not None
        made = connector_for(found, runtime(app).sync_services().crm_environment())
    assert isinstance(made, HubSpotConnector)
    return made


def test_install_stores_the_grant_and_the_portal_and_creates_the_properties(
        app: Flask, client: FlaskClient, hubspot: RunningServer) -> None:
    connection_id = waiting_connection(app, hubspot)
    assert row(app, connection_id).crm_status == "not_connected"
    install(app, client, hubspot, connection_id)
    stored = row(app, connection_id)
    assert (stored.crm_status, stored.crm_account_id) == (CRM_CONNECTED, str(hubspot.sandbox.portal_id))
    page = client.get(f"/admin/connections/{connection_id}?done=hubspot_connected").get_data(as_text=True)
    assert "HubSpot is connected." in page and str(hubspot.sandbox.portal_id) in page
    assert stored.crm_refresh_token_encrypted and stored.crm_access_expires_at is not None
    assert stored.crm_access_expires_at > utcnow() + timedelta(minutes=25)
    groups = requests.get(f"{hubspot.url}/crm/v3/properties/contacts/groups", timeout=10, headers={
        "Authorization": f"Bearer {hubspot.sandbox.token}"}).json()["results"]
    assert "quickbooks" in [g["name"] for g in groups]
    with app.app_context():
        created = connector(app, connection_id).create_contact({"email": "oauth@example.com", "first_name": "O"})
    assert created.email == "oauth@example.com"


def test_a_callback_state_works_once(app: Flask, client: FlaskClient, hubspot: RunningServer) -> None:
    connection_id = waiting_connection(app, hubspot)
    sign_in(client, app, connection_id)
    location = client.get(f"/connections/{connection_id}/hubspot/connect").headers["Location"]
    back = urlsplit(requests.get(location, allow_redirects=False, timeout=10).headers["Location"])
    assert client.get(f"{back.path}?{back.query}").status_code == 303
    assert client.get(f"{back.path}?{back.query}").status_code == 403


def test_tokens_are_refreshed_before_expiry_once_across_workers(
        app: Flask, client: FlaskClient, hubspot: RunningServer, redis_client: Redis,
        monkeypatch: pytest.MonkeyPatch) -> None:
    refreshes: list[str] = []
    real_refresh = HubSpotOAuth.refresh

    def counted(self: HubSpotOAuth, refresh_token: str) -> TokenGrant:
        refreshes.append(refresh_token)
        return real_refresh(self, refresh_token)

    monkeypatch.setattr(HubSpotOAuth, "refresh", counted)
    connection_id = waiting_connection(app, hubspot)
    install(app, client, hubspot, connection_id)
    first = row(app, connection_id)
    hubspot.sandbox.clock.advance(27 * 60)  # within the 5-minute margin before HubSpot's 30 minutes
    with app.app_context():
        stored = db.session.get(Connection, connection_id)
        assert stored is not None
        stored.crm_access_expires_at = utcnow() + timedelta(minutes=3)
        db.session.commit()
    grants_before = len(requests.get(f"{hubspot.url}/_sandbox/oauth/grants", timeout=10).json().get("grants", []))
    errors: list[BaseException] = []

    def work() -> None:
        try:
            with app.app_context():
                connector(app, connection_id).list_users()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert errors == []
    after = row(app, connection_id)
    assert after.crm_token_encrypted != first.crm_token_encrypted
    assert after.crm_access_expires_at is not None and after.crm_access_expires_at > utcnow() + timedelta(minutes=25)
    assert len(refreshes) == 1  # four workers found the token stale; the lock let one of them refresh it
    assert len(requests.get(f"{hubspot.url}/_sandbox/oauth/grants", timeout=10).json().get("grants",
                                                                                           [])) == grants_before


def test_a_401_is_refreshed_once_and_repeated(app: Flask, client: FlaskClient, hubspot: RunningServer) -> None:
    connection_id = waiting_connection(app, hubspot)
    install(app, client, hubspot, connection_id)
    before = row(app, connection_id).crm_token_encrypted
    requests.post(f"{hubspot.url}/_sandbox/oauth/expire", timeout=10).raise_for_status()  # HubSpot's early 401
    with app.app_context():
        assert connector(app, connection_id).list_users()
    assert row(app, connection_id).crm_token_encrypted != before


def test_a_revoked_grant_marks_the_connection_needs_reconnect(
        app: Flask, client: FlaskClient, hubspot: RunningServer) -> None:
    connection_id = waiting_connection(app, hubspot)
    install(app, client, hubspot, connection_id)
    with app.app_context():
        stored = db.session.get(Connection, connection_id)
        assert stored is not None
        refresh = runtime(app).secrets.decrypt(stored.crm_refresh_token_encrypted or "")
    requests.post(f"{hubspot.url}/_sandbox/oauth/revoke", json={"refresh_token": refresh},
                  timeout=10).raise_for_status()
    requests.post(f"{hubspot.url}/_sandbox/oauth/expire", timeout=10).raise_for_status()
    with app.app_context(), pytest.raises(CrmNeedsReconnectError):
        connector(app, connection_id).list_users()
    marked = row(app, connection_id)
    assert marked.crm_status == CRM_NEEDS_RECONNECT and "BAD_REFRESH_TOKEN" in (marked.crm_status_reason or "")
    assert client.get("/healthz").json["status"] == "degraded"  # a tenant's problem, shown, not a restart
    page = client.get(f"/admin/connections/{connection_id}").get_data(as_text=True)
    assert "HubSpot must be reconnected" in page and "Reconnect HubSpot" in page
    with app.app_context(), pytest.raises(CrmNeedsReconnectError):  # no further call to HubSpot's token endpoint
        connector(app, connection_id).list_users()
    install(app, client, hubspot, connection_id)  # reinstalling the app reconnects it
    assert row(app, connection_id).crm_status == CRM_CONNECTED
