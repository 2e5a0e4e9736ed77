"""The burst every scenario sends, and the verdict: what arrived, what was lost, what was duplicated.

Every change carries a unique marker, and every record has exactly one writer, so the final state of both sides is
known in advance and can be read in full:

- a QBO edit sets a linked customer's ``Notes`` (as a bookkeeper); it must end in the contact's ``notes``;
- a CRM edit sets another linked contact's ``notes`` (as a CRM user); it must end in the customer's ``Notes``;
- an invoice (a new one, with a unique ``DocNumber``) must appear exactly once in its contact's folder
  (crm-qb's JSON API);
- with ``passes`` > 1 a record is edited several times, seconds apart; only the last value may remain.

A record is *lost* when, at the deadline, either side does not hold the last value sent (or the invoice is not in
the folder). *Duplicated* counts records that exist more than once: CRM contacts beyond the linked ones (or two
with one email), QBO customers beyond those created for the run, an invoice shown more than once in the folder.
Poison changes (values crm-qb may legitimately refuse) are sent and reported but not counted as lost; the normal
changes around them are.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from tests.faults.rig import Pair, Rig

NUL = "\x00"
QBO, CRM, INVOICE = "qbo", "crm", "invoice"


@dataclass(frozen=True)
class Sizes:
    """How big a burst is: edits per side, invoices, passes per record, and how long the burst lasts."""

    qbo_edits: int = 200
    crm_edits: int = 200
    invoices: int = 20
    passes: int = 1
    burst_seconds: float = 20.0

    @property
    def records(self) -> int:
        """Linked pairs the burst needs (one writer per record)."""
        return -(-self.qbo_edits // self.passes) + -(-self.crm_edits // self.passes) + POISON_RECORDS


FULL = Sizes()
QUICK = Sizes(qbo_edits=20, crm_edits=20, invoices=4, burst_seconds=4.0)
POISON_RECORDS = 2  # one contact gets a NUL in its notes, one customer a NUL in its Notes


@dataclass(frozen=True)
class Change:
    """One change to send: which side, which record, the value (marker or invoice number)."""

    kind: str
    pair: Pair
    value: str
    poison: bool = False


@dataclass
class Plan:
    """The changes in the order they are sent, and what each record must end with."""

    changes: list[Change]
    last_customer_id: int
    expected: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, record) -> last value

    def count(self, kind: str, poison: bool = False) -> int:
        """How many changes of ``kind`` are sent."""
        return sum(1 for c in self.changes if c.kind == kind and c.poison == poison)


def make_plan(pairs: list[Pair], sizes: Sizes, last_customer_id: int, poison: bool = False) -> Plan:
    """Allocate records (from ``pairs``) and markers; interleave QBO edits, CRM edits and invoices over the burst.

    ``last_customer_id`` is the highest customer id the rig created: any customer after it is a duplicate.
    """
    tag = uuid.uuid4().hex[:6]
    qbo_records = -(-sizes.qbo_edits // sizes.passes)
    crm_records = -(-sizes.crm_edits // sizes.passes)
    if len(pairs) < sizes.records:
        raise ValueError(f"the burst needs {sizes.records} linked pairs, the rig has {len(pairs)}")
    qbo_pairs, crm_pairs = pairs[:qbo_records], pairs[qbo_records:qbo_records + crm_records]
    qbo = [Change(QBO, qbo_pairs[n % qbo_records], f"q-{tag}-{n}") for n in range(sizes.qbo_edits)]
    crm = [Change(CRM, crm_pairs[n % crm_records], f"c-{tag}-{n}") for n in range(sizes.crm_edits)]
    invoices = [Change(INVOICE, qbo_pairs[n % qbo_records], f"F{tag}{n:04d}") for n in range(sizes.invoices)]
    changes = _interleave([qbo, crm, invoices])
    if poison:
        nul_contact, nul_customer = pairs[qbo_records + crm_records:qbo_records + crm_records + POISON_RECORDS]
        middle = len(changes) // 2
        changes[middle:middle] = [Change(CRM, nul_contact, f"nul{NUL}contact {tag}", poison=True),
                                  Change(QBO, nul_customer, f"nul{NUL}customer {tag}", poison=True)]
    plan = Plan(changes, last_customer_id)
    for change in changes:
        plan.expected[(change.kind, change.pair.customer_id if change.kind != INVOICE else change.value)] = \
            change.value
    return plan


def _interleave(lists: list[list[Change]]) -> list[Change]:
    """Merge lists so that each is spread evenly over the result (stable within a list)."""
    keyed = [((i + 0.5) / len(items), n, c) for n, items in enumerate(lists) for i, c in enumerate(items)]
    return [c for _, _, c in sorted(keyed, key=lambda k: (k[0], k[1]))]


# -- sending ----------------------------------------------------------------------------------------------------


@dataclass
class Sender:
    """Sends a plan's changes paced in two halves: the first over ``first_seconds``, the rest over ``rest_seconds``.

    ``halfway`` is set once the first half has been sent (the fault starts then); ``done`` when all have been.
    Errors of the sandboxes' control APIs (which are never faulted) are collected, not raised.
    """

    rig: Rig
    plan: Plan
    first_seconds: float
    rest_seconds: float
    halfway: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)
    invoice_ids: dict[str, str] = field(default_factory=dict)  # DocNumber -> QBO id

    def start(self) -> threading.Thread:
        """Send in a background thread; return it."""
        thread = threading.Thread(target=self._run, name="faults-sender", daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        changes = self.plan.changes
        middle = len(changes) // 2
        try:
            with ThreadPoolExecutor(4) as pool:
                self._paced(pool, changes[:middle], self.first_seconds)
                self.halfway.set()
                self._paced(pool, changes[middle:], self.rest_seconds)
        finally:
            self.halfway.set()
            self.done.set()

    def _paced(self, pool: ThreadPoolExecutor, changes: list[Change], seconds: float) -> None:
        started = time.monotonic()
        futures = []
        for n, change in enumerate(changes):
            due = started + seconds * n / max(1, len(changes))
            time.sleep(max(0.0, due - time.monotonic()))
            futures.append(pool.submit(self._send, change))
        for future in futures:
            future.result()

    def _send(self, change: Change) -> None:
        try:
            if change.kind == QBO:
                self.rig.edit_customer(change.pair.customer_id, Notes=change.value)
            elif change.kind == CRM:
                self.rig.edit_contact(change.pair.contact_id, notes=change.value)
            else:
                self.invoice_ids[change.value] = self.rig.create_invoice(change.pair.customer_id, change.value,
                                                                         "10.00")
        except Exception as exc:  # a sandbox refusing a change is recorded in the result
            self.errors.append(f"{change.kind} {change.value!r}: {type(exc).__name__}: {exc}"[:300])


# -- reading and judging ----------------------------------------------------------------------------------------


@dataclass
class Verdict:
    """What the final read of both sides found."""

    sent: Counter[str]
    lost: Counter[str]
    duplicated: Counter[str]
    lost_examples: list[str]
    poison: list[str]


def _same(actual: Any, expected: str) -> bool:
    return (actual or "") == expected


def pending_records(rig: Rig, plan: Plan, only: set[tuple[str, str]] | None = None) -> set[tuple[str, str]]:
    """The records (of ``only``, default all normal ones) whose far side does not hold the last value yet."""
    by_record = {(c.kind, c.pair.customer_id if c.kind != INVOICE else c.value): c for c in plan.changes
                 if not c.poison}
    keys = only if only is not None else set(by_record)
    waiting = set()
    for key in keys:
        change = by_record[key]
        expected = plan.expected[key]
        if change.kind == QBO:
            contact = rig.contact(change.pair.contact_id)
            arrived = contact is not None and _same(contact.get("notes"), expected)
        elif change.kind == CRM:
            customer = rig.customer(change.pair.customer_id)
            arrived = customer is not None and _same(customer.get("Notes"), expected)
        else:
            folder = rig.folder(change.pair.contact_id) or []
            arrived = any(item.get("number") == expected for item in folder)
        if not arrived:
            waiting.add(key)
    return waiting


def judge(rig: Rig, plan: Plan) -> Verdict:
    """Read both sides in full and count lost and duplicated records."""
    sent: Counter[str] = Counter(c.kind for c in plan.changes if not c.poison)
    lost: Counter[str] = Counter()
    examples: list[str] = []
    contacts = {str(c["id"]): c for c in rig.contacts()}
    changes = {(c.kind, c.pair.customer_id if c.kind != INVOICE else c.value): c for c in plan.changes
               if not c.poison}
    for key, change in changes.items():
        expected = plan.expected[key]
        if change.kind == INVOICE:
            continue
        customer = rig.customer(change.pair.customer_id) or {}
        contact = contacts.get(change.pair.contact_id) or {}
        if not (_same(customer.get("Notes"), expected) and _same(contact.get("notes"), expected)):
            lost[change.kind] += 1
            if len(examples) < 3:
                examples.append(f"{change.kind} {expected}: QBO {customer.get('Notes')!r}, "
                                f"CRM {contact.get('notes')!r}")
    duplicated: Counter[str] = Counter()
    folders: dict[str, list[dict[str, Any]]] = {}
    for change in changes.values():
        if change.kind != INVOICE:
            continue
        folder = folders.setdefault(change.pair.contact_id, rig.folder(change.pair.contact_id) or [])
        copies = sum(1 for item in folder if item.get("number") == change.value)
        if copies == 0:
            lost[INVOICE] += 1
            if len(examples) < 3:
                examples.append(f"invoice {change.value}: not in contact {change.pair.contact_id}'s folder")
        duplicated[INVOICE] += max(0, copies - 1)
    emails = Counter(str(c.get("email") or "").casefold() for c in contacts.values() if c.get("email"))
    duplicated["contact"] += max(0, len(contacts) - len(rig.pairs)) + sum(n - 1 for n in emails.values() if n > 1)
    duplicated["customer"] += len(rig.customers_beyond(plan.last_customer_id))
    return Verdict(sent, lost, +duplicated, examples, _poison_outcomes(rig, plan, contacts))


def _poison_outcomes(rig: Rig, plan: Plan, contacts: dict[str, dict[str, Any]]) -> list[str]:
    """What became of each poison value on the far side (arrived as sent, arrived cleaned, or not)."""
    outcomes = []
    for change in (c for c in plan.changes if c.poison):
        if change.kind == CRM:
            far = (rig.customer(change.pair.customer_id) or {}).get("Notes")
            side = "NUL in contact notes"
        else:
            far = (contacts.get(change.pair.contact_id) or {}).get("notes")
            side = "NUL in customer Notes"
        clean = change.value.replace(NUL, "")
        state = "arrived" if far == change.value else "arrived without the NUL" if far and far.replace(
            " ", "") == clean.replace(" ", "") else "did not arrive"
        outcomes.append(f"{side}: {state}")
    return outcomes


def wait_for_convergence(rig: Rig, plan: Plan, deadline_seconds: float, on_tick: Callable[[], None] | None = None,
                         interval: float = 2.0) -> float | None:
    """Poll the far side of the records not arrived yet; return the seconds until all arrived, or None."""
    started = time.monotonic()
    waiting = pending_records(rig, plan)
    while waiting:
        if time.monotonic() - started > deadline_seconds:
            return None
        if on_tick:
            on_tick()
        time.sleep(interval)
        waiting = pending_records(rig, plan, waiting)
    return time.monotonic() - started
