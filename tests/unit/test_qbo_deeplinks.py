"""Deep links into the QuickBooks web app and the endpoints of each environment."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from crm_qb.qbo.deeplinks import AppLinks, app_base_for, customer_link, links_for, page_link, transaction_link
from crm_qb.qbo.environments import Endpoints, resolve_endpoints
from crm_qb.sync.transactions import registry

PROD = "https://app.qbo.intuit.com"
SANDBOX = "https://app.sandbox.qbo.intuit.com"


@pytest.mark.parametrize(
    ("environment", "override", "expected"),
    [
        ("production", None, PROD),
        ("sandbox", None, SANDBOX),
        ("local", "http://127.0.0.1:8001", "http://127.0.0.1:8001"),
        ("production", "https://qbo.intuit.com/app/", "https://qbo.intuit.com"),
    ],
)
def test_app_base_for(environment: str, override: str | None, expected: str) -> None:
    assert app_base_for(environment, override) == expected


def test_local_app_base_must_be_given() -> None:
    with pytest.raises(ValueError, match="QBO_APP_BASE"):
        app_base_for("local", None)


def test_unknown_environment_is_refused() -> None:
    with pytest.raises(ValueError, match="production, sandbox, local"):
        app_base_for("staging", None)


REALM = "9341455130166501"


def test_customer_link_opens_the_company() -> None:
    assert customer_link(PROD, REALM, "58") == (
        f"{PROD}/app/login?pagereq=customerdetail%3FnameId%3D58&deeplinkcompanyid={REALM}")


@pytest.mark.parametrize(
    ("txn_type", "page"),
    [("Invoice", "invoice"), ("Estimate", "estimate"), ("SalesReceipt", "salesreceipt"),
     ("Payment", "recvpayment"), ("CreditMemo", "creditmemo"), ("RefundReceipt", "refundreceipt"),
     ("salesreceipt", "salesreceipt")],
)
def test_transaction_link_opens_the_company(txn_type: str, page: str) -> None:
    expected = f"{SANDBOX}/app/login?pagereq={page}%3FtxnId%3D130&deeplinkcompanyid={REALM}"
    assert registry.get(txn_type).link(AppLinks(SANDBOX, REALM), "130") == expected
    assert transaction_link(SANDBOX, REALM, page, "130") == expected


def test_the_documented_example() -> None:
    """docs/qbo/deep-links.md, "What crm-qb must generate"."""
    assert transaction_link(PROD, REALM, "invoice", "850") == (
        "https://app.qbo.intuit.com/app/login?pagereq=invoice%3FtxnId%3D850&deeplinkcompanyid=9341455130166501")
    assert page_link(PROD, REALM, "timeactivity", "id", "5") == (
        f"{PROD}/app/login?pagereq=timeactivity%3Fid%3D5&deeplinkcompanyid={REALM}")


def test_pagereq_decodes_to_the_page_and_its_query() -> None:
    link = customer_link(PROD + "/app/", REALM, "000000011")
    query = parse_qs(urlsplit(link).query)
    assert urlsplit(link).path == "/app/login"
    assert query == {"pagereq": ["customerdetail?nameId=000000011"], "deeplinkcompanyid": [REALM]}
    odd = parse_qs(urlsplit(registry.get("Invoice").link(AppLinks(PROD, REALM), "1&x=2 3")).query)
    assert odd["pagereq"] == ["invoice?txnId=1%26x%3D2%203"]  # the id cannot break out of pagereq


def test_without_a_company_the_link_is_the_bare_page() -> None:
    assert customer_link(PROD, None, "58") == f"{PROD}/app/customerdetail?nameId=58"


def test_a_page_must_be_one_word() -> None:
    with pytest.raises(ValueError, match="single words"):
        page_link(PROD, REALM, "invoice?x", "txnId", "1")


@pytest.mark.parametrize(("base", "sandbox_company", "expected"), [
    (PROD, False, PROD), (PROD, True, SANDBOX), (SANDBOX, True, SANDBOX), ("http://127.0.0.1:8001", True,
                                                                          "http://127.0.0.1:8001"),
])
def test_a_sandbox_company_never_opens_in_the_production_app(base: str, sandbox_company: bool, expected: str) -> None:
    assert links_for(base, REALM, sandbox_company=sandbox_company) == AppLinks(expected, REALM)


def test_unknown_transaction_type_is_refused() -> None:
    with pytest.raises(ValueError, match="Bill"):
        registry.get("Bill").link(AppLinks(PROD, REALM), "1")


def test_production_endpoints() -> None:
    assert resolve_endpoints("production") == Endpoints(
        "https://developer.intuit.com/.well-known/openid_configuration/",
        "https://quickbooks.api.intuit.com", PROD)


def test_sandbox_endpoints_with_one_override() -> None:
    endpoints = resolve_endpoints("sandbox", api_base_override="https://proxy.example.com/")

    assert endpoints == Endpoints("https://developer.intuit.com/.well-known/openid_sandbox_configuration/",
                                  "https://proxy.example.com", SANDBOX)


def test_local_endpoints_come_from_overrides() -> None:
    endpoints = resolve_endpoints("local", "http://127.0.0.1:8001/.well-known/openid_configuration",
                                  "http://127.0.0.1:8001", "http://127.0.0.1:8001")

    assert endpoints.api_base == "http://127.0.0.1:8001"


def test_local_without_overrides_names_what_is_missing() -> None:
    with pytest.raises(ValueError, match="CRM_QB_QBO_DISCOVERY_URL, CRM_QB_QBO_APP_BASE"):
        resolve_endpoints("local", api_base_override="http://127.0.0.1:8001")


def test_unknown_environment_endpoints() -> None:
    with pytest.raises(ValueError, match=r"CRM_QB_QBO_ENVIRONMENT must be one of .*; got 'prod'"):
        resolve_endpoints("prod")
