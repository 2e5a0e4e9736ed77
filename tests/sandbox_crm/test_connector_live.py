"""RestConnector against a real reference CRM server: both sides of section 6 agree."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest
import requests

from crm_qb.crm.errors import ContactNotFoundError, CrmAuthError, TaskNotFoundError, VersionConflictError
from crm_qb.crm.protocol import NewTask
from crm_qb.crm.rest import RestConnector
from crm_qb.sandbox.crm.server import RunningServer
from tests.sandbox_crm.conftest import TOKEN


@pytest.fixture
def crm(live_crm: RunningServer, http: requests.Session) -> Iterator[RestConnector]:
    """A connector for the live CRM that records sleeps instead of sleeping."""
    connector = RestConnector(live_crm.url, TOKEN, session=http, sleep=lambda seconds: None)
    yield connector
    connector.close()


def test_contact_round_trip_and_version_conflict(crm: RestConnector, http: requests.Session,
                                                 live_crm: RunningServer) -> None:
    created = crm.create_contact({"first_name": "Ada", "email": "Ada@Example.com",
                                  "billing_address": {"city": "London"}})
    assert crm.get_contact(created.id) == created
    assert crm.find_contacts_by_email("ada@example.COM") == [created]
    updated = crm.update_contact(created.id, created.version, {"phone": "+44 1"})
    assert (updated.version, updated.phone, updated.billing_address.city) == (2, "+44 1", "London")
    http.patch(f"{live_crm.url}/_sandbox/contacts/{created.id}", json={"notes": "edited by a person"})
    with pytest.raises(VersionConflictError):
        crm.update_contact(created.id, updated.version, {"phone": "+44 2"})
    fresh = crm.get_contact(created.id)
    assert crm.update_contact(created.id, fresh.version, {"phone": "+44 2"}).notes == "edited by a person"
    with pytest.raises(ContactNotFoundError):
        crm.get_contact("missing")
    with pytest.raises(CrmAuthError):
        RestConnector(live_crm.url, "wrong", session=http).get_contact(created.id)


def test_walk_with_changes_in_between_sees_everyone(crm: RestConnector, http: requests.Session,
                                                    live_crm: RunningServer) -> None:
    ids = http.post(f"{live_crm.url}/_sandbox/seed", json={"contacts": 60}).json()["ids"]
    seen: list[str] = []
    for number, page in enumerate(crm.list_contacts_updated_since(None, page_size=7)):
        seen.extend(contact.id for contact in page.contacts)
        http.patch(f"{live_crm.url}/_sandbox/contacts/{ids[number]}", json={"notes": f"touched {number}"})
    assert set(seen) == set(ids)
    since = crm.get_contact(ids[0]).updated_at
    later = [c.id for page in crm.list_contacts_updated_since(since) for c in page.contacts]
    assert later[0] == ids[0] and len(later) == len(set(later))


def test_injected_faults_are_retried(crm: RestConnector, http: requests.Session, live_crm: RunningServer) -> None:
    contact = crm.create_contact({"first_name": "Ada"})
    http.post(f"{live_crm.url}/_sandbox/faults", json={"count": 3, "status": 429, "retry_after": 0})
    assert crm.get_contact(contact.id) == contact
    http.post(f"{live_crm.url}/_sandbox/faults", json={"count": 2, "status": 503})
    task = crm.create_task(contact.id, NewTask("Chase invoice 1001", due_date=date(2024, 6, 1)))
    assert crm.update_task(task.id, {"status": "done"}).completed_at is not None
    assert [t.status for t in crm.list_tasks(contact.id)] == ["done"]
    counts = http.get(f"{live_crm.url}/_sandbox/requests").json()["endpoints"]
    assert counts["GET /contacts/<contact_id>"] == 4 and counts["POST /contacts/<contact_id>/tasks"] == 3
    http.delete(f"{live_crm.url}/tasks/{task.id}", headers={"Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(TaskNotFoundError):
        crm.update_task(task.id, {"status": "open"})
    crm.put_quickbooks_summary(contact.id, {"open_balance": "12.00"})
    assert crm.get_contact(contact.id).quickbooks == {"open_balance": "12.00"}
