"""Links into the QuickBooks web app for customers and transactions, each opening the right company.

A page link names only a record id (``/app/invoice?txnId=130``), and ids repeat across companies: the web app
opens it in whichever company is active in the user's browser session, so a bookkeeper with several companies gets
another company's record or "not found". Every link therefore goes through the web app's sign-in route, which
makes the company active first and then opens the page, and keeps both through a sign-in when the user has no
session (docs/qbo/deep-links.md, "Which company a page opens")::

    {app_base}/app/login?pagereq={urlencode(page + "?" + param + "=" + id)}&deeplinkcompanyid={realm_id}

The pages and their id parameters are those of docs/architecture.md §4 (evidence: docs/qbo/deep-links.md). A link
for a connection without a company yet (no realm id) can only be the bare page link.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

from crm_qb.qbo.environments import DEFAULTS, check_environment

CUSTOMER_PAGE = "customerdetail"


def app_base_for(environment: str, override: str | None = None) -> str:
    """The web app base for an environment; ``override`` wins and is required for ``local``."""
    check_environment(environment)
    if override:
        return _normalise(override)
    if environment not in DEFAULTS:
        raise ValueError(f"QBO environment {environment!r} has no web app address: set QBO_APP_BASE")
    return DEFAULTS[environment].app_base


def page_link(app_base: str, realm_id: str | None, page: str, param: str, id: str) -> str:
    """The web app's ``page`` showing record ``id`` (``?param=id``) in company ``realm_id``."""
    if not page.isalpha() or not param.isalpha():
        raise ValueError(f"a web app page and its parameter are single words, got {page!r} and {param!r}")
    request = f"{page}?{param}={quote(str(id), safe='')}"
    base = _normalise(app_base)
    if not realm_id:
        return f"{base}/app/{request}"
    return f"{base}/app/login?{urlencode({'pagereq': request, 'deeplinkcompanyid': str(realm_id)})}"


def customer_link(app_base: str, realm_id: str | None, id: str) -> str:
    """The customer's page in company ``realm_id``."""
    return page_link(app_base, realm_id, CUSTOMER_PAGE, "nameId", id)


def transaction_link(app_base: str, realm_id: str | None, page: str, id: str) -> str:
    """A transaction's ``page`` (``invoice``, ``recvpayment``, ...: each type's page is in its registry entry)."""
    return page_link(app_base, realm_id, page, "txnId", id)


def links_for(app_base: str, realm_id: str | None, *, sandbox_company: bool) -> AppLinks:
    """The links of one company; a sandbox company's open in Intuit's sandbox web app, never the production one."""
    base = _normalise(app_base)
    if sandbox_company and base == DEFAULTS["production"].app_base:
        base = DEFAULTS["sandbox"].app_base
    return AppLinks(base, realm_id)


@dataclass(frozen=True)
class AppLinks:
    """Where one connection's records open: the web app base and the company (realm) they belong to."""

    app_base: str
    realm_id: str | None

    def customer(self, id: str) -> str:
        """The customer's page."""
        return customer_link(self.app_base, self.realm_id, id)

    def transaction(self, page: str, id: str) -> str:
        """A transaction's page."""
        return transaction_link(self.app_base, self.realm_id, page, id)

    def transaction_page(self, page: str, param: str, id: str) -> str:
        """A record's ``page`` opened by ``param`` (a time activity's page takes ``id``: docs/qbo/deep-links.md)."""
        return page_link(self.app_base, self.realm_id, page, param, id)


def _normalise(app_base: str) -> str:
    """The base without a trailing slash or ``/app`` (both spellings appear in configurations)."""
    base = app_base.rstrip("/")
    return base.removesuffix("/app")
