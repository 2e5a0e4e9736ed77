"""Reading a company's details from CompanyInfo and Preferences objects (pure functions, no I/O)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from crm_qb.qbo.company import CompanyDetails, Reference, parse_company, parse_reference

US_PREFS = {"CurrencyPrefs": {"HomeCurrency": {"value": "USD"}, "MultiCurrencyEnabled": False}}


@pytest.mark.parametrize(("info", "prefs", "expected"), [
    ({"CompanyName": "Larry's Bakery", "DefaultTimeZone": "America/Los_Angeles"}, US_PREFS,
     CompanyDetails("Larry's Bakery", "USD", False, "America/Los_Angeles")),
    ({"LegalName": "Bakery Ltd"}, {"CurrencyPrefs": {"HomeCurrency": {"value": "cad"}, "MultiCurrencyEnabled": True}},
     CompanyDetails("Bakery Ltd", "CAD", True, None)),
    ({"CompanyName": "No zone", "DefaultTimeZone": "Pacific Standard Time"}, {},
     CompanyDetails("No zone", None, False, None)),
    ({}, {"CurrencyPrefs": {}}, CompanyDetails(None, None, False, None)),
], ids=["us", "legal-name-and-lowercase-currency", "informal-zone-ignored", "empty"])
def test_parse_company(info: dict[str, Any], prefs: dict[str, Any], expected: CompanyDetails) -> None:
    assert parse_company(info, prefs) == expected


def test_parse_reference_keeps_string_ids_exact_amounts_and_inactive_entries() -> None:
    term = parse_reference("term", {"Id": "007", "Name": "Net 30", "Active": False, "DueDays": 30,
                                    "DiscountPercent": Decimal("2.5"), "SyncToken": "0"})
    assert term == Reference("term", "007", "Net 30", False, {"DueDays": 30, "DiscountPercent": "2.5"})
    assert parse_reference("payment_method", {"Id": "1", "Name": "Cash"}).active is True
