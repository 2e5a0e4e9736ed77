"""Links into the QuickBooks web app for customers and transactions.

The forms are a contract CRMs rely on (docs/architecture.md §4); the evidence for them is docs/qbo/facts.md §10.
"""

from __future__ import annotations

from urllib.parse import quote

from crm_qb.qbo.environments import DEFAULTS, check_environment


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


def transaction_link(app_base: str, page: str, id: str) -> str:
    """The transaction's ``page`` (``invoice``, ``recvpayment``, ...: each type's page is in its registry entry)."""
    return f"{_normalise(app_base)}/app/{quote(page, safe='')}?txnId={quote(str(id), safe='')}"


def _normalise(app_base: str) -> str:
    """The base without a trailing slash or ``/app`` (both spellings appear in configurations)."""
    base = app_base.rstrip("/")
    return base.removesuffix("/app")
