"""The demo realm's starting data: a few terms, payment methods, service items, customers (one in EUR),
invoices, an estimate, a sales receipt and a payment, created through the engine so every rule applies.
"""

from __future__ import annotations

from decimal import Decimal

from .engine import Engine


def seed_demo_realm(engine: Engine, realm_id: str) -> None:
    """Fill an empty multicurrency realm with a small, fixed demo data set."""
    ids = {}
    for name, days in (("Due on receipt", 0), ("Net 15", 15), ("Net 30", 30)):
        ids[name] = engine.create(realm_id, "Term", {"Name": name, "DueDays": days})["Id"]
    for name in ("Cash", "Check", "Visa"):
        engine.create(realm_id, "PaymentMethod", {"Name": name})
    items = [engine.create(realm_id, "Item", {"Name": name, "UnitPrice": Decimal(price)})["Id"]
             for name, price in (("Design", "75"), ("Installation", "50"), ("Hours", "120"))]
    customers = [
        {"DisplayName": "Amy's Bird Sanctuary", "GivenName": "Amy", "FamilyName": "Lauterbach",
         "CompanyName": "Amy's Bird Sanctuary", "PrimaryEmailAddr": {"Address": "birds@example.com"},
         "SalesTermRef": {"value": ids["Net 30"]}},
        {"DisplayName": "Bill's Windsurf Shop", "GivenName": "Bill", "FamilyName": "Lucchini",
         "PrimaryEmailAddr": {"Address": "surf@example.com"}},
        {"DisplayName": "Kookies by Kathy", "GivenName": "Kathy", "FamilyName": "Kuplis",
         "PrimaryEmailAddr": {"Address": "kathy@example.com"}},
        {"DisplayName": "Europa Handel GmbH", "CompanyName": "Europa Handel GmbH",
         "PrimaryEmailAddr": {"Address": "buchhaltung@example.com"}, "CurrencyRef": {"value": "EUR"}},
    ]
    customer_ids = [engine.create(realm_id, "Customer", body)["Id"] for body in customers]
    engine.create(realm_id, "Vendor", {"DisplayName": "Norton Lumber and Building Materials"})
    engine.create(realm_id, "Employee", {"GivenName": "Emily", "FamilyName": "Platt"})
    _transactions(engine, realm_id, customer_ids, items)


def _line(item_id: str, qty: str) -> dict:
    return {"DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": item_id}, "Qty": Decimal(qty)}}


def _transactions(engine: Engine, realm_id: str, customers: list[str], items: list[str]) -> None:
    amy, bill, kathy, europa = customers
    paid = engine.create(realm_id, "Invoice", {"CustomerRef": {"value": amy}, "Line": [_line(items[0], "4")]})
    engine.create(realm_id, "Invoice", {"CustomerRef": {"value": bill}, "Line": [_line(items[1], "3")]})
    engine.create(realm_id, "Invoice", {"CustomerRef": {"value": europa}, "ExchangeRate": Decimal("1.085"),
                                        "Line": [_line(items[2], "10")]})
    engine.create(realm_id, "Estimate", {"CustomerRef": {"value": kathy}, "Line": [_line(items[0], "2")]})
    engine.create(realm_id, "SalesReceipt", {"CustomerRef": {"value": kathy}, "Line": [_line(items[1], "1")]})
    engine.create(realm_id, "Payment", {
        "CustomerRef": {"value": amy}, "TotalAmt": Decimal("100.00"),
        "Line": [{"Amount": Decimal("100.00"), "LinkedTxn": [{"TxnId": paid["Id"], "TxnType": "Invoice"}]}]})
