"""The demo realm's starting data: a few terms, payment methods, service items, customers (one in EUR),
invoices, an estimate, a sales receipt and a payment, created through the engine so every rule applies.

For billable time (DESIGN section 9) it also has people a CRM's users can be mapped to by e-mail - two employees
and a 1099 contractor (a Vendor) - and service items to bill hours against; see ``DEMO_PEOPLE``.
"""

from __future__ import annotations

from decimal import Decimal

from .engine import Engine

# (entity, given name, family name, e-mail, hourly bill rate): the people a demo CRM's users map to.
DEMO_PEOPLE = (
    ("Employee", "Emily", "Platt", "emily.platt@example.com", "95"),
    ("Employee", "John", "Johnson", "john.johnson@example.com", "120"),
    ("Vendor", "Priya", "Patel", "priya.patel@example.com", "110"),
)
# Service items for time: name, hourly rate ("Hours" is the item QBO uses when a time activity names none).
DEMO_SERVICES = (("Design", "75"), ("Installation", "50"), ("Hours", "120"), ("Consulting", "150"))


def seed_demo_realm(engine: Engine, realm_id: str) -> None:
    """Fill an empty multicurrency realm with a small, fixed demo data set."""
    ids = {}
    for name, days in (("Due on receipt", 0), ("Net 15", 15), ("Net 30", 30)):
        ids[name] = engine.create(realm_id, "Term", {"Name": name, "DueDays": days})["Id"]
    for name in ("Cash", "Check", "Visa"):
        engine.create(realm_id, "PaymentMethod", {"Name": name})
    items = [engine.create(realm_id, "Item", {"Name": name, "UnitPrice": Decimal(price)})["Id"]
             for name, price in DEMO_SERVICES]
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
    people = [engine.create(realm_id, entity, _person(entity, given, family, email, rate))
              for entity, given, family, email, rate in DEMO_PEOPLE]
    _transactions(engine, realm_id, customer_ids, items)
    _time(engine, realm_id, customer_ids, items, people)


def _person(entity: str, given: str, family: str, email: str, rate: str) -> dict:
    body = {"GivenName": given, "FamilyName": family, "PrimaryEmailAddr": {"Address": email},
            "BillRate": Decimal(rate)}
    if entity == "Employee":
        body["BillableTime"] = True  # BillRate is settable only with BillableTime (FACTS 15.8)
    else:
        body["Vendor1099"] = True  # a contractor, as Intuit's time use cases model one
    return body


def _time(engine: Engine, realm_id: str, customers: list[str], items: list[str], people: list[dict]) -> None:
    """Two time activities for Amy: billable design work by Emily and unbilled consulting by the contractor."""
    emily, _john, priya = people
    amy = {"value": customers[0]}
    engine.create(realm_id, "TimeActivity", {
        "NameOf": "Employee", "EmployeeRef": {"value": emily["Id"]}, "CustomerRef": amy,
        "ItemRef": {"value": items[0]}, "BillableStatus": "Billable", "HourlyRate": Decimal("75"), "Hours": 2,
        "Minutes": 30, "Description": "Site visit and sketches"})
    engine.create(realm_id, "TimeActivity", {
        "NameOf": "Vendor", "VendorRef": {"value": priya["Id"]}, "CustomerRef": amy,
        "ItemRef": {"value": items[3]}, "BillableStatus": "NotBillable", "Hours": 1, "Minutes": 0,
        "Description": "Internal review"})


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
