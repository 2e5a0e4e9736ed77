"""The seeded realm generator: determinism, order, shapes against Intuit's samples, and ledger consistency."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

from crm_qb.sandbox.qbo import jsonio
from crm_qb.sandbox.qbo.seed import HISTORY_DAYS, exchange_rate, generate_realm, pacific_offset

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "qbo"
TODAY = date(2026, 3, 15)
CENT = Decimal("0.01")
TXN_TYPES = ("Invoice", "Payment", "Estimate", "SalesReceipt", "CreditMemo")
META_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})T\d{2}:\d{2}:\d{2}(-0[78]:00)$")


def realm(customers=400, transactions=3000, multicurrency=True, seed=11, **kwargs):
    return list(generate_realm(customers, transactions, multicurrency, seed, today=kwargs.pop("today", TODAY),
                               **kwargs))


@pytest.fixture(scope="module")
def objects():
    return realm()


@pytest.fixture(scope="module")
def by_type(objects):
    grouped = defaultdict(dict)
    for name, obj in objects:
        grouped[name][obj["Id"]] = obj
    return grouped


def sample(name: str) -> dict:
    data = json.loads((FIXTURES / name).read_text())
    return next(value for key, value in data.items() if key != "time")


# --- shape comparison -------------------------------------------------------------------------------------


def kind(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float | Decimal):
        return "number"
    return type(value).__name__


def shape_differences(expected, actual, optional=frozenset(), extra=frozenset(), path="") -> list[str]:
    """Paths where ``actual`` lacks a key of ``expected`` (unless optional), has an unexpected key (unless
    extra) or holds a different type; list items are compared with the sample item of the same DetailType."""
    if kind(expected) != kind(actual):
        return [f"{path or '<root>'}: {kind(actual)} instead of {kind(expected)}"]
    if isinstance(expected, dict):
        problems = [f"{path}.{key} missing" for key in expected
                    if key not in actual and f"{path}.{key}".lstrip(".") not in optional]
        problems += [f"{path}.{key} unexpected" for key in actual
                     if key not in expected and f"{path}.{key}".lstrip(".") not in extra]
        for key in expected.keys() & actual.keys():
            child = f"{path}.{key}".lstrip(".")
            problems += shape_differences(expected[key], actual[key], optional, extra, child)
        return problems
    if isinstance(expected, list) and expected:
        problems = []
        for item in actual:
            model = next((e for e in expected if isinstance(e, dict) and isinstance(item, dict)
                          and e.get("DetailType") == item.get("DetailType")), expected[0])
            problems += shape_differences(model, item, optional, extra, f"{path}[]")
        return problems
    return []


SHAPES = {
    "Customer": [
        ("customer_read.json", {"PrimaryEmailAddr", "CompanyName"},
         {"ShipAddr", "CurrencyRef", "SalesTermRef", "PaymentMethodRef", "ParentRef", "Level", "Title",
          "Notes", "Mobile", "MiddleName", "Suffix", "BillAddr.Country"}),
        ("customer_create_response.json",
         {"PrimaryEmailAddr", "CompanyName", "Title", "MiddleName", "Suffix", "Notes", "DefaultTaxCodeRef"},
         {"ShipAddr", "SalesTermRef", "PaymentMethodRef", "ParentRef", "Level", "Mobile", "BillAddr.Lat",
          "BillAddr.Long"}),
    ],
    "Invoice": [("invoice_read.json",
                 {"ProjectRef", "BillEmail", "TxnTaxDetail.TxnTaxCodeRef", "TxnTaxDetail.TaxLine"},
                 {"CurrencyRef", "ExchangeRate", "HomeTotalAmt", "HomeBalance", "ShipAddr.Country"})],
    "Payment": [("payment_read.json", {"ProjectRef", "Line[].LineEx"},
                 {"CurrencyRef", "ExchangeRate", "HomeTotalAmt", "PaymentMethodRef", "PaymentRefNum"})],
    "Estimate": [("estimate_read.json", {"ProjectRef", "BillEmail"},
                  {"CurrencyRef", "ExchangeRate", "HomeTotalAmt", "ExpirationDate", "AcceptedDate",
                   "AcceptedBy", "LinkedTxn", "BillAddr.Country", "BillAddr.Lat", "BillAddr.Long",
                   "ShipAddr.Country", "ShipAddr.Lat", "ShipAddr.Long"})],
    "SalesReceipt": [("salesreceipt_from_batch_query.json", set(),
                      {"ExchangeRate", "HomeTotalAmt", "BillEmail", "BillAddr.Line2", "BillAddr.Line3",
                       "BillAddr.Line4"})],
}


@pytest.mark.parametrize("entity", sorted(SHAPES))
def test_every_generated_object_has_the_shape_of_intuit_samples(by_type, entity):
    assert by_type[entity]
    for fixture, optional, extra in SHAPES[entity]:
        expected = sample(fixture)
        for obj in by_type[entity].values():
            assert shape_differences(expected, obj, frozenset(optional), frozenset(extra)) == [], obj["Id"]


def test_optional_sample_fields_are_present_where_they_make_sense(by_type):
    customers = by_type["Customer"].values()
    assert sum("PrimaryEmailAddr" in c for c in customers) > 0.85 * len(customers)
    assert any("CompanyName" in c for c in customers) and any("CompanyName" not in c for c in customers)
    assert all("BillEmail" in i for i in by_type["Invoice"].values()
               if "PrimaryEmailAddr" in by_type["Customer"][i["CustomerRef"]["value"]])


def test_credit_memo_shares_the_sales_form_fields(by_type):
    memo = next(iter(by_type["CreditMemo"].values()))
    invoice = sample("invoice_read.json")
    optional = {"ProjectRef", "BillEmail", "TxnTaxDetail.TxnTaxCodeRef", "TxnTaxDetail.TaxLine", "DueDate",
                "SalesTermRef", "Deposit", "LinkedTxn", "CustomField"}
    extra = {"CurrencyRef", "ExchangeRate", "HomeTotalAmt", "RemainingCredit", "PrivateNote",
             "ShipAddr.Country"}
    assert shape_differences(invoice, memo, frozenset(optional), frozenset(extra)) == []


def test_envelope_fields_on_every_object(objects):
    for name, obj in objects:
        assert isinstance(obj["Id"], str) and obj["Id"], name
        assert (obj["SyncToken"], obj["domain"], obj["sparse"]) == ("0", "QBO", False), name
        created, updated = obj["MetaData"]["CreateTime"], obj["MetaData"]["LastUpdatedTime"]
        for stamp in (created, updated):
            match = META_RE.match(stamp)
            assert match, stamp
            assert match.group(2) == pacific_offset(date.fromisoformat(match.group(1))), stamp
        assert created <= updated or created[:10] < updated[:10], (name, obj["Id"])


# --- order and determinism --------------------------------------------------------------------------------


def test_same_arguments_give_identical_output():
    first = [(name, jsonio.dumps(obj)) for name, obj in realm(120, 600, seed=5)]
    again = [(name, jsonio.dumps(obj)) for name, obj in realm(120, 600, seed=5)]
    other = [(name, jsonio.dumps(obj)) for name, obj in realm(120, 600, seed=6)]
    assert first == again
    assert first != other


def test_entities_come_in_dependency_order(objects):
    names = [name for name, _ in objects]
    order = ["Preferences", "CompanyInfo", "Term", "PaymentMethod", "Item", "Vendor", "Employee", "Customer"]
    first_txn = next(i for i, name in enumerate(names) if name in TXN_TYPES)
    head = [name for name, _ in objects[:first_txn]]
    assert [name for i, name in enumerate(head) if i == 0 or head[i - 1] != name] == order
    assert all(name in TXN_TYPES for name in names[first_txn:])
    assert Counter(head)["Preferences"] == Counter(head)["CompanyInfo"] == 1


def test_references_point_backwards(objects):
    seen: set[tuple[str, str]] = set()
    for name, obj in objects:
        if name == "Customer" and "ParentRef" in obj:
            assert ("Customer", obj["ParentRef"]["value"]) in seen
        if name in TXN_TYPES:
            assert ("Customer", obj["CustomerRef"]["value"]) in seen
            for line in obj["Line"]:
                if "SalesItemLineDetail" in line:
                    assert ("Item", line["SalesItemLineDetail"]["ItemRef"]["value"]) in seen
                for link in line.get("LinkedTxn", []):
                    assert (link["TxnType"], link["TxnId"]) in seen
        seen.add((name, obj["Id"]))


def test_transaction_ids_follow_dates(objects):
    txns = [obj for name, obj in objects if name in TXN_TYPES]
    assert [int(t["Id"]) for t in txns] == list(range(1, len(txns) + 1))
    assert [t["TxnDate"] for t in txns] == sorted(t["TxnDate"] for t in txns)
    first = (TODAY - timedelta(days=HISTORY_DAYS - 1)).isoformat()
    assert first <= txns[0]["TxnDate"] and txns[-1]["TxnDate"] <= TODAY.isoformat()


# --- names ------------------------------------------------------------------------------------------------


def test_display_names_are_unique_across_people_and_clean(objects):
    names = [obj["DisplayName"] for name, obj in objects if name in ("Customer", "Vendor", "Employee")]
    assert len(names) == len(set(names))
    assert not [n for n in names if re.search(r"[:\t\n]", n)]
    customer_names = " ".join(obj["DisplayName"] for name, obj in objects if name == "Customer")
    for fragment in ("O'Brien", "Zoë", "Müller", "José"):
        assert fragment in customer_names


def test_length_limits_are_respected_and_reached(by_type):
    limits = {"DisplayName": 500, "CompanyName": 100, "GivenName": 100, "FamilyName": 100, "MiddleName": 100,
              "Title": 16, "Suffix": 16, "Notes": 2000, "PrintOnCheckName": 110}
    longest = dict.fromkeys(limits, 0)
    for customer in by_type["Customer"].values():
        for field, limit in limits.items():
            if field in customer:
                assert len(customer[field]) <= limit, (field, customer["Id"])
                longest[field] = max(longest[field], len(customer[field]))
        assert len(customer.get("PrimaryEmailAddr", {}).get("Address", "")) <= 100
        assert len(customer["PrimaryPhone"]["FreeFormNumber"]) <= 30
        assert "@" in customer.get("PrimaryEmailAddr", {}).get("Address", "@.")
    # The long customer reaches every limit (PrintOnCheckName takes its 100-character CompanyName).
    assert longest == {**limits, "PrintOnCheckName": 100}


def test_sub_customers_form_a_consistent_hierarchy(by_type):
    customers = by_type["Customer"]
    jobs = [c for c in customers.values() if c["Job"]]
    assert 0.05 * len(customers) < len(jobs) < 0.2 * len(customers)
    for job in jobs:
        parent = customers[job["ParentRef"]["value"]]
        assert job["FullyQualifiedName"] == f"{parent['FullyQualifiedName']}:{job['DisplayName']}"
        assert job["Level"] == parent.get("Level", 0) + 1 <= 4
        assert job["CurrencyRef"] == parent["CurrencyRef"]
    assert all("ParentRef" not in c and c["FullyQualifiedName"] == c["DisplayName"]
               for c in customers.values() if not c["Job"])


# --- ledger -----------------------------------------------------------------------------------------------


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


def test_lines_add_up(by_type):
    for entity in ("Invoice", "Estimate", "SalesReceipt", "CreditMemo"):
        for txn in by_type[entity].values():
            items = [line for line in txn["Line"] if line["DetailType"] == "SalesItemLineDetail"]
            assert items
            for line in items:
                detail = line["SalesItemLineDetail"]
                assert line["Amount"] == cents(detail["Qty"] * detail["UnitPrice"])
            subtotal = [line for line in txn["Line"] if line["DetailType"] == "SubTotalLineDetail"]
            assert txn["TotalAmt"] == sum(line["Amount"] for line in items) == subtotal[0]["Amount"]


def test_payments_apply_to_earlier_invoices_of_the_same_customer(by_type):
    applied = defaultdict(Decimal)
    links = defaultdict(set)
    for payment in by_type["Payment"].values():
        applied_here = sum(line["Amount"] for line in payment["Line"])
        assert payment["TotalAmt"] == applied_here + payment["UnappliedAmt"]
        assert payment["UnappliedAmt"] >= 0
        for line in payment["Line"]:
            invoice = by_type["Invoice"][line["LinkedTxn"][0]["TxnId"]]
            assert invoice["CustomerRef"] == payment["CustomerRef"]
            assert invoice["TxnDate"] <= payment["TxnDate"]
            applied[invoice["Id"]] += line["Amount"]
            links[invoice["Id"]].add(payment["Id"])
    for invoice in by_type["Invoice"].values():
        assert invoice["Balance"] == invoice["TotalAmt"] - applied[invoice["Id"]]
        assert 0 <= invoice["Balance"] <= invoice["TotalAmt"]
        back = {link["TxnId"] for link in invoice["LinkedTxn"] if link["TxnType"] == "Payment"}
        assert back == links[invoice["Id"]]


def test_invoices_cover_paid_partly_paid_overdue_and_current(by_type):
    invoices = by_type["Invoice"].values()
    states = Counter()
    for invoice in invoices:
        if invoice["Balance"] == 0:
            states["paid"] += 1
        elif invoice["Balance"] < invoice["TotalAmt"]:
            states["partly paid"] += 1
        elif invoice["DueDate"] < TODAY.isoformat():
            states["overdue"] += 1
        else:
            states["current"] += 1
    assert all(states[state] >= 5 for state in ("paid", "partly paid", "overdue", "current")), states
    assert any(p["UnappliedAmt"] > 0 and p["Line"] for p in by_type["Payment"].values())
    assert len({i["SalesTermRef"]["value"] for i in invoices}) == 4


def test_customer_balances_match_their_transactions(by_type):
    expected = defaultdict(Decimal)
    for invoice in by_type["Invoice"].values():
        expected[invoice["CustomerRef"]["value"]] += invoice["Balance"]
    for payment in by_type["Payment"].values():
        expected[payment["CustomerRef"]["value"]] -= payment["UnappliedAmt"]
    for memo in by_type["CreditMemo"].values():
        expected[memo["CustomerRef"]["value"]] -= memo["RemainingCredit"]
    customers = by_type["Customer"]
    with_jobs = {cid: c["Balance"] for cid, c in customers.items()}
    for cid in sorted(customers, key=int, reverse=True):
        assert customers[cid]["Balance"] == expected[cid]
        assert customers[cid]["BalanceWithJobs"] == with_jobs[cid]
        if "ParentRef" in customers[cid]:
            with_jobs[customers[cid]["ParentRef"]["value"]] += with_jobs[cid]
    assert all(c["BalanceWithJobs"] == 0 for c in customers.values() if not c["Active"])


def test_estimates_statuses_and_conversions(by_type):
    estimates = by_type["Estimate"].values()
    assert {e["TxnStatus"] for e in estimates} == {"Pending", "Accepted", "Closed", "Rejected"}
    for estimate in estimates:
        assert estimate["ExpirationDate"] > estimate["TxnDate"]
        for link in estimate["LinkedTxn"]:
            invoice = by_type["Invoice"][link["TxnId"]]
            assert estimate["TxnStatus"] == "Closed"
            assert {"TxnId": estimate["Id"], "TxnType": "Estimate"} in invoice["LinkedTxn"]
            assert invoice["TotalAmt"] == estimate["TotalAmt"] and invoice["TxnDate"] >= estimate["TxnDate"]
    assert any(e["LinkedTxn"] for e in estimates)


def test_transaction_mix(by_type):
    counts = {entity: len(by_type[entity]) for entity in TXN_TYPES}
    assert sum(counts.values()) == 3000
    # 1% credit memos; of the rest 50% invoices, 25% payments, 15% estimates, sales receipts the remainder.
    rest = 3000 - 3000 // 100
    assert counts["CreditMemo"] == 3000 // 100
    assert counts["Invoice"] == rest // 2
    assert (counts["Payment"], counts["Estimate"]) == (rest // 4, rest * 15 // 100)
    assert abs(counts["SalesReceipt"] - rest // 10) <= 3


# --- currencies -------------------------------------------------------------------------------------------


def test_foreign_transactions_carry_rates_and_home_amounts(by_type):
    customers = by_type["Customer"]
    foreign = [c for c in customers.values() if c["CurrencyRef"]["value"] != "USD"]
    assert 0.1 * len(customers) < len(foreign) < 0.3 * len(customers)
    assert {c["CurrencyRef"]["value"] for c in foreign} == {"EUR", "GBP", "CAD"}
    seen_foreign = 0
    for entity in TXN_TYPES:
        for txn in by_type[entity].values():
            currency = txn["CurrencyRef"]["value"]
            assert currency == customers[txn["CustomerRef"]["value"]]["CurrencyRef"]["value"]
            if currency == "USD":
                assert not {"ExchangeRate", "HomeTotalAmt", "HomeBalance"} & txn.keys()
                continue
            seen_foreign += 1
            rate = txn["ExchangeRate"]
            assert rate == exchange_rate(currency, "USD", date.fromisoformat(txn["TxnDate"]))
            assert txn["HomeTotalAmt"] == cents(txn["TotalAmt"] * rate)
            if entity == "Invoice":
                assert txn["HomeBalance"] == cents(txn["Balance"] * rate)
    assert seen_foreign > 100


def test_preferences_and_company_info():
    objects = dict(realm(3, 10, multicurrency=False, home_currency="GBP")[:2])
    assert objects["Preferences"]["CurrencyPrefs"] == {"HomeCurrency": {"value": "GBP"},
                                                      "MultiCurrencyEnabled": False}
    assert objects["CompanyInfo"]["Country"] == "GB"
    assert objects["CompanyInfo"]["CompanyName"]


def test_single_currency_realm_has_no_foreign_amounts():
    for name, obj in realm(60, 300, multicurrency=False):
        if name == "Customer" or name in TXN_TYPES:
            assert obj["CurrencyRef"] == {"value": "USD", "name": "United States Dollar"}
            assert "ExchangeRate" not in obj


def test_other_home_currency():
    objects = realm(200, 400, home_currency="EUR", seed=3)
    currencies = {obj["CurrencyRef"]["value"] for name, obj in objects if name == "Customer"}
    assert currencies == {"EUR", "USD", "GBP", "CAD"}
    for name, obj in objects:
        if name in TXN_TYPES and obj["CurrencyRef"]["value"] != "EUR":
            assert obj["ExchangeRate"] == exchange_rate(obj["CurrencyRef"]["value"], "EUR",
                                                        date.fromisoformat(obj["TxnDate"]))


@pytest.mark.parametrize(("source", "home", "low", "high"), [
    ("EUR", "USD", "1.02", "1.14"), ("GBP", "USD", "1.20", "1.34"), ("CAD", "USD", "0.69", "0.78"),
    ("USD", "EUR", "0.87", "0.99"), ("USD", "USD", "1", "1"),
])
def test_exchange_rates_are_realistic_and_precise(source, home, low, high):
    days = [date(2025, 1, 1) + timedelta(days=n) for n in range(0, 548, 7)]
    rates = [exchange_rate(source, home, day) for day in days]
    assert all(Decimal(low) <= rate <= Decimal(high) for rate in rates)
    if source != home:
        assert len(set(rates)) > 50
        assert max(-rate.as_tuple().exponent for rate in rates) == 8


@pytest.mark.parametrize(("day", "offset"), [
    (date(2025, 3, 8), "-08:00"), (date(2025, 3, 9), "-07:00"), (date(2025, 11, 1), "-07:00"),
    (date(2025, 11, 2), "-08:00"), (date(2026, 3, 8), "-07:00"), (date(2024, 12, 25), "-08:00"),
])
def test_pacific_offset(day, offset):
    assert pacific_offset(day) == offset


# --- serialisation and arguments --------------------------------------------------------------------------


def test_money_is_decimal_and_serialises_exactly(objects):
    decimals = []

    def walk(value):
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        else:
            assert not isinstance(value, float)
            if isinstance(value, Decimal):
                decimals.append(value)

    for _, obj in objects:
        walk(obj)
    assert decimals
    assert all(Decimal(repr(float(d))) == d for d in decimals)
    invoice = next(obj for name, obj in objects if name == "Invoice")
    assert jsonio.loads(jsonio.dumps(invoice)) == invoice
    assert json.loads(json.dumps(invoice, default=float), parse_float=Decimal) == invoice


def test_empty_and_tiny_realms():
    empty = realm(0, 0)
    assert "Customer" not in {name for name, _ in empty}
    tiny = realm(1, 5)
    assert Counter(name for name, _ in tiny)["Customer"] == 1
    assert sum(name in TXN_TYPES for name, _ in tiny) == 5


@pytest.mark.parametrize(("args", "message"), [
    ((-1, 0, False, 1), "customers must be a non-negative integer, got -1"),
    ((1, True, False, 1), "transactions must be a non-negative integer, got True"),
    ((0, 5, False, 1), "transactions need at least one customer"),
    ((1, 1, False, 1, "JPY"), "home_currency must be one of"),
])
def test_bad_arguments_fail_at_call_time(args, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        generate_realm(*args)
