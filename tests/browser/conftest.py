"""Browser fixtures: headless Chromium (Debian's, via Playwright), crm-qb and the reference CRM on 127.0.0.1.

Chromium comes from the system (``apt-get install chromium``), never from ``playwright install``. Without it
the browser tests skip with the reason, except when CRM_QB_TEST_REQUIRE_BROWSER=1, where they fail.
Screenshots go to tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from crm_qb.app import create_app, upgrade_schema
from crm_qb.db import db
from crm_qb.models import Connection
from crm_qb.sandbox.crm.server import RunningServer, start_server
from crm_qb.sandbox.crm.state import SandboxConfig
from crm_qb.web.panel_tokens import embed_url_template, make_embed_token, make_panel_token, panel_url
from tests.conftest import make_settings
from tests.support.folder import APP_BASE, apply, company, link, qbo_json, txn

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
CRM_TOKEN = "t"  # the CRM token add_connection stores


def chromium_path() -> str | None:
    """The system Chromium, if installed."""
    for candidate in (os.environ.get("CRM_QB_TEST_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """A headless Chromium for the session."""
    executable = chromium_path()
    if executable is None:
        reason = "chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CRM_QB_TEST_REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser tests are required (CRM_QB_TEST_REQUIRE_BROWSER=1) but {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass(frozen=True)
class LiveSite:
    """crm-qb and the reference CRM serving on 127.0.0.1, with one linked contact's panel URL."""

    crm_qb: str
    crm: RunningServer
    connection_id: int
    contact_id: str
    panel: str
    unlinked_panel: str
    app: Flask | None = None  # crm-qb's app, for tests that store rows the panel shows


@pytest.fixture(scope="module")
def artifacts() -> Path:
    """Where screenshots go."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    """Serve crm-qb (SQLite, seeded folder) and the reference CRM (its contact page embeds the panel)."""
    crm = start_server("127.0.0.1", 0, SandboxConfig(token=CRM_TOKEN))
    tmp = tmp_path_factory.mktemp("browser")
    app = create_app(make_settings(tmp, f"sqlite:///{tmp / 'crm_qb.sqlite3'}", qbo_environment="production",
                                   qbo_app_base=APP_BASE))
    upgrade_schema(app)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        yield _seed(app, base, crm)
    finally:
        server.shutdown()
        thread.join(5)
        crm.stop()
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


def _seed(app: Flask, base: str, crm: RunningServer) -> LiveSite:
    conn = company(app, crm_url=crm.url)
    contact = crm.sandbox.store.create_contact({"first_name": "Ada", "last_name": "Lovelace",
                                                "company": "Engines Ltd"})["id"]
    link(app, conn.id, contact, "24", payment_terms="Net 30", preferred_payment_method="Check",
         delivery_preference="Email", currency="USD", balance="1754.95")
    _seed_folder(app, conn.id)
    with app.app_context():
        row = db.session.get(Connection, conn.id)
        assert row is not None
        secret = app.config["SECRET_KEY"]
        crm.sandbox.set_panel_template(embed_url_template(base, conn.id, make_embed_token(secret, row)))
        linked = panel_url(base, conn.id, contact, make_panel_token(secret, row, contact))
        unlinked = panel_url(base, conn.id, "nobody", make_panel_token(secret, row, "nobody"))
    return LiveSite(base, crm, conn.id, contact, linked, unlinked, app)


def _seed_folder(app: Flask, connection_id: int) -> None:
    d = Decimal
    apply(app, connection_id, "Invoice", txn("Invoice", "1", "24", DocNumber="1001", TxnDate="2024-04-02",
                                             DueDate="2024-05-02", TotalAmt=d("500.00"), Balance=d("500.00")))
    apply(app, connection_id, "Invoice", txn("Invoice", "2", "24", DocNumber="1002", TxnDate="2024-05-05",
                                             DueDate="2024-06-04", TotalAmt=d("320.00"), Balance=d("120.00")))
    apply(app, connection_id, "Invoice", txn("Invoice", "3", "24", DocNumber="1003", TxnDate="2024-05-20",
                                             TotalAmt=d("75.00"), Balance=d("0")))
    apply(app, connection_id, "Invoice", txn("Invoice", "4", "24", DocNumber="1004", TxnDate="2024-05-21",
                                             TotalAmt=d("0"), Balance=d("0"), PrivateNote="Voided"))
    apply(app, connection_id, "Payment", txn("Payment", "5", "24", DocNumber=None, PaymentRefNum="CHK-881",
                                             TxnDate="2024-05-28", TotalAmt=d("275.00"), Line=[
                                                 {"Amount": d("200.00"), "LinkedTxn": [{"TxnId": "2",
                                                                                         "TxnType": "Invoice"}]},
                                                 {"Amount": d("75.00"), "LinkedTxn": [{"TxnId": "3",
                                                                                        "TxnType": "Invoice"}]}]))
    apply(app, connection_id, "Estimate", txn("Estimate", "6", "24", DocNumber="E-17", TxnDate="2024-06-01",
                                              TxnStatus="Pending", ExpirationDate="2024-07-01",
                                              TotalAmt=d("980.00")))
    apply(app, connection_id, "SalesReceipt", txn("SalesReceipt", "7", "24", DocNumber="SR-3",
                                                  TxnDate="2024-06-03", TotalAmt=d("42.50")))
    apply(app, connection_id, "Invoice", qbo_json("""{"Id": "8", "DocNumber": "EU-2024-07",
        "TxnDate": "2024-06-10", "DueDate": "2024-07-10", "CustomerRef": {"value": "24"},
        "CurrencyRef": {"value": "EUR"}, "ExchangeRate": 1.0853, "TotalAmt": 1234.56, "Balance": 1234.56,
        "HomeTotalAmt": 1339.88, "HomeBalance": 1339.88}"""))
