"""The connection's admin page: signed links, the admin session, its content, and where "needs reconnect" shows."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from crm_qb.app import create_app
from crm_qb.cli import main
from crm_qb.config import Settings
from crm_qb.db import db, utcnow
from crm_qb.models import QboReference, QboStatus
from crm_qb.web.signing import SESSION_COOKIE, dump_session, link_token, new_session
from tests.conftest import make_settings, settings_env
from tests.support.connections import add_connection, set_connection
from tests.support.oauth import sign_in

# What this file tests does not depend on the database: its SQLite variants run in CI, its PostgreSQL ones with the
# slow tests (tests/conftest.py), to keep CI under 15 minutes.
pytestmark = pytest.mark.postgresql_slow


REASON = "Intuit rejected the refresh token: invalid_grant"


def _page(client: FlaskClient, connection_id: int, token: str | None = None) -> tuple[int, str]:
    query = f"?token={token}" if token is not None else ""
    response = client.get(f"/admin/connections/{connection_id}{query}")
    return response.status_code, response.get_data(as_text=True)


def test_a_signed_link_starts_a_session_scoped_to_its_connection(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app)
    response = client.get(f"/admin/connections/{conn.id}?token={link_token(app.secret_key, conn.id)}")
    assert response.status_code == 303 and response.headers["Location"] == f"/admin/connections/{conn.id}"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(SESSION_COOKIE + "=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    status, body = _page(client, conn.id)
    assert status == 200 and "Connect to QuickBooks" in body
    other = add_connection(app)
    assert _page(client, other.id)[0] == 403  # the session grants its own connection only


@pytest.mark.parametrize("case", ["expired", "tampered", "other connection", "garbage", "no token"])
def test_links_that_do_not_grant_access_are_403(app: Flask, client: FlaskClient, case: str) -> None:
    conn = add_connection(app)
    other = add_connection(app)
    token = {
        "expired": link_token(app.secret_key, conn.id, seconds=60, now=time.time() - 120),
        "tampered": link_token(app.secret_key, conn.id)[:-3] + "abc",
        "other connection": link_token(app.secret_key, other.id),
        "garbage": "not-a-token",
        "no token": None,
    }[case]
    status, body = _page(client, conn.id, token)
    assert status == 403
    assert "Access denied" in body and "Traceback" not in body
    assert client.get_cookie(SESSION_COOKIE) is None


def test_a_link_signed_with_another_key_is_403(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app)
    assert _page(client, conn.id, link_token("some-other-secret", conn.id))[0] == 403


def test_a_forged_session_cookie_is_403(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app)
    client.set_cookie(SESSION_COOKIE, "eyJjIjoxfQ.forged")
    assert _page(client, conn.id)[0] == 403


def test_an_expired_session_is_403(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app)
    stale = new_session(conn.id, now=time.time() - 9 * 3600)
    client.set_cookie(SESSION_COOKIE, dump_session(app.secret_key, stale))
    status, body = _page(client, conn.id)
    assert status == 403 and "expired" in body


def test_the_session_cookie_is_secure_behind_https(app: Flask, settings: Settings) -> None:
    https = create_app(make_settings(settings.instance_path.parent / "https", settings.database_url,
                                     public_url="https://crm-qb.example.test"))
    conn = add_connection(https)
    response = https.test_client().get(f"/admin/connections/{conn.id}?token={link_token(https.secret_key, conn.id)}")
    assert response.status_code == 303 and "Secure" in response.headers["Set-Cookie"]
    with https.app_context():
        db.engine.dispose()


def test_an_unknown_connection_with_a_valid_link_is_404(app: Flask, client: FlaskClient) -> None:
    assert _page(client, 999, link_token(app.secret_key, 999))[0] == 404


def test_the_page_shows_the_connection_and_its_controls(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app, realm_id="9130350000001")
    expires, refresh_expires, synced = utcnow() + timedelta(minutes=42), utcnow() + timedelta(days=99), utcnow()
    set_connection(app, conn.id, qbo_company_name="Larry's <Bakery>", home_currency="CAD", multicurrency_enabled=True,
         company_timezone="America/Toronto", qbo_access_expires_at=expires,
         qbo_refresh_expires_at=refresh_expires, last_sync_at=synced)
    with app.app_context():
        db.session.add(QboReference(connection_id=conn.id, kind="term", qbo_id="3", name="Net 30"))
        db.session.add(QboReference(connection_id=conn.id, kind="payment_method", qbo_id="1", name="Cash",
                                    active=False))
        db.session.commit()
    sign_in(client, app, conn.id)
    response = client.get(f"/admin/connections/{conn.id}")
    body = response.get_data(as_text=True)
    for expected in ("Connected", "9130350000001", "Larry&#39;s &lt;Bakery&gt;", "CAD", "On", "America/Toronto",
                     expires.strftime("%Y-%m-%d %H:%M UTC"), refresh_expires.strftime("%Y-%m-%d %H:%M UTC"),
                     synced.strftime("%Y-%m-%d %H:%M UTC"), "Net 30", "Cash", "(inactive)",
                     "Reconnect QuickBooks", f"/connections/{conn.id}/qbo/connect",
                     f'action="/connections/{conn.id}/qbo/disconnect"', 'name="csrf_token"'):
        assert expected in body, expected
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_needs_reconnect_shows_on_the_page_in_the_cli_and_in_healthz(
    app: Flask, client: FlaskClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = add_connection(app, realm_id="9130350000002")
    set_connection(app, conn.id, qbo_status=QboStatus.NEEDS_RECONNECT, qbo_status_reason=REASON)
    sign_in(client, app, conn.id)
    body = _page(client, conn.id)[1]
    assert "Needs reconnect" in body and REASON in body and "Reconnect QuickBooks" in body
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json["status"] == "degraded"  # details: tests/integration/test_healthz
    assert REASON not in health.get_data(as_text=True)
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    shown = CliRunner().invoke(main, ["connection", "show", str(conn.id)])
    assert shown.exit_code == 0, shown.output
    qbo = json.loads(shown.output)["qbo"]
    assert (qbo["status"], qbo["reason"]) == ("needs_reconnect", REASON)


def test_admin_url_prints_a_working_link_under_the_public_url(
    app: Flask, client: FlaskClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn = add_connection(app)
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CRM_QB_PUBLIC_URL", "https://crm-qb.example.test/base")
    result = CliRunner().invoke(main, ["admin-url", str(conn.id), "--expires-in", "5"])
    assert result.exit_code == 0, result.output
    url = urlsplit(result.output.strip())
    assert (url.scheme, url.netloc, url.path) == ("https", "crm-qb.example.test", f"/base/admin/connections/{conn.id}")
    response = client.get(f"/admin/connections/{conn.id}?{url.query}")
    assert response.status_code == 303
    missing = CliRunner().invoke(main, ["admin-url", "999"])
    assert missing.exit_code != 0 and "no connection 999" in missing.output
