"""The report of a run as people and scripts read it: each record as JSON, and the whole as CSV.

The CSV is written row by row from a paged walk (``store.walk``), so a report of a million records never sits
in memory. Cells starting with ``=``, ``+``, ``-`` or ``@`` get a leading apostrophe: names come from the CRM and
QuickBooks, and a spreadsheet must not run them as formulas.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from crm_qb.models import SyncRunRecord
from crm_qb.sync.firstsync import store
from crm_qb.sync.firstsync.outcomes import LABELS

COLUMNS = ("phase", "entity", "id", "name", "outcome", "planned", "partner_id", "partner_name", "reason", "error",
           "error_code", "intuit_tid", "attempts")


def record_json(record: SyncRunRecord) -> dict[str, Any]:
    """One record as the API and the CLI show it."""
    return {"phase": record.phase, "entity": record.entity, "id": record.object_id, "name": record.name,
            "outcome": record.action, "outcome_label": LABELS.get(record.action, record.action),
            "planned": record.planned, "partner_id": record.partner_id, "partner_name": record.partner_name,
            "candidates": list(record.candidates or []),
            "reason": record.reason, "error": record.error, "error_code": record.error_code,
            "intuit_tid": record.intuit_tid, "attempts": record.attempts}


def csv_lines(run_id: int, stage: str = store.RUN) -> Iterator[str]:
    """The stage's records as CSV text, a header line first, one line per record."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def line(values: list[Any]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([_cell(value) for value in values])
        return buffer.getvalue()

    yield line(list(COLUMNS))
    for record in store.walk(run_id, stage):
        data = record_json(record)
        yield line([data[key] for key in COLUMNS])


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
