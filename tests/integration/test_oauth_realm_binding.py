"""The OAuth callback binds the company to what the consent granted, never to the URL's ``realmId`` (issue 11 item 3).

An admin consents for their own company X, then presents the callback with another tenant's company id Y. Before,
the connection showed "Connected" to Y (and Y's events failed with AuthorizationError); now Intuit's signed ID
token (verified against the sandbox's JWKS) says X, the callback is refused with a page, and nothing points at Y.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from crm_qb.db import db
from crm_qb.models import AuditEntry, QboStatus
from tests.support import oauth as oauth_helpers
from tests.support.connections import add_connection, connection_row
from tests.support.oauth import LiveSandbox, connect, consent, query_of, sign_in, start_connect

sandbox, settings = oauth_helpers.sandbox_fixture, oauth_helpers.sandbox_settings


def test_a_callback_rewritten_to_another_company_is_refused(app: Flask, client: FlaskClient,
                                                            sandbox: LiveSandbox) -> None:
    victim_realm = sandbox.control("POST", "/realms", customers=1, transactions=0)["realm_id"]
    victim = add_connection(app)
    assert connect(client, app, victim.id, realm=victim_realm).status_code == 303  # the other tenant's company
    attacker = add_connection(app)
    sign_in(client, app, attacker.id)
    callback = consent(start_connect(client, attacker.id))  # consent for the attacker's own company (X)
    params = query_of(callback)
    assert params["realmId"] == sandbox.info["realm_id"] != victim_realm
    forged = "/qbo/callback?" + urlencode({**params, "realmId": victim_realm})

    response = client.get(forged)

    assert response.status_code == 403
    page = response.get_data(as_text=True)
    assert "The company does not match your consent" in page and victim_realm in page
    row = connection_row(app, attacker.id)
    assert row.qbo_realm_id is None and row.qbo_status != QboStatus.CONNECTED
    assert row.qbo_refresh_token_encrypted is None
    assert connection_row(app, victim.id).qbo_realm_id == victim_realm
    with app.app_context():
        refused = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "qbo.connect_refused")).one()
        assert (refused.connection_id, refused.diff) == (attacker.id, {"granted": sandbox.info["realm_id"],
                                                                       "claimed": victim_realm})


def test_the_unchanged_callback_connects_the_company_the_id_token_names(app: Flask, client: FlaskClient,
                                                                        sandbox: LiveSandbox) -> None:
    conn = add_connection(app)
    sign_in(client, app, conn.id)
    location = start_connect(client, conn.id)
    assert query_of(location)["scope"] == "com.intuit.quickbooks.accounting openid"
    assert client.get(consent(location)).status_code == 303
    row = connection_row(app, conn.id)
    assert row.qbo_realm_id == sandbox.info["realm_id"] and row.qbo_status == QboStatus.CONNECTED
