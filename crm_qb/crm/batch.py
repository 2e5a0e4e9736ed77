"""Creating (and reading) many contacts at once, whatever the CRM kind: its batch call when it has one.

Batching is an optional capability (DESIGN.md section 6: ``POST /contacts/batch``; HubSpot's batch create), so
it is not part of ``CrmConnector``: a connector that offers ``create_contacts`` is used as it is, any other gets
one ``create_contact`` per body. Either way each body has one result, in order: the created contact, or the
permanent error the CRM gave for that body (the others are kept). Transient failures raise.

Reading many is optional the same way (HubSpot's batch read; the REST contract has none): ``read_many`` answers
what one batch read found, and nothing for a CRM without it, whose contacts are then read one by one.

Creating many tasks is optional the same way (our ``POST /tasks/batch``, API.md; HubSpot's batch create of tasks
with their associations): ``create_tasks`` uses a connector's ``create_tasks`` and gives any other one
``create_task`` per task, each task with its own result. So is reading many tasks by id (``read_tasks``: our
``POST /tasks/batch/read``, HubSpot's batch read of tasks); without it each contact's tasks are listed.

So is remembering contacts another connector of the same account just answered (``adopt``): the backfill creates
contacts on a second connector (its own thread and session) and links them on the first; a connector that re-reads
a contact before writing it (HubSpot: no conditional writes) and keeps what it last saw skips that read for a
contact whose version it was handed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from crm_qb.crm.errors import CrmAuthError, CrmPermanentError
from crm_qb.crm.protocol import Contact, CrmConnector, NewTask, Task

Created = Contact | CrmPermanentError
TaskCreated = Task | CrmPermanentError
Item = TypeVar("Item")  # what ``one_by_one`` hands its single create
Made = TypeVar("Made")  # what that create answers


@runtime_checkable
class BatchCreates(Protocol):
    """A connector that can create many contacts in few requests."""

    def create_contacts(self, bodies: Sequence[Mapping[str, Any]]) -> list[Created]:
        """One result per body, in order."""
        ...


def create_many(crm: CrmConnector, bodies: Sequence[Mapping[str, Any]]) -> list[Created]:
    """Create a contact per body (batched when the connector can); one result per body, in order."""
    if isinstance(crm, BatchCreates):
        return crm.create_contacts(bodies)
    return one_by_one(crm.create_contact, bodies)


@runtime_checkable
class BatchTaskCreates(Protocol):
    """A connector that can create many tasks, on any contacts, in few requests."""

    def create_tasks(self, tasks: Sequence[tuple[str, NewTask]]) -> list[TaskCreated]:
        """One result per ``(contact id, task)``, in order."""
        ...


def create_tasks(crm: CrmConnector, tasks: Sequence[tuple[str, NewTask]]) -> list[TaskCreated]:
    """Create each ``(contact id, task)`` (batched when the connector can); one result per task, in order: the
    task, or the permanent error the CRM gave for it (ContactNotFoundError for a contact that is gone)."""
    if isinstance(crm, BatchTaskCreates):
        return crm.create_tasks(tasks)
    return one_by_one(lambda pair: crm.create_task(*pair), tasks)


def one_by_one(create: Callable[[Item], Made], items: Sequence[Item]) -> list[Made | CrmPermanentError]:
    """``create`` each item by its single call, as a batch would: one result per item, in order, an item the CRM
    refused being its permanent error (the others are still made). An auth failure or a transient one raises."""
    results: list[Made | CrmPermanentError] = []
    for item in items:
        try:
            results.append(create(item))
        except CrmAuthError:
            raise
        except CrmPermanentError as exc:
            results.append(exc)
    return results


@runtime_checkable
class BatchTaskReads(Protocol):
    """A connector that can read many tasks by id, whatever their contacts, in few requests."""

    def read_tasks(self, task_ids: Sequence[str]) -> list[Task] | None:
        """The tasks of ``task_ids`` that exist (a deleted one is left out); None when the CRM cannot."""
        ...


def read_tasks(crm: CrmConnector, task_ids: Sequence[str]) -> dict[str, Task] | None:
    """The tasks of ``task_ids`` by id, read in batches (a deleted task is absent); None when the connector or its
    CRM cannot read tasks by id, and each contact's tasks must be listed instead."""
    if not isinstance(crm, BatchTaskReads):
        return None
    found = crm.read_tasks(list(task_ids))
    if found is None:
        return None
    wanted = set(task_ids)
    return {task.id: task for task in found if task.id in wanted}


@runtime_checkable
class BatchReads(Protocol):
    """A connector that can read many contacts in few requests."""

    def read_contacts(self, ids: Sequence[str]) -> list[Contact]:
        """The contacts of ``ids`` it knows (others left out)."""
        ...


def read_many(crm: CrmConnector, ids: Sequence[str]) -> dict[str, Contact]:
    """The contacts of ``ids`` by id, read in batches when the connector can (else none: read each when needed).

    Only contacts answered under the id asked for are kept: a merged-away id that answers its survivor is read
    again by itself, where the connector's single read says what happened to it.
    """
    if not ids or not isinstance(crm, BatchReads):
        return {}
    wanted = set(ids)
    return {contact.id: contact for contact in crm.read_contacts(list(ids)) if contact.id in wanted}


@runtime_checkable
class RemembersContacts(Protocol):
    """A connector that keeps the contacts it last saw (and skips reads for them)."""

    def remember_contacts(self, contacts: Sequence[Contact]) -> None:
        """Keep ``contacts`` as just answered by the CRM (another connector of the same account read or wrote
        them)."""
        ...


def adopt(crm: CrmConnector, contacts: Sequence[Contact]) -> None:
    """Hand ``crm`` contacts another connector of its account just created or read (a no-op for a CRM that keeps
    none: the REST contract's writes carry the version and need no read first)."""
    if contacts and isinstance(crm, RemembersContacts):
        crm.remember_contacts(contacts)
