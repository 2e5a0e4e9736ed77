"""Cursor paging over contacts: ordered by (updated_at, id), stable while contacts change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient

from crm_qb.sandbox.crm.store import CrmStore
from tests.sandbox_crm.conftest import AUTH


def seed(client: FlaskClient, count: int) -> list[str]:
    """Create ``count`` contacts through the control API and return their ids in creation order."""
    return client.post("/_sandbox/seed", json={"contacts": count, "seed": 7}).json["ids"]


def page(client: FlaskClient, **params: Any) -> dict[str, Any]:
    """GET one page of /contacts."""
    response = client.get("/contacts", query_string=params, headers=AUTH)
    assert response.status_code == 200, response.json
    return response.json


def walk(client: FlaskClient, between_pages: Any = None, **params: Any) -> list[dict[str, Any]]:
    """Follow next_cursor to the end, calling ``between_pages(n)`` after page n."""
    seen, cursor, number = [], None, 0
    while True:
        body = page(client, **params, **({"cursor": cursor} if cursor else {}))
        seen.extend(body["contacts"])
        cursor, number = body["next_cursor"], number + 1
        if cursor is None:
            return seen
        if between_pages:
            between_pages(number)


def test_pages_cover_every_contact_once_in_updated_order(client: FlaskClient) -> None:
    ids = seed(client, 250)
    seen = walk(client, limit=40)
    assert [c["id"] for c in seen] == ids
    keys = [(c["updated_at"], c["id"]) for c in seen]
    assert keys == sorted(keys)
    assert page(client, limit=1000)["next_cursor"] is None
    assert len(page(client)["contacts"]) == 100


def test_contacts_changed_during_a_walk_are_never_skipped(client: FlaskClient) -> None:
    ids = seed(client, 120)
    edited: list[str] = []

    def edit_some(number: int) -> None:
        # Change a contact already walked past and one still ahead, and create one.
        for contact_id in (ids[number * 10 - 1], ids[-number]):
            client.patch(f"/_sandbox/contacts/{contact_id}", json={"notes": f"edit {number}"})
            edited.append(contact_id)
        edited.append(client.post("/_sandbox/contacts", json={"first_name": f"New {number}"}).json["id"])

    seen = walk(client, edit_some, limit=25)
    seen_ids = [c["id"] for c in seen]
    assert set(ids) | set(edited) <= set(seen_ids)
    latest = {c["id"]: c for c in walk(client, limit=1000)}
    final = {}
    for contact in seen:
        final[contact["id"]] = contact
    assert final == latest, "the last copy of each contact seen in the walk is its current state"


def test_updated_since_includes_changes_at_or_after_the_time(client: FlaskClient) -> None:
    ids = seed(client, 30)
    middle = page(client, limit=1000)["contacts"][14]
    changed = client.patch(f"/_sandbox/contacts/{ids[0]}", json={"notes": "late"}).json
    since = page(client, updated_since=middle["updated_at"], limit=5)
    rest = walk(client, updated_since=middle["updated_at"].replace("Z", "+00:00"), limit=5)
    assert since["contacts"][0]["id"] == middle["id"]
    assert [c["id"] for c in rest] == [*ids[14:], ids[0]] and rest[-1] == changed


@pytest.mark.parametrize(("params", "field"), [
    ({"limit": "0"}, "limit"), ({"limit": "1001"}, "limit"), ({"limit": "ten"}, "limit"),
    ({"cursor": "garbage!"}, "cursor"), ({"cursor": "WzFd"}, "cursor"),
    ({"updated_since": "yesterday"}, "updated_since"), ({"updated_since": "2024-01-01T00:00:00"}, "updated_since"),
])
def test_bad_paging_parameters_are_400(client: FlaskClient, params: dict[str, str], field: str) -> None:
    response = client.get("/contacts", query_string=params, headers=AUTH)
    assert response.status_code == 400
    assert response.json["error"]["field"] == field


def test_change_times_stay_strictly_increasing_when_the_clock_stands_still() -> None:
    frozen = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    store = CrmStore(None, emit=lambda event: None, clock=lambda: frozen)
    stamps = [store.create_contact({"first_name": str(n)})["updated_at"] for n in range(3)]
    assert stamps == ["2024-05-01T12:00:00.000000Z", "2024-05-01T12:00:00.000001Z", "2024-05-01T12:00:00.000002Z"]
    store.close()


def test_a_persisted_store_keeps_contacts_settings_and_order(tmp_path: Any) -> None:
    path = str(tmp_path / "crm.sqlite3")
    first = CrmStore(path, emit=lambda event: None)
    contact = first.create_contact({"first_name": "Kept"})
    first.set_meta("token", "persisted")
    first.close()
    second = CrmStore(path, emit=lambda event: None, clock=lambda: datetime(2000, 1, 1, tzinfo=UTC))
    assert second.get_contact(contact["id"]) == contact and second.get_meta("token") == "persisted"
    later = second.create_contact({"first_name": "Later"})
    assert later["updated_at"] > contact["updated_at"], "an earlier clock never reorders changes"
    second.close()
