"""Credentials a user cannot reach, and every one of them revocable (issue 11 item 5; issue 10 item 11).

- The normal way to embed the panel: the CRM's back end asks, with its API key, for a short-lived URL of the one
  contact its user is viewing; that URL opens that contact only.
- ``crm-qb connection rotate`` replaces the API key, the hook secret or the panel secret; the old one stops
  working at once.
- Admin links and sessions are revocable (``admin-url --revoke-sessions``, "Sign out everywhere").
- The panel may be framed only by the connection's CRM web origin, which can differ from its API URL.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from crm_qb.cli import main
from crm_qb.config import Settings
from crm_qb.runtime import runtime
from crm_qb.web.panel_tokens import embed_url_template, make_embed_token
from crm_qb.web.signing import SESSION_COOKIE, link_token
from tests.conftest import make_settings, settings_env
from tests.support.connections import add_connection, connection_row, crm_body, post_crm
from tests.support.folder import APP_BASE, company, link

# What this file tests does not depend on the database: its SQLite variants run in CI, its PostgreSQL ones with the
# slow tests (tests/conftest.py), to keep CI under 15 minutes.
pytestmark = pytest.mark.postgresql_slow



@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Production QBO with deep links on the local sandbox host; a public URL the panel URLs live under."""
    return make_settings(tmp_path, database_url, qbo_environment="production", qbo_app_base=APP_BASE,
                         public_url="https://crm-qb.example.com")


def _panel_url(client: FlaskClient, connection_id: int, contact: str, key: str, **body: Any) -> Any:
    return client.post(f"/api/v1/connections/{connection_id}/contacts/{contact}/panel-url",
                       headers={"Authorization": f"Bearer {key}"}, json=body or None)


def _open(client: FlaskClient, url: str) -> Any:
    parts = urlsplit(url)
    return client.get(f"{parts.path}?{parts.query}")


def test_the_crm_gets_a_short_lived_url_that_opens_only_that_contact(app: Flask, client: FlaskClient) -> None:
    conn = company(app)
    link(app, conn.id, "c1", "24")
    answer = _panel_url(client, conn.id, "c1", conn.api_key)
    assert answer.status_code == 200, answer.json
    assert answer.headers["Cache-Control"] == "no-store"
    url, expires = answer.json["url"], datetime.fromisoformat(answer.json["expires_at"])
    assert url.startswith(f"https://crm-qb.example.com/panel/{conn.id}/contacts/c1?token=")
    assert 880 <= expires.timestamp() - time.time() <= 901  # 15 minutes by default
    assert _open(client, url).status_code == 200
    # The same token for another contact id opens nothing: changing the id in the URL is useless.
    other = url.replace("/contacts/c1?", "/contacts/c2?")
    assert _open(client, other).status_code == 403


def test_panel_url_ttl_and_refusals(app: Flask, client: FlaskClient) -> None:
    conn, other = company(app), add_connection(app)
    short = _panel_url(client, conn.id, "c1", conn.api_key, ttl_seconds=60).json["expires_at"]
    assert datetime.fromisoformat(short).timestamp() - time.time() <= 61
    for ttl in (0, 3601, "60", True, 1.5):
        refused = _panel_url(client, conn.id, "c1", conn.api_key, ttl_seconds=ttl)
        assert refused.status_code == 400 and refused.json["error"]["code"] == "invalid_ttl_seconds"
    assert _panel_url(client, conn.id, "c1", "wrong").status_code == 401
    assert _panel_url(client, conn.id, "c1", other.api_key).status_code == 404  # another connection's key
    assert _panel_url(client, conn.id, "c" * 200, conn.api_key).status_code == 404
    assert client.get(f"/api/v1/connections/{conn.id}/contacts/c1/panel-url",
                      headers={"Authorization": f"Bearer {conn.api_key}"}).status_code == 405


def _rotate(app: Flask, connection_id: int, *flags: str) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["connection", "rotate", str(connection_id), *flags],
                                env=settings_env(runtime(app).settings))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_rotating_the_api_key_stops_the_old_one(app: Flask, client: FlaskClient) -> None:
    conn = company(app)
    link(app, conn.id, "c1", "24")
    new = _rotate(app, conn.id, "--api-key")["api_key"]
    assert new != conn.api_key and new.startswith("cqb_")
    assert _panel_url(client, conn.id, "c1", conn.api_key).status_code == 401
    assert _panel_url(client, conn.id, "c1", new).status_code == 200


def test_rotating_the_hook_secret_refuses_hooks_signed_with_the_old_one(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app)
    event = {"id": "e1", "type": "contact.updated", "occurred_at": "2026-11-20T10:00:00Z", "contact": {"id": "c1"}}
    new = _rotate(app, conn.id, "--hook-secret")["crm_hook_secret"]
    assert post_crm(client, conn.id, conn.crm_hook_secret, crm_body(event)).status_code == 401
    assert post_crm(client, conn.id, new, crm_body(event)).status_code == 202


def test_rotating_the_panel_secret_voids_panel_urls_and_embed_tokens(app: Flask, client: FlaskClient) -> None:
    conn = company(app)
    link(app, conn.id, "c1", "24")
    url = _panel_url(client, conn.id, "c1", conn.api_key).json["url"]
    secret = runtime(app).settings.secret_key
    with app.app_context():
        template = embed_url_template("http://localhost", conn.id, make_embed_token(secret, connection_row(app,
                                                                                                           conn.id)))
    embed = template.replace("{id}", "c1")
    assert _open(client, url).status_code == 200 and _open(client, embed).status_code == 302
    assert _rotate(app, conn.id, "--panel-secret") == {"id": conn.id, "panel_secret": "rotated"}
    assert _open(client, url).status_code == 403
    assert _open(client, embed).status_code == 403
    assert _open(client, _panel_url(client, conn.id, "c1", conn.api_key).json["url"]).status_code == 200


def _sign_in(app: Flask, client: FlaskClient, connection_id: int, epoch: int = 0) -> Any:
    token = link_token(runtime(app).settings.secret_key, connection_id, epoch=epoch)
    return client.get(f"/admin/connections/{connection_id}", query_string={"token": token})


def test_revoking_admin_sessions_ends_every_session_and_link(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app)
    assert _sign_in(app, client, conn.id).status_code == 303
    assert client.get(f"/admin/connections/{conn.id}").status_code == 200
    result = CliRunner().invoke(main, ["admin-url", str(conn.id), "--revoke-sessions"],
                                env=settings_env(runtime(app).settings))
    assert result.exit_code == 0, result.output
    revoked = client.get(f"/admin/connections/{conn.id}")
    assert revoked.status_code == 403 and "signed out" in revoked.get_data(as_text=True)
    assert _sign_in(app, client, conn.id).status_code == 403  # links made before are void too
    fresh = urlsplit(result.stdout.strip())
    assert client.get(f"{fresh.path}?{fresh.query}").status_code == 303
    assert client.get(f"/admin/connections/{conn.id}").status_code == 200


def test_sign_out_everywhere_from_the_admin_page(app: Flask, client: FlaskClient) -> None:
    conn = add_connection(app)
    _sign_in(app, client, conn.id)
    other = app.test_client()
    _sign_in(app, other, conn.id)
    page = client.get(f"/admin/connections/{conn.id}").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert csrf is not None
    assert client.post(f"/admin/connections/{conn.id}/sessions/revoke", data={"csrf_token": "nope"}).status_code \
        == 403
    done = client.post(f"/admin/connections/{conn.id}/sessions/revoke", data={"csrf_token": csrf.group(1)})
    assert done.status_code == 200 and "Signed out everywhere" in done.get_data(as_text=True)
    assert SESSION_COOKIE in done.headers.get("Set-Cookie", "")
    assert other.get(f"/admin/connections/{conn.id}").status_code == 403


def test_the_panel_is_framed_only_by_the_crm_web_origin(app: Flask, client: FlaskClient) -> None:
    conn = company(app, crm_url="https://api.crm.example.com/v2")
    link(app, conn.id, "c1", "24")
    url = _panel_url(client, conn.id, "c1", conn.api_key).json["url"]
    assert _open(client, url).headers["Content-Security-Policy"].endswith("frame-ancestors https://api.crm.example.com")
    env = settings_env(runtime(app).settings)
    configured = CliRunner().invoke(main, ["connection", "configure", str(conn.id), "--crm-web-origin",
                                           "https://app.crm.example.com/contacts"], env=env)
    assert configured.exit_code == 0, configured.output
    assert json.loads(configured.stdout)["crm_web_origin"] == "https://app.crm.example.com"
    assert _open(client, url).headers["Content-Security-Policy"].endswith("frame-ancestors https://app.crm.example.com")
    shown = json.loads(CliRunner().invoke(main, ["connection", "show", str(conn.id)], env=env).stdout)
    assert shown["crm_web_origin"] == "https://app.crm.example.com"
    reset = CliRunner().invoke(main, ["connection", "configure", str(conn.id), "--crm-web-origin", "default"],
                               env=env)
    assert json.loads(reset.stdout)["crm_web_origin"] == "https://api.crm.example.com"


def test_connection_add_takes_the_crm_web_origin(app: Flask) -> None:
    env = settings_env(runtime(app).settings)
    added = CliRunner().invoke(main, ["connection", "add", "--crm-url", "https://api.crm.example.com",
                                      "--crm-token", "t", "--crm-web-origin", "https://crm.example.com"], env=env)
    assert added.exit_code == 0, added.output
    shown = CliRunner().invoke(main, ["connection", "show", str(json.loads(added.stdout)["id"])], env=env)
    assert json.loads(shown.stdout)["crm_web_origin"] == "https://crm.example.com"
