"""What a run did to one record, in the report's words: the action names, the counts they add to, the reason of
a failure in words with the other side's own error, and the time left.

The counts are DESIGN §11's: ``link``, ``create_in_crm``, ``create_in_qbo``, ``review``, ``transactions`` and
``followups``, and ``time``: earlier billable CRM activities sent to QBO as TimeActivity (the preview predicts
them; time of a CRM user with no QBO person is held by the run instead). A record the real run failed counts
under what the preview planned for it, so a preview and the run it announced report the same numbers, the run
telling how many of them failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from crm_qb.crm.errors import CrmAuthError, CrmError, CrmNotFoundError, CrmValidationError, VersionConflictError
from crm_qb.qbo.faults import DuplicateNameError, QboFault, StaleObjectError, ValidationFault

COUNT_KEYS = ("link", "create_in_crm", "create_in_qbo", "review", "transactions", "followups", "time")
# Record actions (``SyncRunRecord.action``) and the count each adds to (None: not counted).
COUNTED = {"link": "link", "create_in_crm": "create_in_crm", "create_in_qbo": "create_in_qbo", "review": "review",
           "transaction": "transactions", "followup": "followups", "time": "time"}
LABELS = {"link": "Link", "create_in_crm": "Create in the CRM", "create_in_qbo": "Create in QuickBooks",
          "review": "Needs review", "transaction": "Mirror transaction", "followup": "Follow-up task",
          "time": "Time into QuickBooks", "update": "Update", "unchanged": "Unchanged", "skip": "Skipped",
          "failed": "Failed"}
_BY_ENTITY = {
    "Customer": {"linked": "link", "created": "create_in_crm", "review": "review", "updated": "update",
                 "unchanged": "unchanged", "skipped": "skip", "failed": "failed"},
    "Contact": {"linked": "link", "created": "create_in_qbo", "review": "review", "updated": "update",
                "unchanged": "unchanged", "skipped": "skip", "failed": "failed"},
}
_FOLLOWUP = {"created": "followup", "failed": "failed"}
_TIME = {"created": "time", "updated": "time", "unchanged": "unchanged"}  # time waits held, never "failed"
_TXN = {"created": "transaction", "updated": "transaction", "unchanged": "unchanged", "failed": "failed"}


def action_of(entity: str, counter: str) -> str:
    """The record action of a backfill counter (``linked``, ``created``, …) for a record of ``entity``."""
    if entity == "FollowUp":
        return _FOLLOWUP.get(counter, "failed")
    if entity == "Activity":
        return _TIME.get(counter, "skip")
    return _BY_ENTITY.get(entity, _TXN).get(counter, "skip")


def count_key(action: str, planned: str | None = None) -> str | None:
    """The count a record adds to: its action's, or for a failed record the action the preview planned."""
    return COUNTED.get(planned or "") if action == "failed" else COUNTED.get(action)


@dataclass(frozen=True)
class Failure:
    """A failure as the report shows it: the reason in words, the other side's error, its code and intuit_tid."""

    reason: str
    error: str
    code: str | None = None
    intuit_tid: str | None = None


def describe(exc: BaseException) -> Failure:
    """The report's account of ``exc`` (a QBO fault, a CRM error, or anything else a unit raised)."""
    if isinstance(exc, QboFault):
        return Failure(_qbo_reason(exc), str(exc), exc.code or None, exc.intuit_tid)
    if isinstance(exc, CrmError):
        code = exc.code or (str(exc.status) if exc.status else None)
        return Failure(_crm_reason(exc), str(exc), code)
    return Failure("The record could not be synced: its data was not what crm-qb expected.",
                   f"{type(exc).__name__}: {exc}")


def _qbo_reason(exc: QboFault) -> str:
    if isinstance(exc, DuplicateNameError):
        return "QuickBooks already has a customer, vendor or employee with this name."
    if isinstance(exc, StaleObjectError):
        return "The customer changed in QuickBooks while it was being written; retry to merge again."
    if isinstance(exc, ValidationFault):
        return "QuickBooks refused the values of this record."
    return "QuickBooks refused the request."


def _crm_reason(exc: CrmError) -> str:
    if isinstance(exc, CrmValidationError):
        return "The CRM refused the values of this record (for example a field too long for it)."
    if isinstance(exc, VersionConflictError):
        return "The contact changed in the CRM while it was being written; retry to merge again."
    if isinstance(exc, CrmNotFoundError):
        return "The record no longer exists in the CRM."
    if isinstance(exc, CrmAuthError):
        return "The CRM refused crm-qb's credentials."
    return "The CRM refused the request."


def eta_seconds(done: int, total: int, elapsed: float) -> int | None:
    """Seconds left at the pace so far (None before the first record or when nothing is left to estimate)."""
    if done <= 0 or total <= done or elapsed <= 0:
        return 0 if total and done >= total else None
    return round(elapsed / done * (total - done))
