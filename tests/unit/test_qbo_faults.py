"""Every QBO fault shape parses into the right typed error with a readable message."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime

import pytest

from crm_qb.errors import PermanentError, TransientError
from crm_qb.qbo.faults import (
    AuthenticationError,
    AuthorizationError,
    BooksClosedError,
    CompanyInactiveError,
    DuplicateNameError,
    ObjectNotFoundError,
    QboFault,
    RequestRejectedError,
    ServerError,
    StaleObjectError,
    ThrottledError,
    ValidationFault,
    fault_from_json,
    parse_fault,
)
from tests.support import QBO_FIXTURES

TID = {"intuit_tid": "1-abc-tid"}


def fixture_bytes(name: str) -> bytes:
    return (QBO_FIXTURES / name).read_bytes()


@pytest.mark.parametrize(
    ("name", "status", "expected", "code"),
    [
        ("fault_generic_shape.json", 400, ValidationFault, "<code>"),
        ("fault_stale_object_5010.json", 400, StaleObjectError, "5010"),
        ("fault_duplicate_name_6240.json", 400, DuplicateNameError, "6240"),
        ("fault_object_not_found_610.json", 400, ObjectNotFoundError, "610"),
        ("fault_auth_3200_gateway_401.json", 401, AuthenticationError, "3200"),
        ("fault_authz_3100_gateway_403.json", 403, AuthorizationError, "3100"),
        ("fault_auth_100_xml.xml", 401, AuthenticationError, "100"),
        ("fault_throttle_3001_429.xml", 429, ThrottledError, "3001"),
    ],
)
def test_every_fault_payload_parses_into_its_typed_error(name: str, status: int, expected: type, code: str) -> None:
    fault = parse_fault(status, TID, fixture_bytes(name))

    assert type(fault) is expected
    assert fault.code == code
    assert fault.http_status == status
    assert fault.intuit_tid == "1-abc-tid"
    assert fault.message


@pytest.mark.parametrize(
    ("expected", "base"),
    [
        (ValidationFault, PermanentError), (DuplicateNameError, PermanentError),
        (ObjectNotFoundError, PermanentError), (StaleObjectError, PermanentError),
        (BooksClosedError, PermanentError), (CompanyInactiveError, PermanentError),
        (AuthenticationError, PermanentError), (AuthorizationError, PermanentError),
        (ThrottledError, TransientError), (ServerError, TransientError),
    ],
)
def test_each_fault_is_permanent_or_transient(expected: type, base: type) -> None:
    assert issubclass(expected, QboFault)
    assert issubclass(expected, base)


def test_data_service_fields_are_read_whatever_their_casing() -> None:
    fault = parse_fault(400, {}, fixture_bytes("fault_duplicate_name_6240.json"))

    assert fault.fault_type == "ValidationFault"
    assert fault.message == "Duplicate Name Exists Error"
    assert fault.detail.startswith("The name supplied already exists.")
    assert fault.element == ""


def test_gateway_fault_reads_lowercase_keys_and_epoch_millisecond_time() -> None:
    fault = parse_fault(401, {"Intuit_Tid": "gw-1"}, fixture_bytes("fault_auth_3200_gateway_401.json"))

    assert fault.fault_type == "AUTHENTICATION"
    assert fault.detail == "Malformed bearer token: too short or too long"
    assert fault.time == datetime.fromtimestamp(1633520295.688, tz=UTC)
    assert fault.intuit_tid == "gw-1"


def test_gateway_authorization_fault_with_null_detail() -> None:
    fault = parse_fault(403, {}, fixture_bytes("fault_authz_3100_gateway_403.json"))

    assert fault.detail == ""
    assert "Authorization failed" in str(fault)


def test_xml_fault_reads_namespaced_tags_and_time() -> None:
    fault = parse_fault(401, {}, fixture_bytes("fault_auth_100_xml.xml"))

    assert fault.fault_type == "AuthenticationFault"
    assert fault.message == "General Authentication Error"
    assert fault.detail.startswith("AuthenticationErrorGeneral")
    assert fault.time == datetime(2018, 8, 20, 9, 23, 36, 95000, tzinfo=UTC)


def test_xml_throttle_waits_sixty_seconds_even_when_json_was_asked_for() -> None:
    fault = parse_fault(429, {"Content-Type": "application/json"}, fixture_bytes("fault_throttle_3001_429.xml"))

    assert isinstance(fault, ThrottledError)
    assert fault.retry_after == 60


def test_throttle_honours_retry_after_header() -> None:
    fault = parse_fault(429, {"Retry-After": "7"}, fixture_bytes("fault_throttle_3001_429.xml"))

    assert fault.retry_after == 7


def test_throttle_code_wins_over_an_old_403_status() -> None:
    fault = parse_fault(403, {}, fixture_bytes("fault_throttle_3001_429.xml"))

    assert isinstance(fault, ThrottledError)


def test_a_fault_inside_an_http_200_body_is_a_fault() -> None:
    body = fixture_bytes("fault_stale_object_5010.json")

    fault = parse_fault(200, {}, body)

    assert isinstance(fault, StaleObjectError)
    assert fault.http_status == 200


def test_a_success_body_is_no_fault() -> None:
    assert parse_fault(200, {}, fixture_bytes("customer_read.json")) is None
    assert parse_fault(200, {}, fixture_bytes("batch_response.json")) is None


def test_an_error_body_with_a_number_no_decimal_holds_is_a_fault_of_its_status() -> None:
    """decimal.InvalidOperation is not a ValueError: such a body is read as one without a fault object."""
    fault = parse_fault(400, TID, b'{"Fault": {"Error": [{"code": 10e999999999999999999}]}}')

    assert isinstance(fault, RequestRejectedError)
    assert fault.http_status == 400


def test_query_fault_nested_in_query_response_is_validation_not_authentication() -> None:
    xml = (b'<IntuitResponse xmlns="http://schema.intuit.com/finance/v3"><QueryResponse>'
           b'<Fault type="Validation"><Error code="100" element="query"><Message>General Error</Message>'
           b"<Detail>QueryParserError: Encountered \"FROMM\"</Detail></Error></Fault></QueryResponse>"
           b"</IntuitResponse>")
    as_json = json.dumps({"QueryResponse": {"Fault": {"type": "Validation", "Error": [
        {"code": "4000", "Message": "Error parsing query", "element": "query"}]}}}).encode()

    xml_fault = parse_fault(400, {}, xml)
    json_fault = parse_fault(200, {}, as_json)

    assert type(xml_fault) is ValidationFault
    assert xml_fault.element == "query"
    assert type(json_fault) is ValidationFault
    assert json_fault.code == "4000"


def test_batch_item_fault_parses_from_the_fault_object() -> None:
    items = json.loads(fixture_bytes("batch_response.json"))["BatchItemResponse"]

    faults = [fault_from_json(item["Fault"], http_status=200, intuit_tid="b-1") for item in items[:3]]

    assert [type(f) for f in faults] == [DuplicateNameError, ObjectNotFoundError, StaleObjectError]
    assert all(f.intuit_tid == "b-1" for f in faults)


@pytest.mark.parametrize(
    ("code", "status", "fault_type", "expected"),
    [
        ("6200", 400, "ValidationFault", BooksClosedError),
        ("6210", 400, "ValidationFault", BooksClosedError),
        ("6190", 400, "ValidationFault", CompanyInactiveError),
        ("120", 401, "AuthorizationFault", AuthorizationError),
        ("6000", 400, "ValidationFault", ValidationFault),
        ("10000", 500, "SystemFault", ServerError),
        ("10000", 400, "SystemFault", ServerError),
        ("2020", 400, "", ValidationFault),
        ("", 404, "", RequestRejectedError),
        ("", 503, "", ServerError),
    ],
)
def test_codes_statuses_and_types_classify(code: str, status: int, fault_type: str, expected: type) -> None:
    body = json.dumps({"Fault": {"type": fault_type, "Error": [{"code": code, "Message": "m"}]}}).encode()

    assert type(parse_fault(status, {}, body)) is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [(500, ServerError), (502, ServerError), (503, ServerError), (401, AuthenticationError),
     (403, AuthorizationError), (429, ThrottledError), (404, RequestRejectedError)],
)
def test_error_status_without_a_fault_body_still_gets_a_typed_error(status: int, expected: type) -> None:
    fault = parse_fault(status, {"intuit_tid": "t"}, b"<html><body>Bad gateway</body></html>")

    assert type(fault) is expected
    assert fault.intuit_tid == "t"


def test_server_error_keeps_a_retry_after_header() -> None:
    fault = parse_fault(503, {"Retry-After": "12"}, b"")

    assert isinstance(fault, ServerError)
    assert fault.retry_after == 12


def test_message_tells_the_user_what_was_refused_and_why() -> None:
    fault = parse_fault(400, TID, fixture_bytes("fault_stale_object_5010.json"))

    assert str(fault) == (
        "The record was changed in QuickBooks since it was read. QuickBooks said: Stale Object Error; You and "
        "root were working on this at the same time. root finished before you did, so your work was not saved. "
        "(code 5010, HTTP 400, intuit_tid 1-abc-tid)"
    )


def test_message_flattens_line_breaks_and_names_the_field() -> None:
    body = json.dumps({"Fault": {"type": "ValidationFault", "Error": [{
        "Message": "Invalid string length", "Detail": "Length of\nfield exceeded", "code": "2050",
        "element": "DisplayName"}]}}).encode()

    text = str(parse_fault(400, {}, body))

    assert text == ("QuickBooks rejected the data. QuickBooks said: Invalid string length; Length of field "
                    "exceeded. (code 2050, field DisplayName, HTTP 400)")


def test_gateway_message_is_made_readable() -> None:
    text = str(parse_fault(401, {}, fixture_bytes("fault_auth_3200_gateway_401.json")))

    assert text.startswith("QuickBooks did not accept the connection's credentials. QuickBooks said: "
                           "Authentication failed; Malformed bearer token")


def test_faults_survive_pickling_for_other_processes() -> None:
    fault = parse_fault(429, TID, fixture_bytes("fault_throttle_3001_429.xml"))

    copy = pickle.loads(pickle.dumps(fault))

    assert type(copy) is ThrottledError
    assert (copy.code, copy.retry_after, copy.intuit_tid, str(copy)) == ("3001", 60, "1-abc-tid", str(fault))


def test_money_in_a_fault_body_never_becomes_float() -> None:
    body = b'{"Fault": {"Error": [{"code": "6000", "Message": "m", "Detail": 1.10}], "type": "ValidationFault"}}'

    assert parse_fault(400, {}, body).detail == "1.10"
