"""Business rules for sales transactions: lines, totals, balances, currency and home amounts, void.

``shape_txn`` takes the writable fields a client sent (merged with the stored object for a sparse update)
and returns the object QBO would store, without Id/SyncToken/MetaData, which the engine owns.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from . import faults
from .currencies import currency_ref
from .money import cents, home_amount, to_decimal
from .store import RealmData

ZERO = Decimal(0)
READ_ONLY = frozenset({"Id", "SyncToken", "MetaData", "domain", "sparse", "TotalAmt", "HomeTotalAmt", "Balance",
                       "HomeBalance", "UnappliedAmt", "RemainingCredit", "status", "time"})
_SALES_LINE = "SalesItemLineDetail"
_WITH_LINES = ("Invoice", "Estimate", "SalesReceipt", "CreditMemo", "RefundReceipt")
_DEPOSITED = ("SalesReceipt", "RefundReceipt", "Payment")
_DATE_FIELDS = ("DueDate", "ShipDate", "ExpirationDate", "AcceptedDate")
UNDEPOSITED_FUNDS = {"value": "4"}  # Undeposited Funds; QBO returns the id only


def writable(entity: str, body: dict) -> dict:
    """The fields a client may set on ``entity`` (TotalAmt stays writable on a Payment)."""
    keep_total = entity == "Payment"
    return {k: v for k, v in body.items() if k not in READ_ONLY or (keep_total and k == "TotalAmt")}


def shape_txn(entity: str, fields: dict, realm: RealmData, today: date, existing: dict | None) -> dict:
    """Validate and complete a transaction of ``entity``."""
    obj = dict(fields)
    customer = _customer(obj, realm, existing)
    obj["CustomerRef"] = {"value": customer["Id"], "name": customer.get("FullyQualifiedName",
                                                                         customer["DisplayName"])}
    obj["TxnDate"] = _txn_date(obj, today)
    _check_dates(obj)
    if existing is None and entity != "Payment" and not obj.get("DocNumber"):
        obj["DocNumber"] = realm.new_doc_number(entity)
    rate = _currency(obj, customer, realm)
    if entity == "Payment":
        _shape_payment(obj, realm, existing)
    else:
        _shape_sales(entity, obj, realm, customer, existing)
    _home_amounts(entity, obj, realm, rate)
    return obj


def _customer(obj: dict, realm: RealmData, existing: dict | None) -> dict:
    ref = obj.get("CustomerRef")
    if not isinstance(ref, dict) or not ref.get("value"):
        raise faults.required_param("CustomerRef")
    customer = realm.get("Customer", str(ref["value"]))
    unchanged = existing is not None and existing["CustomerRef"]["value"] == str(ref["value"])
    if customer is None or (not customer.get("Active", True) and not unchanged):
        raise faults.object_not_found("CustomerRef")
    return customer


def _txn_date(obj: dict, today: date) -> str:
    value = obj.get("TxnDate")
    return today.isoformat() if value is None else date_text(value, "TxnDate")


def date_text(value: object, element: str) -> str:
    """A QBO Date as ``YYYY-MM-DD``; a date-time keeps its date part (Intuit sends both); 2060 otherwise."""
    try:
        return date.fromisoformat(str(value)[:10]).isoformat()
    except ValueError as exc:
        raise faults.invalid_date(element, value) from exc


def number(value: object, element: str) -> Decimal:
    """A QBO Decimal from a JSON number or numeric string; 2080 for anything else."""
    try:
        return to_decimal(value)
    except ValueError as exc:
        raise faults.invalid_number(element, value) from exc


def _check_dates(obj: dict) -> None:
    """Normalise the optional Date fields a client may send; a malformed one is 2060."""
    for key in _DATE_FIELDS:
        if key in obj:
            obj[key] = date_text(obj[key], key)


def _top_customer(customer: dict, realm: RealmData) -> dict:
    while customer.get("ParentRef"):
        parent = realm.get("Customer", customer["ParentRef"]["value"])
        if parent is None:
            break
        customer = parent
    return customer


def _currency(obj: dict, customer: dict, realm: RealmData) -> Decimal:
    """Set CurrencyRef/ExchangeRate (multicurrency only) and return the rate to home currency."""
    settings = realm.settings
    if not settings.multicurrency:
        obj.pop("CurrencyRef", None)
        obj.pop("ExchangeRate", None)
        return Decimal(1)
    code = ((_top_customer(customer, realm).get("CurrencyRef") or {}).get("value") or settings.home_currency)
    given = (obj.get("CurrencyRef") or {}).get("value")
    if given and given != code:
        raise faults.business_rule("The currency of the transaction must match the customer's currency.")
    obj["CurrencyRef"] = currency_ref(code)
    if code == settings.home_currency:
        obj.pop("ExchangeRate", None)
        return Decimal(1)
    # QBO stores 1 when a foreign-currency transaction omits ExchangeRate (FACTS.md 9.6).
    rate = number(obj.get("ExchangeRate", 1), "ExchangeRate")
    if rate <= 0:
        raise faults.invalid_value("ExchangeRate", "Exchange rate must be positive")
    obj["ExchangeRate"] = rate
    return rate


def _shape_sales(entity: str, obj: dict, realm: RealmData, customer: dict, existing: dict | None) -> None:
    lines, subtotal, discount = _lines(obj.get("Line"), realm)
    obj["Line"] = lines
    tax = _tax(obj)
    total = cents(subtotal - discount + tax)
    obj["TotalAmt"] = total
    obj.setdefault("ApplyTaxAfterDiscount", False)
    obj.setdefault("PrintStatus", "NotSet")
    obj.setdefault("EmailStatus", "NotSet")
    _default_addresses(obj, customer, realm)
    if entity == "Invoice":
        _shape_invoice(obj, realm, customer, existing)
    elif entity == "Estimate":
        obj.setdefault("TxnStatus", "Pending")
    elif entity == "CreditMemo":
        obj["RemainingCredit"] = total if existing is None else existing.get("RemainingCredit", total)
        obj["Balance"] = obj["RemainingCredit"]
    else:
        obj["Balance"] = ZERO
        obj.setdefault("DepositToAccountRef", dict(UNDEPOSITED_FUNDS))
        _check_payment_method(obj, realm)


def _lines(given: object, realm: RealmData) -> tuple[list[dict], Decimal, Decimal]:
    if not isinstance(given, list) or not any(isinstance(line, dict) for line in given):
        raise faults.required_param("Line")
    sales: list[dict] = []
    discounts: list[dict] = []
    for raw in given:
        if not isinstance(raw, dict):
            continue
        kind = raw.get("DetailType")
        if kind == "SubTotalLineDetail":
            continue  # recomputed below
        if kind == "DiscountLineDetail":
            discounts.append(dict(raw))
        else:
            sales.append(_sales_line(raw, realm, len(sales) + 1))
    subtotal = cents(sum((to_decimal(line["Amount"]) for line in sales), ZERO))
    discount = ZERO
    for line in discounts:
        line["Amount"] = _discount_amount(line, subtotal)
        discount += line["Amount"]
    subtotal_line = {"DetailType": "SubTotalLineDetail", "Amount": subtotal, "SubTotalLineDetail": {}}
    return [*sales, subtotal_line, *discounts], subtotal, discount


def _sales_line(raw: dict, realm: RealmData, line_number: int) -> dict:
    line = dict(raw)
    line["Id"] = str(line.get("Id") or line_number)
    line["LineNum"] = line_number
    if line.get("DetailType") == "DescriptionOnly":
        line.setdefault("Amount", ZERO)
        return line
    if line.get("DetailType", _SALES_LINE) != _SALES_LINE:
        line["Amount"] = number(line.get("Amount", 0), "Line.Amount")
        return line
    line["DetailType"] = _SALES_LINE
    detail = dict(line.get(_SALES_LINE) or {})
    item = _item(detail, realm)
    detail["ItemRef"] = {"value": item["Id"], "name": item["Name"]}
    if "ServiceDate" in detail:
        detail["ServiceDate"] = date_text(detail["ServiceDate"], "Line.SalesItemLineDetail.ServiceDate")
    if "Amount" in line:
        line["Amount"] = cents(number(line["Amount"], "Line.Amount"))
    else:
        qty = number(detail.get("Qty", 1), "Line.SalesItemLineDetail.Qty")
        price = number(detail.get("UnitPrice", item.get("UnitPrice", 0)), "Line.SalesItemLineDetail.UnitPrice")
        detail.setdefault("Qty", qty)
        detail.setdefault("UnitPrice", price)
        line["Amount"] = cents(qty * price)
    detail.setdefault("TaxCodeRef", {"value": "NON"})
    line[_SALES_LINE] = detail
    return line


def _item(detail: dict, realm: RealmData) -> dict:
    ref = detail.get("ItemRef")
    if not isinstance(ref, dict) or not ref.get("value"):
        raise faults.required_param("Line.SalesItemLineDetail.ItemRef")
    item = realm.get("Item", str(ref["value"]))
    if item is None or not item.get("Active", True):
        raise faults.QboFault("2500", "Invalid Reference Id",
                              "Invalid Reference Id : Line.SalesItemLineDetail.ItemRef",
                              element="Line.SalesItemLineDetail.ItemRef")
    return item


def _discount_amount(line: dict, subtotal: Decimal) -> Decimal:
    detail = line.get("DiscountLineDetail") or {}
    if detail.get("PercentBased"):
        return cents(subtotal * number(detail.get("DiscountPercent", 0), "DiscountPercent") / 100)
    return cents(number(line.get("Amount", 0), "Line.Amount"))


def _tax(obj: dict) -> Decimal:
    detail = dict(obj.get("TxnTaxDetail") or {})
    if "TaxLine" in detail:
        detail["TotalTax"] = cents(sum((number(t.get("Amount", 0), "TxnTaxDetail.TaxLine.Amount")
                                        for t in detail["TaxLine"]), ZERO))
    else:
        detail["TotalTax"] = cents(number(detail.get("TotalTax", 0), "TxnTaxDetail.TotalTax"))
    obj["TxnTaxDetail"] = detail
    return detail["TotalTax"]


def _default_addresses(obj: dict, customer: dict, realm: RealmData) -> None:
    for key in ("BillAddr", "ShipAddr"):
        if key not in obj and customer.get(key):
            obj[key] = {**customer[key], "Id": realm.new_address_id()}
        elif isinstance(obj.get(key), dict) and "Id" not in obj[key]:
            obj[key] = {**obj[key], "Id": realm.new_address_id()}


def _shape_invoice(obj: dict, realm: RealmData, customer: dict, existing: dict | None) -> None:
    term = _term(obj, customer, realm)
    if "DueDate" not in obj:
        days = int(term.get("DueDays", 0)) if term else 0
        obj["DueDate"] = (date.fromisoformat(obj["TxnDate"]) + timedelta(days=days)).isoformat()
    obj["Deposit"] = cents(number(obj.get("Deposit", 0), "Deposit"))
    applied = sum(realm.applied.get(existing["Id"], {}).values(), ZERO) if existing else ZERO
    balance = obj["TotalAmt"] - obj["Deposit"] - applied
    if balance < 0:
        raise faults.business_rule("The invoice total is less than the payments applied to it.")
    obj["Balance"] = cents(balance)
    links = [link for link in obj.get("LinkedTxn") or [] if link.get("TxnType") != "Payment"]
    if existing:
        links += [{"TxnId": pid, "TxnType": "Payment"} for pid in realm.applied.get(existing["Id"], {})]
    obj["LinkedTxn"] = links


def _term(obj: dict, customer: dict, realm: RealmData) -> dict | None:
    ref = obj.get("SalesTermRef") or customer.get("SalesTermRef")
    if not ref:
        return None
    term = realm.get("Term", str(ref.get("value")))
    if term is None:
        raise faults.object_not_found("SalesTermRef")
    obj["SalesTermRef"] = {"value": term["Id"]}
    return term


def _check_payment_method(obj: dict, realm: RealmData) -> None:
    ref = obj.get("PaymentMethodRef")
    if ref:
        method = realm.get("PaymentMethod", str(ref.get("value")))
        if method is None:
            raise faults.object_not_found("PaymentMethodRef")
        obj["PaymentMethodRef"] = {"value": method["Id"], "name": method["Name"]}


def _shape_payment(obj: dict, realm: RealmData, existing: dict | None) -> None:
    if "TotalAmt" not in obj:
        raise faults.required_param("TotalAmt")
    total = cents(number(obj["TotalAmt"], "TotalAmt"))
    if total < 0:
        raise faults.QboFault("2290", "Negative amount", "Amount cannot be negative", element="TotalAmt")
    obj["TotalAmt"] = total
    lines = [_payment_line(line, obj, realm, existing) for line in obj.get("Line") or []]
    obj["Line"] = lines
    applied = sum((line["Amount"] for line in lines), ZERO)
    if applied > total:
        raise faults.business_rule("The amount applied to transactions is more than the payment amount.")
    obj["UnappliedAmt"] = total - applied
    obj.setdefault("ProcessPayment", False)
    obj.setdefault("DepositToAccountRef", dict(UNDEPOSITED_FUNDS))
    _check_payment_method(obj, realm)


def _payment_line(raw: dict, payment: dict, realm: RealmData, existing: dict | None) -> dict:
    line = dict(raw)
    line.pop("LineEx", None)
    line["Amount"] = cents(number(line.get("Amount", 0), "Line.Amount"))
    links = line.get("LinkedTxn") or []
    for link in links:
        if link.get("TxnType") != "Invoice":
            raise faults.unsupported_operation("The sandbox applies payments to invoices only.")
        _check_invoice_open(str(link.get("TxnId")), line["Amount"], payment, realm, existing)
    line["LinkedTxn"] = [{"TxnId": str(link["TxnId"]), "TxnType": "Invoice"} for link in links]
    return line


def _check_invoice_open(invoice_id: str, amount: Decimal, payment: dict, realm: RealmData,
                        existing: dict | None) -> None:
    invoice = realm.get("Invoice", invoice_id)
    if invoice is None:
        raise faults.object_not_found("Line.LinkedTxn.TxnId")
    if invoice["CustomerRef"]["value"] != payment["CustomerRef"]["value"]:
        raise faults.business_rule("A payment can only be applied to the same customer's invoices.")
    already = realm.applied.get(invoice_id, {}).get(existing["Id"], ZERO) if existing else ZERO
    if amount > invoice["Balance"] + already:
        raise faults.business_rule("The payment amount applied exceeds the invoice's open balance.")


def _home_amounts(entity: str, obj: dict, realm: RealmData, rate: Decimal) -> None:
    """HomeTotalAmt/HomeBalance exist only for foreign-currency transactions in a multicurrency company."""
    obj.pop("HomeTotalAmt", None)
    obj.pop("HomeBalance", None)
    if "ExchangeRate" not in obj or entity == "Payment":
        return
    obj["HomeTotalAmt"] = home_amount(obj["TotalAmt"], rate)
    if "Balance" in obj and entity != "Estimate":
        obj["HomeBalance"] = home_amount(obj["Balance"], rate)


def rebalance_invoice(invoice: dict, realm: RealmData) -> dict:
    """A copy of ``invoice`` with Balance, HomeBalance and payment links recomputed from applications."""
    applied = realm.applied.get(invoice["Id"], {})
    new = dict(invoice)
    new["Balance"] = cents(new["TotalAmt"] - new.get("Deposit", ZERO) - sum(applied.values(), ZERO))
    links = [link for link in invoice.get("LinkedTxn") or [] if link.get("TxnType") != "Payment"]
    new["LinkedTxn"] = links + [{"TxnId": pid, "TxnType": "Payment"} for pid in applied]
    if "ExchangeRate" in new:
        new["HomeBalance"] = home_amount(new["Balance"], to_decimal(new["ExchangeRate"]))
    return new


def voided(entity: str, obj: dict) -> dict:
    """The voided form of a transaction: amounts and quantities zeroed, "Voided" prepended to PrivateNote."""
    new = dict(obj)
    note = obj.get("PrivateNote")
    new["PrivateNote"] = f"Voided - {note}" if note and not note.startswith("Voided") else (note or "Voided")
    new["TotalAmt"] = ZERO
    if entity == "Payment":
        new["Line"] = []
        new["UnappliedAmt"] = ZERO
        return new
    new["Line"] = [_zeroed_line(line) for line in obj.get("Line") or []
                   if line.get("DetailType") not in ("SubTotalLineDetail", "DiscountLineDetail")]
    new["TxnTaxDetail"] = {"TotalTax": ZERO}
    for key in ("Balance", "HomeBalance", "HomeTotalAmt", "RemainingCredit", "Deposit"):
        if key in new:
            new[key] = ZERO
    if entity == "Invoice":
        new["LinkedTxn"] = []
    return new


def _zeroed_line(line: dict) -> dict:
    new = dict(line)
    new["Amount"] = ZERO
    if isinstance(line.get(_SALES_LINE), dict):
        detail = dict(line[_SALES_LINE])
        detail.pop("UnitPrice", None)
        detail["Qty"] = ZERO
        new[_SALES_LINE] = detail
    return new
