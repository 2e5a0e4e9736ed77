"""Webhooks open no cookie session; every other path keeps Flask's default (crm_qb.web.sessions)."""

from __future__ import annotations

from flask import Flask, session
from flask.sessions import NullSession, SecureCookieSession

from crm_qb.web.sessions import SessionsExceptWebhooks


def _app() -> Flask:
    app = Flask(__name__)
    app.secret_key = "test"
    app.session_interface = SessionsExceptWebhooks()
    kinds: dict[str, type] = {}

    @app.post("/webhooks/qbo")
    def webhook() -> str:
        kinds["webhook"] = type(session._get_current_object())  # type: ignore[attr-defined]
        return "ok"

    @app.get("/panel")
    def panel() -> str:
        kinds["panel"] = type(session._get_current_object())  # type: ignore[attr-defined]
        session["seen"] = True
        return "ok"

    app.config["kinds"] = kinds
    return app


def test_a_webhook_gets_the_null_session_and_no_cookie() -> None:
    app = _app()
    response = app.test_client().post("/webhooks/qbo", headers={"Cookie": "session=whatever"})
    assert response.status_code == 200
    assert app.config["kinds"]["webhook"] is NullSession
    assert "Set-Cookie" not in response.headers


def test_other_paths_keep_the_cookie_session() -> None:
    app = _app()
    response = app.test_client().get("/panel")
    assert response.status_code == 200
    assert issubclass(app.config["kinds"]["panel"], SecureCookieSession)
    assert "session=" in response.headers["Set-Cookie"]

