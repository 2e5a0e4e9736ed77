"""``POST /contacts/batch`` (DESIGN.md section 6) and ``POST /tasks/batch`` (our extension of it, API.md): up to
100 creates and updates in one request.

Each item is applied on its own, exactly as the single call would be (same validation, same version check,
same hook, a no-op sends none), so one bad item fails alone and the others are kept. Results come back in
request order: the creates first, then the updates, ``index`` counting across both lists. A malformed
envelope (not an object, a list that is not a list, more than 100 items) fails the whole request with a 400.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from crm_qb.sandbox.crm.store import CrmStore
from crm_qb.sandbox.crm.validation import ApiError, contact_changes, invalid, require_object, task_changes

MAX_BATCH_ITEMS = 100
ENVELOPE_KEYS = ("create", "update")
Operation = Callable[[CrmStore, Any], tuple[int, dict[str, Any]]]


def run_contact_batch(store: CrmStore, body: Any) -> list[dict[str, Any]]:
    """Apply every create, then every update; return one result per item in request order."""
    creates, updates = _envelope(body, ENVELOPE_KEYS)
    operations: list[tuple[Operation, Any]] = [(_create, item) for item in creates]
    operations += [(_update, item) for item in updates]
    return [_result(index, operation, store, item, "contact") for index, (operation, item) in enumerate(operations)]


def run_task_batch(store: CrmStore, body: Any) -> list[dict[str, Any]]:
    """Create every task of ``{"create": [{"contact_id", ...task fields}]}``; one result per item, in order."""
    (creates,) = _envelope(body, ("create",))
    return [_result(index, _create_task, store, item, "task") for index, item in enumerate(creates)]


def _envelope(body: Any, keys: tuple[str, ...]) -> list[list[Any]]:
    """Return the lists under ``keys`` (each may be absent), else raise a 400 for the whole request."""
    body = require_object(body)
    for key in body:
        if key not in keys:
            raise invalid(key, f"unknown field (a batch has {' and '.join(keys)})")
    lists = [body.get(key, []) for key in keys]
    for key, items in zip(keys, lists, strict=True):
        if not isinstance(items, list):
            raise invalid(key, "must be a list")
    total = sum(len(items) for items in lists)
    if total > MAX_BATCH_ITEMS:
        raise ApiError(400, "invalid_body", f"a batch holds at most {MAX_BATCH_ITEMS} items "
                                            f"({' + '.join(keys)}), got {total}")
    return lists


def _create(store: CrmStore, item: Any) -> tuple[int, dict[str, Any]]:
    """Apply one create item (a contact body)."""
    return 201, store.create_contact(contact_changes(item, creating=True))


def _update(store: CrmStore, item: Any) -> tuple[int, dict[str, Any]]:
    """Apply one update item ``{"id", "version", ...fields}``."""
    fields = dict(require_object(item))
    contact_id, version = fields.pop("id", None), fields.pop("version", None)
    if not isinstance(contact_id, str) or not contact_id:
        raise invalid("id", "is required: the id of the contact to update")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise invalid("version", "is required: the version of the contact the change was made on")
    return 200, store.update_contact(contact_id, contact_changes(fields, creating=False), version)


def _create_task(store: CrmStore, item: Any) -> tuple[int, dict[str, Any]]:
    """Apply one task create item: the contact's id and the body ``POST /contacts/{id}/tasks`` takes."""
    fields = dict(require_object(item))
    contact_id = fields.pop("contact_id", None)
    if not isinstance(contact_id, str) or not contact_id:
        raise invalid("contact_id", "is required: the id of the contact the task is for")
    return 201, store.create_task(contact_id, task_changes(fields, creating=True))


def _result(index: int, operation: Operation, store: CrmStore, item: Any, kind: str) -> dict[str, Any]:
    """Run one item; return its result with the record (under ``kind``), or with the error it failed with."""
    try:
        status, record = operation(store, item)
    except ApiError as error:
        return {"index": index, "status": error.status, "error": error.as_json()["error"]}
    return {"index": index, "status": status, kind: record}
