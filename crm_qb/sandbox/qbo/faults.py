"""QBO faults in Intuit's exact shapes: the data-service ``Fault``, the gateway ``fault`` and OAuth errors."""

from __future__ import annotations


class QboFault(Exception):
    """A data-service fault: rendered as ``{"Fault": {"Error": [...], "type": ...}, "time": ...}``."""

    def __init__(self, code: str, message: str, detail: str, *, status: int = 400,
                 fault_type: str = "ValidationFault", element: str = "") -> None:
        super().__init__(f"{code} {message}: {detail}")
        self.code = code
        self.message = message
        self.detail = detail
        self.status = status
        self.fault_type = fault_type
        self.element = element

    def body(self) -> dict:
        """The ``Fault`` object (without the envelope's ``time``)."""
        error = {"Message": self.message, "Detail": self.detail, "code": self.code, "element": self.element}
        return {"Error": [error], "type": self.fault_type}


def stale_object() -> QboFault:
    """5010: the SyncToken given is not the object's current one."""
    return QboFault("5010", "Stale Object Error",
                    "Stale Object Error : You and root were working on this at the same time. "
                    "root finished before you did, so your work was not saved.")


def duplicate_name() -> QboFault:
    """6240: the DisplayName is used by another customer, vendor or employee (inactive included)."""
    return QboFault("6240", "Duplicate Name Exists Error",
                    "The name supplied already exists. : Another customer, vendor or employee is already "
                    "using this \nname. Please use a different name.")


def object_not_found(element: str = "") -> QboFault:
    """610: the object or a referenced list object does not exist or is inactive."""
    return QboFault("610", "Object Not Found",
                    "Object Not Found : Something you're trying to use has been made inactive. Check the "
                    "fields with accounts, customers, items, vendors or employees.", element=element)


def required_param(name: str) -> QboFault:
    """2020: a required field is missing."""
    return QboFault("2020", "Required param missing, need to supply the required value for the API",
                    f"Required parameter {name} is missing in the request", element=name)


def invalid_value(name: str, detail: str) -> QboFault:
    """2050-style validation of one field's value."""
    return QboFault("2050", "Invalid string length or value", f"{detail} : {name}", element=name)


def invalid_number(name: str, value: object) -> QboFault:
    """2080: a numeric field carries something that is not a number (code per the catalogue, FACTS 3.2)."""
    return QboFault("2080", "Invalid Number", f"Invalid Number : {name} : {value}", element=name)


def invalid_date(name: str, value: object) -> QboFault:
    """2060: a date field carries something that is not a date."""
    return QboFault("2060", "Invalid Date Format", f"Invalid date : {value}", element=name)


def invalid_enum(name: str, value: object) -> QboFault:
    """2170: a value outside an enumeration (code per the catalogue, FACTS 3.2; the wording is the sandbox's)."""
    return QboFault("2170", "Invalid Enumeration", f"Invalid Enumeration : {name} : {value}", element=name)


def business_rule(detail: str) -> QboFault:
    """6000: a business validation error, with ``detail`` saying which rule."""
    return QboFault("6000", "A business validation error has occurred while processing your request",
                    f"Business Validation Error: {detail}")


def balance_on_delete() -> QboFault:
    """6220: a customer with an open balance cannot be made inactive through the API."""
    return QboFault("6220", "Delete List Has Balance Error",
                    "The entity you are trying to delete has an open balance. : This customer cannot be "
                    "deleted because it has a non-zero balance")


def unsupported_operation(detail: str) -> QboFault:
    """500: the entity does not support the operation asked for."""
    return QboFault("500", "Unsupported Operation", detail)


def invalid_request_id() -> QboFault:
    """2130: the requestid query parameter is malformed (too long)."""
    return QboFault("2130", "Invalid Request ID", "Request ID should not be more than 50 characters long")


def batch_too_large(limit: int) -> QboFault:
    """1040: a batch request carries more items than allowed."""
    return QboFault("1040", "Batch size exceeds limit",
                    f"Batch size exceeds limit: maximum number of BatchItemRequest is {limit}")


def query_fault(message: str, detail: str) -> QboFault:
    """4000: the query could not be parsed or evaluated."""
    return QboFault("4000", message, detail, element="")


def cdc_window(days: int) -> QboFault:
    """changedSince older than the CDC look-back window (or malformed)."""
    return QboFault("2070", "Invalid date/time value",
                    f"changedSince must be a date-time within the past {days} days", element="changedSince")


def system_fault() -> QboFault:
    """10000: an injected 5xx, as QBO's SystemFault."""
    return QboFault("10000", "An application error has occurred while processing your request",
                    "System Failure Error: An unexpected error occurred while accessing or saving your data. "
                    "Please wait a few minutes and try again.", status=500, fault_type="SystemFault")


def gateway_401(epoch_ms: int, detail: str = "Token expired or not recognised") -> dict:
    """The gateway's 401 body (lowercase keys, epoch-millis time), as Intuit sends for a bad bearer token."""
    return _gateway("message=AuthenticationFailed; errorCode=003200; statusCode=401", detail, "3200",
                    "AUTHENTICATION", epoch_ms)


def gateway_403(epoch_ms: int) -> dict:
    """The gateway's 403 body: the token is not authorised for this realm."""
    return _gateway("message=AuthorizationFailed; errorCode=003100; statusCode=403", None, "3100", "SERVICE",
                    epoch_ms)


def _gateway(message: str, detail: str | None, code: str, fault_type: str, epoch_ms: int) -> dict:
    return {"warnings": None, "intuitObject": None,
            "fault": {"error": [{"message": message, "detail": detail, "code": code, "element": None}],
                      "type": fault_type},
            "report": None, "queryResponse": None, "batchItemResponse": [], "attachableResponse": [],
            "syncErrorResponse": None, "requestId": None, "time": epoch_ms, "status": None, "cdcresponse": []}
