"""Helpers for folder, API and panel tests: QBO-shaped transactions, connections with a company, links."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

from flask import Flask

from crm_qb.db import db
from crm_qb.models import Connection, ContactLink, LinkState
from crm_qb.sync.transactions.mirror import apply_transaction
from tests.support.connections import TestConnection, add_connection

APP_BASE = "http://127.0.0.1:8701"
CRM_URL = "http://127.0.0.1:8702/crm"
TODAY = date(2024, 6, 15)
REALM = "9130"  # the company of every connection made by ``company``


def qbo_page(page: str, param: str, record_id: str, realm: str = REALM, base: str = APP_BASE) -> str:
    """The deep link the product must generate for a record (docs/qbo/deep-links.md), spelt out by hand."""
    return f"{base}/app/login?pagereq={page}%3F{param}%3D{record_id}&deeplinkcompanyid={realm}"


def qbo_json(text: str) -> Any:
    """Parse QBO JSON the way the client does: numbers with decimals become Decimal."""
    return json.loads(text, parse_float=Decimal)


def txn(entity: str, qbo_id: str, customer: str, **fields: Any) -> dict[str, Any]:
    """A QBO transaction of ``entity`` for ``customer`` with sensible defaults, fields overriding them."""
    body: dict[str, Any] = {
        "Id": qbo_id, "SyncToken": "0", "DocNumber": f"{entity[:3].upper()}-{qbo_id}", "TxnDate": "2024-06-01",
        "CustomerRef": {"value": customer, "name": f"Customer {customer}"}, "TotalAmt": Decimal("100.00"),
        "MetaData": {"CreateTime": "2024-06-01T09:00:00-07:00", "LastUpdatedTime": "2024-06-01T09:00:00-07:00"},
    }
    if entity == "Invoice":
        body.update(DueDate="2024-07-01", Balance=Decimal("100.00"))
    if entity == "Payment":
        body.update(UnappliedAmt=Decimal("0"))
    if entity in ("SalesReceipt", "RefundReceipt"):
        body.update(Balance=Decimal("0"))
    body.update(fields)
    return body


def company(app: Flask, *, home: str = "USD", multicurrency: bool = True, tz: str = "America/Los_Angeles",
            crm_url: str = CRM_URL, settings: dict[str, Any] | None = None) -> TestConnection:
    """A connection whose QBO company is known: home currency, multicurrency and time zone."""
    made = add_connection(app, realm_id=REALM, crm_url=crm_url)
    with app.app_context():
        row = db.session.get(Connection, made.id)
        assert row is not None
        row.home_currency, row.multicurrency_enabled, row.company_timezone = home, multicurrency, tz
        row.settings = settings or {}
        db.session.commit()
    return made


def link(app: Flask, connection_id: int, crm_contact_id: str, qbo_customer_id: str | None,
         state: LinkState = LinkState.LINKED, reason: str | None = None, **owned: Any) -> None:
    """Store a contact link with QBO-owned facts ``owned``."""
    with app.app_context():
        db.session.add(ContactLink(connection_id=connection_id, crm_contact_id=crm_contact_id,
                                   qbo_customer_id=qbo_customer_id, state=state, review_reason=reason,
                                   base={"display_name": f"Contact {crm_contact_id}"}, qbo_owned=owned))
        db.session.commit()


def apply(app: Flask, connection_id: int, entity: str, body: dict[str, Any] | None, qbo_id: str | None = None,
          today: date = TODAY) -> Any:
    """Apply one transaction and commit, as the drain does."""
    with app.app_context():
        change = apply_transaction(connection_id, entity, qbo_id or str((body or {}).get("Id")), body, today=today)
        db.session.commit()
        return change
