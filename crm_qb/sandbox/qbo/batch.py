"""The batch endpoint: up to 30 independent items, each answered with its object, a query or a Fault."""

from __future__ import annotations

from . import faults
from .engine import Engine
from .entities import spec_for
from .reading import run_query

MAX_ITEMS = 30


def item_count(body: object) -> int:
    """How many items a batch body carries, for metering (1 when it is malformed: it costs one request)."""
    items = body.get("BatchItemRequest") if isinstance(body, dict) else None
    return len(items) if isinstance(items, list) and 0 < len(items) <= MAX_ITEMS else 1


def run_batch(engine: Engine, realm_id: str, body: object) -> list[dict]:
    """The ``BatchItemResponse`` list for a ``{"BatchItemRequest": [...]}`` body (HTTP 200 overall)."""
    items = body.get("BatchItemRequest") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items:
        raise faults.required_param("BatchItemRequest")
    if len(items) > MAX_ITEMS:
        raise faults.batch_too_large(MAX_ITEMS)
    bids = [item.get("bId") if isinstance(item, dict) else None for item in items]
    if any(not isinstance(bid, str) or not bid for bid in bids) or len(set(bids)) != len(bids):
        raise faults.required_param("bId")
    return [_one(engine, realm_id, item) for item in items]


def _one(engine: Engine, realm_id: str, item: dict) -> dict:
    """Run one item; its failure is its own Fault and never affects the other items."""
    try:
        return {"bId": item["bId"], **_execute(engine, realm_id, item)}
    except faults.QboFault as fault:
        return {"bId": item["bId"], "Fault": fault.body()}


def _execute(engine: Engine, realm_id: str, item: dict) -> dict:
    if "Query" in item:
        return {"QueryResponse": run_query(engine, realm_id, str(item["Query"]))}
    entity, payload = _payload(item)
    operation = item.get("operation")
    if operation == "create":
        return {entity: engine.create(realm_id, entity, payload)}
    if operation == "update" and item.get("optionsData") == "void":
        return {entity: engine.void(realm_id, entity, payload)}
    if operation == "update":
        return {entity: engine.update(realm_id, entity, payload)}
    if operation == "delete":
        return {entity: engine.delete(realm_id, entity, payload)}
    raise faults.unsupported_operation(f"Operation {operation!r} is not supported in a batch item.")


def _payload(item: dict) -> tuple[str, dict]:
    for key, value in item.items():
        spec = spec_for(key) if key not in ("bId", "operation", "optionsData") else None
        if spec is not None and isinstance(value, dict):
            return spec.name, value
    raise faults.QboFault("2000", "Invalid or unsupported object name",
                          "The batch item carries no entity the sandbox supports")
