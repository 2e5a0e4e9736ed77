"""Matching a HubSpot batch create's answer to its inputs (``_traced_results``), whatever order it comes in: HubSpot
does not answer a batch in input order (docs/hubspot/facts.md §3)."""

from __future__ import annotations

from typing import Any

from crm_qb.crm.errors import ContactNotFoundError, CrmPermanentError, CrmProtocolError, CrmValidationError
from crm_qb.crm.hubspot.connector import _task_input, _task_result, _traced, _traced_results
from crm_qb.crm.protocol import NewTask, Task


def _inputs(count: int) -> list[dict[str, Any]]:
    return _traced([_task_input(f"c{n}", NewTask(f"T{n}", f"body\n[m{n}]")) for n in range(count)])


def _read(answer: dict[str, Any], inputs: list[dict[str, Any]]) -> list[Task | CrmPermanentError]:
    contact_ids = [f"c{n}" for n in range(len(inputs))]
    return _traced_results(answer, inputs, lambda item, n: _task_result(item, n, contact_ids))


def _answered(item: dict[str, Any], task_id: str, traced: bool = True) -> dict[str, Any]:
    extra = {"objectWriteTraceId": item["objectWriteTraceId"]} if traced else {}
    return {"id": task_id, "properties": {**item["properties"], "hs_task_status": "NOT_STARTED"},
            "createdAt": "2026-12-04T10:00:00Z", "updatedAt": "2026-12-04T10:00:00Z", "archived": False, **extra}


def _error(category: str, trace: str, in_context: bool = True) -> dict[str, Any]:
    context = {"objectWriteTraceId": [trace]} if in_context else {}
    return {"status": "error", "category": category, "message": "no", "context": context, "errors": [],
            "links": {}, **({} if in_context else {"id": trace})}


def test_results_in_any_order_and_errors_find_their_inputs_by_trace_id() -> None:
    inputs = _inputs(5)
    answer = {"status": "COMPLETE", "results": [_answered(inputs[4], "t4"), _answered(inputs[0], "t0"),
                                                _answered(inputs[2], "t2")],
              "errors": [_error("OBJECT_NOT_FOUND", "3"), _error("VALIDATION_ERROR", "1", in_context=False)],
              "numErrors": 2}
    made = _read(answer, inputs)
    assert [getattr(t, "id", None) for t in made] == ["t0", None, "t2", None, "t4"]
    assert [getattr(t, "contact_id", None) for t in made] == ["c0", None, "c2", None, "c4"]
    assert isinstance(made[1], CrmValidationError) and isinstance(made[3], ContactNotFoundError)


def test_results_without_trace_ids_are_matched_by_subject_and_body() -> None:
    inputs = _inputs(3)
    answer = {"status": "COMPLETE", "results": [_answered(inputs[n], f"t{n}", traced=False) for n in (2, 0, 1)]}
    made = _read(answer, inputs)
    assert [getattr(t, "id", None) for t in made] == ["t0", "t1", "t2"]


def test_an_input_neither_created_nor_refused_is_an_error_of_its_own() -> None:
    inputs = _inputs(2)
    made = _read({"status": "COMPLETE", "results": [_answered(inputs[1], "t1")],
                  "errors": [_error("SOMETHING_NEW", "9")]}, inputs)
    assert isinstance(made[0], CrmProtocolError) and getattr(made[1], "id", None) == "t1"
    assert isinstance(made[0], CrmPermanentError)
