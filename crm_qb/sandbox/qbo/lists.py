"""Business rules for name-list entities: Customer, Vendor, Employee, Item, Term, PaymentMethod.

Each ``shape_*`` function takes the writable fields a client sent (already merged with the stored object for
a sparse update) and returns the complete object QBO would store, without Id/SyncToken/MetaData, which the
engine owns. Faults are raised as ``QboFault``.
"""

from __future__ import annotations

from decimal import Decimal

from . import faults
from .currencies import currency_ref, is_known
from .money import to_decimal
from .store import RealmData

NAME_PARTS = ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")
_FORBIDDEN_NAME_CHARS = (":", "\t", "\n")
READ_ONLY = frozenset({"Id", "SyncToken", "MetaData", "domain", "sparse", "FullyQualifiedName", "Level",
                       "BalanceWithJobs", "status", "time"})


def writable(body: dict) -> dict:
    """The fields of ``body`` a client may set (read-only ones are ignored, as QBO does)."""
    return {key: value for key, value in body.items() if key not in READ_ONLY}


def shape_person(entity: str, fields: dict, realm: RealmData, existing: dict | None) -> dict:
    """Customer, Vendor or Employee with QBO's defaults, validated; DisplayName uniqueness is checked later."""
    obj = dict(fields)
    obj["DisplayName"] = _display_name(obj)
    _check_name_chars(obj)
    _check_email(obj)
    obj.setdefault("Active", True)
    obj.setdefault("PrintOnCheckName", obj.get("CompanyName") or obj["DisplayName"])
    _address_ids(obj, realm, existing)
    if entity == "Customer":
        _customer_defaults(obj, realm, existing)
    elif entity == "Vendor":
        obj.setdefault("Vendor1099", False)
        obj["Balance"] = existing.get("Balance", Decimal(0)) if existing else Decimal(0)
        _fixed_currency(obj, realm, existing)
    else:
        obj.setdefault("BillableTime", False)
    return obj


def _display_name(obj: dict) -> str:
    name = obj.get("DisplayName")
    if isinstance(name, str) and name.strip():
        return name.strip()
    generated = " ".join(str(obj[part]).strip() for part in NAME_PARTS if obj.get(part))
    if not generated:
        raise faults.required_param("DisplayName")
    return generated


def _check_name_chars(obj: dict) -> None:
    for field in ("DisplayName", *NAME_PARTS, "PrintOnCheckName"):
        value = obj.get(field)
        if isinstance(value, str) and any(char in value for char in _FORBIDDEN_NAME_CHARS):
            raise faults.invalid_value(field, "The name cannot contain a colon (:), tab or new line")
    if len(obj["DisplayName"]) > 500:
        raise faults.invalid_value("DisplayName", "String length exceeds 500 characters")


def _check_email(obj: dict) -> None:
    address = (obj.get("PrimaryEmailAddr") or {}).get("Address")
    if address is not None and ("@" not in address or "." not in address):
        raise faults.QboFault("2210", "Invalid Email Address format",
                              "Email Address does not conform to the syntax rules of RFC 822",
                              element="PrimaryEmailAddr")


def _address_ids(obj: dict, realm: RealmData, existing: dict | None) -> None:
    # QBO gives an address a new Id whenever it changes, and keeps it when it does not.
    for key in ("BillAddr", "ShipAddr", "PrimaryAddr"):
        address = obj.get(key)
        if not isinstance(address, dict):
            continue
        old = (existing or {}).get(key) or {}
        same = {k: v for k, v in old.items() if k != "Id"} == {k: v for k, v in address.items() if k != "Id"}
        obj[key] = {**address, "Id": old["Id"] if same and "Id" in old else realm.new_address_id()}


def _customer_defaults(obj: dict, realm: RealmData, existing: dict | None) -> None:
    parent = _parent(obj, realm)
    obj["Job"] = parent is not None
    obj.setdefault("BillWithParent", False)
    if parent is None:
        obj.pop("ParentRef", None)
        obj["FullyQualifiedName"] = obj["DisplayName"]
    else:
        obj["ParentRef"] = {"value": parent["Id"]}
        obj["Level"] = parent.get("Level", 0) + 1
        obj["FullyQualifiedName"] = f"{parent['FullyQualifiedName']}:{obj['DisplayName']}"
    obj.setdefault("Taxable", True)
    if obj["Taxable"]:
        obj.setdefault("DefaultTaxCodeRef", {"value": "2"})
    obj.setdefault("PreferredDeliveryMethod", "Print")
    if existing is None:
        opening = to_decimal(obj.get("Balance", 0), Decimal(0))
        obj["Balance"] = opening
        obj["BalanceWithJobs"] = opening
    else:
        obj["Balance"] = existing.get("Balance", Decimal(0))
        obj["BalanceWithJobs"] = existing.get("BalanceWithJobs", obj["Balance"])
    _fixed_currency(obj, realm, existing, parent)


def _parent(obj: dict, realm: RealmData) -> dict | None:
    ref = obj.get("ParentRef")
    if not ref:
        return None
    parent = realm.get("Customer", str(ref.get("value")))
    if parent is None or not parent.get("Active", True):
        raise faults.object_not_found("ParentRef")
    if parent.get("Level", 0) >= 4:
        raise faults.QboFault("6180", "Sub Level Limit Error", "You can only have 5 levels of sub-customers.")
    return parent


def _fixed_currency(obj: dict, realm: RealmData, existing: dict | None, parent: dict | None = None) -> None:
    """Currency is chosen at creation and never changes; it only appears when multicurrency is on."""
    settings = realm.settings
    if not settings.multicurrency:
        if obj.get("CurrencyRef") and obj["CurrencyRef"].get("value") != settings.home_currency:
            raise faults.business_rule("Multicurrency is not enabled for this company.")
        obj.pop("CurrencyRef", None)
        return
    if existing is not None:
        fixed = (existing.get("CurrencyRef") or {}).get("value")
    elif parent is not None:
        fixed = (parent.get("CurrencyRef") or {}).get("value")
    else:
        fixed = None
    wanted = (obj.get("CurrencyRef") or {}).get("value") or fixed or settings.home_currency
    if fixed is not None and wanted != fixed:
        raise faults.business_rule("You can't change the currency of a name once it has been set.")
    if not is_known(wanted):
        raise faults.QboFault("2220", "Invalid currency type", f"Unknown currency code : {wanted}",
                              element="CurrencyRef")
    obj["CurrencyRef"] = currency_ref(wanted)


def shape_item(fields: dict, realm: RealmData, existing: dict | None) -> dict:
    """A service item (what invoice lines refer to), with QBO's defaults."""
    obj = dict(fields)
    name = obj.get("Name")
    if not isinstance(name, str) or not name.strip():
        raise faults.required_param("Name")
    if ":" in name:
        raise faults.invalid_value("Name", "The name cannot contain a colon (:)")
    obj["Name"] = name.strip()
    obj["FullyQualifiedName"] = obj["Name"]
    obj.setdefault("Type", "Service")
    obj.setdefault("Active", True)
    obj.setdefault("Taxable", False)
    obj.setdefault("TrackQtyOnHand", False)
    obj["UnitPrice"] = to_decimal(obj.get("UnitPrice", 0), Decimal(0))
    obj.setdefault("IncomeAccountRef", {"value": "1", "name": "Services"})
    _unique_list_name("Item", obj, realm, existing)
    return obj


def shape_term(fields: dict, realm: RealmData, existing: dict | None) -> dict:
    """A payment term (Net 30 and friends)."""
    obj = _named(fields)
    obj.setdefault("Active", True)
    obj.setdefault("Type", "STANDARD")
    obj["DueDays"] = int(obj.get("DueDays", 0))
    obj.setdefault("DiscountPercent", 0)
    obj.setdefault("DiscountDays", 0)
    _unique_list_name("Term", obj, realm, existing)
    return obj


def shape_payment_method(fields: dict, realm: RealmData, existing: dict | None) -> dict:
    """A payment method (Cash, Check, Visa...)."""
    obj = _named(fields)
    obj.setdefault("Active", True)
    obj.setdefault("Type", "NON_CREDIT_CARD")
    _unique_list_name("PaymentMethod", obj, realm, existing)
    return obj


def _named(fields: dict) -> dict:
    obj = dict(fields)
    name = obj.get("Name")
    if not isinstance(name, str) or not name.strip():
        raise faults.required_param("Name")
    obj["Name"] = name.strip()
    return obj


def _unique_list_name(entity: str, obj: dict, realm: RealmData, existing: dict | None) -> None:
    wanted = obj["Name"].casefold()
    for other in realm.objects[entity].values():
        if other["Name"].casefold() == wanted and (existing is None or other["Id"] != existing["Id"]):
            raise faults.duplicate_name()
