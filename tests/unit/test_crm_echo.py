"""``agreed``: a CRM drain settles a contact's events without reading it only when every one of them reports the
version its link already agreed on (the echo of crm-qb's own write)."""

from __future__ import annotations

from typing import Any

import pytest

from crm_qb.sync.customers.crm_side import agreed
from crm_qb.sync.pipeline.events import EventRef, reported_version


def _event(payload: dict[str, Any]) -> EventRef:
    return EventRef(1, "Contact", "c1", "updated", None, payload)


@pytest.mark.parametrize(("versions", "link_version", "expected"), [
    ([1764633600123], "1764633600123", True),  # HubSpot's echo: occurredAt is the agreed updatedAt
    ([1764633600123, 1764633600123], "1764633600123", True),  # one PATCH, several propertyChange events
    ([1764633600123, 1764633600999], "1764633600123", False),  # a later change came too: read it
    ([1764633600999], "1764633600123", False),  # a newer version
    ([1764633600000], "1764633600123", False),  # an older one (never skipped on a guess)
    ([None], "1764633600123", False),  # a hook that reports no version (the REST contract's)
    ([1764633600123], None, False),  # a link that agreed on no version yet
    ([True], "True", False),  # not a version
])
def test_agreed_only_when_every_event_reports_the_links_version(versions: list[Any], link_version: str | None,
                                                                 expected: bool) -> None:
    events = [_event({} if v is None else {"version": v}) for v in versions]
    assert agreed(events, link_version) is expected


def test_reported_version_reads_the_payloads_version() -> None:
    assert reported_version(_event({"version": 7})) == "7"
    assert reported_version(_event({"hubspot": {"occurredAt": 7}})) is None


def test_a_rest_hook_reports_the_version_of_the_contact_it_carries() -> None:
    """A REST contract hook carries the contact as the change left it: its version is the one reported."""
    created = {"id": "e1", "type": "contact.created", "contact": {"id": "c1", "version": 3}}
    assert reported_version(_event(created)) == "3"
    assert reported_version(_event({**created, "type": "contact.updated"})) == "3"
    assert reported_version(_event({"id": "e2", "type": "contact.deleted", "contact": {"id": "c1", "version": 3}})) \
        is None  # a delete is never settled as an echo
    assert reported_version(_event({"id": "e3", "type": "contact.updated", "contact": {"id": "c1"}})) is None
    assert reported_version(_event({"id": "e4", "type": "contact.updated", "contact": "c1"})) is None
