"""CRM activities → QBO TimeActivity (DESIGN §9): create, update, delete, hold, and never touch billed time.

One unit handles a drain batch's activity events together, so a burst of new time costs one batch request per
30 creates (``qbo/timeactivity.py``) plus a few lookups, not a call per activity.

- **Coalesced, in order.** The events of one activity collapse to its newest version (hooks carry the
  activity); a version older than the one applied is stale and changes nothing, a repeat is a no-op, and after
  a delete nothing of that activity is applied again (a CRM never reuses an id). So duplicate and out-of-order
  hooks converge.
- **Created once** (``create.py``). Before a create is sent, its entry is committed as ``creating`` with the
  body and a request id; a run that finds an entry still ``creating`` (the worker was killed, QBO answered 5xx or
  429 throughout) resends exactly that request, and QBO answers a repeated request id with its first answer.
- **Changes follow until billed.** An edit becomes a sparse update of the fields that changed; a delete, or
  ``billable`` turned off, deletes the TimeActivity. A write refused because the time changed in QBO (5010, or
  QBO's refusal to change billed time) re-reads it: billed time (``HasBeenBilled``) is frozen, and the CRM's
  later edit is stored as a conflict for the admin and told to the CRM user as a task on the contact.
- **Held, never dropped.** Time of an unlinked contact or an unmapped user, or time QBO refused, waits as
  ``held`` with its reason; ``release`` sends it once the reason is gone (the contact linked, the user mapped).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crm_qb.connections import crm_web_origin
from crm_qb.crm.errors import ActivityNotFoundError, CrmProtocolError
from crm_qb.crm.protocol import Activity, NewTask, parse_time
from crm_qb.db import db
from crm_qb.models import Conflict, Connection, TimeEntry, TimeState
from crm_qb.qbo import timeactivity as qbo_time
from crm_qb.qbo.faults import ObjectNotFoundError, QboFault, StaleObjectError
from crm_qb.sync.context import SyncContext
from crm_qb.sync.pipeline import events as inbox
from crm_qb.sync.pipeline.events import EventRef
from crm_qb.sync.rules import time as rules
from crm_qb.sync.time import create, earlier, store
from crm_qb.sync.time.resolve import Hold, Resolver
from crm_qb.sync.time.settings import time_settings_of
from crm_qb.sync.time.store import EntryRecord

log = logging.getLogger(__name__)

CONFLICT_FIELD = "billed_time"
CONFLICT_RULE = "billed_time"
BUSINESS_RULE = "6000"  # QBO's answer to a change of billed time (docs/qbo/time-activity.md)
RELEASED_KINDS = ("contact", "user", "item", "retry")


@dataclass(frozen=True)
class Seen:
    """What the hooks of one activity say now: the newest activity, or that it was deleted."""

    activity_id: str
    activity: Activity | None  # None: deleted
    raw: dict[str, Any]


def apply_activity_events(ctx: SyncContext, events: Sequence[EventRef]) -> str:
    """Apply a batch's activity events (coalesced per activity); mark them processed; return a summary."""
    sync = TimeSync.of(ctx)
    if sync is None:
        _settle(ctx, [e.id for e in events])
        return "time off"
    seen = coalesce(ctx, events)
    outcome = sync.apply(seen)
    _settle(ctx, [e.id for e in events])
    return outcome


def release(ctx: SyncContext, *, refused_too: bool = False) -> str:
    """Send held time whose reason is gone (contact linked, user mapped, item set); ``refused_too``: retry QBO's.

    Every drain of contacts or customers ends with a release (a link it made may free held time), and nearly
    always nothing can go: so one query asks first whether anything could (``store.releasable``), and only then
    is the time sync built (the connection's user mappings read) and each kind of waiting time read."""
    if not enabled(ctx.connection_id):
        return "time off"
    if not store.releasable(ctx.connection_id, _held_kinds(refused_too)):
        return "nothing held can go"
    sync = TimeSync.of(ctx)
    if sync is None:
        return "time off"
    return sync.release(refused_too)


def _held_kinds(refused_too: bool) -> tuple[str, ...]:
    """The hold kinds a release looks at again (QBO's refusals only when asked)."""
    return (*RELEASED_KINDS, *(("qbo",) if refused_too else ()))


def enabled(connection_id: int) -> bool:
    """Whether the connection's time setting is on; ends the read."""
    connection = db.session.get(Connection, connection_id)
    on = connection is not None and time_settings_of(connection.settings).enabled
    db.session.rollback()
    return on


def walk_earlier(ctx: SyncContext, on_page: earlier.Outcomes | None = None) -> Counter[str] | None:
    """Apply the time of every linked contact's activities in the CRM (the backfill's and first sync's walk,
    ``earlier.walk_all``); None when the time setting is off."""
    sync = TimeSync.of(ctx)
    return None if sync is None else earlier.walk_all(sync, on_page)


def coalesce(ctx: SyncContext, events: Sequence[EventRef]) -> list[Seen]:
    """The newest state of each activity in ``events`` (arrival order; a delete ends an activity)."""
    newest: dict[str, Seen] = {}
    for event in events:
        activity_id = str(event.entity_id)
        if event.operation == "deleted":
            newest[activity_id] = Seen(activity_id, None, {})
            continue
        current = newest.get(activity_id)
        if current is not None and current.activity is None:
            continue  # a hook of an activity deleted in this batch arrived late
        activity = _parse(ctx, activity_id, event.payload.get("activity"))
        if activity is None:
            newest[activity_id] = Seen(activity_id, None, {})
            continue
        if current is None or current.activity is None or activity.version >= current.activity.version:
            newest[activity_id] = seen_of(activity)
    return list(newest.values())


def seen_of(activity: Activity) -> Seen:
    """What the CRM says of an activity now, kept in the section 6 shape (``release`` reads it back)."""
    return Seen(activity.id, activity, activity.to_json())


def _parse(ctx: SyncContext, activity_id: str, raw: Any) -> Activity | None:
    """The activity a hook carries; read from the CRM when the hook's copy is not a section 6 activity (a HubSpot
    notice names only ``call-<id>``); None when the CRM no longer has it (deleted since)."""
    try:
        return Activity.from_json(raw)
    except CrmProtocolError:
        pass
    try:
        return ctx.crm.get_activity(activity_id)
    except ActivityNotFoundError:
        return None


def _settle(ctx: SyncContext, event_ids: list[int]) -> None:
    try:
        inbox.mark_processed(event_ids, ctx.connection_id)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


@dataclass
class TimeSync:
    """The time sync of one connection in one job."""

    ctx: SyncContext
    resolver: Resolver

    @classmethod
    def of(cls, ctx: SyncContext) -> TimeSync | None:
        """The time sync of ``ctx``'s connection, or None when its time setting is off."""
        connection = db.session.get(Connection, ctx.connection_id)
        settings = time_settings_of(connection.settings if connection else None)
        if connection is None or not settings.enabled:
            db.session.rollback()
            return None
        resolver = Resolver.for_connection(ctx, connection, settings, crm_web_origin(connection))
        db.session.rollback()
        return cls(ctx, resolver)

    # -- applying hooks -------------------------------------------------------------------------------------

    def apply(self, seen: Sequence[Seen]) -> str:
        """Bring every activity's time in line with what the hooks say; return a short summary."""
        return _summary(_tally(self._apply_seen(seen)))

    def apply_activities(self, activities: Sequence[Activity]) -> list[tuple[str, str]]:
        """Apply activities read from the CRM (``earlier.py``'s walks); return each one's (activity id, outcome)."""
        return self._apply_seen([seen_of(activity) for activity in activities])

    def _apply_seen(self, seen: Sequence[Seen]) -> list[tuple[str, str]]:
        create.recover_creating(self.ctx)
        known = store.entries(self.ctx.connection_id, [s.activity_id for s in seen])
        fresh = [(s, known.get(s.activity_id)) for s in seen if not _stale(s, known.get(s.activity_id))]
        stale = [(s.activity_id, "stale") for s in seen if _stale(s, known.get(s.activity_id))]
        return stale + self._bring_in_line(fresh)

    def release(self, refused_too: bool) -> str:
        """Catch up the earlier activities of contacts linked since (``earlier.py``), then re-evaluate held time
        that may go now."""
        caught_up = earlier.catch_up(self)
        create.recover_creating(self.ctx)
        held = store.entries_where(self.ctx.connection_id, TimeEntry.state == TimeState.HELD,
                                   TimeEntry.hold_kind.in_(_held_kinds(refused_too)))
        linked = store.linked_customers(self.ctx.connection_id, [str(e.crm_contact_id) for e in held
                                                                 if e.hold_kind == "contact" and e.crm_contact_id])
        ready = [entry for entry in held if self._may_go(entry, linked, refused_too)]
        earlier_note = f"earlier activities: {_summary(caught_up)}; " if caught_up else ""
        if not ready:
            return earlier_note + "nothing held can go"
        pairs = [(self._seen_again(e), e) for e in ready]
        return earlier_note + "released: " + _summary(_tally(self._bring_in_line(pairs)))

    def _seen_again(self, entry: EntryRecord) -> Seen:
        """Held time's stored activity; read from the CRM when the entry kept none whole (stored from a hook that
        named only the activity, before activities were kept in the section 6 shape)."""
        try:
            return seen_of(Activity.from_json(entry.activity))
        except CrmProtocolError:
            pass
        try:
            return seen_of(self.ctx.crm.get_activity(entry.crm_activity_id))
        except ActivityNotFoundError:
            return Seen(entry.crm_activity_id, None, {})

    def _may_go(self, entry: EntryRecord, linked: dict[str, Any], refused_too: bool) -> bool:
        if entry.hold_kind == "contact":
            return str(entry.crm_contact_id) in linked
        if entry.hold_kind == "user":
            mapping = self.resolver.mappings.get(str(entry.crm_user_id))
            return mapping is not None and bool(mapping.qbo_id)
        # "retry" (QBO failed for now) goes again on every drain; "item" and "qbo" wait for the admin
        # (crm-qb time configure), so a hold that QBO keeps refusing costs no call per drain.
        return entry.hold_kind == "retry" or refused_too

    def _bring_in_line(self, pairs: Sequence[tuple[Seen, EntryRecord | None]]) -> list[tuple[str, str]]:
        """Decide every activity, then send the creates together; return each one's (activity id, outcome)."""
        customers = store.linked_customers(self.ctx.connection_id, [
            str(s.activity.contact_id) for s, _ in pairs if s.activity is not None and s.activity.contact_id])
        creates: list[EntryRecord] = []
        outcomes: list[tuple[str, str]] = []
        for seen, entry in pairs:
            record = entry or EntryRecord(self.ctx.connection_id, seen.activity_id)
            outcomes.append((seen.activity_id, self._one(seen, record, customers, creates)))
        if creates:
            create.create(self.ctx, creates)
            states = {entry.crm_activity_id: entry.state for entry in creates}
            outcomes = [(activity_id, _created(states[activity_id]) if outcome == "to create" else outcome)
                        for activity_id, outcome in outcomes]
        return outcomes

    def _one(self, seen: Seen, entry: EntryRecord, customers: dict[str, tuple[str, str | None]],
             creates: list[EntryRecord]) -> str:
        """Decide one activity; writes updates and deletes at once, collects creates; return what happened."""
        activity = seen.activity
        _observe(entry, seen)
        reason = "deleted in the CRM" if activity is None else rules.not_time_reason(
            activity.billable, activity.duration_minutes, activity.contact_id, activity.type)
        if reason is not None:
            return self._not_time(entry, reason)
        assert activity is not None
        target = customers.get(str(activity.contact_id))
        facts: rules.TimeFacts | Hold = (Hold("contact", "the contact is not linked to a QuickBooks customer")
                                         if target is None else self.resolver.facts(activity, target[0]))
        if entry.state == TimeState.BILLED:
            if isinstance(facts, Hold):
                store.save([entry])
                return "billed"
            return self._billed_edit(entry, facts)
        if isinstance(facts, Hold):
            return self._hold(entry, facts)
        _price(entry, facts, (target[1] if target else None) or self.ctx.home_currency)
        body = rules.time_body(facts)
        if entry.state == TimeState.SYNCED and entry.qbo_id:
            return self._update(entry, body)
        entry.sent = create.jsonable(body)
        creates.append(entry)
        return "to create"

    # -- the ways one activity goes -----------------------------------------------------------------------

    def _not_time(self, entry: EntryRecord, reason: str) -> str:
        if entry.state == TimeState.BILLED:
            return self._billed_edit(entry, None, noted_change={"removed": reason})
        if entry.state == TimeState.SYNCED and entry.qbo_id:
            return self._delete(entry, reason)
        entry.state, entry.hold_kind, entry.hold_reason = TimeState.REMOVED, None, reason
        store.save([entry])
        return "not time"

    def _hold(self, entry: EntryRecord, hold: Hold) -> str:
        if entry.state == TimeState.SYNCED:
            # The time exists in QBO; what keeps the edit from going (a user unmapped since) is noted, not undone.
            store.save([entry], [self._audit("time.update_held", entry, {"reason": hold.reason})])
            return "update held"
        entry.state, entry.hold_kind, entry.hold_reason = TimeState.HELD, hold.kind, hold.reason
        store.save([entry], [self._audit("time.held", entry, {"kind": hold.kind, "reason": hold.reason})])
        return "held"

    def _update(self, entry: EntryRecord, body: dict[str, Any]) -> str:
        fields = rules.update_fields(entry.written, body)
        if not fields:
            store.save([entry])
            return "unchanged"
        try:
            row = self._write(entry, lambda token: qbo_time.update(self.ctx.qbo, str(entry.qbo_id), token, fields))
        except ObjectNotFoundError:
            entry.state, entry.qbo_id = TimeState.HELD, None  # deleted in QBO by a person: made again
            entry.hold_kind = "retry"
            store.save([entry], [self._audit("time.gone_in_qbo", entry)])
            return "gone in QBO"
        if row is None:
            return self._billed_edit(entry, None, noted_change=fields)
        create.stored(entry, row, {**(entry.written or {}), **body})
        store.save([entry], [self._audit("time.updated", entry, {"fields": sorted(fields)})])
        return "updated"

    def _delete(self, entry: EntryRecord, reason: str) -> str:
        try:
            row = self._write(entry, lambda token: qbo_time.delete(self.ctx.qbo, str(entry.qbo_id), token))
        except ObjectNotFoundError:
            row = {}
        if row is None:
            return self._billed_edit(entry, None, noted_change={"deleted": reason})
        entry.state, entry.hold_kind, entry.hold_reason = TimeState.REMOVED, None, reason
        store.save([entry], [self._audit("time.deleted", entry, {"qbo_id": entry.qbo_id, "reason": reason})])
        return "deleted"

    def _write(self, entry: EntryRecord, call: Callable[[str], dict[str, Any]]) -> dict[str, Any] | None:
        """Run a write with the stored SyncToken; on 5010/6000 re-read: None when QBO has billed the time."""
        for _ in range(3):
            try:
                return dict(call(str(entry.qbo_sync_token)))
            except (StaleObjectError, QboFault) as exc:
                if isinstance(exc, ObjectNotFoundError) or not _changed_meanwhile(exc):
                    raise
            current = self.ctx.qbo.read(qbo_time.ENTITY, str(entry.qbo_id))
            entry.qbo_sync_token, entry.billable_status = str(current["SyncToken"]), current.get("BillableStatus")
            if qbo_time.is_billed(current):
                entry.state = TimeState.BILLED
                return None
        raise StaleObjectError(message=f"time activity {entry.qbo_id} kept changing while we wrote it")

    def _billed_edit(self, entry: EntryRecord, facts: rules.TimeFacts | None,
                     noted_change: dict[str, Any] | None = None) -> str:
        """A CRM change of billed time: never written; a conflict for the admin and a task for the CRM user."""
        entry.state = TimeState.BILLED
        desired = rules.time_body(facts) if facts is not None else None
        unchanged = desired is not None and not rules.update_fields(entry.written, desired) and not noted_change
        # A delete carries no version: it counts as one change after the last version seen.
        version = (entry.crm_version or 0) + (1 if (entry.activity or {}).get("deleted") else 0)
        if unchanged or (entry.conflict_version is not None and entry.conflict_version >= version):
            store.save([entry])
            return "billed, unchanged"
        self._tell_crm_user(entry, version)
        entry.conflict_version = version
        crm_side = noted_change or (rules.comparable(desired) if desired else {"deleted": "no longer billable time"})
        conflict = Conflict(connection_id=self.ctx.connection_id,
                            contact_link_id=store.link_id_of(self.ctx.connection_id, entry.crm_contact_id),
                            field=CONFLICT_FIELD, qbo_value=_qbo_side(entry), crm_value=create.jsonable(crm_side),
                            crm_changed_at=_updated_at(entry), winner="qbo", rule=CONFLICT_RULE)
        refused = self._audit("time.billed_edit_refused", entry, {"crm": create.jsonable(crm_side)},
                              outcome="conflict")
        store.save([entry], [conflict, refused])
        return "billed: conflict"

    def _tell_crm_user(self, entry: EntryRecord, version: int) -> None:
        """A task on the contact saying the edit did not reach QuickBooks (once per activity version)."""
        if not entry.crm_contact_id:
            return
        marker = f"[crm-qb billed-time {self.ctx.connection_id}:{entry.crm_activity_id}:{version}]"
        if any(marker in (task.description or "") for task in self.ctx.crm.list_tasks(entry.crm_contact_id)):
            return
        subject = (entry.activity or {}).get("subject") or "an activity"
        description = (f"This time was already billed in QuickBooks (time activity {entry.qbo_id}), so the change "
                       "made in the CRM was not copied there. Ask the bookkeeper to adjust the invoice if it "
                       f"matters.\n{marker}")
        self.ctx.crm.create_task(entry.crm_contact_id, NewTask(
            title=f"Billed time not changed in QuickBooks: {subject}"[:255], description=description,
            owner_id=entry.crm_user_id))

    def _audit(self, action: str, entry: EntryRecord, diff: dict[str, Any] | None = None,
               outcome: str = "ok") -> Any:
        return create.note(self.ctx, action, entry, diff, outcome)


# -- small helpers --------------------------------------------------------------------------------------------

def _tally(outcomes: Iterable[tuple[str, str]]) -> Counter[str]:
    """How many activities went each way."""
    return Counter(outcome for _activity, outcome in outcomes)


def _summary(counts: Mapping[str, int]) -> str:
    """``created 3, held 1``, or ``nothing``."""
    return ", ".join(f"{key} {value}" for key, value in sorted(counts.items())) or "nothing"


def _created(state: TimeState) -> str:
    """A create's outcome by the state it left: sent, or held (QBO refused it, or failed for now)."""
    return {TimeState.SYNCED: "created", TimeState.BILLED: "created"}.get(state, "held")


def _stale(seen: Seen, entry: EntryRecord | None) -> bool:
    """Whether the hooks say nothing newer than what was applied (a repeat, an older version, or after a delete)."""
    if entry is None:
        return False
    if entry.activity.get("deleted"):
        return True
    if seen.activity is None or entry.crm_version is None:
        return False
    if entry.state in (TimeState.HELD, TimeState.CREATING):
        return seen.activity.version < entry.crm_version
    if seen.activity.version == entry.crm_version and seen.activity.contact_id != entry.crm_contact_id:
        return False  # HubSpot associates a call with a contact without a new version (hs_lastmodifieddate)
    return seen.activity.version <= entry.crm_version


def _observe(entry: EntryRecord, seen: Seen) -> None:
    """Remember what the CRM says of the activity now."""
    if seen.activity is None:
        entry.activity = {**(entry.activity or {}), "deleted": True}
        return
    activity = seen.activity
    entry.crm_version, entry.crm_contact_id, entry.crm_user_id = activity.version, activity.contact_id, \
        activity.owner_id
    entry.activity = seen.raw or entry.activity


def _price(entry: EntryRecord, facts: rules.TimeFacts, currency: str | None) -> None:
    """What the panel shows of the time: date, minutes, rate, amount in the customer's currency."""
    entry.qbo_customer_id, entry.txn_date = facts.customer_id, facts.txn_date
    entry.minutes, entry.hourly_rate = facts.duration_minutes, facts.rate
    entry.currency = currency
    entry.amount = rules.amount(facts.duration_minutes, facts.rate, currency or "USD")


def _changed_meanwhile(exc: QboFault) -> bool:
    return isinstance(exc, StaleObjectError) or str(getattr(exc, "code", "")) == BUSINESS_RULE


def _qbo_side(entry: EntryRecord) -> dict[str, Any]:
    return {"time_activity_id": entry.qbo_id, "billable_status": entry.billable_status,
            **(rules.comparable(entry.written or {}))}


def _updated_at(entry: EntryRecord) -> Any:
    raw = (entry.activity or {}).get("updated_at")
    try:
        return parse_time(raw) if raw else None
    except CrmProtocolError:
        return None
