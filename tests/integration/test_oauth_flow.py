"""Connect, callback, disconnect and reconnect against the QBO sandbox served on 127.0.0.1."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
import requests
import responses
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq.job import Job
from sqlalchemy import select, text

from crm_qb.db import db, utcnow
from crm_qb.keys import JobIds
from crm_qb.models import AuditEntry, Connection, ContactLink, QboReference, QboStatus
from crm_qb.runtime import runtime
from crm_qb.sandbox.qbo.oauth import OAuthError as SandboxOAuthError
from tests.support import oauth as oauth_helpers
from tests.support.connections import add_connection, connection_row
from tests.support.oauth import (
    LiveSandbox,
    connect,
    consent,
    query_of,
    sign_in,
    start_connect,
)
from workers.qbo_jobs import load_company_details

# What this file tests does not depend on the database: its SQLite variants run in CI, its PostgreSQL ones with the
# slow tests (tests/conftest.py), to keep CI under 15 minutes.
pytestmark = pytest.mark.postgresql_slow


sandbox, settings = oauth_helpers.sandbox_fixture, oauth_helpers.sandbox_settings



def test_connect_redirects_to_intuit_with_the_accounting_scope_and_a_single_use_state(
    app: Flask, client: FlaskClient, sandbox: LiveSandbox, redis_client: Redis
) -> None:
    conn = add_connection(app)
    sign_in(client, app, conn.id)
    location = start_connect(client, conn.id)
    assert location.startswith(f"{sandbox.base_url}/connect/oauth2?")
    params = query_of(location)
    assert params["client_id"] == sandbox.info["client_id"]
    assert params["response_type"] == "code"
    assert params["scope"] == "com.intuit.quickbooks.accounting openid"
    assert params["redirect_uri"] == "http://127.0.0.1:5000/qbo/callback"
    key = f"crm_qb_test:qbo:oauth-state:{params['state']}"
    assert json.loads(redis_client.get(key))["connection_id"] == conn.id
    assert 0 < redis_client.ttl(key) <= 600
    assert len(params["state"]) >= 32


def test_callback_stores_encrypted_tokens_and_the_company_and_shows_the_page(
    app: Flask, client: FlaskClient, sandbox: LiveSandbox
) -> None:
    conn = add_connection(app)
    before = utcnow()
    response = connect(client, app, conn.id)
    assert response.status_code == 303
    assert response.headers["Location"] == f"/admin/connections/{conn.id}?done=connected"
    row = connection_row(app, conn.id)
    assert row.qbo_status == QboStatus.CONNECTED and row.qbo_realm_id == sandbox.info["realm_id"]
    assert row.qbo_company_name == "Sandbox Company US"
    assert (row.home_currency, row.multicurrency_enabled, row.company_timezone) == ("USD", True,
                                                                                  "America/Los_Angeles")
    assert row.qbo_is_sandbox is True
    assert before + timedelta(minutes=59) < row.qbo_access_expires_at <= utcnow() + timedelta(hours=1)
    assert row.qbo_refresh_expires_at > before + timedelta(days=100)
    with app.app_context():
        stored = runtime(app).qbo().store.load(str(conn.id))
        assert stored is not None
        raw = db.session.execute(text("SELECT * FROM connections WHERE id = :id"), {"id": conn.id}).one()
        refs = db.session.execute(select(QboReference.kind, QboReference.name)).all()
        audit = db.session.scalars(select(AuditEntry.action)).all()
    raw_text = " ".join(str(value) for value in raw)
    for token in (stored.tokens.access_token, stored.tokens.refresh_token):
        assert token not in raw_text
    assert {name for kind, name in refs if kind == "term"} == {"Due on receipt", "Net 15", "Net 30"}
    assert {name for kind, name in refs if kind == "payment_method"} == {"Cash", "Check", "Visa"}
    assert "qbo.connected" in audit
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Sandbox Company US" in page and "QuickBooks is connected." in page


def test_denied_consent_is_a_400_page_and_changes_nothing(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app)
    response = connect(client, app, conn.id, deny="1")
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "not granted" in body and "Traceback" not in body and response.mimetype == "text/html"
    assert connection_row(app, conn.id).qbo_status == QboStatus.NOT_CONNECTED


def test_a_reused_state_is_refused(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app)
    sign_in(client, app, conn.id)
    callback = consent(start_connect(client, conn.id))
    assert client.get(callback).status_code == 303
    again = client.get(callback)
    assert again.status_code == 403 and "already used" in again.get_data(as_text=True)


def test_an_unknown_or_missing_state_is_refused(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app)
    sign_in(client, app, conn.id)
    assert client.get("/qbo/callback?code=x&realmId=1&state=forged").status_code == 403
    assert client.get("/qbo/callback?code=x&realmId=1").status_code == 403


def test_a_state_from_another_browser_is_refused(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app)
    sign_in(client, app, conn.id)
    callback = consent(start_connect(client, conn.id))
    other = app.test_client()
    sign_in(other, app, conn.id)  # a valid admin session of its own, but not the one that started the sign-in
    refused = other.get(callback)
    assert refused.status_code == 403 and "another browser" in refused.get_data(as_text=True)
    assert app.test_client().get(consent(start_connect(client, conn.id))).status_code == 403  # no session at all
    assert connection_row(app, conn.id).qbo_status == QboStatus.NOT_CONNECTED


def test_a_code_intuit_refuses_is_a_502_page(app: Flask, client: FlaskClient, sandbox: LiveSandbox) -> None:
    conn = add_connection(app)
    sign_in(client, app, conn.id)
    callback = consent(start_connect(client, conn.id))
    code = query_of(callback)["code"]
    sandbox.sandbox.oauth.exchange_code(code, "http://127.0.0.1:5000/qbo/callback")  # someone used it first
    response = client.get(callback)
    assert response.status_code == 502
    assert "invalid_grant" in response.get_data(as_text=True)
    assert connection_row(app, conn.id).qbo_status == QboStatus.NOT_CONNECTED


def test_a_failing_token_endpoint_is_a_502_page(app: Flask, client: FlaskClient, sandbox: LiveSandbox) -> None:
    conn = add_connection(app)
    sign_in(client, app, conn.id)
    callback = consent(start_connect(client, conn.id))
    with responses.RequestsMock() as mock:
        mock.add_passthru(sandbox.base_url + "/.well-known")
        mock.post(f"{sandbox.base_url}/oauth2/v1/tokens/bearer", status=500, body="upstream failure")
        response = client.get(callback)
    assert response.status_code == 502
    assert "could not be reached or failed" in response.get_data(as_text=True)
    assert connection_row(app, conn.id).qbo_access_token_encrypted is None


def test_connect_and_disconnect_need_the_admin_session(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app)
    assert client.get(f"/connections/{conn.id}/qbo/connect").status_code == 403
    refused = client.post(f"/connections/{conn.id}/qbo/disconnect")
    assert refused.status_code == 403 and "crm-qb admin-url" in refused.get_data(as_text=True)
    other = add_connection(app)
    sign_in(client, app, other.id)
    assert client.get(f"/connections/{conn.id}/qbo/connect").status_code == 403


def _csrf(client: FlaskClient, connection_id: int) -> str:
    page = client.get(f"/admin/connections/{connection_id}").get_data(as_text=True)
    return page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]


def test_disconnect_revokes_clears_tokens_and_keeps_mirrored_data(
    app: Flask, client: FlaskClient, sandbox: LiveSandbox
) -> None:
    conn = add_connection(app)
    assert connect(client, app, conn.id).status_code == 303
    with app.app_context():
        refresh_token = runtime(app).qbo().store.load(str(conn.id)).tokens.refresh_token
        db.session.add(ContactLink(connection_id=conn.id, crm_contact_id="c1", qbo_customer_id="1"))
        db.session.commit()
    assert client.post(f"/connections/{conn.id}/qbo/disconnect").status_code == 403  # no CSRF token
    response = client.post(f"/connections/{conn.id}/qbo/disconnect", data={"csrf_token": _csrf(client, conn.id)})
    assert response.status_code == 303 and response.headers["Location"].endswith("?done=disconnected")
    with pytest.raises(SandboxOAuthError):
        sandbox.sandbox.oauth.refresh(refresh_token)  # revoked at "Intuit"
    row = connection_row(app, conn.id)
    assert row.qbo_status == QboStatus.DISCONNECTED
    assert row.qbo_access_token_encrypted is None and row.qbo_refresh_token_encrypted is None
    assert row.qbo_realm_id == sandbox.info["realm_id"] and row.qbo_company_name == "Sandbox Company US"
    with app.app_context():
        assert db.session.scalar(select(ContactLink.crm_contact_id)) == "c1"
        assert len(db.session.scalars(select(QboReference)).all()) == 6
    assert "Disconnected" in client.get(response.headers["Location"]).get_data(as_text=True)


def test_a_failed_revoke_is_logged_and_the_disconnect_still_completes(
    app: Flask, client: FlaskClient, sandbox: LiveSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    conn = add_connection(app)
    assert connect(client, app, conn.id).status_code == 303
    csrf = _csrf(client, conn.id)
    with responses.RequestsMock() as mock, caplog.at_level(logging.WARNING, "crm_qb.web.oauth_views"):
        mock.post(f"{sandbox.base_url}/v2/oauth2/tokens/revoke", status=503)
        response = client.post(f"/connections/{conn.id}/qbo/disconnect", data={"csrf_token": csrf})
    assert response.status_code == 303
    assert connection_row(app, conn.id).qbo_status == QboStatus.DISCONNECTED
    assert "QBO revoke failed" in caplog.text


def test_reconnecting_the_same_company_resumes_where_it_stopped(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app)
    assert connect(client, app, conn.id).status_code == 303
    cursor = utcnow().replace(microsecond=0) - timedelta(hours=3)
    with app.app_context():
        row = db.session.get(Connection, conn.id)
        row.cdc_cursor, row.settings = cursor, {"conflict_policy": "qbo_wins"}
        db.session.commit()
    client.post(f"/connections/{conn.id}/qbo/disconnect", data={"csrf_token": _csrf(client, conn.id)})
    again = client.get(consent(start_connect(client, conn.id)))
    assert again.status_code == 303 and again.headers["Location"].endswith("?done=connected")
    row = connection_row(app, conn.id)
    assert row.qbo_status == QboStatus.CONNECTED and row.qbo_status_reason is None
    assert row.cdc_cursor == cursor and row.settings == {"conflict_policy": "qbo_wins"}


def test_reconnecting_after_needs_reconnect_clears_the_reason(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app)
    assert connect(client, app, conn.id).status_code == 303
    with app.app_context():
        runtime(app).qbo().store.mark_needs_reconnect(str(conn.id), "Intuit rejected the refresh token")
    assert client.get(consent(start_connect(client, conn.id))).status_code == 303
    row = connection_row(app, conn.id)
    assert row.qbo_status == QboStatus.CONNECTED and row.qbo_status_reason is None


def test_connecting_a_different_company_is_refused(app: Flask, client: FlaskClient, sandbox: LiveSandbox) -> None:
    conn = add_connection(app)
    assert connect(client, app, conn.id).status_code == 303
    first = connection_row(app, conn.id)
    other_realm = sandbox.control("POST", "/realms", customers=1, transactions=0)["realm_id"]
    response = client.get(consent(start_connect(client, conn.id), realm=other_realm))
    assert response.status_code == 409
    assert other_realm in response.get_data(as_text=True)
    after = connection_row(app, conn.id)
    assert after.qbo_realm_id == first.qbo_realm_id
    assert after.qbo_refresh_token_encrypted == first.qbo_refresh_token_encrypted


def test_company_details_that_cannot_be_read_are_left_to_a_job(
    app: Flask, client: FlaskClient, sandbox: LiveSandbox, redis_client: Redis
) -> None:
    conn = add_connection(app)
    sandbox.control("POST", "/faults", realm=sandbox.info["realm_id"], error_rate=1.0, error_status=503)
    response = connect(client, app, conn.id)
    assert response.headers["Location"].endswith("?done=pending")
    row = connection_row(app, conn.id)
    assert row.qbo_status == QboStatus.CONNECTED and row.qbo_company_name is None
    assert Job.fetch(JobIds.load_company(conn.id), connection=redis_client).func_name.endswith(
        "load_company_details")
    requests.delete(f"{sandbox.base_url}/_sandbox/faults", timeout=5)
    with app.app_context():
        assert load_company_details(str(conn.id)) == "loaded"
    assert connection_row(app, conn.id).qbo_company_name == "Sandbox Company US"
