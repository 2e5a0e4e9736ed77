"""Benchmark: server time of the JSON API and the contact panel for a contact with 5,000 transactions.

Seeds one linked contact with N folder items (invoices, payments, estimates, sales receipts, some in EUR), then
times requests through the WSGI app in-process (routing, auth or token check, queries, JSON or template; no
network), after a warm-up. Target (issue): p95 <= 100 ms for both. Not run in CI.

    .venv/bin/python -m tests.bench.panel [--transactions 5000] [--requests 200] [--database-url URL]

By default it uses a fresh SQLite file; pass e.g. postgresql://postgres@127.0.0.1:5432/test to measure
PostgreSQL (it creates and drops its own database there). Redis is not used.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from crm_qb.app import create_app, upgrade_schema
from crm_qb.config import load_settings
from crm_qb.connections import create_connection
from crm_qb.db import db
from crm_qb.models import Connection, ContactLink, FolderItem
from crm_qb.runtime import runtime
from crm_qb.sync.transactions import registry
from crm_qb.sync.transactions.mirror import fields_of
from crm_qb.web.panel_tokens import make_panel_token

KINDS = ("Invoice", "Invoice", "Payment", "Estimate", "SalesReceipt")


def main() -> None:
    """Parse arguments, seed, measure, print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, _database(args.database_url, Path(tmp)) as url:
        app = _app(Path(tmp), url)
        api_key, token, conn_id = _seed(app, args.transactions)
        client = app.test_client()
        api = f"/api/v1/connections/{conn_id}/contacts/c1/quickbooks"
        panel = f"/panel/{conn_id}/contacts/c1?token={token}"
        print(f"{args.transactions} transactions, {args.requests} requests each, {url.split(':', 1)[0]}")
        auth = {"Authorization": f"Bearer {api_key}"}
        _report("API   (page 1, 50 items)", _time(lambda: client.get(api, headers=auth), args.requests))
        _report("API   (type=Invoice&status=Overdue)",
                _time(lambda: client.get(api + "?type=Invoice&status=Overdue", headers=auth), args.requests))
        _report("panel (page 1, 25 rows)", _time(lambda: client.get(panel), args.requests))
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _app(tmp: Path, url: str) -> Flask:
    env = {"CRM_QB_INSTANCE_PATH": str(tmp), "CRM_QB_DATABASE_URL": url, "CRM_QB_SECRET_KEY": "bench",
           "CRM_QB_ENCRYPTION_KEY": Fernet.generate_key().decode(), "CRM_QB_QBO_ENVIRONMENT": "production"}
    app = create_app(load_settings(env))
    upgrade_schema(app)
    return app


def _seed(app: Flask, count: int) -> tuple[str, str, int]:
    with app.app_context():
        made = create_connection(runtime(app).secrets, crm_url="http://127.0.0.1:9/crm", crm_token="t")
        conn: Connection = made.connection
        conn.home_currency, conn.multicurrency_enabled = "USD", True
        db.session.add(ContactLink(connection_id=conn.id, crm_contact_id="c1", qbo_customer_id="24",
                                   qbo_owned={"payment_terms": "Net 30", "currency": "USD"}))
        kinds = [registry.get(KINDS[i % len(KINDS)]) for i in range(count)]
        db.session.add_all(FolderItem(connection_id=conn.id, txn_type=kinds[i].entity, qbo_id=str(i + 1),
                                      **fields_of(kinds[i], _txn(i), "USD", date(2024, 6, 15)))
                           for i in range(count))
        db.session.commit()
        token = make_panel_token(app.config["SECRET_KEY"], conn, "c1", ttl=3600)
        return made.api_key, token, conn.id


def _txn(i: int) -> dict[str, Any]:
    day = date(2020, 1, 1) + timedelta(days=i % 1600)
    body: dict[str, Any] = {"Id": str(i + 1), "DocNumber": f"D-{i}", "TxnDate": day.isoformat(),
                            "CustomerRef": {"value": "24"}, "TotalAmt": Decimal("100.00") + i,
                            "Balance": Decimal("40.00") if i % 3 else Decimal("0"),
                            "DueDate": (day + timedelta(days=30)).isoformat(), "TxnStatus": "Pending"}
    if i % 7 == 0:
        body.update(CurrencyRef={"value": "EUR"}, ExchangeRate=Decimal("1.0853"))
    return body


def _time(call: Callable[[], Any], requests: int) -> list[float]:
    for _ in range(10):
        assert call().status_code == 200
    timings = []
    for _ in range(requests):
        started = time.perf_counter()
        response = call()
        timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    return timings


def _report(name: str, timings: list[float]) -> None:
    cuts = statistics.quantiles(timings, n=100)
    print(f"{name:40s} p50 {statistics.median(timings):7.1f} ms   p95 {cuts[94]:7.1f} ms   max {max(timings):7.1f} ms")


@contextmanager
def _database(url: str | None, tmp: Path) -> Iterator[str]:
    if not url:
        yield f"sqlite:///{tmp / 'bench.sqlite3'}"
        return
    url = url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://") else url
    name = f"crm_qb_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
