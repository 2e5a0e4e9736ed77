"""In-memory realms: objects by entity and Id, tombstones, indexes and the change log CDC reads.

Stored objects are never mutated in place: a change stores a new dict. Readers may therefore hand out the
stored dicts (for rendering or querying) without copying, as long as they do not modify them.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from .entities import CUSTOMER_LINKED, PERSON_ENTITIES

ChangeListener = Callable[[str, str, str, dict], None]


@dataclass
class RealmSettings:
    """What a realm is: its id, company name, currency set-up and time zone."""

    realm_id: str
    company_name: str
    home_currency: str = "USD"
    multicurrency: bool = False
    zone_name: str = "America/Los_Angeles"


def name_key(display_name: str) -> str:
    """The form in which DisplayNames are compared for uniqueness (case- and outer-space-insensitive)."""
    return " ".join(display_name.split()).casefold()


def _epoch(meta: dict | None) -> float:
    text = (meta or {}).get("LastUpdatedTime")
    if not text:
        return 0.0
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class RealmData:
    """One company's data; callers hold ``lock`` around any read-modify-write."""

    def __init__(self, settings: RealmSettings, listener: ChangeListener | None = None) -> None:
        self.settings = settings
        self.lock = threading.RLock()
        self.objects: dict[str, dict[str, dict]] = defaultdict(dict)
        self.tombstones: dict[str, dict[str, dict]] = defaultdict(dict)
        self.names: dict[str, tuple[str, str]] = {}
        self.applied: dict[str, dict[str, Decimal]] = defaultdict(dict)  # invoice id -> {payment id: amount}
        self.credits_used: dict[str, dict[str, Decimal]] = defaultdict(dict)  # credit memo id -> {payment: amount}
        self.estimate_invoice: dict[str, str] = {}  # estimate id -> the invoice that links it
        self.time_billed_by: dict[str, str] = {}  # time activity id -> the invoice that bills it
        self.txns_by_customer: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self.children: dict[str, set[str]] = defaultdict(set)
        self.opening_balance: dict[str, Decimal] = {}
        self.request_ids: dict[str, tuple[int, str]] = {}
        self.request_counts: Counter[str] = Counter()
        self.exchange_rates: dict[tuple[str, str], dict] = {}
        self._next_id: dict[str, int] = defaultdict(lambda: 1)
        self._next_doc: dict[str, int] = defaultdict(lambda: 1001)
        self._next_address = 1
        self._changes: list[tuple[float, int, str, str]] = []
        self._changes_sorted = True
        self._seq = 0
        self._listener = listener
        # Entities that ever had an Id other than a canonical number; each entity's rows in Id order, kept until
        # the entity's next change (see ``rows_in_id_order``).
        self._irregular: set[str] = set()
        self._in_id_order: dict[str, list[dict]] = {}

    @property
    def realm_id(self) -> str:
        """This realm's id."""
        return self.settings.realm_id

    def new_id(self, entity: str) -> str:
        """Allocate the next Id for ``entity`` (each entity type has its own sequence, as in QBO)."""
        value = self._next_id[entity]
        self._next_id[entity] = value + 1
        return str(value)

    def new_doc_number(self, entity: str) -> str:
        """Allocate the next automatic DocNumber for ``entity``."""
        value = self._next_doc[entity]
        self._next_doc[entity] = value + 1
        return str(value)

    def new_address_id(self) -> str:
        """Allocate an address Id (QBO numbers addresses realm-wide)."""
        value = self._next_address
        self._next_address += 1
        return str(value)

    def get(self, entity: str, obj_id: str) -> dict | None:
        """The live object, or None (deleted objects are not live)."""
        return self.objects[entity].get(obj_id)

    def rows(self, entity: str) -> list[dict]:
        """All live objects of ``entity`` (shared, read-only dicts)."""
        return list(self.objects[entity].values())

    def rows_in_id_order(self, entity: str) -> list[dict] | None:
        """All live objects of ``entity`` in numeric Id order (what a query without ORDERBY pages through), sorted
        once until the entity next changes; None when an Id is not a canonical number (no leading zero), whose
        order only the query's own sort knows."""
        if entity in self._irregular:
            return None
        rows = self._in_id_order.get(entity)
        if rows is None:
            rows = sorted(self.objects[entity].values(), key=lambda obj: (len(obj["Id"]), obj["Id"]))
            self._in_id_order[entity] = rows
        return rows

    def canonical_ids(self, entity: str) -> bool:
        """Whether every Id ``entity`` ever stored was a canonical number (so a text Id finds its row by key)."""
        return entity not in self._irregular

    def rows_by_id(self, entity: str, ids: list[str]) -> list[dict]:
        """The live objects of ``entity`` among ``ids`` (each once, in no particular order)."""
        objects = self.objects[entity]
        return [obj for obj_id in dict.fromkeys(ids) if (obj := objects.get(obj_id)) is not None]

    def name_owner(self, display_name: str) -> tuple[str, str] | None:
        """The (entity, Id) already using ``display_name`` among customers, vendors and employees."""
        return self.names.get(name_key(display_name))

    def put(self, entity: str, obj: dict, moment: float | None = None, *, log: bool = True) -> None:
        """Store ``obj`` (a new dict, never mutated afterwards), update indexes and log the change.

        ``moment`` is the precise change time (epoch seconds; MetaData keeps whole seconds only); ``log=False``
        stores a change QBO does not report (a customer's derived balance).
        """
        old = self.objects[entity].get(obj["Id"])
        self._unindex(entity, old)
        self._changed(entity, obj["Id"])
        self.objects[entity][obj["Id"]] = obj
        self._index(entity, obj)
        if log:
            self._log(entity, obj["Id"], _epoch(obj.get("MetaData")) if moment is None else moment)
        self._notify(entity, obj["Id"], obj)

    def load(self, entity: str, obj: dict) -> None:
        """Bulk-load an object keeping its Id; the Id sequence moves past it. No events, no validation."""
        obj_id = obj["Id"]
        if obj_id.isdigit():
            self._next_id[entity] = max(self._next_id[entity], int(obj_id) + 1)
        if obj.get("status") == "Deleted":
            self.tombstones[entity][obj_id] = obj
            self._log(entity, obj_id, _epoch(obj.get("MetaData")))
            self._notify(entity, obj_id, obj)
            return
        self.put(entity, obj)
        self._advance_counters(entity, obj)

    def remove(self, entity: str, obj_id: str, tombstone: dict, moment: float | None = None) -> None:
        """Delete a live object, keeping ``tombstone`` for CDC."""
        old = self.objects[entity].pop(obj_id, None)
        self._unindex(entity, old)
        self._changed(entity, obj_id)
        self.tombstones[entity][obj_id] = tombstone
        self._log(entity, obj_id, _epoch(tombstone.get("MetaData")) if moment is None else moment)
        self._notify(entity, obj_id, tombstone)

    def _changed(self, entity: str, obj_id: object) -> None:
        self._in_id_order.pop(entity, None)
        if not _canonical_number(obj_id):
            self._irregular.add(entity)

    def changed_since(self, since: float) -> list[tuple[str, str]]:
        """(entity, Id) of everything changed at or after ``since`` (epoch seconds), oldest change first."""
        if not self._changes_sorted:
            self._changes.sort()
            self._changes_sorted = True
        start = bisect.bisect_left(self._changes, (since, -1, "", ""))
        latest: dict[tuple[str, str], float] = {}
        for moment, _seq, entity, obj_id in self._changes[start:]:
            latest[(entity, obj_id)] = moment
        return sorted(latest, key=latest.__getitem__)

    def txns_of(self, customer_id: str) -> Iterator[tuple[str, dict]]:
        """Yield (entity, transaction) for the live transactions whose CustomerRef is ``customer_id``."""
        for entity, obj_id in sorted(self.txns_by_customer.get(customer_id, ())):
            obj = self.objects[entity].get(obj_id)
            if obj is not None:
                yield entity, obj

    def _log(self, entity: str, obj_id: str, moment: float) -> None:
        self._seq += 1
        if self._changes and moment < self._changes[-1][0]:
            self._changes_sorted = False
        self._changes.append((moment, self._seq, entity, obj_id))

    def _notify(self, entity: str, obj_id: str, obj: dict) -> None:
        if self._listener is not None:
            self._listener(self.realm_id, entity, obj_id, obj)

    def _advance_counters(self, entity: str, obj: dict) -> None:
        charge = obj.get("TimeChargeId")
        if isinstance(charge, int) and not isinstance(charge, bool):
            self._next_id["TimeCharge"] = max(self._next_id["TimeCharge"], charge + 1)
        doc = obj.get("DocNumber")
        if isinstance(doc, str) and doc.isdigit():
            self._next_doc[entity] = max(self._next_doc[entity], int(doc) + 1)
        for key in ("BillAddr", "ShipAddr"):
            address_id = (obj.get(key) or {}).get("Id")
            if isinstance(address_id, str) and address_id.isdigit():
                self._next_address = max(self._next_address, int(address_id) + 1)

    def _index(self, entity: str, obj: dict) -> None:
        if entity in PERSON_ENTITIES and obj.get("DisplayName"):
            self.names[name_key(obj["DisplayName"])] = (entity, obj["Id"])
        if entity == "Customer" and obj.get("ParentRef"):
            self.children[obj["ParentRef"]["value"]].add(obj["Id"])
        if entity in CUSTOMER_LINKED and obj.get("CustomerRef"):
            self.txns_by_customer[obj["CustomerRef"]["value"]].add((entity, obj["Id"]))
        if entity == "Payment":
            for target, txn_id, amount in _payment_links(obj):
                used = self.applied if target == "Invoice" else self.credits_used
                used[txn_id][obj["Id"]] = used[txn_id].get(obj["Id"], 0) + amount
        if entity == "Invoice":
            for target, txn_id in _invoice_links(obj):
                (self.estimate_invoice if target == "Estimate" else self.time_billed_by)[txn_id] = obj["Id"]

    def _unindex(self, entity: str, obj: dict | None) -> None:
        if obj is None:
            return
        if entity in PERSON_ENTITIES and obj.get("DisplayName"):
            self.names.pop(name_key(obj["DisplayName"]), None)
        if entity == "Customer" and obj.get("ParentRef"):
            self.children[obj["ParentRef"]["value"]].discard(obj["Id"])
        if entity in CUSTOMER_LINKED and obj.get("CustomerRef"):
            self.txns_by_customer[obj["CustomerRef"]["value"]].discard((entity, obj["Id"]))
        if entity == "Payment":
            for target, txn_id, _amount in _payment_links(obj):
                (self.applied if target == "Invoice" else self.credits_used)[txn_id].pop(obj["Id"], None)
        if entity == "Invoice":
            for target, txn_id in _invoice_links(obj):
                index = self.estimate_invoice if target == "Estimate" else self.time_billed_by
                if index.get(txn_id) == obj["Id"]:
                    del index[txn_id]


def _canonical_number(obj_id: object) -> bool:
    return isinstance(obj_id, str) and obj_id.isascii() and obj_id.isdigit() and (obj_id == "0" or obj_id[0] != "0")


def _payment_links(payment: dict) -> list[tuple[str, str, Decimal]]:
    """(Invoice or CreditMemo, Id, amount) for each payment line linked to one."""
    result = []
    for line in payment.get("Line") or []:
        for link in line.get("LinkedTxn") or []:
            if link.get("TxnType") in ("Invoice", "CreditMemo"):
                result.append((link["TxnType"], str(link["TxnId"]), Decimal(str(line.get("Amount", 0)))))
    return result


def _invoice_links(invoice: dict) -> list[tuple[str, str]]:
    """(Estimate or TimeActivity, Id) for each header link of an invoice (what QBO acts on, links.py)."""
    return [(link["TxnType"], str(link["TxnId"])) for link in invoice.get("LinkedTxn") or []
            if link.get("TxnType") in ("Estimate", "TimeActivity")]


class Store:
    """All realms of one sandbox, created through ``create_realm``; thread-safe."""

    def __init__(self, listener: ChangeListener | None = None) -> None:
        self._realms: dict[str, RealmData] = {}
        self._lock = threading.Lock()
        self._listener = listener

    def create_realm(self, settings: RealmSettings) -> RealmData:
        """Create (or return the existing) realm with these settings."""
        with self._lock:
            realm = self._realms.get(settings.realm_id)
            if realm is None:
                realm = RealmData(settings, self._listener)
                self._realms[settings.realm_id] = realm
            return realm

    def realm(self, realm_id: str) -> RealmData | None:
        """The realm with this id, or None."""
        with self._lock:
            return self._realms.get(realm_id)

    def realm_ids(self) -> list[str]:
        """Ids of all realms, in creation order."""
        with self._lock:
            return list(self._realms)
