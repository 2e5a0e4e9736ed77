"""The sandbox's QBO semantics: create, read, update, delete, void, send and merge, with SyncTokens,
DisplayName uniqueness, payment application, customer balances, and a webhook event for every change.

Both the ``/v3`` API and the control API call this; only the caller decides whether SyncTokens are checked.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from . import company, faults, links, lists, timeactivity, txns
from .blanks import drop_blanks, is_blank
from .clock import SandboxClock, company_zone, local_date, meta_time
from .entities import PERSON_ENTITIES, TXN_ENTITIES, spec_for
from .money import cents
from .store import RealmData, RealmSettings, Store

ZERO = Decimal(0)
_KEPT_BY_SPARSE = frozenset({"DisplayName"})  # "Cannot be removed with sparse update" (FACTS 9.1)
Emitter = Callable[[str, str, str, str, datetime, "str | None"], None]


@dataclass(frozen=True)
class Event:
    """One change, as the webhook dispatcher is told about it."""

    realm_id: str
    entity: str
    entity_id: str
    operation: str
    last_updated: datetime
    deleted_id: str | None = None


class Engine:
    """Applies QBO business rules to a ``Store``; every public method is thread-safe per realm."""

    def __init__(self, store: Store, clock: SandboxClock, emit: Emitter | None = None,
                 flush: Callable[[], None] | None = None) -> None:
        self.store = store
        self.clock = clock
        self._emit = emit
        self._flush = flush

    # -- realms -----------------------------------------------------------------------------------------
    def realm(self, realm_id: str) -> RealmData:
        """The realm, or fault 610 when there is none with this id."""
        realm = self.store.realm(realm_id)
        if realm is None:
            raise faults.object_not_found("realmId")
        return realm

    def create_realm(self, settings: RealmSettings) -> RealmData:
        """Create a realm with its Preferences and CompanyInfo."""
        realm = self.store.create_realm(settings)
        with realm.lock:
            if realm.get("Preferences", "1") is None:
                now = self.clock.now()
                realm.put("Preferences", self._stamp(realm, company.preferences(settings), None, now))
                realm.put("CompanyInfo", self._stamp(realm, company.company_info(settings), None, now))
        self._commit([])
        return realm

    def today(self, realm: RealmData):
        """The company's current date."""
        return local_date(self.clock.now(), company_zone(realm.settings.zone_name))

    # -- reads ------------------------------------------------------------------------------------------
    def read(self, realm_id: str, entity: str, obj_id: str) -> dict:
        """The live object, or fault 610."""
        realm = self.realm(realm_id)
        with realm.lock:
            obj = realm.get(entity, obj_id)
        if obj is None:
            raise faults.object_not_found()
        return obj

    def rows(self, realm_id: str, entity: str) -> list[dict]:
        """Every live object of ``entity`` in the realm (shared read-only dicts), for queries."""
        realm = self.realm(realm_id)
        with realm.lock:
            return realm.rows(entity)

    def query_rows(self, realm_id: str, entity: str, ids: list[str] | None) -> tuple[list[dict], bool]:
        """The rows a query of ``entity`` has to look at, and whether they are in Id order (``execute``'s
        ``id_ordered``): only those of ``ids`` when the query names its Ids (looked up, not scanned), else all."""
        realm = self.realm(realm_id)
        with realm.lock:
            in_order = realm.rows_in_id_order(entity) if ids is None else None
            if in_order is not None:
                return in_order, True
            if ids is not None and realm.canonical_ids(entity):
                return realm.rows_by_id(entity, ids), False
            return realm.rows(entity), False

    # -- writes -----------------------------------------------------------------------------------------
    def create(self, realm_id: str, entity: str, body: dict) -> dict:
        """Create an object of ``entity`` from a client's JSON."""
        _writable_entity(entity)
        realm = self.realm(realm_id)
        events: list[Event] = []
        with realm.lock:
            now = self.clock.now()
            obj = self._stamp(realm, self._shape(realm, entity, drop_blanks(_writable(entity, body)), None), None, now)
            self._check_name(realm, entity, obj)
            realm.put(entity, obj, now.timestamp())
            if entity == "Customer" and obj["Balance"]:
                realm.opening_balance[obj["Id"]] = obj["Balance"]
            events.append(self._event(realm, entity, obj, "Create", now))
            self._after_txn_change(realm, entity, None, obj, now, events)
        self._commit(events)
        return obj

    def update(self, realm_id: str, entity: str, body: dict, *, check_token: bool = True) -> dict:
        """Full update (omitted writable fields are cleared) or sparse update (``"sparse": true``)."""
        _writable_entity(entity)
        realm = self.realm(realm_id)
        events: list[Event] = []
        with realm.lock:
            now = self.clock.now()
            existing = self._current(realm, entity, body, check_token)
            shaped = self._shape(realm, entity, _update_fields(entity, body, existing), existing)
            self._check_deactivation(realm, entity, existing, shaped)
            obj = self._stamp(realm, shaped, existing, now)
            self._check_name(realm, entity, obj)
            realm.put(entity, obj, now.timestamp())
            events.append(self._event(realm, entity, obj, "Update", now))
            self._after_txn_change(realm, entity, existing, obj, now, events)
        self._commit(events)
        return obj

    def delete(self, realm_id: str, entity: str, body: dict, *, check_token: bool = True) -> dict:
        """Delete a transaction; answers ``{"status": "Deleted", "domain": "QBO", "Id": ...}``."""
        spec = spec_for(entity)
        if spec is None or not spec.deletable:
            raise faults.unsupported_operation(f"Operation Delete is not supported for {entity}.")
        realm = self.realm(realm_id)
        events: list[Event] = []
        with realm.lock:
            now = self.clock.now()
            existing = self._current(realm, entity, body, check_token)
            links.check_unlinked(realm, entity, existing, "deleting")
            zone = company_zone(realm.settings.zone_name)
            tombstone = {"status": "Deleted", "domain": "QBO", "Id": existing["Id"],
                         "MetaData": {"LastUpdatedTime": meta_time(now, zone)}}
            realm.remove(entity, existing["Id"], tombstone, now.timestamp())
            events.append(Event(realm.realm_id, entity, existing["Id"], "Delete", now))
            self._after_txn_change(realm, entity, existing, None, now, events)
        self._commit(events)
        return {"status": "Deleted", "domain": "QBO", "Id": existing["Id"]}

    def void(self, realm_id: str, entity: str, body: dict, *, check_token: bool = True) -> dict:
        """Void a transaction: it stays, with amounts zeroed and "Voided" in PrivateNote."""
        spec = spec_for(entity)
        if spec is None or not spec.voidable:
            raise faults.unsupported_operation(f"Operation Void is not supported for {entity}.")
        realm = self.realm(realm_id)
        events: list[Event] = []
        with realm.lock:
            now = self.clock.now()
            existing = self._current(realm, entity, body, check_token)
            if entity == "CreditMemo":
                links.check_unlinked(realm, entity, existing, "voiding")
            if entity == "Invoice":
                self._unapply_invoice(realm, existing["Id"], now, events)
            obj = self._stamp(realm, txns.voided(entity, existing), existing, now)
            realm.put(entity, obj, now.timestamp())
            events.append(self._event(realm, entity, obj, "Void", now))
            self._after_txn_change(realm, entity, existing, obj, now, events)
        self._commit(events)
        return obj

    def send(self, realm_id: str, entity: str, obj_id: str, address: str | None = None) -> dict:
        """Record that a transaction was e-mailed: EmailStatus EmailSent, DeliveryInfo, an Emailed event."""
        if entity not in TXN_ENTITIES or entity == "Payment":
            raise faults.unsupported_operation(f"Operation Send is not supported for {entity}.")
        realm = self.realm(realm_id)
        events: list[Event] = []
        with realm.lock:
            now = self.clock.now()
            existing = realm.get(entity, obj_id)
            if existing is None:
                raise faults.object_not_found()
            obj = dict(existing, EmailStatus="EmailSent",
                       DeliveryInfo={"DeliveryType": "Email",
                                     "DeliveryTime": meta_time(now, company_zone(realm.settings.zone_name))})
            if address:
                obj["BillEmail"] = {"Address": address}
            obj = self._stamp(realm, obj, existing, now)
            realm.put(entity, obj, now.timestamp())
            events.append(self._event(realm, entity, obj, "Emailed", now))
        self._commit(events)
        return obj

    def deactivate_customer(self, realm_id: str, customer_id: str) -> dict:
        """What "delete" does to a customer in the QBO UI: it becomes inactive (a Delete event is sent)."""
        realm = self.realm(realm_id)
        events: list[Event] = []
        with realm.lock:
            now = self.clock.now()
            existing = realm.get("Customer", customer_id)
            if existing is None:
                raise faults.object_not_found()
            obj = self._stamp(realm, dict(existing, Active=False), existing, now)
            realm.put("Customer", obj, now.timestamp())
            events.append(self._event(realm, "Customer", obj, "Delete", now))
        self._commit(events)
        return obj

    def merge_customers(self, realm_id: str, from_id: str, into_id: str) -> dict:
        """Merge customer ``from_id`` into ``into_id`` as the QBO UI does; returns the survivor."""
        realm = self.realm(realm_id)
        events: list[Event] = []
        with realm.lock:
            now = self.clock.now()
            source, target = realm.get("Customer", from_id), realm.get("Customer", into_id)
            if source is None or target is None or from_id == into_id:
                raise faults.object_not_found()
            if realm.children.get(from_id) or realm.children.get(into_id):
                raise faults.business_rule("Customers with sub-customers or projects cannot be merged.")
            self._move_txns(realm, source, target, now)
            opening = realm.opening_balance.pop(from_id, ZERO)
            if opening:
                realm.opening_balance[into_id] = realm.opening_balance.get(into_id, ZERO) + opening
            gone = self._stamp(realm, dict(source, Active=False, Balance=ZERO, BalanceWithJobs=ZERO),
                               source, now)
            realm.put("Customer", gone, now.timestamp())
            self._refresh_customer(realm, into_id, now)
            survivor = self._stamp(realm, realm.get("Customer", into_id), target, now)
            realm.put("Customer", survivor, now.timestamp())
            events.append(self._event(realm, "Customer", survivor, "Update", now))
            events.append(Event(realm.realm_id, "Customer", into_id, "Merge", now, deleted_id=from_id))
        self._commit(events)
        return survivor

    def load(self, realm_id: str, entity: str, obj: dict) -> None:
        """Bulk-load a complete QBO object keeping its Id (seeding); no validation, no events."""
        realm = self.realm(realm_id)
        with realm.lock:
            realm.load(entity, obj)

    def touch(self, realm_id: str, events: list[Event]) -> None:
        """Send events the caller produced outside the engine (used by the control API's seeding)."""
        self._commit(events)

    # -- internals --------------------------------------------------------------------------------------
    def _shape(self, realm: RealmData, entity: str, fields: dict, existing: dict | None) -> dict:
        if entity in PERSON_ENTITIES:
            return lists.shape_person(entity, fields, realm, existing)
        if entity == "Item":
            return lists.shape_item(fields, realm, existing)
        if entity == "Term":
            return lists.shape_term(fields, realm, existing)
        if entity == "PaymentMethod":
            return lists.shape_payment_method(fields, realm, existing)
        if entity == "Preferences":
            return company.shape_preferences(fields, realm, existing)
        if entity == "TimeActivity":
            if existing is not None:
                links.check_unlinked(realm, entity, existing, "changing")
            return timeactivity.shape_time_activity(fields, realm, self.today(realm), existing)
        return txns.shape_txn(entity, fields, realm, self.today(realm), existing)

    def _current(self, realm: RealmData, entity: str, body: dict, check_token: bool) -> dict:
        obj_id = body.get("Id")
        if obj_id is None or obj_id == "":
            raise faults.required_param("Id")
        existing = realm.get(entity, str(obj_id))
        if existing is None:
            raise faults.object_not_found()
        if check_token:
            token = body.get("SyncToken")
            if token is None:
                raise faults.required_param("SyncToken")
            if str(token) != existing["SyncToken"]:
                raise faults.stale_object()
        return existing

    def _stamp(self, realm: RealmData, obj: dict, existing: dict | None, now: datetime) -> dict:
        zone = company_zone(realm.settings.zone_name)
        stamp = meta_time(now, zone)
        if existing is None:
            new_id = realm.new_id(obj["_entity"])
            meta = {"CreateTime": stamp, "LastUpdatedTime": stamp}
            token = "0"
        else:
            new_id = existing["Id"]
            meta = {"CreateTime": existing.get("MetaData", {}).get("CreateTime", stamp), "LastUpdatedTime": stamp}
            token = str(int(existing.get("SyncToken", "0")) + 1)
        body = {k: v for k, v in obj.items() if k not in ("Id", "SyncToken", "MetaData", "domain", "sparse",
                                                          "_entity")}
        return {"domain": "QBO", **body, "sparse": False, "Id": new_id, "SyncToken": token, "MetaData": meta}

    def _check_name(self, realm: RealmData, entity: str, obj: dict) -> None:
        if entity not in PERSON_ENTITIES:
            return
        owner = realm.name_owner(obj["DisplayName"])
        if owner is not None and owner != (entity, obj["Id"]):
            raise faults.duplicate_name()

    def _check_deactivation(self, realm: RealmData, entity: str, existing: dict, shaped: dict) -> None:
        deactivating = existing.get("Active", True) and not shaped.get("Active", True)
        if entity == "Customer" and deactivating and shaped.get("Balance", ZERO) != 0:
            raise faults.balance_on_delete()

    def _event(self, realm: RealmData, entity: str, obj: dict, operation: str, now: datetime) -> Event:
        return Event(realm.realm_id, entity, obj["Id"], operation, now)

    def _after_txn_change(self, realm: RealmData, entity: str, old: dict | None, new: dict | None,
                          now: datetime, events: list[Event]) -> None:
        """Keep linked objects and customers' balances in step with a transaction change."""
        if entity not in TXN_ENTITIES:
            return
        if entity == "Payment":
            paid = {(link["TxnType"], link["TxnId"]) for obj in (old, new) if obj for line in obj.get("Line") or []
                    for link in line.get("LinkedTxn") or [] if link.get("TxnType") in ("Invoice", "CreditMemo")}
            for paid_entity, paid_id in sorted(paid):
                self._rebalance(realm, paid_entity, paid_id, now, events)
        if entity == "Invoice":
            self._follow_invoice_links(realm, old, new, now, events)
        customers = {obj["CustomerRef"]["value"] for obj in (old, new) if obj and obj.get("CustomerRef")}
        for customer_id in sorted(customers):
            self._refresh_customer(realm, customer_id, now)

    def _rebalance(self, realm: RealmData, entity: str, txn_id: str, now: datetime, events: list[Event]) -> None:
        """Recompute an invoice's or credit memo's balance after a payment changed (an Update when it moved)."""
        current = realm.get(entity, txn_id)
        if current is None:
            return
        rebalanced = txns.rebalance(entity, current, realm)
        if rebalanced["Balance"] == current["Balance"] and rebalanced["LinkedTxn"] == current.get("LinkedTxn"):
            return
        self._restamp(realm, entity, rebalanced, current, now, events)

    def _restamp(self, realm: RealmData, entity: str, changed: dict, current: dict, now: datetime,
                 events: list[Event] | None) -> None:
        """Store a change the engine made to a linked object; it gets an Update event unless ``events`` is None."""
        obj = self._stamp(realm, changed, current, now)
        realm.put(entity, obj, now.timestamp())
        if events is not None:
            events.append(self._event(realm, entity, obj, "Update", now))

    def _follow_invoice_links(self, realm: RealmData, old: dict | None, new: dict | None, now: datetime,
                              events: list[Event]) -> None:
        """Close or reopen the estimates and bill or unbill the time an invoice links (links.py)."""
        invoice_id = (new or old or {}).get("Id")
        old_estimates, new_estimates = links.linked_ids(old, links.ESTIMATE), links.linked_ids(new, links.ESTIMATE)
        for estimate_id in sorted(old_estimates ^ new_estimates):
            estimate = realm.get("Estimate", estimate_id)
            if estimate is not None:
                holder = invoice_id if estimate_id in new_estimates else None
                self._restamp(realm, "Estimate", links.estimate_linked(estimate, holder), estimate, now, events)
        old_time, new_time = links.linked_ids(old, links.TIME), links.linked_ids(new, links.TIME)
        for activity_id in sorted(old_time ^ new_time):
            activity = realm.get("TimeActivity", activity_id)
            if activity is not None:
                # No webhook for the status flip: whether QBO sends one is unconfirmed (docs/qbo/time-activity.md).
                billed = links.time_billed(activity, activity_id in new_time)
                self._restamp(realm, "TimeActivity", billed, activity, now, None)

    def _unapply_invoice(self, realm: RealmData, invoice_id: str, now: datetime, events: list[Event]) -> None:
        """Voiding an invoice leaves the payments that paid it unapplied (credit for the customer).

        A payment that also used a credit memo's credit for the invoice gives that credit back when what it still
        pays no longer covers it (the credit memo's balance is restored by ``_rebalance``).
        """
        released: set[str] = set()
        for payment_id in list(realm.applied.get(invoice_id, {})):
            payment = realm.get("Payment", payment_id)
            if payment is None:
                continue
            lines = [line for line in payment["Line"]
                     if not any(link.get("TxnId") == invoice_id and link.get("TxnType") == "Invoice"
                                for link in line.get("LinkedTxn") or [])]
            if txns.applied_amount(lines) < 0:
                released |= {link["TxnId"] for line in lines for link in line.get("LinkedTxn") or []
                             if link.get("TxnType") == "CreditMemo"}
                lines = [line for line in lines if not any(link.get("TxnType") == "CreditMemo"
                                                           for link in line.get("LinkedTxn") or [])]
            unapplied = payment["TotalAmt"] - txns.applied_amount(lines)
            self._restamp(realm, "Payment", dict(payment, Line=lines, UnappliedAmt=unapplied), payment, now, events)
        for memo_id in sorted(released):
            self._rebalance(realm, "CreditMemo", memo_id, now, events)

    def _move_txns(self, realm: RealmData, source: dict, target: dict, now: datetime) -> None:
        """Re-point a merged-away customer's transactions at the survivor (they show up in CDC)."""
        ref = {"value": target["Id"], "name": target.get("FullyQualifiedName", target["DisplayName"])}
        for entity, txn in list(realm.txns_of(source["Id"])):
            obj = self._stamp(realm, dict(txn, CustomerRef=ref), txn, now)
            realm.put(entity, obj, now.timestamp())

    def _refresh_customer(self, realm: RealmData, customer_id: str, now: datetime) -> None:
        """Recompute a customer's Balance (and its parents' BalanceWithJobs); not a change QBO reports."""
        customer = realm.get("Customer", customer_id)
        if customer is None:
            return
        balance = realm.opening_balance.get(customer_id, ZERO)
        for entity, txn in realm.txns_of(customer_id):
            balance += _open_amount(entity, txn)
        balance = cents(balance)
        with_jobs = balance + sum((realm.get("Customer", child) or {}).get("BalanceWithJobs", ZERO)
                                  for child in realm.children.get(customer_id, ()))
        if balance != customer.get("Balance") or with_jobs != customer.get("BalanceWithJobs"):
            realm.put("Customer", dict(customer, Balance=balance, BalanceWithJobs=cents(with_jobs)), log=False)
        if customer.get("ParentRef"):
            self._refresh_customer(realm, customer["ParentRef"]["value"], now)

    def _commit(self, events: list[Event]) -> None:
        if self._flush is not None:
            self._flush()
        if self._emit is None:
            return
        for event in events:
            self._emit(event.realm_id, event.entity, event.entity_id, event.operation, event.last_updated,
                       event.deleted_id)


def _writable_entity(entity: str) -> None:
    spec = spec_for(entity)
    if spec is None or spec.name in ("CompanyInfo", "ExchangeRate"):
        raise faults.unsupported_operation(f"Operation is not supported for {entity}.")


def _update_fields(entity: str, body: dict, existing: dict) -> dict:
    """The object's new writable fields: a full update replaces them all, a sparse one only those it names.

    Blank values are dropped afterwards (blanks.py), so a blank in a sparse update clears that field, except the
    fields QBO says a sparse update cannot remove (DisplayName), where a blank leaves the stored value.
    """
    fields = _writable(entity, body)
    if body.get("sparse") is True:
        fields = {key: value for key, value in fields.items() if not (key in _KEPT_BY_SPARSE and is_blank(value))}
        fields = {**_writable(entity, existing), **fields}
    return drop_blanks(fields)


def _writable(entity: str, body: dict) -> dict:
    if entity in TXN_ENTITIES:
        fields = txns.writable(entity, body)
    elif entity == "TimeActivity":
        fields = timeactivity.writable(body)
    else:
        fields = lists.writable(body)
    fields["_entity"] = entity
    return fields


def _open_amount(entity: str, txn: dict) -> Decimal:
    """What a transaction adds to its customer's open balance (credits subtract)."""
    if entity == "Invoice":
        return txn.get("Balance", ZERO)
    if entity == "Payment":
        return -txn.get("UnappliedAmt", ZERO)
    if entity == "CreditMemo":
        return -txn.get("Balance", ZERO)
    return ZERO
