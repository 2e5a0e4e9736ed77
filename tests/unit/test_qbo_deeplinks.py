"""Deep links into the QuickBooks web app and the endpoints of each environment."""

from __future__ import annotations

import pytest

from crm_qb.qbo.deeplinks import app_base_for, customer_link, transaction_link
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


def test_customer_link() -> None:
    assert customer_link(PROD, "58") == "https://app.qbo.intuit.com/app/customerdetail?nameId=58"


@pytest.mark.parametrize(
    ("txn_type", "page"),
    [("Invoice", "invoice"), ("Estimate", "estimate"), ("SalesReceipt", "salesreceipt"),
     ("Payment", "recvpayment"), ("CreditMemo", "creditmemo"), ("RefundReceipt", "refundreceipt"),
     ("salesreceipt", "salesreceipt")],
)
def test_transaction_link(txn_type: str, page: str) -> None:
    assert registry.get(txn_type).link(SANDBOX, "130") == f"{SANDBOX}/app/{page}?txnId=130"
    assert transaction_link(SANDBOX, page, "130") == f"{SANDBOX}/app/{page}?txnId=130"


def test_ids_are_url_encoded_and_kept_as_strings() -> None:
    assert customer_link(PROD + "/", "000000011") == f"{PROD}/app/customerdetail?nameId=000000011"
    assert registry.get("Invoice").link(PROD, "1&x=2 3") == f"{PROD}/app/invoice?txnId=1%26x%3D2%203"


def test_unknown_transaction_type_is_refused() -> None:
    with pytest.raises(ValueError, match="Bill"):
        registry.get("Bill").link(PROD, "1")


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
