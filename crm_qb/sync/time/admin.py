"""What an operator does with time: configure it (default item, user mappings) and see where it stands.

The service functions behind ``crm-qb time configure|status`` and, later, the console's time settings page
(DESIGN §11): each change is validated against QBO before it is stored (the item must be an active service
item, the person an active Employee or Vendor), audited, and followed at once by a release of the time it held,
under the connection's sync lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from crm_qb.db import db
from crm_qb.errors import PermanentError
from crm_qb.models import AuditEntry, Connection, TimeEntry, TimeState
from crm_qb.qbo.client import QboClient
from crm_qb.qbo.faults import ObjectNotFoundError
from crm_qb.sync.context import build_context
from crm_qb.sync.rules.time import parse_person_ref
from crm_qb.sync.services import ConnectionGoneError, SyncServices
from crm_qb.sync.time import apply, store
from crm_qb.sync.time.settings import TimeSettings, parse_time_settings, time_settings_of, with_time_settings


class TimeConfigError(PermanentError):
    """A time setting or user mapping cannot be stored; the message names what to fix."""


def configure(services: SyncServices, connection_id: int, *, default_item: str | None = None,
              clear_default_item: bool = False, map_users: Mapping[str, str] | None = None,
              enabled: bool | None = None, activity_url: str | None = None) -> dict[str, Any]:
    """Validate and store time settings and hand mappings, then release held time; return the new state."""
    ctx = build_context(services, connection_id)
    try:
        with services.connection_lock(connection_id):
            settings = _new_settings(ctx.qbo, connection_id, default_item, clear_default_item, enabled,
                                     activity_url)
            mapped = {user: _map_user(ctx.qbo, connection_id, user, ref) for user, ref in (map_users or {}).items()}
            released = apply.release(ctx, refused_too=True)
    finally:
        ctx.close()
    return {"settings": settings.as_json(), "mapped": mapped, "released": released,
            **status(connection_id)}


def _new_settings(qbo: QboClient, connection_id: int, default_item: str | None, clear: bool,
                  enabled: bool | None, activity_url: str | None) -> TimeSettings:
    connection = _connection(connection_id)
    settings = time_settings_of(connection.settings)
    if activity_url is not None:
        settings = parse_time_settings({**settings.as_json(), "activity_url": activity_url})
    if default_item is not None:
        settings = replace(settings, default_item=_service_item(qbo, default_item))
    if clear:
        settings = replace(settings, default_item=None)
    if enabled is not None:
        settings = replace(settings, enabled=enabled)
    connection.settings = with_time_settings(connection.settings, settings)
    db.session.add(AuditEntry(connection_id=connection_id, action="time.configured", direction="admin",
                              entity="Connection", entity_id=str(connection_id), diff=settings.as_json(),
                              outcome="ok"))
    db.session.commit()
    return settings


def _service_item(qbo: QboClient, item_id: str) -> str:
    try:
        item = qbo.read("Item", item_id.strip())
    except ObjectNotFoundError:
        raise TimeConfigError(f"--default-item: QuickBooks has no item {item_id!r}") from None
    if item.get("Type", "Service") != "Service" or item.get("Active", True) is False:
        raise TimeConfigError(f"--default-item: item {item_id!r} ({item.get('Name')}) is not an active service item")
    return str(item["Id"])


def _map_user(qbo: QboClient, connection_id: int, crm_user_id: str, ref: str) -> str:
    """Map a CRM user to ``Employee:ID`` / ``Vendor:ID`` by hand (checked in QBO); return the stored ref."""
    try:
        kind, person_id = parse_person_ref(ref)
    except ValueError as exc:
        raise TimeConfigError(f"--map-user {crm_user_id}: {exc}") from None
    try:
        person = qbo.read(kind, person_id)
    except ObjectNotFoundError:
        raise TimeConfigError(f"--map-user {crm_user_id}: QuickBooks has no {kind} {person_id}") from None
    if person.get("Active", True) is False:
        raise TimeConfigError(f"--map-user {crm_user_id}: {kind} {person_id} is inactive in QuickBooks")
    old = store.mappings(connection_id).get(crm_user_id)
    mapping = store.Mapping(crm_user_id, kind, str(person["Id"]), person.get("DisplayName"), "manual", None,
                            old.name if old else None, old.email if old else None)
    store.save_mapping(connection_id, mapping, AuditEntry(
        connection_id=connection_id, action="time.user_mapped", direction="admin", entity="CrmUser",
        entity_id=crm_user_id, diff={"qbo": f"{kind}:{person['Id']}", "by": "manual"}, outcome="ok"))
    return f"{kind}:{person['Id']}"


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
