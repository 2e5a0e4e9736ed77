"""What a failure of sync work says: its kind for the retry schedule, and which side, if any, is down.

The kinds are those of ``crm_qb.sync.rules.retry``. *Waiting* is not a failure of the work: the connection's lock
held by another worker, a rate limit (QBO's 429, the CRM's 429, our shared QBO budget), or Redis away. An
*outage* is a side that does not answer at all (QBO 5xx or unreachable, the CRM 5xx or unreachable, after the
clients' own short retries): it is transient, and it also marks the connection as in an outage
(``crm_qb.sync.pipeline.outage``), so the rest of a batch waits for the side instead of trying it once per record.
A *live* job's call that got no answer in time is different: live work waits only as long as a slow side takes
(``slowlane``), so its timeout says the side is slow, not down (``answer_timed_out``): the connection moves to the
slow lane, where the clients wait their full timeouts, and no outage begins (a timeout there still is one).
"""

from __future__ import annotations

from redis.exceptions import RedisError

from crm_qb.crm.errors import CrmAnswerTimeoutError, CrmRateLimitedError, CrmUnavailableError
from crm_qb.errors import TransientError
from crm_qb.qbo.faults import AnswerTimeoutError, NetworkError, ServerError, ThrottledError
from crm_qb.qbo.ratebudget import RateBudgetTimeout
from crm_qb.sync.rules.retry import ERROR, TRANSIENT, WAIT
from crm_qb.sync.services import ConnectionBusyError

WAITING: tuple[type[BaseException], ...] = (ConnectionBusyError, RateBudgetTimeout, ThrottledError,
                                            CrmRateLimitedError, RedisError)
QBO = "qbo"
CRM = "crm"


def kind_of(exc: BaseException) -> str:
    """``wait``, ``transient`` or ``error`` (crm_qb.sync.rules.retry) for a failure of sync work."""
    if isinstance(exc, WAITING):
        return WAIT
    return TRANSIENT if isinstance(exc, TransientError) else ERROR


def answer_timed_out(exc: BaseException) -> bool:
    """True when a call was sent and its side's answer did not come in time (QBO's or the CRM's)."""
    return isinstance(exc, (AnswerTimeoutError, CrmAnswerTimeoutError))


def side_down(exc: BaseException, live: bool = False) -> str | None:
    """``qbo`` or ``crm`` when ``exc`` says that side does not answer at all; None for any other failure, and for a
    live job's answer timeout (the side is slow: ``answer_timed_out``)."""
    if live and answer_timed_out(exc):
        return None
    if isinstance(exc, (ServerError, NetworkError)):
        return QBO
    if isinstance(exc, CrmUnavailableError):
        return CRM
    return None
