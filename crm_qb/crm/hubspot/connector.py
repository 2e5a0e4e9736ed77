"""The HubSpot connector: ``CrmConnector`` over HubSpot's CRM v3 objects, v4 associations and properties.

Contacts are HubSpot contacts (docs/hubspot/mapping.md for every field). Reads and writes are single calls for
one contact and batches of 100 for many (``read_contacts``, ``create_contacts``, ``update_contacts``). Changed
contacts are found with the search API on ``lastmodifieddate`` (ascending; a search stops at 10,000 results, so
a long walk restarts from the last stamp it saw), a full walk with the list API (no such cap, and not under the
search limit). Finding by e-mail reads ``/contacts/{email}?idProperty=email``, which, unlike search, sees a
contact created a moment ago. HubSpot has no optimistic concurrency: ``update_contact`` reads the contact and
refuses with VersionConflictError when its ``updatedAt`` moved since the version the caller saw, then writes.

Follow-ups are tasks associated with the contact (type 204); the billing summary goes to the contact's
"QuickBooks" property group, which ``ensure_properties`` creates on connect (and again if a write finds it gone).
A contact's company name is kept associated with a HubSpot company of that name (docs/hubspot/mapping.md §3).
Users are the portal's owners; activities (billable time, DESIGN §9) are calls and meetings, with the contact
they are associated with (docs/hubspot/mapping.md §4).
"""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import Any, TypeVar
from urllib.parse import quote

from crm_qb.answer_times import AnswerTimes
from crm_qb.crm.environment import CrmEnvironment
from crm_qb.crm.errors import (
    ActivityNotFoundError,
    ContactNotFoundError,
    CrmDuplicateError,
    CrmNotFoundError,
    CrmPermanentError,
    CrmProtocolError,
    CrmUnrepresentableError,
    CrmValidationError,
    TaskNotFoundError,
    VersionConflictError,
)
from crm_qb.crm.hubspot import mapping
from crm_qb.crm.hubspot.api import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    HubSpotApi,
    StaticToken,
    TokenSource,
    existing_id,
)
from crm_qb.crm.hubspot.limits import WAIT_SECONDS, HubSpotLimiter
from crm_qb.crm.hubspot.tokens import OAuthTokenSource
from crm_qb.crm.protocol import Activity, ActivityPage, Contact, ContactPage, CrmUser, NewTask, Task
from crm_qb.crm.rest import MAX_RETRY_AFTER
from crm_qb.models import Connection

log = logging.getLogger(__name__)

Made = TypeVar("Made")  # the record a batch create answers: a Contact or a Task

KIND = "hubspot"
CONTACTS = "/crm/v3/objects/contacts"
TASKS = "/crm/v3/objects/tasks"
COMPANIES = "/crm/v3/objects/companies"
BATCH = 100
SEARCH_CAP = 10_000
SEARCH_PAGE = 100
ASSOCIATION_PAGE = 500
# Contacts a connector remembers from its own reads and writes (a backfill's batches in flight fit many times).
SEEN_CONTACTS = 2_000


def set_up_portal(api_base: str, token: str) -> str:
    """For a new connection: the token's portal id, after creating the "QuickBooks" properties there."""
    crm = HubSpotConnector(HubSpotApi(api_base, StaticToken(token), max_retries=2))
    try:
        portal = crm.portal_id()
        crm.ensure_properties()
        return portal
    finally:
        crm.close()


def connector_for(connection: Connection, environment: CrmEnvironment) -> HubSpotConnector:
    """The HubSpot connector of a connection: its API base, its token (private app or OAuth) and its limits."""
    oauth = bool(connection.crm_refresh_token_encrypted)
    tokens: TokenSource = (OAuthTokenSource.for_connection(connection, environment) if oauth else
                           StaticToken(environment.secrets.decrypt(connection.crm_token_encrypted)))
    portal = connection.crm_account_id or f"connection-{connection.id}"
    limiter = (HubSpotLimiter(environment.redis, environment.keys, portal, environment.hubspot, count_daily=not oauth)
               if environment.redis is not None else None)
    return HubSpotConnector(HubSpotApi(
        connection.crm_base_url, tokens, limiter, max_retries=environment.max_retries,
        timeout=(CONNECT_TIMEOUT, environment.within(READ_TIMEOUT)), retry_timeouts=environment.retry_timeouts,
        max_retry_after=environment.within(MAX_RETRY_AFTER), slot_wait=environment.within(WAIT_SECONDS)))


class HubSpotConnector:
    """Talks to one HubSpot portal through ``api``."""

    def __init__(self, api: HubSpotApi) -> None:
        self.api = api
        self._properties_checked = False
        # A connector lives for one job: what it saw there saves calls (a no-op write, a company named again);
        # contacts from batch creates too, so a backfill's first link does not re-read each new contact.
        self._seen: dict[str, Contact] = {}
        self._companies: dict[str, str | None] = {}

    def __repr__(self) -> str:
        return f"HubSpotConnector({self.api.base!r})"

    @property
    def answer_times(self) -> AnswerTimes:
        """How long HubSpot took to answer this connector's calls (crm_qb.sync.pipeline.slowlane)."""
        return self.api.answer_times

    def close(self) -> None:
        """Close the HTTP session."""
        self.api.close()

    # -- contacts ---------------------------------------------------------------------------------------------

    def get_contact(self, contact_id: str) -> Contact:
        """The contact (a merged-away id answers its survivor, as HubSpot does); ContactNotFoundError if gone."""
        data = self.api.call("GET", f"{CONTACTS}/{_q(contact_id)}", params=_props(),
                             not_found=ContactNotFoundError)
        return self._remember(mapping.contact_from_object(data))

    def find_contacts_by_email(self, email: str) -> list[Contact]:
        """The contact with this e-mail (HubSpot keeps e-mail unique per portal, ignoring case), or none."""
        if not email.strip():
            return []
        try:
            data = self.api.call("GET", f"{CONTACTS}/{_q(email.strip())}",
                                 params={**_props(), "idProperty": "email"}, not_found=ContactNotFoundError)
        except ContactNotFoundError:
            return []
        contact = mapping.contact_from_object(data)
        return [contact] if (contact.email or "").casefold() == email.strip().casefold() else []

    def list_contacts_updated_since(self, since: datetime | None, *, cursor: str | None = None,
                                    page_size: int = 100) -> Iterator[ContactPage]:
        """Pages of contacts changed at or after ``since`` (search), or of every contact (list) when None."""
        size = max(1, min(page_size, BATCH))
        if since is None:
            return self._list_all(cursor, size)
        if since.tzinfo is None:
            raise ValueError(f"since must be timezone-aware, got {since!r}")
        return self._search_since(mapping.epoch_ms(since), cursor, size)

    def create_contact(self, fields: Mapping[str, Any]) -> Contact:
        """Create a contact; an e-mail HubSpot already has answers that contact (its 409 names it)."""
        props = _without_empty(mapping.contact_properties(fields))
        if not mapping.has_identity(props):
            raise CrmUnrepresentableError("HubSpot needs an email or a person's name to create a contact; add one "
                                          "to the customer in QuickBooks (a company name alone is not enough)",
                                          field="email")
        company = self._company_id(props.get("company"))
        body: dict[str, Any] = {"properties": props}
        if company is not None:  # associated in the same call (docs/hubspot/facts.md §4)
            body["associations"] = [{"to": {"id": company}, "types": [{
                "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": mapping.CONTACT_TO_COMPANY}]}]
        try:
            data = self._write("POST", CONTACTS, body, props)
        except CrmDuplicateError as exc:
            if exc.existing_id is None:
                raise
            log.info("HubSpot already has a contact with that email (correlationId %s); using it",
                     exc.correlation_id)
            return self.get_contact(exc.existing_id)
        return self._remember(mapping.contact_from_object(data))

    def update_contact(self, contact_id: str, version: int, changes: Mapping[str, Any]) -> Contact:
        """Write ``changes`` if the contact's ``updatedAt`` is still ``version``, else VersionConflictError."""
        props = mapping.contact_properties(changes)
        known = self._seen.get(contact_id)
        if not props and known is not None and known.version == version:
            return known  # nothing HubSpot holds would change (display name, tags)
        current = self.get_contact(contact_id)
        if current.version != version:
            raise VersionConflictError(f"HubSpot contact {contact_id} changed since version {version} "
                                       f"(now {current.version})", status=412)
        if not props:
            return current
        data = self._write("PATCH", f"{CONTACTS}/{_q(current.id)}", {"properties": props}, props,
                           not_found=ContactNotFoundError)
        updated = self._remember(mapping.contact_from_object(data))
        if "company" in changes:
            self._keep_company(updated.id, updated.company)
        return updated

    def read_contacts(self, ids: Sequence[str]) -> list[Contact]:
        """Batch read (100 ids per call); ids HubSpot does not know are left out."""
        found: list[Contact] = []
        for chunk in _chunks(list(ids)):
            data = self.api.call("POST", f"{CONTACTS}/batch/read", read=True, json={
                "inputs": [{"id": i} for i in chunk], "properties": list(mapping.CONTACT_PROPERTIES)})
            found += [self._remember(mapping.contact_from_object(item)) for item in _results(data)]
        return found

    def create_contacts(self, records: Sequence[Mapping[str, Any]]) -> list[Contact | CrmPermanentError]:
        """Batch create (100 per call); one result per record, in order: the contact, or HubSpot's refusal of it.

        Each input carries its own ``objectWriteTraceId``: HubSpot then refuses an input alone (207; without trace
        ids one bad input fails the whole batch) and each result is matched to its record by that id, because
        HubSpot does not answer a batch in the order of its inputs (docs/hubspot/facts.md §3). A backfill links each
        contact to the customer it was made for by this order.
        """
        created: list[Contact | CrmPermanentError] = []
        for chunk in _chunks(list(records)):
            inputs = _traced([{"properties": _without_empty(mapping.contact_properties(r))} for r in chunk])
            data = self._write("POST", f"{CONTACTS}/batch/create", {"inputs": inputs},
                               {k: v for i in inputs for k, v in i["properties"].items()})
            created += _traced_results(data, inputs, lambda item, _n: self._remember(
                mapping.contact_from_object(item)))
        return created

    def update_contacts(self, changes: Mapping[str, Mapping[str, Any]]) -> list[Contact]:
        """Batch update ``{contact id: changes}`` (100 per call), without version checks."""
        updated: list[Contact] = []
        items = [(cid, mapping.contact_properties(c)) for cid, c in changes.items()]
        for chunk in _chunks([(cid, props) for cid, props in items if props]):
            inputs = [{"id": cid, "properties": props} for cid, props in chunk]
            data = self._write("POST", f"{CONTACTS}/batch/update", {"inputs": inputs},
                               {k: v for _, p in chunk for k, v in p.items()})
            updated += [self._remember(mapping.contact_from_object(item)) for item in _results(data)]
        return updated

    def put_quickbooks_summary(self, contact_id: str, summary: Mapping[str, Any]) -> None:
        """Write the billing summary into the contact's "QuickBooks" property group."""
        props = mapping.summary_properties(summary)
        self._write("PATCH", f"{CONTACTS}/{_q(contact_id)}", {"properties": props}, props,
                    not_found=ContactNotFoundError)

    # -- tasks ------------------------------------------------------------------------------------------------

    def list_tasks(self, contact_id: str) -> list[Task]:
        """The tasks associated with the contact (v4 associations, then a batch read of the tasks)."""
        return self.read_tasks(self._associated(contact_id, "tasks"), contact_id)

    def read_tasks(self, task_ids: Sequence[str], contact_id: str | None = None) -> list[Task]:
        """The tasks of ``task_ids`` that exist, 100 per batch read (HubSpot reports unknown ids apart, 207), as
        tasks of ``contact_id`` (None: their contact is not read)."""
        found: list[Task] = []
        for chunk in _chunks(list(task_ids)):
            data = self.api.call("POST", f"{TASKS}/batch/read", read=True, json={
                "inputs": [{"id": i} for i in chunk], "properties": list(mapping.TASK_PROPERTIES)})
            found += [mapping.task_from_object(item, contact_id) for item in _results(data)]
        return found

    def create_task(self, contact_id: str, task: NewTask) -> Task:
        """Create a task associated with the contact."""
        data = self.api.call("POST", TASKS, json=_task_input(contact_id, task), not_found=ContactNotFoundError)
        return mapping.task_from_object(data, contact_id)

    def create_tasks(self, tasks: Sequence[tuple[str, NewTask]]) -> list[Task | CrmPermanentError]:
        """Batch create (100 per call), each task associated with its contact; one result per task, in order.

        Every input carries its own ``objectWriteTraceId`` (its place in the batch), which makes HubSpot report a
        refused input alone (207, docs/hubspot/facts.md §3) and lets each result be matched to its input whatever
        order HubSpot answers in (``_traced_results``).
        """
        results: list[Task | CrmPermanentError] = []
        for chunk in _chunks(list(tasks)):
            inputs = _traced([_task_input(contact_id, task) for contact_id, task in chunk])
            data = self.api.call("POST", f"{TASKS}/batch/create", json={"inputs": inputs})
            contact_ids = [contact_id for contact_id, _ in chunk]
            results += _traced_results(data, inputs, partial(_task_result, contact_ids=contact_ids))
        return results

    def update_task(self, task_id: str, changes: Mapping[str, Any]) -> Task:
        """Apply ``changes`` (``status: done`` completes it); TaskNotFoundError when it was deleted."""
        data = self.api.call("PATCH", f"{TASKS}/{_q(task_id)}", json={"properties": mapping.task_changes(changes)},
                             params={"properties": ",".join(mapping.TASK_PROPERTIES)}, not_found=TaskNotFoundError)
        return mapping.task_from_object(data, None)

    # -- owners, properties, companies ------------------------------------------------------------------------

    def list_users(self) -> list[CrmUser]:
        """The portal's owners as users, active and archived (archived owners are inactive users)."""
        users: list[CrmUser] = []
        for archived in ("false", "true"):
            after: str | None = None
            while True:
                params = {"limit": 100, "archived": archived, **({"after": after} if after else {})}
                data = self.api.call("GET", "/crm/v3/owners/", params=params)
                users += [mapping.user_from_owner(o) for o in _results(data)]
                after = _next_after(data)
                if after is None:
                    break
        return users

    # -- calls and meetings as activities (DESIGN §9, docs/hubspot/mapping.md §4) -----------------------------

    def get_activity(self, activity_id: str) -> Activity:
        """The call or meeting ``call-<id>`` / ``meeting-<id>``; ActivityNotFoundError when deleted (or not ours)."""
        try:
            objects, object_id = mapping.split_activity_id(activity_id)
        except ValueError:
            raise ActivityNotFoundError(f"HubSpot has no activity {activity_id!r}", status=404) from None
        data = self.api.call("GET", f"/crm/v3/objects/{objects}/{_q(object_id)}", params={
            "properties": ",".join(mapping.ACTIVITY_PROPERTIES[objects]), "associations": "contacts"},
            not_found=ActivityNotFoundError)
        return mapping.activity_from_object(objects, data, _first_contact(data))

    def list_activities(self, *, since: datetime | None = None, contact_id: str | None = None,
                        cursor: str | None = None, page_size: int = 100) -> Iterator[ActivityPage]:
        """Pages of calls, then of meetings, changed at or after ``since`` (all when None).

        Each object type is walked in HubSpot's order (``hs_lastmodifieddate`` ascending when ``since`` is given),
        calls first, so the whole walk is not one (updated_at, id) order: a caller keeps its high-water mark at
        the end of the walk, not per page. With ``contact_id`` the contact's associated calls and meetings are read.
        """
        if since is not None and since.tzinfo is None:
            raise ValueError(f"since must be timezone-aware, got {since!r}")
        size = max(1, min(page_size, BATCH))
        return self._activity_walk(since, contact_id, cursor, size)

    def _activity_walk(self, since: datetime | None, contact_id: str | None, cursor: str | None,
                       size: int) -> Iterator[ActivityPage]:
        kinds = list(mapping.ACTIVITY_KINDS)
        start_kind, position = _decode_activity_cursor(cursor) if cursor else (kinds[0], "")
        for index, objects in enumerate(kinds[kinds.index(start_kind):], start=kinds.index(start_kind)):
            following = kinds[index + 1] if index + 1 < len(kinds) else None
            pages = (self._contact_activities(objects, contact_id, since, position, size) if contact_id else
                     self._listed_activities(objects, position, size) if since is None else
                     self._searched_activities(objects, since, position, size))
            for activities, nxt in pages:
                cursor_next = (_encode_activity_cursor(objects, nxt) if nxt is not None else
                               _encode_activity_cursor(following, "") if following else None)
                yield ActivityPage(activities, cursor_next)
            position = ""

    def _contact_activities(self, objects: str, contact_id: str, since: datetime | None, position: str,
                            size: int) -> Iterator[tuple[tuple[Activity, ...], str | None]]:
        """The contact's associated ``objects`` (batch reads of ``size``), those changed at or after ``since``."""
        ids = self._associated(contact_id, objects)
        start = int(position or 0)
        if start >= len(ids):
            yield (), None
            return
        for offset in range(start, len(ids), size):
            data = self.api.call("POST", f"/crm/v3/objects/{objects}/batch/read", read=True, json={
                "inputs": [{"id": i} for i in ids[offset:offset + size]],
                "properties": list(mapping.ACTIVITY_PROPERTIES[objects])})
            found = [mapping.activity_from_object(objects, item, contact_id) for item in _results(data)]
            kept = tuple(a for a in found if since is None or a.updated_at >= since)
            yield kept, (str(offset + size) if offset + size < len(ids) else None)

    def _listed_activities(self, objects: str, position: str,
                           size: int) -> Iterator[tuple[tuple[Activity, ...], str | None]]:
        """Every ``objects`` (list API, with their contact associations)."""
        after = position or None
        while True:
            data = self.api.call("GET", f"/crm/v3/objects/{objects}", params={
                "properties": ",".join(mapping.ACTIVITY_PROPERTIES[objects]), "associations": "contacts",
                "limit": size, **({"after": after} if after else {})})
            nxt = _next_after(data)
            yield tuple(mapping.activity_from_object(objects, item, _first_contact(item))
                        for item in _results(data)), nxt
            if nxt is None:
                return
            if nxt == after:
                raise CrmProtocolError("HubSpot returned the same paging cursor twice; paging would never end")
            after = nxt

    def _searched_activities(self, objects: str, since: datetime, position: str,
                             size: int) -> Iterator[tuple[tuple[Activity, ...], str | None]]:
        """Search on ``hs_lastmodifieddate`` ascending (restarting from the last stamp near the 10,000 cap), then
        one batch read of the page's contact associations."""
        stamp, offset = _decode_cursor(position) if position else (mapping.epoch_ms(since), 0)
        while True:
            data = self.api.call("POST", f"/crm/v3/objects/{objects}/search", search=True, json={
                "filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE",
                                               "value": str(stamp)}]}],
                "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}],
                "properties": list(mapping.ACTIVITY_PROPERTIES[objects]), "limit": size,
                **({"after": str(offset)} if offset else {})})
            items = _results(data)
            contacts = self._contacts_of(objects, [str(item.get("id")) for item in items])
            activities = tuple(mapping.activity_from_object(objects, item, contacts.get(str(item.get("id"))))
                               for item in items)
            nxt = _next_after(data)
            if nxt is not None and activities and int(nxt) + size > SEARCH_CAP:
                last = activities[-1].version
                stamp, offset = (last, 0) if last > stamp else (stamp, int(nxt))
            elif nxt is not None:
                offset = int(nxt)
            yield activities, (_encode_cursor(stamp, offset) if nxt is not None else None)
            if nxt is None:
                return

    def _contacts_of(self, objects: str, ids: list[str]) -> dict[str, str]:
        """The first (lowest id) associated contact of each of ``ids`` (v4 batch association read)."""
        if not ids:
            return {}
        data = self.api.call("POST", f"/crm/v4/associations/{objects}/contacts/batch/read", read=True,
                             json={"inputs": [{"id": i} for i in ids]})
        found: dict[str, str] = {}
        for row in _results(data):
            targets = sorted((str(t["toObjectId"]) for t in row.get("to") or [] if isinstance(t, dict)),
                             key=_id_order)
            if targets:
                found[str((row.get("from") or {}).get("id"))] = targets[0]
        return found

    def portal_id(self) -> str:
        """The portal (hub) id the token belongs to (``GET /account-info/v3/details``, docs/hubspot/facts.md §12)."""
        data = self.api.call("GET", "/account-info/v3/details")
        if not isinstance(data, dict) or data.get("portalId") is None:
            raise CrmProtocolError("HubSpot's account details lack portalId")
        return str(data["portalId"])

    def ensure_properties(self) -> list[str]:
        """Create the contact group "QuickBooks" and its properties where missing; return the names created."""
        created: list[str] = []
        try:
            self.api.call("POST", "/crm/v3/properties/contacts/groups", json=mapping.GROUP)
            created.append(str(mapping.GROUP["name"]))
        except CrmDuplicateError:
            pass
        existing = {str(p.get("name")) for p in _results(self.api.call("GET", "/crm/v3/properties/contacts"))}
        for definition in mapping.PROPERTY_DEFINITIONS:
            if definition["name"] in existing:
                continue
            try:
                self.api.call("POST", "/crm/v3/properties/contacts", json=definition)
                created.append(definition["name"])
            except CrmDuplicateError:
                pass
        for objects in mapping.ACTIVITY_KINDS:  # the billable-time properties of calls and meetings
            created += self._ensure_activity_properties(objects)
        self._properties_checked = True
        return created

    def _ensure_activity_properties(self, objects: str) -> list[str]:
        """The "QuickBooks" group of calls or meetings and its billable-time properties, where missing."""
        created: list[str] = []
        with contextlib.suppress(CrmDuplicateError):  # the group exists already
            self.api.call("POST", f"/crm/v3/properties/{objects}/groups", json=mapping.GROUP)
        existing = {str(p.get("name")) for p in _results(self.api.call("GET", f"/crm/v3/properties/{objects}"))}
        for definition in mapping.ACTIVITY_PROPERTY_DEFINITIONS:
            if definition["name"] not in existing:
                with contextlib.suppress(CrmDuplicateError):
                    self.api.call("POST", f"/crm/v3/properties/{objects}", json=dict(definition))
                    created.append(f"{objects}.{definition['name']}")
        return created

    def _write(self, method: str, path: str, body: Mapping[str, Any], props: Mapping[str, str], *,
               not_found: type[CrmNotFoundError] = CrmNotFoundError) -> Any:
        """A write; when HubSpot says one of our ``qb_`` properties does not exist, create them once and repeat."""
        try:
            return self.api.call(method, path, json=body, not_found=not_found)
        except CrmValidationError as exc:
            ours = exc.field is not None and exc.field.startswith("qb_") and exc.field in props
            if not ours or self._properties_checked or exc.code != "VALIDATION_ERROR":
                raise
            log.warning("HubSpot lacks the QuickBooks property %s; creating the group", exc.field)
            self.ensure_properties()
            return self.api.call(method, path, json=body, not_found=not_found)

    def _keep_company(self, contact_id: str, company: str | None) -> None:
        """Associate the contact with the one HubSpot company of that name (created when there is none)."""
        company_id = self._company_id(company)
        if company_id is None or company_id in self._associated(contact_id, "companies"):
            return
        self.api.call("PUT", f"/crm/v4/objects/contacts/{_q(contact_id)}/associations/default/companies/"
                      f"{_q(company_id)}", not_found=ContactNotFoundError)

    def _company_id(self, company: str | None) -> str | None:
        """The id of the one HubSpot company named ``company`` (created when none; None when several or no name)."""
        name = (company or "").strip()
        if not name:
            return None
        key = name.casefold()
        if key not in self._companies:
            matches = [c for c in _results(self.api.call("POST", f"{COMPANIES}/search", search=True, json={
                "filterGroups": [{"filters": [{"propertyName": "name", "operator": "EQ", "value": name}]}],
                "properties": ["name"], "limit": 10})) if str(c["properties"].get("name") or "").strip().casefold()
                == key]
            if len(matches) > 1:
                log.info("HubSpot has %d companies with one contact's company name; associating none", len(matches))
                self._companies[key] = None
            else:
                self._companies[key] = str(matches[0]["id"] if matches else self.api.call(
                    "POST", COMPANIES, json={"properties": {"name": name}})["id"])
        return self._companies[key]

    def remember_contacts(self, contacts: Sequence[Contact]) -> None:
        """Keep contacts another connector of this portal just created or read (``crm.batch.adopt``)."""
        for contact in contacts:
            self._remember(contact)

    def _remember(self, contact: Contact) -> Contact:
        """Keep what HubSpot just answered for ``contact`` (the most recent SEEN_CONTACTS: memory stays flat)."""
        self._seen.pop(contact.id, None)
        self._seen[contact.id] = contact
        if len(self._seen) > SEEN_CONTACTS:
            del self._seen[next(iter(self._seen))]
        return contact

    def _associated(self, contact_id: str, to_type: str) -> list[str]:
        """Ids of the objects of ``to_type`` associated with the contact (every page)."""
        ids: list[str] = []
        after: str | None = None
        while True:
            params = {"limit": ASSOCIATION_PAGE, **({"after": after} if after else {})}
            data = self.api.call("GET", f"/crm/v4/objects/contacts/{_q(contact_id)}/associations/{to_type}",
                                 params=params, not_found=ContactNotFoundError)
            ids += [str(item["toObjectId"]) for item in _results(data)]
            after = _next_after(data)
            if after is None:
                return ids

    # -- walks ------------------------------------------------------------------------------------------------

    def _list_all(self, cursor: str | None, size: int) -> Iterator[ContactPage]:
        after = cursor
        while True:
            params = {**_props(), "limit": size, **({"after": after} if after else {})}
            data = self.api.call("GET", CONTACTS, params=params)
            nxt = _next_after(data)
            yield ContactPage(tuple(map(mapping.contact_from_object, _results(data))), nxt)
            if nxt is None:
                return
            if nxt == after:
                raise CrmProtocolError("HubSpot returned the same paging cursor twice; paging would never end")
            after = nxt

    def _search_since(self, since_ms: int, cursor: str | None, size: int) -> Iterator[ContactPage]:
        """Search pages by ``lastmodifieddate`` ascending; near the 10,000 cap, restart from the last stamp seen."""
        stamp, offset = _decode_cursor(cursor) if cursor else (since_ms, 0)
        while True:
            data = self.api.call("POST", f"{CONTACTS}/search", search=True, json={
                "filterGroups": [{"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE",
                                               "value": str(stamp)}]}],
                "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
                "properties": list(mapping.CONTACT_PROPERTIES), "limit": size,
                **({"after": str(offset)} if offset else {})})
            contacts = tuple(map(mapping.contact_from_object, _results(data)))
            nxt = _next_after(data)
            if nxt is not None and contacts and int(nxt) + size > SEARCH_CAP:
                last = contacts[-1].version
                stamp, offset = (last, 0) if last > stamp else (stamp, int(nxt))
            elif nxt is not None:
                offset = int(nxt)
            following = _encode_cursor(stamp, offset) if nxt is not None else None
            yield ContactPage(contacts, following)
            if following is None:
                return


def _props() -> dict[str, str]:
    return {"properties": ",".join(mapping.CONTACT_PROPERTIES)}


def _task_input(contact_id: str, task: NewTask) -> dict[str, Any]:
    """The create body of a task associated with the contact (HubSpot needs a timestamp: now, when none)."""
    props = _without_empty(mapping.task_properties(task))
    props.setdefault("hs_timestamp", str(mapping.epoch_ms(datetime.now().astimezone())))
    return {"properties": props, "associations": [
        {"to": {"id": contact_id}, "types": [{"associationCategory": "HUBSPOT_DEFINED",
                                               "associationTypeId": mapping.TASK_TO_CONTACT}]}]}


def _traced(inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The batch inputs, each with its place in the batch as its ``objectWriteTraceId``."""
    return [{**given, "objectWriteTraceId": str(n)} for n, given in enumerate(inputs)]


def _traced_results(data: Any, inputs: list[dict[str, Any]],
                    parse: Callable[[dict[str, Any], int], Made]) -> list[Made | CrmPermanentError]:
    """A traced batch create's answer in input order: ``parse(result, input's place)``, or the error HubSpot gave
    for that input. An input HubSpot neither created nor refused is a CrmProtocolError of its own.

    A result without its trace id is matched to the first input not yet answered whose properties it holds as
    sent (a follow-up's body ends with its own marker, so it matches one input only)."""
    answered: dict[int, Made | CrmPermanentError] = {}
    untraced: list[dict[str, Any]] = []
    for item in _results(data):
        trace = str(item.get("objectWriteTraceId") or "")
        if trace.isdigit() and int(trace) < len(inputs):
            answered[int(trace)] = parse(item, int(trace))
        else:
            untraced.append(item)
    for item in untraced:
        raw = item.get("properties")
        props: dict[str, Any] = raw if isinstance(raw, dict) else {}
        same = (n for n, given in enumerate(inputs) if n not in answered and all(
            props.get(name) == value for name, value in given["properties"].items()))
        match = next(same, None)
        if match is not None:
            answered[match] = parse(item, match)
    errors = data.get("errors") if isinstance(data, dict) else None
    for error in errors if isinstance(errors, list) else []:
        if isinstance(error, dict):
            for trace in _error_traces(error):
                if trace.isdigit() and int(trace) < len(inputs):
                    answered.setdefault(int(trace), _input_error(error))
    return [answered[n] if n in answered else CrmProtocolError(
        f"HubSpot's batch create answered neither a record nor an error for input {n}") for n in range(len(inputs))]


def _task_result(item: dict[str, Any], n: int, contact_ids: list[str]) -> Task:
    """The task HubSpot made for input ``n``, on that input's contact."""
    return mapping.task_from_object(item, contact_ids[n])


def _error_traces(error: Mapping[str, Any]) -> list[str]:
    """The trace ids a 207 ``StandardError`` is about: its ``context.objectWriteTraceId``, else its ``id``."""
    context = error.get("context")
    traces = context.get("objectWriteTraceId") if isinstance(context, dict) else None
    if isinstance(traces, list) and traces:
        return [str(trace) for trace in traces]
    return [str(error["id"])] if error.get("id") is not None else []


def _input_error(error: Mapping[str, Any]) -> CrmPermanentError:
    """The typed error of one refused input, as the single create would have raised it."""
    category = str(error.get("category") or "") or None
    text = f"HubSpot refused an input of the batch: {category or 'error'}: {error.get('message') or 'no details'}"
    if category == "OBJECT_NOT_FOUND":
        return ContactNotFoundError(text, status=404, code=category)
    if category == "CONFLICT":
        return CrmDuplicateError(text, existing_id=existing_id(str(error.get("message") or "")), status=409,
                                 code=category)
    if category in ("VALIDATION_ERROR", "INVALID_ASSOCIATION", "PROPERTY_DOESNT_EXIST"):
        return CrmValidationError(text, status=400, code=category)
    return CrmPermanentError(text, code=category)


def _results(data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise CrmProtocolError("HubSpot's answer lacks a results array")
    return [item for item in data["results"] if isinstance(item, dict)]


def _next_after(data: Any) -> str | None:
    paging = data.get("paging") if isinstance(data, dict) else None
    nxt = paging.get("next") if isinstance(paging, dict) else None
    after = nxt.get("after") if isinstance(nxt, dict) else None
    return str(after) if after not in (None, "") else None


def _first_contact(obj: Any) -> str | None:
    """The first (lowest id) contact in a v3 object's ``associations`` (a call may name several)."""
    linked = ((obj.get("associations") or {}).get("contacts") or {}).get("results") if isinstance(obj, dict) else None
    ids = sorted((str(r["id"]) for r in linked or [] if isinstance(r, dict) and r.get("id") is not None),
                 key=_id_order)
    return ids[0] if ids else None


def _id_order(object_id: str) -> tuple[int, str]:
    return (int(object_id), "") if object_id.isdigit() else (1 << 62, object_id)


def _encode_activity_cursor(objects: str, position: str) -> str:
    return base64.urlsafe_b64encode(f"{objects}|{position}".encode()).decode()


def _decode_activity_cursor(cursor: str) -> tuple[str, str]:
    try:
        objects, position = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"not a HubSpot activities cursor: {cursor!r}") from None
    if objects not in mapping.ACTIVITY_KINDS:
        raise ValueError(f"not a HubSpot activities cursor: {cursor!r}")
    return objects, position


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), BATCH):
        yield items[start:start + BATCH]


def _without_empty(props: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in props.items() if value != ""}


def _encode_cursor(stamp: int, offset: int) -> str:
    return base64.urlsafe_b64encode(f"{stamp}:{offset}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[int, int]:
    try:
        stamp, offset = base64.urlsafe_b64decode(cursor.encode()).decode().split(":")
        return int(stamp), int(offset)
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"not a HubSpot contacts cursor: {cursor!r}") from None


def _q(object_id: str) -> str:
    return quote(object_id, safe="")
