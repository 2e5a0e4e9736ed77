"""The app the ingress benchmark serves: crm-qb itself plus a bare Flask endpoint, in the same gunicorn server."""

from __future__ import annotations

from flask import Flask, jsonify

from crm_qb.app import create_app


def create_bench_app() -> Flask:
    """crm-qb with ``POST /bench/bare``: reads the body and answers 200, nothing else (the baseline)."""
    from flask import request

    app = create_app()

    @app.post("/bench/bare")
    def bare():  # type: ignore[no-untyped-def]
        request.get_data()
        return jsonify({"status": "ok"}), 200

    return app
