"""Business rules for sales transactions: lines, totals, balances, currency and home amounts, void.

``shape_txn`` takes the writable fields a client sent (merged with the stored object for a sparse update)
and returns the object QBO would store, without Id/SyncToken/MetaData, which the engine owns.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from . import faults
from .currencies import currency_ref
from .links import check_invoice_links
from .money import cents, home_amount, to_decimal
from .store import RealmData

ZERO = Decimal(0)
READ_ONLY = frozenset({"Id", "SyncToken", "MetaData", "domain", "sparse", "TotalAmt", "HomeTotalAmt", "Balance",
                       "HomeBalance", "UnappliedAmt", "RemainingCredit", "status", "time"})
_SALES_LINE = "SalesItemLineDetail"
_WITH_LINES = ("Invoice", "Estimate", "SalesReceipt", "CreditMemo", "RefundReceipt")
_DEPOSITED = ("SalesReceipt", "RefundReceipt", "Payment")
_PAYABLE = ("Invoice", "CreditMemo")
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
        _shape_estimate(obj, realm, existing)
    elif entity == "CreditMemo":
        _shape_credit_memo(obj, realm, existing)
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
    check_invoice_links(obj, realm, customer, existing["Id"] if existing else None)
    if existing:
        obj["LinkedTxn"] += [{"TxnId": pid, "TxnType": "Payment"} for pid in realm.applied.get(existing["Id"], {})]


def _shape_estimate(obj: dict, realm: RealmData, existing: dict | None) -> None:
    """An estimate's invoice link is QBO's to keep (links.py): whatever a client sends there is replaced."""
    obj.setdefault("TxnStatus", "Pending")
    links = [link for link in obj.get("LinkedTxn") or [] if link.get("TxnType") != "Invoice"]
    invoice_id = realm.estimate_invoice.get(existing["Id"]) if existing else None
    if invoice_id is not None:
        links.append({"TxnId": invoice_id, "TxnType": "Invoice"})
    if links:
        obj["LinkedTxn"] = links
    else:
        obj.pop("LinkedTxn", None)


def _shape_credit_memo(obj: dict, realm: RealmData, existing: dict | None) -> None:
    """RemainingCredit (= Balance) is the total less what payments have used of it."""
    used = sum(realm.credits_used.get(existing["Id"], {}).values(), ZERO) if existing else ZERO
    if obj["TotalAmt"] < used:
        raise faults.business_rule("The credit memo total is less than the credit already applied from it.")
    obj["RemainingCredit"] = obj["Balance"] = cents(obj["TotalAmt"] - used)
    links = [link for link in obj.get("LinkedTxn") or [] if link.get("TxnType") != "Payment"]
    if existing:
        links += [{"TxnId": pid, "TxnType": "Payment"} for pid in realm.credits_used.get(existing["Id"], {})]
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
    applied = applied_amount(lines)
    if applied < 0:
        raise faults.business_rule("The credits applied are more than the amounts they pay.")
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
        if link.get("TxnType") not in _PAYABLE:
            raise faults.unsupported_operation("The sandbox applies payments to invoices and credit memos only.")
        _check_open(link["TxnType"], str(link.get("TxnId")), line["Amount"], payment, realm, existing)
    line["LinkedTxn"] = [{"TxnId": str(link["TxnId"]), "TxnType": link["TxnType"]} for link in links]
    return line


def applied_amount(lines: list[dict]) -> Decimal:
    """What a payment's lines apply: the amounts paid to invoices less the credit memos' credit used for them.

    A credit memo is applied through a payment (FACTS 9.3: a payment "can be applied ... against multiple Invoices
    and Credit Memos"); its line carries the credit used, as a positive amount, and a payment of 0 can
    apply a credit memo to an invoice alone (docs/qbo/sandbox-fidelity.md).
    """
    credits = sum((line["Amount"] for line in lines if _links_to(line, "CreditMemo")), ZERO)
    return sum((line["Amount"] for line in lines if not _links_to(line, "CreditMemo")), ZERO) - credits


def _links_to(line: dict, txn_type: str) -> bool:
    return any(link.get("TxnType") == txn_type for link in line.get("LinkedTxn") or [])


def _check_open(txn_type: str, txn_id: str, amount: Decimal, payment: dict, realm: RealmData,
                existing: dict | None) -> None:
    """The invoice (or credit memo) exists, is the same customer's and has ``amount`` still open."""
    target = realm.get(txn_type, txn_id)
    if target is None:
        raise faults.object_not_found("Line.LinkedTxn.TxnId")
    if target["CustomerRef"]["value"] != payment["CustomerRef"]["value"]:
        raise faults.business_rule("A payment can only be applied to the same customer's transactions.")
    used = realm.applied if txn_type == "Invoice" else realm.credits_used
    already = used.get(txn_id, {}).get(existing["Id"], ZERO) if existing else ZERO
    if amount < 0:
        raise faults.QboFault("2290", "Negative amount", "Amount cannot be negative", element="Line.Amount")
    if amount > target["Balance"] + already:
        what = "invoice's open balance" if txn_type == "Invoice" else "credit memo's remaining credit"
        raise faults.business_rule(f"The payment amount applied exceeds the {what}.")


def _home_amounts(entity: str, obj: dict, realm: RealmData, rate: Decimal) -> None:
    """HomeTotalAmt/HomeBalance exist only for foreign-currency transactions in a multicurrency company."""
    obj.pop("HomeTotalAmt", None)
    obj.pop("HomeBalance", None)
    if "ExchangeRate" not in obj or entity == "Payment":
        return
    obj["HomeTotalAmt"] = home_amount(obj["TotalAmt"], rate)
    if "Balance" in obj and entity != "Estimate":
        obj["HomeBalance"] = home_amount(obj["Balance"], rate)


def rebalance(entity: str, obj: dict, realm: RealmData) -> dict:
    """A copy of an invoice or credit memo with its balance and payment links recomputed from the payments."""
    return rebalance_invoice(obj, realm) if entity == "Invoice" else rebalance_credit_memo(obj, realm)


def rebalance_credit_memo(memo: dict, realm: RealmData) -> dict:
    """A copy of ``memo`` with RemainingCredit, Balance, HomeBalance and payment links recomputed."""
    used = realm.credits_used.get(memo["Id"], {})
    new = dict(memo)
    new["RemainingCredit"] = new["Balance"] = cents(new["TotalAmt"] - sum(used.values(), ZERO))
    links = [link for link in memo.get("LinkedTxn") or [] if link.get("TxnType") != "Payment"]
    new["LinkedTxn"] = links + [{"TxnId": pid, "TxnType": "Payment"} for pid in used]
    if "ExchangeRate" in new:
        new["HomeBalance"] = home_amount(new["Balance"], to_decimal(new["ExchangeRate"]))
    return new


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
