"""Creating a seeded realm from the seed generator, loaded in bulk (no validation, no events)."""

from __future__ import annotations

from .sandbox import Sandbox
from .store import RealmSettings


def seed_realm(sandbox: Sandbox, customers: int, transactions: int, multicurrency: bool, seed: int,
               home_currency: str = "USD") -> str:
    """Create a realm filled by ``seed.generate_realm`` and return its id."""
    from .seed import generate_realm  # imported here: the generator is only needed for seeded realms

    realm_id = sandbox.next_realm_id()
    settings = RealmSettings(realm_id, f"Seeded Company {seed}", home_currency, multicurrency,
                             sandbox.config.zone_name)
    sandbox.create_realm(settings)
    today = sandbox.engine.today(sandbox.store.realm(realm_id))
    realm = sandbox.store.realm(realm_id)
    with realm.lock:
        for entity, obj in generate_realm(customers, transactions, multicurrency, seed, home_currency, today):
            realm.load(entity, obj)
    if sandbox.persister:
        sandbox.persister.flush()
    return realm_id
