"""Which entities the sandbox serves, how their URL paths are spelt, and what can be done to each."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class EntitySpec:
    """One QBO entity: its name, URL path segment, kind and supported operations."""

    name: str
    path: str
    kind: str  # "person" (DisplayName-unique), "list", "txn", "time" or "single"
    deletable: bool = False
    voidable: bool = False
    app_page: str | None = None  # the QBO web-app page that shows one record


_SPECS = (
    EntitySpec("Customer", "customer", "person", app_page="customerdetail"),
    EntitySpec("Vendor", "vendor", "person", app_page="vendordetail"),
    EntitySpec("Employee", "employee", "person", app_page="employeedetail"),
    EntitySpec("Item", "item", "list"),
    EntitySpec("Term", "term", "list"),
    EntitySpec("PaymentMethod", "paymentmethod", "list"),
    EntitySpec("Invoice", "invoice", "txn", deletable=True, voidable=True, app_page="invoice"),
    EntitySpec("Payment", "payment", "txn", deletable=True, voidable=True, app_page="recvpayment"),
    EntitySpec("Estimate", "estimate", "txn", deletable=True, app_page="estimate"),
    EntitySpec("SalesReceipt", "salesreceipt", "txn", deletable=True, voidable=True, app_page="salesreceipt"),
    EntitySpec("CreditMemo", "creditmemo", "txn", deletable=True, voidable=True, app_page="creditmemo"),
    EntitySpec("RefundReceipt", "refundreceipt", "txn", deletable=True, voidable=True, app_page="refundreceipt"),
    EntitySpec("TimeActivity", "timeactivity", "time", deletable=True, app_page="timeactivity"),
    EntitySpec("Preferences", "preferences", "single"),
    EntitySpec("CompanyInfo", "companyinfo", "single"),
    EntitySpec("ExchangeRate", "exchangerate", "single"),
)

BY_NAME = MappingProxyType({spec.name: spec for spec in _SPECS})
BY_PATH = MappingProxyType({spec.path: spec for spec in _SPECS})
BY_LOWER_NAME = MappingProxyType({spec.name.lower(): spec for spec in _SPECS})
PERSON_ENTITIES = tuple(spec.name for spec in _SPECS if spec.kind == "person")
LIST_ENTITIES = tuple(spec.name for spec in _SPECS if spec.kind in ("person", "list"))
TXN_ENTITIES = tuple(spec.name for spec in _SPECS if spec.kind == "txn")
# What a CustomerRef ties to a customer (and a customer merge moves): transactions and time activities.
CUSTOMER_LINKED = (*TXN_ENTITIES, "TimeActivity")
# Transactions that carry their own Balance (amount still owed or, for a credit memo, still to use).
BALANCE_TXNS = ("Invoice", "SalesReceipt", "CreditMemo", "RefundReceipt")


def spec_for(name: str) -> EntitySpec | None:
    """Look an entity up by its QBO name or URL path, case-insensitively; None when unknown."""
    return BY_LOWER_NAME.get(name.strip().lower())


def app_pages() -> dict[str, str]:
    """Map each web-app page name (``invoice``, ``customerdetail``...) to its entity name."""
    return {spec.app_page: spec.name for spec in _SPECS if spec.app_page}
