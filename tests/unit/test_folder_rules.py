"""Pure folder rules: QBO transaction → folder fields, filters, money strings, summary figures, badges, tokens."""

from __future__ import annotations

import time
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from crm_qb.app import create_app
from crm_qb.models import Connection
from crm_qb.qbo.deeplinks import AppLinks
from crm_qb.runtime import runtime
from crm_qb.sync.rules.folder import is_deleted, is_stale
from crm_qb.sync.transactions import registry
from crm_qb.sync.transactions.mirror import fields_of
from crm_qb.web.panel import BADGE_COLOURS, crm_origin
from crm_qb.web.panel_tokens import PanelTokenError, check_embed_token, check_panel_token, make_panel_token
from crm_qb.web.readmodels.folder import InvalidFolderQuery, app_base, money_text, parse_folder_query, rate_text
from crm_qb.web.readmodels.summary import SummaryRow, summarize
from tests.conftest import make_settings

TODAY = date(2024, 6, 15)
D = Decimal


def base(**fields: Any) -> dict[str, Any]:
    """A minimal QBO transaction of customer 24."""
    return {"Id": "1", "CustomerRef": {"value": "24"}, "TotalAmt": D("50.00"), **fields}


@pytest.mark.parametrize(("entity", "fields", "expected"), [
    ("CreditMemo", {"Balance": D("20.00")}, {"status": "Applied", "balance": D("20.00")}),
    ("CreditMemo", {"Balance": D("50.00")}, {"status": "Unapplied"}),
    ("RefundReceipt", {}, {"status": "Refunded", "balance": D(0)}),
    ("Payment", {"UnappliedAmt": D("50.00")}, {"status": "Unapplied", "balance": D("50.00")}),
    ("Payment", {"TotalAmt": D(0), "PrivateNote": "Voided", "UnappliedAmt": D(0)}, {"status": "Voided"}),
    ("Payment", {"PaymentRefNum": "CHK-7"}, {"doc_number": "CHK-7"}),
    ("Estimate", {"TxnStatus": "Converted"}, {"status": "Closed", "balance": D(0), "home_balance": D(0)}),
    ("Invoice", {"Balance": D("50.00")}, {"status": "Open", "due_date": None, "txn_date": None}),
    ("Invoice", {"Balance": D("50.00"), "DueDate": "2024-06-14"}, {"status": "Overdue"}),
    ("SalesReceipt", {"CurrencyRef": {"value": "JPY"}, "ExchangeRate": D("0.0064"), "TotalAmt": 1500},
     {"currency": "JPY", "home_total": D("9.60"), "home_computed": True}),
    ("Invoice", {"CurrencyRef": {"value": "USD"}, "ExchangeRate": D("1"), "Balance": D(0)},
     {"currency": "USD", "exchange_rate": D(1), "home_computed": False}),
])
def test_folder_fields(entity: str, fields: dict[str, Any], expected: dict[str, Any]) -> None:
    result = fields_of(registry.get(entity), base(**fields), "USD", TODAY)
    assert {key: result[key] for key in expected} == expected
    assert result["qbo_customer_id"] == "24"


@pytest.mark.parametrize(("txn", "error"), [
    ({"Id": "1", "TotalAmt": D(1)}, ValueError),
    (base(TotalAmt=50.0), TypeError),  # a float means the JSON was parsed lossily
    (base(CurrencyRef={"value": "EUR"}, TotalAmt=None), ValueError),
])
def test_folder_fields_refuse_bad_input(txn: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        fields_of(registry.get("Invoice"), txn, "USD", TODAY)


def test_linked_transactions_of_an_invoice_and_a_payment() -> None:
    invoice = base(LinkedTxn=[{"TxnId": "100", "TxnType": "Estimate"}, {"TxnId": "7", "TxnType": "Payment"}])
    assert registry.get("Invoice").links(invoice) == [{"type": "Estimate", "id": "100", "amount": None},
                                                      {"type": "Payment", "id": "7", "amount": None}]
    payment = base(Line=[{"Amount": D("5"), "LinkedTxn": [{"TxnId": "9", "TxnType": "CreditMemo"}]},
                         {"Amount": D("55.00"), "LinkedTxn": [{"TxnId": "70", "TxnType": "Invoice"}]}])
    assert registry.get("Payment").links(payment) == [{"type": "CreditMemo", "id": "9", "amount": "5"},
                                                      {"type": "Invoice", "id": "70", "amount": "55.00"}]


@pytest.mark.parametrize(("value", "deleted"), [(None, True), ({"status": "Deleted"}, True),
                                                ({"status": "deleted"}, True), ({"Id": "1"}, False)])
def test_is_deleted(value: dict[str, Any] | None, deleted: bool) -> None:
    assert is_deleted(value) is deleted


@pytest.mark.parametrize(("raw", "name"), [("invoice", "Invoice"), ("SALESRECEIPT", "SalesReceipt"),
                                           ("RefundReceipt", "RefundReceipt")])
def test_registry_lookup_ignores_case(raw: str, name: str) -> None:
    assert registry.get(raw).entity == name


@pytest.mark.parametrize(("args", "types", "statuses", "page", "per_page"), [
    (([], [], None, None), (), (), 1, 50),
    ((["invoice, Payment", "Invoice"], ["partially-paid", "OVERDUE"], "3", "200"),
     ("Invoice", "Payment"), ("Partially paid", "Overdue"), 3, 200),
    (([""], ["partially_paid"], "", ""), (), ("Partially paid",), 1, 50),
])
def test_parse_folder_query(args: tuple[Any, ...], types: tuple[str, ...], statuses: tuple[str, ...], page: int,
                            per_page: int) -> None:
    query = parse_folder_query(*args)
    assert (query.types, query.statuses, query.page, query.per_page) == (types, statuses, page, per_page)


@pytest.mark.parametrize(("args", "field"), [
    ((["Bill"], [], None, None), "type"), (([], ["Late"], None, None), "status"),
    (([], [], "0", None), "page"), (([], [], "1.5", None), "page"), (([], [], None, "201"), "per_page"),
])
def test_parse_folder_query_names_the_bad_field(args: tuple[Any, ...], field: str) -> None:
    with pytest.raises(InvalidFolderQuery) as caught:
        parse_folder_query(*args)
    assert caught.value.field == field


@pytest.mark.parametrize(("amount", "currency", "text"), [
    (D("1100"), "USD", "1100.00"), (D("1100.00"), "USD", "1100.00"), (D("1.1E+3"), "USD", "1100.00"),
    (D("0"), "EUR", "0.00"), (D("-12.5"), "EUR", "-12.50"), (D("1500.00"), "JPY", "1500"),
    (D("12.345"), "USD", "12.345"), (D("1.5"), "KWD", "1.500"),
])
def test_money_text_is_exact(amount: Decimal, currency: str, text: str) -> None:
    assert money_text(amount, currency) == text


@pytest.mark.parametrize(("rate", "text"), [(D("1.100000000000"), "1.1"), (D("150.000000000000"), "150"),
                                            (D("0.006400000000"), "0.0064")])
def test_rate_text(rate: Decimal, text: str) -> None:
    assert rate_text(rate) == text


def row(txn_type: str, qbo_id: str, status: str, total: str, balance: str = "0", currency: str = "USD",
        day: int = 1, home: str | None = None) -> SummaryRow:
    """A folder row; home amounts equal the amounts unless given."""
    home_total = D(home) if home else D(total)
    home_balance = D(balance) * (home_total / D(total)) if home else D(balance)
    return SummaryRow(txn_type, qbo_id, status, currency, date(2024, 5, day), D(total), D(balance), home_total,
                      home_balance)


def test_summarize_sums_per_currency_and_home_and_skips_voided() -> None:
    figures = summarize([
        row("Invoice", "1", "Overdue", "100", "100"), row("Invoice", "2", "Partially paid", "200", "50"),
        row("Invoice", "3", "Voided", "0"), row("Invoice", "4", "Open", "10", "10", "EUR", home="11"),
        row("Payment", "9", "Applied", "150", day=3), row("Payment", "10", "Applied", "5", day=3),
        row("Payment", "11", "Voided", "0", day=30), row("SalesReceipt", "12", "Paid", "7.5"),
        row("CreditMemo", "13", "Applied", "3"), row("RefundReceipt", "14", "Refunded", "2"),
        row("Estimate", "15", "Pending", "999"),
    ])
    assert figures.counts == {"Invoice": 4, "Payment": 3, "SalesReceipt": 1, "CreditMemo": 1, "RefundReceipt": 1,
                              "Estimate": 1}
    assert figures.by_currency["USD"] == {"open": D(150), "overdue": D(100), "invoiced": D(300),
                                          "received": D("162.5"), "credited": D(3), "refunded": D(2),
                                          "unapplied_credits": D(0), "unapplied_payments": D(0)}
    assert figures.by_currency["EUR"]["open"] == D(10)
    assert (figures.home["open"], figures.home["invoiced"]) == (D(161), D(311))
    assert figures.last_payment is not None and figures.last_payment.qbo_id == "10"  # same day: higher id


def test_unapplied_credits_and_payments_lower_the_open_balance_as_qbos_balance_does() -> None:
    figures = summarize([
        row("Invoice", "1", "Open", "90", "90"), row("CreditMemo", "2", "Unapplied", "20", "20"),
        row("Payment", "3", "Applied", "30", "10"),  # 20 applied to another invoice, 10 left over
        row("CreditMemo", "4", "Voided", "0", "0"),
    ])
    usd = figures.by_currency["USD"]
    assert (usd["open"], usd["unapplied_credits"], usd["unapplied_payments"]) == (D(60), D(20), D(10))
    assert figures.home["open"] == D(60)


def test_summarize_nothing() -> None:
    figures = summarize([])
    assert figures.counts == {} and figures.last_payment is None and set(figures.home.values()) == {D(0)}


def _luminance(colour: str) -> float:
    channels = [int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


@pytest.mark.parametrize("tone", sorted(BADGE_COLOURS))
def test_badge_colours_have_aaa_contrast(tone: str) -> None:
    fg, bg = (_luminance(c) for c in BADGE_COLOURS[tone])
    assert (max(fg, bg) + 0.05) / (min(fg, bg) + 0.05) >= 7


def test_every_status_has_a_badge_tone() -> None:
    from crm_qb.web.readmodels.folder import STATUSES

    tones = {status: registry.badge_tone(status) for t in registry.TYPES for status in t.statuses}
    assert set(STATUSES) == set(tones) and set(tones.values()) == set(BADGE_COLOURS) == set(registry.TONES)


@pytest.mark.parametrize(("url", "origin"), [("https://crm.example.com/api/v2", "https://crm.example.com"),
                                             ("http://127.0.0.1:8702", "http://127.0.0.1:8702")])
def test_crm_origin(url: str, origin: str) -> None:
    assert crm_origin(url) == origin


def connection(id: int = 1, key_hash: str = "a" * 64, sandbox: bool = False) -> Connection:
    """A transient connection (no database)."""
    return Connection(id=id, api_key_hash=key_hash, qbo_is_sandbox=sandbox)


def test_panel_token_round_trip_and_scope() -> None:
    token = make_panel_token("s", connection(), "c1", ttl=60)
    grant = check_panel_token("s", token, connection(), "c1")
    assert (grant.connection_id, grant.crm_contact_id) == (1, "c1") and grant.expires <= time.time() + 60
    for secret, conn, contact in (("other", connection(), "c1"), ("s", connection(2), "c1"),
                                  ("s", connection(key_hash="b" * 64), "c1"), ("s", connection(), "c2")):
        with pytest.raises(PanelTokenError):
            check_panel_token(secret, token, conn, contact)
    with pytest.raises(PanelTokenError, match="expired"):
        check_panel_token("s", token, connection(), "c1", now=time.time() + 61)
    with pytest.raises(PanelTokenError):
        check_embed_token("s", token, connection())


@pytest.mark.parametrize(("contact", "ttl"), [("*", 60), ("c1", 0), ("c1", -5), ("", 60), ("c1", True)])
def test_panel_token_refuses_bad_arguments(contact: str, ttl: int) -> None:
    with pytest.raises(ValueError):
        make_panel_token("s", connection(), contact, ttl=ttl)


@pytest.mark.parametrize(("overrides", "sandbox", "expected"), [
    ({"qbo_environment": "production"}, False, "https://app.qbo.intuit.com"),
    ({"qbo_environment": "production"}, True, "https://app.sandbox.qbo.intuit.com"),
    ({"qbo_environment": "sandbox"}, False, "https://app.sandbox.qbo.intuit.com"),
    ({"qbo_environment": "production", "qbo_app_base": "http://127.0.0.1:8701"}, True, "http://127.0.0.1:8701"),
])
def test_deep_link_host_follows_the_company(tmp_path: Path, overrides: dict[str, str], sandbox: bool,
                                            expected: str) -> None:
    app = create_app(make_settings(tmp_path, **overrides))
    company = connection(sandbox=sandbox)
    company.qbo_realm_id = "4620816365"
    assert app_base(runtime(app), company) == AppLinks(expected, "4620816365")


@pytest.mark.parametrize(("stored", "incoming", "stale"), [
    (("2", "10:00"), ("1", "11:00"), True),  # an older version, whatever its stamp says
    (("2", "10:00"), ("3", "10:00"), False),  # a newer version in the same second
    (("2", "10:00"), ("3", "09:59"), False),  # a newer version with an earlier stamp
    (("2", "10:00"), ("2", "10:00"), False),  # the same version (the caller finds it unchanged)
    ((None, "10:00"), ("3", "09:59"), True),  # no stored token: the stamps decide
    (("2", "10:00"), (None, "10:01"), False),
    ((None, None), ("1", "09:00"), False),
])
def test_staleness_is_judged_by_sync_token_then_time(stored: tuple[str | None, str | None],
                                                     incoming: tuple[str | None, str | None], stale: bool) -> None:
    def at(clock: str | None) -> datetime | None:
        return datetime.fromisoformat(f"2024-06-05T{clock}:00+00:00") if clock else None

    assert is_stale(stored[0], at(stored[1]), incoming[0], at(incoming[1])) is stale
