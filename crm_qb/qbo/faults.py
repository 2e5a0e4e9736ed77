"""QuickBooks faults: one tolerant parser for every error shape Intuit sends, into typed errors.

Shapes handled (docs/qbo/facts.md §2.5): the data-service ``Fault`` (JSON, also inside an HTTP 200 body), the gateway's
lowercase ``fault`` with an epoch-millisecond ``time``, XML ``IntuitResponse`` faults (throttling answers in
XML even when JSON was asked for), a ``Fault`` nested in a ``QueryResponse``, and batch item faults. Keys and
tags are matched case-insensitively because Intuit spells them both ways.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from types import MappingProxyType
from typing import Any

from crm_qb.errors import CrmQbError, PermanentError, TransientError
from crm_qb.qbo import exactjson

THROTTLE_WAIT_SECONDS = 60.0  # Intuit: "wait 60 seconds before retrying the request"

_GATEWAY_MESSAGE = re.compile(r"^\s*message=(?P<name>[A-Za-z]+);")


@dataclass(frozen=True)
class FaultError:
    """One ``Error`` entry of a fault."""

    code: str
    message: str
    detail: str
    element: str


class QboFault(CrmQbError):
    """A request QuickBooks refused; carries what Intuit said and the ``intuit_tid`` to quote to support."""

    hint = "QuickBooks refused the request."

    def __init__(
        self,
        *,
        code: str = "",
        message: str = "",
        detail: str = "",
        element: str = "",
        intuit_tid: str | None = None,
        http_status: int | None = None,
        fault_type: str = "",
        errors: tuple[FaultError, ...] = (),
        time: datetime | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.detail = detail
        self.element = element
        self.intuit_tid = intuit_tid
        self.http_status = http_status
        self.fault_type = fault_type
        self.errors = errors
        self.time = time
        super().__init__(self._summary())
        # Set after the bases' __init__, which (for TransientError) resets it to None.
        self.retry_after = retry_after

    def __str__(self) -> str:
        return self._summary()

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only __init__ defeats the default exception pickling (needed across processes).
        return (_restore, (type(self), self.__dict__.copy()))

    def _summary(self) -> str:
        """The user-facing sentence: what QuickBooks refused, why, and how to find the call again."""
        reason = _reason(self.message, self.detail)
        parts = [self.hint]
        if reason:
            parts.append(f"QuickBooks said: {reason}.")
        ref = [f"code {self.code}" if self.code else "", f"field {self.element}" if self.element else ""]
        ref += [f"HTTP {self.http_status}" if self.http_status else ""]
        ref += [f"intuit_tid {self.intuit_tid}" if self.intuit_tid else ""]
        ref_text = ", ".join(r for r in ref if r)
        return " ".join(parts) + (f" ({ref_text})" if ref_text else "")


def _restore(cls: type[QboFault], state: dict[str, Any]) -> QboFault:
    """Rebuild a pickled fault without calling its keyword-only constructor."""
    error = cls.__new__(cls)
    error.__dict__.update(state)
    error.args = (error._summary(),)
    return error


class ValidationFault(QboFault, PermanentError):
    """QuickBooks rejected the data sent (a business or format rule)."""

    hint = "QuickBooks rejected the data."


class RequestRejectedError(QboFault, PermanentError):
    """A 4xx answer that fits no more specific class (a wrong URL, an unsupported operation)."""

    hint = "QuickBooks rejected the request."


class DuplicateNameError(ValidationFault):
    """6240: the DisplayName is already used by a customer, vendor or employee (active or not)."""

    hint = "The name is already used in QuickBooks by another customer, vendor or employee."


class ObjectNotFoundError(ValidationFault):
    """610: the object, or an object it refers to, does not exist or is inactive."""

    hint = "QuickBooks could not find the record, or a record it refers to is inactive."


class StaleObjectError(ValidationFault):
    """5010: the SyncToken is old; the caller re-reads, re-merges and writes again."""

    hint = "The record was changed in QuickBooks since it was read."


class BooksClosedError(ValidationFault):
    """6200/6210: the transaction date is on or before the company's closing date."""

    hint = "The books are closed in QuickBooks for this transaction's date."


class CompanyInactiveError(QboFault, PermanentError):
    """6190: the QuickBooks subscription has ended or has a billing problem; stop syncing this company."""

    hint = "The QuickBooks company's subscription is inactive."


class AuthenticationError(QboFault, PermanentError):
    """401/3200/100: the access token is expired or revoked; the caller refreshes once, then reconnects."""

    hint = "QuickBooks did not accept the connection's credentials."


class AuthorizationError(QboFault, PermanentError):
    """403/3100/120: the app or user may not access this company; an admin must reconnect."""

    hint = "The app is not authorised for this QuickBooks company."


class ThrottledError(QboFault, TransientError):
    """429/3001: too many requests for this company; wait ``retry_after`` seconds (60 unless told)."""

    hint = "QuickBooks asked us to slow down."


class ServerError(QboFault, TransientError):
    """5xx or a system fault: QuickBooks failed on its side; retry later."""

    hint = "QuickBooks failed to process the request."


class NetworkError(TransientError):
    """The call never got an answer: connection refused or reset, DNS, or a timeout."""


class AnswerTimeoutError(NetworkError):
    """No answer came within the client's timeout (QuickBooks may still have done what was asked)."""


_BY_CODE: Mapping[str, type[QboFault]] = MappingProxyType({
    "5010": StaleObjectError,
    "6240": DuplicateNameError,
    "610": ObjectNotFoundError,
    "6200": BooksClosedError,
    "6210": BooksClosedError,
    "6190": CompanyInactiveError,
    "3001": ThrottledError,
    "3200": AuthenticationError,
    "3100": AuthorizationError,
    "120": AuthorizationError,
})


def parse_fault(status: int, headers: Mapping[str, str] | None, body: bytes) -> QboFault | None:
    """The typed fault in a QBO response, or None for a success (a 2xx without a Fault)."""
    return parse_response(status, headers, body)[0]


def parse_response(status: int, headers: Mapping[str, str] | None, body: bytes) -> tuple[QboFault | None, Any]:
    """The typed fault in a QBO response (None for a success), and the body's JSON document when the body is a
    JSON object (parsed once, amounts as Decimal), else None: the client reads a success's rows from it rather
    than parsing a page of a thousand objects a second time."""
    tid = header(headers, "intuit_tid")
    retry_after = _retry_after(header(headers, "Retry-After"))
    found, document = _fault_in_body(body)
    if found is None:
        if 200 <= status < 300:
            return None, document
        return _fault_for_status(status, tid, retry_after), document
    fault, time = found
    return fault_from_json(fault, http_status=status, intuit_tid=tid, retry_after=retry_after, time=time), document


def fault_from_json(
    fault: Mapping[str, Any],
    *,
    http_status: int | None,
    intuit_tid: str | None = None,
    retry_after: float | None = None,
    time: datetime | None = None,
) -> QboFault:
    """The typed error for a ``Fault`` object (any key casing), e.g. one batch item's fault."""
    fields = _lower_keys(fault)
    errors = tuple(_error_entry(e) for e in _as_list(fields.get("error")))
    first = errors[0] if errors else FaultError("", "", "", "")
    fault_type = str(fields.get("type") or "")
    cls = classify(first.code, http_status, fault_type)
    if cls is ThrottledError and retry_after is None:
        retry_after = THROTTLE_WAIT_SECONDS
    return cls(
        code=first.code, message=first.message, detail=first.detail, element=first.element,
        intuit_tid=intuit_tid, http_status=http_status, fault_type=fault_type, errors=errors,
        time=time, retry_after=retry_after,
    )


def classify(code: str, http_status: int | None, fault_type: str) -> type[QboFault]:
    """The error class for a fault code, HTTP status and fault type; codes win over statuses."""
    kind = fault_type.lower()
    if code in _BY_CODE:
        return _BY_CODE[code]
    if code == "100" and (http_status == 401 or "authentication" in kind):
        return AuthenticationError  # 100 is also the code of query syntax faults, which are validation
    by_status = _class_for_status(http_status)
    if by_status is not None:
        return by_status
    if "system" in kind:
        return ServerError
    if "authentication" in kind:
        return AuthenticationError
    if "authorization" in kind:
        return AuthorizationError
    if "validation" in kind or http_status in (None, 200, 400):
        return ValidationFault
    return RequestRejectedError


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """A header's value by case-insensitive name, whatever mapping type holds the headers."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _class_for_status(status: int | None) -> type[QboFault] | None:
    if status == 401:
        return AuthenticationError
    if status == 403:
        return AuthorizationError
    if status == 429:
        return ThrottledError
    if status is not None and status >= 500:
        return ServerError
    return None


def _fault_for_status(status: int, tid: str | None, retry_after: float | None) -> QboFault:
    """A fault for an error answer whose body carries none (an HTML error page, an empty body)."""
    cls = _class_for_status(status) or RequestRejectedError
    if cls is ThrottledError and retry_after is None:
        retry_after = THROTTLE_WAIT_SECONDS
    return cls(message=f"HTTP {status} without a fault body", intuit_tid=tid, http_status=status,
               retry_after=retry_after)


def _fault_in_body(body: bytes) -> tuple[tuple[Mapping[str, Any], datetime | None] | None, Any]:
    """The fault object and the response time, from a JSON or XML body (None when there is no fault), and the
    parsed JSON document (None unless the body is JSON)."""
    text = body.lstrip()
    if text.startswith(b"<"):
        return _xml_fault(text), None
    if text.startswith(b"{"):
        try:
            document = exactjson.loads(text)
        except (ValueError, ArithmeticError):  # ArithmeticError: a number Decimal cannot hold
            return None, None
        return _json_fault(document), document
    return None, None


def _json_fault(document: Any) -> tuple[Mapping[str, Any], datetime | None] | None:
    if not isinstance(document, Mapping):
        return None
    top = _lower_keys(document)
    fault = top.get("fault")
    query = top.get("queryresponse")
    if not isinstance(fault, Mapping) and isinstance(query, Mapping):
        fault = _lower_keys(query).get("fault")
    if not isinstance(fault, Mapping):
        return None
    return fault, _parse_time(top.get("time"))


def _xml_fault(text: bytes) -> tuple[Mapping[str, Any], datetime | None] | None:
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        return None
    fault = next((el for el in root.iter() if _tag(el) == "fault"), None)
    if fault is None:
        return None
    errors = [_xml_error(el) for el in fault if _tag(el) == "error"]
    return {"type": fault.get("type", ""), "Error": errors}, _parse_time(root.get("time"))


def _xml_error(element: ET.Element) -> dict[str, str]:
    children = {_tag(child): (child.text or "") for child in element}
    return {
        "code": element.get("code", ""),
        "element": element.get("element", ""),
        "message": children.get("message", ""),
        "detail": children.get("detail", ""),
    }


def _tag(element: ET.Element) -> str:
    """The lowercase local name of an XML element, namespace removed."""
    return element.tag.rsplit("}", 1)[-1].lower()


def _error_entry(entry: Any) -> FaultError:
    fields = _lower_keys(entry) if isinstance(entry, Mapping) else {}
    return FaultError(
        code=_text(fields.get("code")),
        message=_text(fields.get("message")),
        detail=_text(fields.get("detail")),
        element=_text(fields.get("element")),
    )


def _reason(message: str, detail: str) -> str:
    """Message and detail as one readable phrase, without Intuit's usual repetition of the message."""
    match = _GATEWAY_MESSAGE.match(message)
    if match:
        message = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", match["name"]).capitalize()
    message, detail = _squash(message), _squash(detail)
    if detail.lower().startswith(message.lower()):
        detail = detail[len(message):].lstrip(" :")
    return "; ".join(part for part in (message, detail) if part).rstrip(".")


def _squash(text: str) -> str:
    return " ".join(text.split())


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _lower_keys(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {str(key).lower(): value for key, value in mapping.items()}


def _parse_time(value: Any) -> datetime | None:
    """An ISO timestamp or the gateway's epoch milliseconds, as an aware UTC datetime."""
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date), or None."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
