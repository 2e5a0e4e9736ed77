"""Intuit's CloudEvents read without the schema (webhooks/notices.py ``_plain_cloudevents``) load exactly as the
schema loads them, and anything the short path does not vouch for goes to the schema."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from webhooks.notices import _CLOUDEVENTS, PayloadError, _plain_cloudevents, parse_qbo

REALM = "9130350000000001"


def _event(**changes: Any) -> dict[str, Any]:
    event = {"specversion": "1.0", "id": "0b9f6b9e-1", "source": "intuit.x", "type": "qbo.customer.updated.v1",
             "datacontenttype": "application/json", "time": "2026-11-21T10:00:00.123456789Z",
             "intuitentityid": "42", "intuitaccountid": REALM, "data": {"deletedId": "7"}}
    for key, value in changes.items():
        if value is _DROP:
            event.pop(key)
        else:
            event[key] = value
    return event


_DROP = object()

PLAIN = [
    [_event()],
    [_event(), _event(id="other", type="qbo.invoice.deleted.v2", intuitentityid=" 9 ")],
    [_event(intuitentityid=None, time=None, data=None)],
    [_event(intuitentityid=_DROP, time=_DROP, data=_DROP)],
    [_event(id="  padded  ", intuitaccountid=f" {REALM} ", time=" 2026-11-21T10:00:00Z ")],
    [_event(type="qbo.customer.updated.v1\n")],  # the schema's regex accepts a final newline too
    [_event(extra={"ignored": True})],
    [],
]

UNUSUAL = [
    [_event(id=7)],  # a number for an id: the schema accepts it, as a string
    [_event(intuitaccountid=9130350000000001)],
    [_event(intuitentityid=42)],
    [_event(id="")],
    [_event(id=True)],
    [_event(id=_DROP)],
    [_event(type="qbo.customer")],
    [_event(type=None)],
    [_event(time="yesterday")],
    [_event(time=12)],
    [_event(intuitaccountid="  ")],
    ["not an object"],
    [_event(), 5],
]


@pytest.mark.parametrize("body", PLAIN)
def test_plain_events_load_as_the_schema_loads_them(body: list[Any]) -> None:
    assert _plain_cloudevents(copy.deepcopy(body)) == _CLOUDEVENTS.load(copy.deepcopy(body))


@pytest.mark.parametrize("body", UNUSUAL)
def test_anything_unusual_is_left_to_the_schema(body: list[Any]) -> None:
    assert _plain_cloudevents(copy.deepcopy(body)) is None


def test_numeric_ids_still_parse_and_bad_fields_are_still_named() -> None:
    notice = parse_qbo([_event(id=7, intuitentityid=42)])[0]
    assert (notice.dedupe_key, notice.entity_id) == ("ce:7", "42")
    with pytest.raises(PayloadError) as bad:
        parse_qbo([_event(), _event(time="yesterday")])
    assert bad.value.field == "[1].time"
