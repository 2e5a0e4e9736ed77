"""Clients written for the real QBO, pointed at the sandbox with only their base URLs changed (DESIGN section 7).

- intuit-oauth (Intuit's Python OAuth client): ``AuthClient`` takes the discovery document's URL as its
  ``environment`` (its own code reads any value other than sandbox/production as that URL), so nothing is patched.
  It reads ``jwks_uri`` and ``userinfo_endpoint`` from the document and verifies the ID token's RS256 signature.
- python-quickbooks: its two API base URLs are attributes of the client object (``api_url_v3`` and
  ``sandbox_api_url_v3``); the test sets ``api_url_v3`` on its instance, nothing else. Its HTTP session is
  requests-oauthlib's, which refuses plain http unless ``OAUTHLIB_INSECURE_TRANSPORT`` is set: oauthlib's own
  switch for local testing, set here because the sandbox serves http on 127.0.0.1.
Both talk to a real sandbox server on 127.0.0.1 over HTTP.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from intuitlib.client import AuthClient
from intuitlib.enums import Scopes
from intuitlib.exceptions import AuthClientError
from quickbooks import QuickBooks
from quickbooks.batch import batch_create
from quickbooks.cdc import change_data_capture
from quickbooks.objects.base import EmailAddress, Ref
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
from quickbooks.objects.employee import Employee
from quickbooks.objects.estimate import Estimate
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.item import Item
from quickbooks.objects.timeactivity import TimeActivity

from .conftest import REDIRECT

# intuit-oauth checks ID token expiry with datetime.utcnow(), deprecated from Python 3.12; the warning is the
# library's, not the sandbox's, and would otherwise fail these tests under the suite's warnings-as-errors.
pytestmark = pytest.mark.filterwarnings("ignore:datetime.datetime.utcnow:DeprecationWarning")

SCOPES = [Scopes.ACCOUNTING, Scopes.OPENID, Scopes.EMAIL, Scopes.PROFILE, Scopes.PHONE, Scopes.ADDRESS]


def _connect(live) -> AuthClient:
    """intuit-oauth through discovery, consent (the sandbox consents at once) and the code exchange."""
    info = requests.get(f"{live.base_url}/_sandbox/info", timeout=10).json()
    auth = AuthClient(info["client_id"], info["client_secret"], REDIRECT, info["discovery_url"])
    consent = requests.get(auth.get_authorization_url(SCOPES), allow_redirects=False, timeout=10)
    query = parse_qs(urlsplit(consent.headers["Location"]).query)
    assert query["state"] == [auth.state_token]
    auth.get_bearer_token(query["code"][0], realm_id=query["realmId"][0])
    return auth


@pytest.fixture(autouse=True)
def _local_http(monkeypatch) -> None:
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


def _quickbooks(live, auth: AuthClient) -> QuickBooks:
    client = QuickBooks(auth_client=auth, refresh_token=auth.refresh_token, company_id=auth.realm_id,
                        minorversion=75, use_decimal=True)
    client.api_url_v3 = f"{live.base_url}/v3"  # the only change: where the API lives
    return client


def test_intuit_oauth_discovers_verifies_the_id_token_reads_userinfo_refreshes_and_revokes(live):
    auth = _connect(live)
    assert auth.jwks_uri == f"{live.base_url}/op/v1/jwks"
    assert auth.realm_id == live.demo_realm_id and auth.expires_in == 3600
    assert auth.id_token is not None  # kept only when its RS256 signature verified against the JWKS
    info = auth.get_user_info().json()
    assert info["email"] == f"bookkeeper.{live.demo_realm_id}@example.com" and info["givenName"] == "Sandbox"
    first_refresh = auth.refresh_token
    auth.refresh()
    assert auth.refresh_token != first_refresh and auth.access_token
    with pytest.raises(AuthClientError):
        auth.refresh(refresh_token=first_refresh)  # rotated away: invalid_grant
    assert auth.revoke() is True
    with pytest.raises(AuthClientError):
        auth.refresh()


def test_python_quickbooks_creates_reads_queries_and_updates_customers(live):
    qb = _quickbooks(live, _connect(live))
    customer = Customer()
    customer.DisplayName = "Library Customer"
    customer.GivenName, customer.FamilyName = "Libby", "Rarian"
    customer.PrimaryEmailAddr = EmailAddress()
    customer.PrimaryEmailAddr.Address = "libby@example.com"
    saved = customer.save(qb=qb)
    assert saved.Id and saved.SyncToken == "0"
    raw = qb.get_single_object("Customer", saved.Id)["Customer"]
    assert "Title" not in raw and "Suffix" not in raw  # sent as "", kept as absent
    read = Customer.get(saved.Id, qb=qb)
    assert read.PrimaryEmailAddr.Address == "libby@example.com"
    assert [found.Id for found in Customer.filter(DisplayName="Library Customer", qb=qb)] == [saved.Id]
    assert Customer.count(qb=qb) >= 5
    read.Notes = "updated by python-quickbooks"
    updated = read.save(qb=qb)  # a full update carrying every field the library models, blanks included
    assert updated.SyncToken == "1" and updated.Notes == "updated by python-quickbooks"
    assert updated.GivenName == "Libby"


def test_python_quickbooks_invoices_from_estimates_and_cdc(live):
    qb = _quickbooks(live, _connect(live))
    customer = Customer.filter(DisplayName="Bill's Windsurf Shop", qb=qb)[0]
    item = Item.filter(Name="Design", qb=qb)[0]
    estimate = Estimate()
    estimate.CustomerRef = customer.to_ref()
    estimate.Line = [_line(item, "150.00")]
    estimate = estimate.save(qb=qb)
    invoice = Invoice()
    invoice.CustomerRef = customer.to_ref()
    invoice.Line = [_line(item, "150.00")]
    link = estimate.to_linked_txn()
    invoice.LinkedTxn = [link]
    live.clock.advance(5)  # clear of the demo realm's seeding, a moment before
    since = (live.clock.now() - timedelta(seconds=1)).isoformat()
    invoice = invoice.save(qb=qb)  # TxnDate "", DueDate "", TotalAmt "" and friends, as the library sends them
    assert invoice.TotalAmt == Decimal("150.00") and invoice.TxnDate and invoice.DueDate
    assert Estimate.get(estimate.Id, qb=qb).TxnStatus == "Closed"
    assert [found.Id for found in Invoice.filter(CustomerRef=customer.Id, qb=qb)][-1] == invoice.Id
    assert Invoice.query(f"select * from Invoice where Id = '{invoice.Id}'", qb=qb)[0].Balance == Decimal("150.00")
    changes = change_data_capture([Invoice, Estimate], since, qb=qb)
    assert [found.Id for found in changes.Invoice] == [invoice.Id]
    assert [found.Id for found in changes.Estimate] == [estimate.Id]
    voided = Invoice.get(invoice.Id, qb=qb)
    voided.void(qb=qb)
    assert Invoice.get(invoice.Id, qb=qb).TotalAmt == 0


def test_python_quickbooks_time_activity_and_batch(live):
    qb = _quickbooks(live, _connect(live))
    employee = Employee.filter(DisplayName="Emily Platt", qb=qb)[0]
    customer = Customer.filter(DisplayName="Kookies by Kathy", qb=qb)[0]
    activity = TimeActivity()
    activity.NameOf = "Employee"
    activity.EmployeeRef = employee.to_ref()
    activity.CustomerRef = customer.to_ref()
    activity.ItemRef = _ref(Item.filter(Name="Consulting", qb=qb)[0].Id)
    activity.BillableStatus, activity.HourlyRate, activity.Hours, activity.Minutes = "Billable", 150, 1, 15
    saved = activity.save(qb=qb)
    assert saved.BillableStatus == "Billable" and saved.EmployeeRef.name == "Emily Platt"
    assert TimeActivity.get(saved.Id, qb=qb).Minutes == 15
    news = []
    for number in range(3):
        fresh = Customer()
        fresh.DisplayName = f"Batch Library {number}"
        news.append(fresh)
    result = batch_create(news, qb=qb)
    assert len(result.successes) == 3 and not result.faults
    counts = requests.get(f"{live.base_url}/_sandbox/realms/{live.demo_realm_id}/requests", timeout=10).json()
    assert counts["by_endpoint"]["POST /batch"] == 1 and counts["metered"] >= counts["total"] + 2


def _line(item: Item, amount: str) -> SalesItemLine:
    line = SalesItemLine()
    line.Amount = Decimal(amount)
    line.SalesItemLineDetail = SalesItemLineDetail()
    line.SalesItemLineDetail.ItemRef = item.to_ref()
    line.SalesItemLineDetail.Qty = 2
    line.SalesItemLineDetail.UnitPrice = Decimal(amount) / 2
    return line


def _ref(value: str) -> Ref:
    ref = Ref()
    ref.value = value
    return ref
