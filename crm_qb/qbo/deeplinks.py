"""Links into the QuickBooks web app for customers and transactions (DESIGN §4 contract, FACTS §10)."""

from __future__ import annotations

from types import MappingProxyType
from urllib.parse import quote

from crm_qb.qbo.environments import DEFAULTS, check_environment

# QuickBooks web app page per transaction type; a received payment's page is "recvpayment".
_TRANSACTION_PAGES = MappingProxyType({
    "invoice": "invoice",
    "estimate": "estimate",
    "salesreceipt": "salesreceipt",
    "payment": "recvpayment",
    "creditmemo": "creditmemo",
    "refundreceipt": "refundreceipt",
})


def app_base_for(environment: str, override: str | None = None) -> str:
    """The web app base for an environment; ``override`` wins and is required for ``local``."""
    check_environment(environment)
    if override:
        return _normalise(override)
    if environment not in DEFAULTS:
        raise ValueError(f"QBO environment {environment!r} has no web app address: set QBO_APP_BASE")
    return DEFAULTS[environment].app_base


def customer_link(app_base: str, id: str) -> str:
    """The customer's page in the QuickBooks web app."""
    return f"{_normalise(app_base)}/app/customerdetail?nameId={quote(str(id), safe='')}"


def transaction_link(app_base: str, txn_type: str, id: str) -> str:
    """The transaction's page: Invoice, Estimate, SalesReceipt, Payment, CreditMemo or RefundReceipt."""
    page = _TRANSACTION_PAGES.get(txn_type.lower())
    if page is None:
        raise ValueError(f"no QuickBooks web page for transaction type {txn_type!r}; expected one of "
                         "Invoice, Estimate, SalesReceipt, Payment, CreditMemo, RefundReceipt")
    return f"{_normalise(app_base)}/app/{page}?txnId={quote(str(id), safe='')}"


def _normalise(app_base: str) -> str:
    """The base without a trailing slash or ``/app`` (both spellings appear in configurations)."""
    base = app_base.rstrip("/")
    return base.removesuffix("/app")
