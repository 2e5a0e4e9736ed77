"""QBO Customer JSON <-> canonical <-> CRM contact, sparse updates, QBO-owned fields, field settings."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from crm_qb.sync.rules.canonical import FIELDS, Address
from crm_qb.sync.rules.mapping import (
    QboOwned,
    canonical_from_crm,
    canonical_from_qbo,
    crm_create_body,
    crm_patch,
    derive_display_name,
    field_settings,
    qbo_create_body,
    qbo_owned_fields,
    qbo_sparse_update,
)
from tests.support import qbo_fixture


def _customer() -> dict[str, Any]:
    return qbo_fixture("customer_read.json")["Customer"]


BILL = {
    "given_name": "Bill",
    "family_name": "Lucchini",
    "company": "Bill's Windsurf Shop",
    "display_name": "Bill's Windsurf Shop",
    "email": "surf@intuit.com",
    "phone": "(415) 444-6538",
    "mobile": None,
    "billing_address": Address(line1="12 Ocean Dr.", city="Half Moon Bay", region="CA", postal_code="94213"),
    "shipping_address": None,
    "notes": None,
    "website": None,
}


def test_canonical_from_qbo_reads_the_sample_customer() -> None:
    assert canonical_from_qbo(_customer()) == BILL


def test_canonical_from_qbo_rejects_the_response_wrapper() -> None:
    with pytest.raises(ValueError, match="wrapper"):
        canonical_from_qbo(qbo_fixture("customer_read.json"))


def test_qbo_round_trip_through_create_body() -> None:
    assert canonical_from_qbo(qbo_create_body(BILL)) == BILL


def test_crm_round_trip_through_create_body() -> None:
    assert canonical_from_crm(crm_create_body(BILL)) == BILL


def test_qbo_to_crm_to_qbo_keeps_every_field() -> None:
    crm_contact = crm_create_body(canonical_from_qbo(_customer()))
    assert crm_contact["first_name"] == "Bill"
    assert crm_contact["billing_address"]["line2"] is None
    assert canonical_from_qbo(qbo_create_body(canonical_from_crm(crm_contact))) == BILL


@pytest.mark.parametrize(
    ("qbo_fragment", "field", "expected"),
    [
        ({"GivenName": "  Zoë  "}, "given_name", "Zoë"),
        ({"GivenName": ""}, "given_name", None),
        ({}, "given_name", None),
        ({"FamilyName": "O'Connor-Ñúñez"}, "family_name", "O'Connor-Ñúñez"),
        ({"CompanyName": "C" * 150}, "company", "C" * 100),
        ({"PrimaryEmailAddr": {}}, "email", None),
        ({"PrimaryEmailAddr": {"Address": ""}}, "email", None),
        ({"Mobile": {"FreeFormNumber": "07700 900123"}}, "mobile", "07700 900123"),
        ({"WebAddr": {"URI": "https://bill.example"}}, "website", "https://bill.example"),
        ({"Notes": "a\r\nb"}, "notes", "a\nb"),
        (
            {
                "ShipAddr": {
                    "Line1": "Unit 4",
                    "Line2": "Dock Rd",
                    "Line3": "Pier 9",
                    "Country": "USA",
                    "Id": "7",
                }
            },
            "shipping_address",
            Address(line1="Unit 4", line2="Dock Rd, Pier 9", country="USA"),
        ),
        ({"ShipAddr": {"Id": "8", "Lat": "INVALID", "Long": "INVALID"}}, "shipping_address", None),
    ],
)
def test_canonical_from_qbo_edge_values(qbo_fragment: dict[str, Any], field: str, expected: object) -> None:
    assert canonical_from_qbo({"Id": "9", **qbo_fragment})[field] == expected


@pytest.mark.parametrize(
    ("contact", "field", "expected"),
    [
        ({"first_name": " Ann ", "last_name": "Lee"}, "given_name", "Ann"),
        ({"first_name": "Ann", "last_name": "Lee"}, "display_name", "Ann Lee"),
        ({"first_name": "Ann", "company": "Acme: West"}, "display_name", "Acme West"),
        ({"display_name": "", "company": "Acme"}, "display_name", "Acme"),
        ({"display_name": "Ann at Acme", "company": "Acme"}, "display_name", "Ann at Acme"),
        ({}, "display_name", None),
        ({"email": "ANN@Example.COM"}, "email", "ann@example.com"),
        ({"billing_address": {"line1": "", "city": None}}, "billing_address", None),
        ({"billing_address": {"city": "Zürich", "country": "CH"}}, "billing_address",
         Address(city="Zürich", country="CH")),
        ({"notes": "n" * 2500}, "notes", "n" * 2000),
        ({"tags": ["vip"], "id": "c1", "version": 3}, "given_name", None),
    ],
)  # fmt: skip
def test_canonical_from_crm(contact: dict[str, Any], field: str, expected: object) -> None:
    assert canonical_from_crm(contact)[field] == expected


@pytest.mark.parametrize(
    ("canonical", "expected"),
    [
        ({"company": "Acme", "given_name": "Ann", "family_name": "Lee"}, "Acme"),
        ({"given_name": "Ann", "family_name": "Lee"}, "Ann Lee"),
        ({"family_name": "Lee"}, "Lee"),
        ({"given_name": "Ann"}, "Ann"),
        ({"company": "   "}, None),
        ({}, None),
    ],
)
def test_derive_display_name(canonical: dict[str, str], expected: str | None) -> None:
    assert derive_display_name(canonical) == expected


@pytest.mark.parametrize(
    ("changes", "expected_fields"),
    [
        ({"given_name": "William"}, {"GivenName": "William"}),
        ({"given_name": None}, {"GivenName": ""}),
        ({"email": "New@Example.com"}, {"PrimaryEmailAddr": {"Address": "new@example.com"}}),
        ({"email": None}, {"PrimaryEmailAddr": {"Address": ""}}),
        ({"phone": None, "mobile": "555"},
         {"PrimaryPhone": {"FreeFormNumber": ""}, "Mobile": {"FreeFormNumber": "555"}}),
        ({"website": "https://x.example"}, {"WebAddr": {"URI": "https://x.example"}}),
        ({"display_name": "Bill O'Neil"}, {"DisplayName": "Bill O'Neil"}),
        ({"notes": "x" * 2100}, {"Notes": "x" * 2000}),
        (
            {"billing_address": Address(line1="1 Main St", city="Springfield")},
            {"BillAddr": {"Line1": "1 Main St", "Line2": "", "City": "Springfield",
                          "CountrySubDivisionCode": "", "PostalCode": "", "Country": "",
                          "Line3": "", "Line4": "", "Line5": ""}},
        ),
        (
            {"shipping_address": None},
            {"ShipAddr": {"Line1": "", "Line2": "", "City": "", "CountrySubDivisionCode": "",
                          "PostalCode": "", "Country": "", "Line3": "", "Line4": "", "Line5": ""}},
        ),
    ],
)  # fmt: skip
def test_qbo_sparse_update(changes: dict[str, object], expected_fields: dict[str, Any]) -> None:
    body = qbo_sparse_update(changes, "2", "0")
    assert body == {"Id": "2", "SyncToken": "0", "sparse": True, **expected_fields}


@pytest.mark.parametrize(
    ("changes", "customer_id", "sync_token", "error"),
    [
        ({"display_name": None}, "2", "0", ValueError),
        ({"display_name": "  "}, "2", "0", ValueError),
        ({"nickname": "x"}, "2", "0", ValueError),
        ({"given_name": "x"}, 2, "0", TypeError),
        ({"given_name": "x"}, "2", None, TypeError),
    ],
)
def test_qbo_sparse_update_rejects(
    changes: dict[str, object], customer_id: Any, sync_token: Any, error: type
) -> None:
    with pytest.raises(error):
        qbo_sparse_update(changes, customer_id, sync_token)


@pytest.mark.parametrize(
    ("canonical", "expected"),
    [
        ({"given_name": "Ann", "family_name": "Lee"},
         {"GivenName": "Ann", "FamilyName": "Lee", "DisplayName": "Ann Lee"}),
        ({"company": "Acme", "email": "A@B.CO"},
         {"CompanyName": "Acme", "DisplayName": "Acme", "PrimaryEmailAddr": {"Address": "a@b.co"}}),
        ({"display_name": "Zed", "billing_address": {"city": "Oslo"}},
         {"DisplayName": "Zed", "BillAddr": {"City": "Oslo"}}),
    ],
)  # fmt: skip
def test_qbo_create_body(canonical: dict[str, object], expected: dict[str, Any]) -> None:
    assert qbo_create_body(canonical) == expected


def test_qbo_create_body_needs_a_name() -> None:
    with pytest.raises(ValueError, match="display name"):
        qbo_create_body({"email": "a@b.co"})


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"given_name": "Ann"}, {"first_name": "Ann"}),
        ({"family_name": None}, {"last_name": None}),
        ({"email": "ANN@X.IO", "notes": ""}, {"email": "ann@x.io", "notes": None}),
        (
            {"billing_address": {"line1": "1 Main"}},
            {"billing_address": {"line1": "1 Main", "line2": None, "city": None, "region": None,
                                 "postal_code": None, "country": None}},
        ),
        ({"shipping_address": None}, {"shipping_address": None}),
        ({}, {}),
    ],
)  # fmt: skip
def test_crm_patch(changes: dict[str, object], expected: dict[str, Any]) -> None:
    assert crm_patch(changes) == expected


def test_crm_create_body_derives_display_name_and_omits_empty_fields() -> None:
    body = crm_create_body({"given_name": "Ann", "family_name": "Lee", "phone": " "})
    assert body == {"first_name": "Ann", "last_name": "Lee", "display_name": "Ann Lee"}


def test_qbo_owned_fields_of_the_sample_customer() -> None:
    owned = qbo_owned_fields(_customer(), {}, {}, home_currency="USD")
    assert owned == QboOwned(Decimal("85.0"), "USD", None, None, "Print", True, None, None)


@pytest.mark.parametrize(
    ("extra", "attribute", "expected"),
    [
        ({"SalesTermRef": {"value": "3"}}, "payment_terms", "Net 30"),
        ({"SalesTermRef": {"value": "3", "name": "Net 30 days"}}, "payment_terms", "Net 30 days"),
        ({"SalesTermRef": {"value": "99"}}, "payment_terms", None),
        ({"PaymentMethodRef": {"value": "2"}}, "preferred_payment_method", "Check"),
        ({"SalesTermRef": {"value": "3"}}, "payment_terms_id", "3"),
        ({"PaymentMethodRef": {"value": "2"}}, "payment_method_id", "2"),
        ({"PreferredDeliveryMethod": "EMAIL"}, "delivery_preference", "Email"),
        ({"PreferredDeliveryMethod": "None"}, "delivery_preference", "None"),
        ({"CurrencyRef": {"value": "EUR", "name": "Euro"}}, "currency", "EUR"),
        ({"Active": False}, "active", False),
        ({"Balance": "12.30"}, "balance", Decimal("12.30")),
        ({"Job": True, "ParentRef": {"value": "9", "name": "Freeman"}}, "parent_id", "9"),
        ({"Job": True, "ParentRef": {"value": "9", "name": "Freeman"}}, "parent_name", "Freeman"),
        (
            {"ParentRef": {"value": "9"}, "FullyQualifiedName": "Freeman:55 Twin Lane"},
            "parent_name",
            "Freeman",
        ),
    ],
)
def test_qbo_owned_fields(extra: dict[str, Any], attribute: str, expected: object) -> None:
    owned = qbo_owned_fields({**_customer(), **extra}, {"3": "Net 30"}, {"2": "Check"}, home_currency="USD")
    assert getattr(owned, attribute) == expected


def test_qbo_owned_fields_rejects_a_float_balance() -> None:
    with pytest.raises(TypeError, match="parse_float=Decimal"):
        qbo_owned_fields({"Balance": 85.0}, {}, {})


def test_field_settings_default_to_both() -> None:
    assert field_settings(None) == dict.fromkeys(FIELDS, "both")
    assert field_settings({"notes": "off"})["notes"] == "off"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"nickname": "both"}, "'nickname'"),
        ({"email": "sideways"}, "'email' has direction 'sideways'"),
    ],
)
def test_field_settings_name_the_bad_entry(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        field_settings(settings)


def test_the_canonical_memo_folds_a_customer_object_once_and_hands_out_copies() -> None:
    from crm_qb.sync.rules import mapping

    customer = {"Id": "7", "DisplayName": "  Ann  Smith ", "PrimaryEmailAddr": {"Address": "ANN@x.com"}}
    plain = mapping.canonical_from_qbo(customer)
    with mapping.canonical_memo():
        first = mapping.canonical_from_qbo(customer)
        first["display_name"] = "changed by a caller"
        again = mapping.canonical_from_qbo(customer)
        other = mapping.canonical_from_qbo(dict(customer, DisplayName="Bob"))
    assert again == plain and first is not again, "a copy of the first answer, whatever the caller did to its own"
    assert other["display_name"] == "Bob"
    assert mapping.canonical_from_qbo(customer) == plain and getattr(mapping._memo, "held", None) is None


def test_a_create_body_from_a_folded_record_is_the_same_without_folding_it_again() -> None:
    from datetime import date

    from crm_qb.sandbox.qbo.seed import generate_realm
    from crm_qb.sync.rules.mapping import canonical_from_qbo, crm_create_body

    customers = [obj for entity, obj in generate_realm(300, 0, True, 3, today=date(2026, 6, 1)) if entity == "Customer"]
    for customer in customers:
        record = canonical_from_qbo(customer)
        assert crm_create_body(record, folded=True) == crm_create_body(record) == crm_create_body(dict(record))
    assert len(customers) == 300
