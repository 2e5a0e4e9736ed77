"""What an operator does with time: configure it (default item, user mappings) and see where it stands.

The service functions behind ``crm-qb time configure|status``, the Settings page's "Billable time" and
``GET|PATCH /api/v1/connections/<id>/time`` (DESIGN §11): every change is validated against QBO before anything
is stored (the item must be an active service item, each person an active Employee or Vendor), then all of it is
stored in one commit with one ``settings.changed`` audit entry (who, and each value before and after, as for the
other settings), and followed at once by a release of the time it held, under the connection's sync lock.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from crm_qb.db import db
from crm_qb.errors import PermanentError
from crm_qb.models import AuditEntry, Connection, TimeEntry, TimeState, TimeUserMapping
from crm_qb.models.types import column_length, key_problem
from crm_qb.qbo.client import QboClient
from crm_qb.qbo.faults import ObjectNotFoundError
from crm_qb.sync.context import build_context
from crm_qb.sync.rules.time import parse_person_ref
from crm_qb.sync.services import ConnectionGoneError, SyncServices
from crm_qb.sync.settings_changes import changes_between
from crm_qb.sync.time import apply, store
from crm_qb.sync.time.settings import (
    TIME_KEY,
    TimeSettings,
    TimeSettingsError,
    parse_time_settings,
    time_settings_of,
    with_time_settings,
)

log = logging.getLogger(__name__)
USER_ID_LENGTH = column_length(TimeUserMapping.__table__.c.crm_user_id.type)


class TimeConfigError(PermanentError):
    """A time setting or user mapping cannot be stored; the message names what to fix, ``field`` the setting
    (``time.default_item``, ``time.activity_url``, ``time.users.<crm user id>``) and ``reason`` says why."""

    def __init__(self, message: str, field: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.field, self.reason = field, reason or message


def configure(services: SyncServices, connection_id: int, *, default_item: str | None = None,
              clear_default_item: bool = False, map_users: Mapping[str, str] | None = None,
              enabled: bool | None = None, activity_url: str | None = None, who: str = "cli") -> dict[str, Any]:
    """Validate time settings and hand mappings (in QBO), store them all or nothing with one audit entry naming
    ``who`` and each value before and after, then release held time; return the new state."""
    ctx = build_context(services, connection_id)
    try:
        with services.connection_lock(connection_id):
            before = time_settings_of(_connection(connection_id).settings)
            db.session.rollback()
            settings = _new_settings(ctx.qbo, before, default_item, clear_default_item, enabled, activity_url)
            people = {user: _person(ctx.qbo, user, ref) for user, ref in (map_users or {}).items()}
            _store(connection_id, before, settings, people, who)
            released = apply.release(ctx, refused_too=True)
    finally:
        ctx.close()
    mapped = {user: f"{person['kind']}:{person['Id']}" for user, person in people.items()}
    return {"settings": settings.as_json(), "mapped": mapped, "released": released, **status(connection_id)}


def _new_settings(qbo: QboClient, settings: TimeSettings, default_item: str | None, clear: bool,
                  enabled: bool | None, activity_url: str | None) -> TimeSettings:
    """The settings after the changes asked for (the default item checked in QBO); nothing is stored."""
    if activity_url is not None:
        try:
            settings = parse_time_settings({**settings.as_json(), "activity_url": activity_url})
        except TimeSettingsError as exc:
            raise TimeConfigError(f"--activity-url: {exc}", "time.activity_url",
                                  str(exc).split(": ", 1)[-1]) from None
    if default_item is not None:
        settings = replace(settings, default_item=_service_item(qbo, default_item))
    if clear:
        settings = replace(settings, default_item=None)
    if enabled is not None:
        settings = replace(settings, enabled=enabled)
    return settings


def _service_item(qbo: QboClient, item_id: str) -> str:
    def refused(reason: str) -> TimeConfigError:
        return TimeConfigError(f"--default-item: {reason}", "time.default_item", reason)

    wanted = item_id.strip()
    if not (wanted.isascii() and wanted.isdigit() and len(wanted) <= 64):
        raise refused(f"{item_id[:64]!r} is not a QuickBooks item id (a number)")
    try:
        item = qbo.read("Item", wanted)
    except ObjectNotFoundError:
        raise refused(f"QuickBooks has no item {wanted!r}") from None
    if item.get("Type", "Service") != "Service" or item.get("Active", True) is False:
        raise refused(f"item {wanted!r} ({item.get('Name')}) is not an active service item")
    return str(item["Id"])


def _person(qbo: QboClient, crm_user_id: str, ref: str) -> dict[str, Any]:
    """The active QBO Employee or Vendor ``ref`` (``Employee:ID`` / ``Vendor:ID``) names, with its ``kind``."""
    def refused(reason: str) -> TimeConfigError:
        return TimeConfigError(f"--map-user {crm_user_id}: {reason}", f"time.users.{crm_user_id}", reason)

    problem = key_problem(crm_user_id, USER_ID_LENGTH)
    if problem:
        raise refused(f"no CRM user has this id: it {problem}")
    try:
        kind, person_id = parse_person_ref(ref)
    except ValueError as exc:
        raise refused(str(exc)) from None
    try:
        person = qbo.read(kind, person_id)
    except ObjectNotFoundError:
        raise refused(f"QuickBooks has no {kind} {person_id}") from None
    if person.get("Active", True) is False:
        raise refused(f"{kind} {person_id} is inactive in QuickBooks")
    return {**person, "kind": kind}


def _store(connection_id: int, before: TimeSettings, after: TimeSettings, people: Mapping[str, dict[str, Any]],
           who: str) -> None:
    """Store the settings and the hand mappings in one commit, audited as ``settings.changed`` (when any)."""
    old = store.mappings(connection_id)
    changes = changes_between({TIME_KEY: before.as_json()}, {TIME_KEY: after.as_json()})
    connection = _connection(connection_id)
    connection.settings = with_time_settings(connection.settings, after)
    for user, person in people.items():
        was = old.get(user)
        ref, was_ref = f"{person['kind']}:{person['Id']}", _ref(was)
        if ref != was_ref or (was is not None and was.source != "manual"):
            store.stage_mapping(connection_id, store.Mapping(
                user, person["kind"], str(person["Id"]), person.get("DisplayName"), "manual", None,
                was.name if was else None, was.email if was else None))
        if ref != was_ref:
            changes[f"{TIME_KEY}.users.{user}"] = {"before": was_ref, "after": ref}
    if changes:
        db.session.add(AuditEntry(connection_id=connection_id, action="settings.changed", direction="admin",
                                  entity="Settings", entity_id=str(connection_id),
                                  diff={"by": who, "changes": changes}, outcome="ok",
                                  message=f"{len(changes)} time setting(s) changed by {who}"))
    db.session.commit()
    if changes:
        log.info("connection %s time settings changed by %s: %s", connection_id, who, ", ".join(changes))


def _ref(mapping: store.Mapping | None) -> str | None:
    return f"{mapping.qbo_kind}:{mapping.qbo_id}" if mapping is not None and mapping.qbo_id else None


def status(connection_id: int) -> dict[str, Any]:
    """Time settings, counts by state, hours and amounts per currency, users and why time is held."""
    connection = _connection(connection_id)
    settings = time_settings_of(connection.settings).as_json()
    db.session.rollback()
    counts = dict(db.session.execute(select(TimeEntry.state, func.count()).where(
        TimeEntry.connection_id == connection_id).group_by(TimeEntry.state)).all())
    db.session.rollback()
    held = store.entries_where(connection_id, TimeEntry.state == TimeState.HELD, limit=200)
    return {"time": settings, "entries": {state.value: int(counts.get(state, 0)) for state in TimeState},
            "users": [_user_json(m) for m in store.mappings(connection_id).values()],
            "held": [{"activity_id": e.crm_activity_id, "contact_id": e.crm_contact_id, "user_id": e.crm_user_id,
                      "kind": e.hold_kind, "reason": e.hold_reason} for e in held],
            "totals": totals(connection_id)}


def totals(connection_id: int, contact_id: str | None = None) -> dict[str, Any]:
    """Unbilled and billed hours and amounts per currency (of one contact when given)."""
    conditions: list[Any] = [TimeEntry.state.in_((TimeState.SYNCED, TimeState.BILLED))]
    if contact_id is not None:
        conditions.append(TimeEntry.crm_contact_id == contact_id)
    out: dict[str, Any] = {"unbilled": {}, "billed": {}}
    for entry in store.entries_where(connection_id, *conditions, limit=100_000):
        bucket = out["billed" if entry.state == TimeState.BILLED else "unbilled"]
        money = bucket.setdefault(entry.currency or "", {"minutes": 0, "amount": Decimal(0)})
        money["minutes"] += entry.minutes or 0
        money["amount"] += entry.amount or Decimal(0)
    return {kind: {currency: {"hours": str((Decimal(v["minutes"]) / 60).quantize(Decimal("0.01"))),
                              "minutes": v["minutes"], "amount": str(v["amount"])}
                   for currency, v in sorted(bucket.items())} for kind, bucket in out.items()}


def _user_json(mapping: store.Mapping) -> dict[str, Any]:
    return {"crm_user_id": mapping.crm_user_id, "name": mapping.name, "email": mapping.email,
            "qbo": f"{mapping.qbo_kind}:{mapping.qbo_id}" if mapping.qbo_id else None, "qbo_name": mapping.qbo_name,
            "by": mapping.source, "review_reason": mapping.review_reason, "candidates": list(mapping.candidates)}


def _connection(connection_id: int) -> Connection:
    connection = db.session.get(Connection, connection_id)
    if connection is None:
        db.session.rollback()
        raise ConnectionGoneError(f"connection {connection_id} does not exist")
    return connection
