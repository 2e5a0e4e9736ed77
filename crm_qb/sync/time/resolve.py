"""Deciding what a TimeActivity is made of: the customer, the person and the item, with per-job caches.

A job reads the CRM's users and QBO's employees and vendors at most once, and only when it meets a user without
a stored mapping; a service item name is looked up once per job. Whatever cannot be decided becomes a ``Hold``
(its ``kind`` says what releases it), never an error: held time waits in ``time_entries``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from crm_qb.crm.errors import CrmNotFoundError
from crm_qb.crm.protocol import Activity, CrmUser
from crm_qb.models import Connection
from crm_qb.qbo import timeactivity as qbo_time
from crm_qb.qbo.faults import ObjectNotFoundError
from crm_qb.sync.context import SyncContext
from crm_qb.sync.rules import time as rules
from crm_qb.sync.rules.money import to_decimal
from crm_qb.sync.time import store
from crm_qb.sync.time.settings import TimeSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Hold:
    """Why time cannot go to QBO yet: ``kind`` contact | user | item | qbo | retry, and a reason people read."""

    kind: str
    reason: str


@dataclass
class Resolver:
    """One job's view of a connection's people, items and links, read on first need."""

    ctx: SyncContext
    settings: TimeSettings
    crm_web_origin: str
    zone: str | None
    mappings: dict[str, store.Mapping] = field(default_factory=dict)
    crm_users: dict[str, CrmUser] | None = None
    people: list[rules.Person] | None = None
    items_by_name: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    items_by_id: dict[str, dict[str, Any] | None] = field(default_factory=dict)

    @classmethod
    def for_connection(cls, ctx: SyncContext, connection: Connection, settings: TimeSettings,
                       crm_web_origin: str) -> Resolver:
        """A resolver for ``ctx``'s connection with its stored mappings."""
        return cls(ctx, settings, crm_web_origin, connection.company_timezone,
                   store.mappings(ctx.connection_id))

    def facts(self, activity: Activity, customer_id: str) -> rules.TimeFacts | Hold:
        """The TimeActivity's facts for a billable activity of a linked contact, or why it is held."""
        person = self.person(str(activity.owner_id or ""))
        if isinstance(person, Hold):
            return person
        item = self.item(activity.service)
        if isinstance(item, Hold):
            return item
        item_id, item_rate = item
        link = rules.activity_link(self.settings.activity_url, self.crm_web_origin, activity.id,
                                   str(activity.contact_id))
        return rules.TimeFacts(person, customer_id, item_id, rules.hourly_rate(activity.hourly_rate, item_rate),
                               int(activity.duration_minutes or 0), rules.company_date(activity.started_at, self.zone),
                               rules.description(activity.subject, link))

    # -- who --------------------------------------------------------------------------------------------------

    def person(self, user_id: str) -> rules.Person | Hold:
        """The user's Employee/Vendor: the stored mapping, else matched now (and stored); else a user hold."""
        if not user_id:
            return Hold("user", "the activity has no owner")
        mapping = self.mappings.get(user_id) or self._match(user_id)
        if mapping.qbo_kind and mapping.qbo_id:
            return rules.Person(mapping.qbo_kind, mapping.qbo_id, mapping.qbo_name or "")
        shown = mapping.name or user_id
        return Hold("user", f"CRM user {shown} is not mapped to a QuickBooks employee or vendor "
                            f"({mapping.review_reason}); map them with crm-qb time configure --map-user")

    def _match(self, user_id: str) -> store.Mapping:
        user = self._users().get(user_id)
        name, email = (user.name, user.email) if user else (None, None)
        match = rules.match_person(name, email, self._people())
        if match.person is not None:
            mapping = store.Mapping(user_id, match.person.kind, match.person.id, match.person.display_name,
                                    match.by, None, name, email)
        else:
            reason = match.reason if user else "the CRM has no such user"
            mapping = store.Mapping(user_id, None, None, None, "review", reason, name, email, match.candidates)
        store.save_mapping(self.ctx.connection_id, mapping, store.audit(
            self.ctx.connection_id, self.ctx.job_id, f"time.user_{'mapped' if mapping.qbo_id else 'review'}",
            None, {"crm_user_id": user_id, "qbo": f"{mapping.qbo_kind}:{mapping.qbo_id}" if mapping.qbo_id else None,
                   "by": mapping.source, "reason": mapping.review_reason}))
        self.mappings[user_id] = mapping
        return mapping

    def _users(self) -> dict[str, CrmUser]:
        if self.crm_users is None:
            try:
                self.crm_users = {user.id: user for user in self.ctx.crm.list_users()}
            except CrmNotFoundError:
                self.crm_users = {}  # a CRM without GET /users: every user waits for a mapping by hand
        return self.crm_users

    def _people(self) -> list[rules.Person]:
        if self.people is None:
            self.people = [rules.person_from_qbo(kind, row) for kind, row in qbo_time.people(self.ctx.qbo)]
        return self.people

    # -- what -------------------------------------------------------------------------------------------------

    def item(self, service: str | None) -> tuple[str | None, Decimal | None] | Hold:
        """The service item (id, its rate): the one named ``service``, else the default item, else none; an item
        hold when the default item is gone or no longer an active service item."""
        item = self._named(service) if service else None
        if item is None and self.settings.default_item:
            item = self._by_id(self.settings.default_item)
            if item is None:
                return Hold("item", f"the default item {self.settings.default_item} is not an active service item "
                                    "in QuickBooks; set another with crm-qb time configure --default-item")
        if item is None:
            return None, None
        price = item.get("UnitPrice")
        return str(item["Id"]), to_decimal(price) if price not in (None, "") else None

    def _named(self, name: str) -> dict[str, Any] | None:
        key = name.strip().casefold()
        if key not in self.items_by_name:
            found = qbo_time.item_named(self.ctx.qbo, name.strip())
            self.items_by_name[key] = found if found and found.get("Type", "Service") == "Service" else None
        return self.items_by_name[key]

    def _by_id(self, item_id: str) -> dict[str, Any] | None:
        if item_id not in self.items_by_id:
            try:
                found: dict[str, Any] | None = qbo_time.read_item(self.ctx.qbo, item_id)
            except ObjectNotFoundError:
                found = None
            usable = found is not None and found.get("Active", True) is not False and found.get(
                "Type", "Service") == "Service"
            self.items_by_id[item_id] = found if usable else None
        return self.items_by_id[item_id]
