"""The ExchangeRate entity: home units per one source-currency unit, per date (FACTS.md section 9.6)."""

from __future__ import annotations

from datetime import date

from . import faults
from .clock import company_zone, meta_time
from .currencies import NAMES, default_rate, is_known
from .engine import Engine
from .money import to_decimal
from .store import RealmData


def get_rate(engine: Engine, realm_id: str, source: str | None, as_of: str | None) -> dict:
    """The rate for ``source`` on ``as_of`` (default today): a stored one, else the built-in table's."""
    realm = engine.realm(realm_id)
    source = _source(realm, source)
    day = _day(as_of) if as_of else engine.today(realm).isoformat()
    with realm.lock:
        stored = realm.exchange_rates.get((source, day))
    return stored or _default(engine, realm, source, day)


def set_rate(engine: Engine, realm_id: str, body: dict) -> dict:
    """Store a rate sent by a client (POST /exchangerate); SyncToken-checked against the current one."""
    realm = engine.realm(realm_id)
    source = _source(realm, body.get("SourceCurrencyCode"))
    rate = to_decimal(body.get("Rate"), to_decimal(0))
    if rate <= 0:
        raise faults.invalid_value("Rate", "Rate must be a positive number")
    day = _day(body.get("AsOfDate") or engine.today(realm).isoformat())
    with realm.lock:
        current = realm.exchange_rates.get((source, day)) or _default(engine, realm, source, day)
        if str(body.get("SyncToken", current["SyncToken"])) != current["SyncToken"]:
            raise faults.stale_object()
        updated = dict(current, Rate=rate, SyncToken=str(int(current["SyncToken"]) + 1),
                       MetaData={"LastUpdatedTime": meta_time(engine.clock.now(),
                                                              company_zone(realm.settings.zone_name))})
        realm.exchange_rates[(source, day)] = updated
    return updated


def rate_rows(engine: Engine, realm_id: str) -> list[dict]:
    """Rows for ``select * from ExchangeRate``: stored rates plus today's default for every currency."""
    realm = engine.realm(realm_id)
    today = engine.today(realm).isoformat()
    with realm.lock:
        stored = dict(realm.exchange_rates)
    for code in NAMES:
        if code != realm.settings.home_currency and (code, today) not in stored:
            stored[(code, today)] = _default(engine, realm, code, today)
    return [stored[key] for key in sorted(stored)]


def _source(realm: RealmData, source: str | None) -> str:
    if not source:
        raise faults.required_param("sourcecurrencycode")
    source = source.upper()
    if not is_known(source):
        raise faults.QboFault("2220", "Invalid currency type", f"Unknown currency code : {source}",
                              element="SourceCurrencyCode")
    if source == realm.settings.home_currency:
        raise faults.business_rule("You cannot set an exchange rate for the home currency.")
    return source


def _day(text: str) -> str:
    try:
        return date.fromisoformat(str(text)[:10]).isoformat()
    except ValueError as exc:
        raise faults.QboFault("2060", "Invalid Date Format", f"Invalid date : {text}", element="AsOfDate") from exc


def _default(engine: Engine, realm: RealmData, source: str, day: str) -> dict:
    home = realm.settings.home_currency
    return {"SyncToken": "0", "domain": "QBO", "AsOfDate": day, "SourceCurrencyCode": source,
            "Rate": default_rate(source, home), "sparse": False, "TargetCurrencyCode": home,
            "MetaData": {"LastUpdatedTime": meta_time(engine.clock.now(), company_zone(realm.settings.zone_name))}}
