"""A company's own records: Preferences and CompanyInfo as a new realm gets them, and the one preference a
client may change (multicurrency, off to on only; FACTS 9.6)."""

from __future__ import annotations

from . import faults
from .store import RealmData, RealmSettings


def preferences(settings: RealmSettings) -> dict:
    """A new company's Preferences (currency set-up from its settings; the rest QBO's common defaults)."""
    return {"_entity": "Preferences",
            "CurrencyPrefs": {"HomeCurrency": {"value": settings.home_currency},
                              "MultiCurrencyEnabled": settings.multicurrency},
            "SalesFormsPrefs": {"CustomTxnNumbers": False, "AllowDeposit": True, "AllowDiscount": True,
                                "DefaultTerms": {"value": "3"}, "ETransactionEnabledStatus": "NotApplicable"},
            "AccountingInfoPrefs": {"TrackDepartments": False, "ClassTrackingPerTxn": False,
                                    "CustomerTerminology": "Customers"},
            "TaxPrefs": {"UsingSalesTax": True},
            "OtherPrefs": {"NameValue": [{"Name": "SalesFormsPrefs.DefaultCustomerMessage", "Value": ""}]}}


def company_info(settings: RealmSettings) -> dict:
    """A new company's CompanyInfo: its name, an address, its time zone and the QBO edition."""
    return {"_entity": "CompanyInfo", "CompanyName": settings.company_name, "LegalName": settings.company_name,
            "Country": "US", "CompanyAddr": {"Line1": "2500 Garcia Ave", "City": "Mountain View",
                                             "CountrySubDivisionCode": "CA", "PostalCode": "94043"},
            "SupportedLanguages": "en", "DefaultTimeZone": settings.zone_name,
            "NameValue": [{"Name": "OfferingSku", "Value": "QuickBooks Online Plus"}]}


def shape_preferences(fields: dict, realm: RealmData, existing: dict | None) -> dict:
    """Only MultiCurrencyEnabled may change, and only from off to on (it cannot be disabled)."""
    obj = dict(existing or {}, **fields)
    old = (existing or {}).get("CurrencyPrefs", {})
    new = dict(obj.get("CurrencyPrefs") or old)
    if new.get("HomeCurrency", old.get("HomeCurrency")) != old.get("HomeCurrency"):
        raise faults.business_rule("Once set, the company's home currency cannot be changed.")
    if old.get("MultiCurrencyEnabled") and not new.get("MultiCurrencyEnabled"):
        raise faults.business_rule("Multicurrency cannot be disabled once it has been enabled.")
    obj["CurrencyPrefs"] = {"HomeCurrency": old.get("HomeCurrency"),
                            "MultiCurrencyEnabled": bool(new.get("MultiCurrencyEnabled"))}
    realm.settings.multicurrency = obj["CurrencyPrefs"]["MultiCurrencyEnabled"]
    obj["_entity"] = "Preferences"
    return obj
