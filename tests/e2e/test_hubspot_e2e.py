"""HubSpot end to end: the local HubSpot, the QBO sandbox, crm-qb web, two workers and the scheduler, all real
processes.

What only HubSpot has, on top of the capabilities the parametrized suite runs for both CRM kinds (customer sync,
follow-ups, merges and deletes, faults, shared realm, throttled tenant): the app card's request, signed by
HubSpot's proxy, is answered; a company-only customer waits for review (HubSpot needs a person or an e-mail);
HubSpot's merge of two contacts that were both being linked (a new record) moves the link and its archive
unlinks it. Every change reaches crm-qb as HubSpot's v3-signed webhook over HTTP.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from redis import Redis
from sqlalchemy import select

from crm_qb.app import create_app
from crm_qb.config import Settings
from crm_qb.db import db
from crm_qb.models import ContactLink, LinkState
from tests.support import wait_for
from tests.support.e2e import World, running_world

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # minutes of real processes: `scripts/test`, not CI


@pytest.fixture
def world(settings: Settings, tmp_path: Path, redis_client: Redis,
          spawn: Callable[..., subprocess.Popen[bytes]]) -> Iterator[World]:
    """The QBO sandbox, the local HubSpot, crm-qb web, two workers and the scheduler."""
    with running_world(settings, tmp_path, spawn, "hubspot") as made:
        yield made


def test_the_app_card_is_answered_for_hubspots_signed_proxy_call(world: World) -> None:
    world.create_customer(DisplayName="Card Holder", PrimaryEmailAddr={"Address": "card@example.com"})
    contact = wait_for(lambda: world.contact_with(email="card@example.com"), what="the HubSpot contact")
    url = f"{world.web}/hubspot/card/contacts/{contact['id']}?limit=5"

    def fetched() -> dict[str, Any] | None:  # the contact shows in HubSpot a moment before its link commits
        answer = requests.post(f"{world.crm}/_sandbox/card/fetch", json={"url": url}, timeout=20).json()
        assert answer["status"] == 200, answer
        return dict(answer) if answer["body"]["link"]["state"] == "linked" else None

    answer = wait_for(fetched, what="the card to show the linked customer")
    assert answer["body"]["summary"]["currency"] == "USD"
    panel = requests.get(answer["body"]["panel_url"], timeout=10)
    assert panel.status_code == 200 and "Card Holder" in panel.text
    forged = requests.get(url + "&portalId=62515", timeout=10)
    assert forged.status_code == 401


def test_a_company_only_customer_waits_for_review_instead_of_failing(world: World) -> None:
    customer = world.create_customer(DisplayName="Only A Company Ltd", CompanyName="Only A Company Ltd")

    def reviewed() -> ContactLink | None:
        with create_app(world.settings).app_context():
            found = db.session.scalar(select(ContactLink).where(
                ContactLink.connection_id == world.connection_id, ContactLink.qbo_customer_id == customer["Id"]))
            db.session.remove()
        return found if found is not None and found.state == LinkState.REVIEW else None

    link = wait_for(reviewed, timeout=40, what="the company-only customer to wait in review")
    assert "person's name" in (link.review_reason or "")
    assert world.contacts() == []


def test_hubspot_merge_moves_the_link_and_archive_unlinks(world: World) -> None:
    kept = world.crm_user("POST", "/contacts", {"first_name": "Merge", "last_name": "Keeper",
                                                "email": "keeper@example.com"})
    wait_for(lambda: (world.link_of(kept["id"]) or ContactLink()).state == LinkState.LINKED, timeout=40,
             what="the first contact to link")
    other = world.crm_user("POST", "/contacts", {"first_name": "Merge", "last_name": "Other",
                                                 "email": "other@example.com"})
    merged = requests.post(f"{world.crm}/_sandbox/objects/contacts/merge", timeout=10, json={
        "primaryObjectId": kept["id"], "objectIdToMerge": other["id"]}).json()
    wait_for(lambda: (world.link_of(merged["id"]) or ContactLink()).state == LinkState.LINKED, timeout=40,
             what="the link to move to HubSpot's new record")
    requests.delete(f"{world.crm}/_sandbox/objects/contacts/{merged['id']}", timeout=10).raise_for_status()
    wait_for(lambda: (world.link_of(merged["id"]) or ContactLink()).state == LinkState.UNLINKED, timeout=40,
             what="the archived contact to be unlinked")
