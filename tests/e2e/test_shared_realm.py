"""Two connections (two CRMs of one kind; HubSpot: two portals) on one QBO company: every QBO change reaches both,
each once, without a CDC poll. Runs against the reference CRM and the local HubSpot.

Issue 10 item 1: the first connection's drain used to mark the realm's event processed, so the second connection
found nothing pending and caught up only at its next CDC poll. The scheduler runs, as in production, but neither
connection's polls are due during the test (both are wired as just polled, tests/support/e2e.py ``first_synced``),
and the test checks at its end that none ran, so no poll can have helped.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from flask import Flask
from redis import Redis
from sqlalchemy import func, select

from crm_qb.app import create_app
from crm_qb.config import Settings
from crm_qb.db import db
from crm_qb.models import Connection, EventSource, EventStatus, InboundEvent
from tests.support import wait_for
from tests.support.e2e import Crm, World, running_world, second_crm

pytestmark = [pytest.mark.e2e, pytest.mark.hubspot_slow]  # tests/e2e/conftest.py


@pytest.fixture
def two(crm_kind: str, settings: Settings, tmp_path: Path, redis_client: Redis,
        spawn: Callable[..., subprocess.Popen[bytes]]) -> Iterator[tuple[World, Crm, int]]:
    """One QBO sandbox realm, two CRMs of ``crm_kind``, two connections on that realm; web, two workers and the
    scheduler. The second CRM and its connection's id come with the world."""
    with running_world(settings, tmp_path, spawn, crm_kind) as world, \
            second_crm(world, tmp_path, crm_kind, world.realm, spawn) as (crm, connection_id):
        yield world, crm, connection_id


def test_a_qbo_edit_reaches_both_connections_of_the_company_without_a_poll(two: tuple[World, Crm, int]) -> None:
    world, second, second_id = two
    app = create_app(world.settings)
    polled = _polled(app)
    customer = world.create_customer(DisplayName="Shared Customer", PrimaryEmailAddr={"Address": "shared@example.com"})
    wait_for(lambda: world.contact_with(email="shared@example.com"), timeout=60, what="the first CRM's contact")
    wait_for(lambda: second.contact_with(email="shared@example.com"), timeout=60, what="the second CRM's contact")

    edited_at = time.monotonic()
    world.edit_customer(customer["Id"], PrimaryPhone={"FreeFormNumber": "+1 555 0102"})
    wait_for(lambda: world.contact_with(phone="+1 555 0102"), timeout=60, what="the phone in the first CRM")
    first_at = time.monotonic()
    wait_for(lambda: second.contact_with(phone="+1 555 0102"), timeout=60, what="the phone in the second CRM")
    print(f"QBO edit reached the first CRM after {first_at - edited_at:.2f} s, the second after "
          f"{time.monotonic() - edited_at:.2f} s (no CDC poll runs)")

    wait_for(lambda: _pending(app) == 0, timeout=60, what="every event to settle (the CRMs' echo hooks too)")
    with app.app_context():
        rows = db.session.execute(
            select(InboundEvent.connection_id, InboundEvent.entity_id, func.count())
            .where(InboundEvent.source == EventSource.QBO, InboundEvent.status == EventStatus.PROCESSED)
            .group_by(InboundEvent.connection_id, InboundEvent.entity_id)).all()
        db.session.remove()
    # Each QBO change (create, edit) was delivered to each connection once: two deliveries per connection.
    assert {(row[0], row[1]): row[2] for row in rows} == {
        (world.connection_id, customer["Id"]): 2, (second_id, customer["Id"]): 2}
    # No catch-up poll of either side ran (a CRM poll's event syncs the pair, reading QBO, so it could carry the
    # edit too): routing alone brought it to the second CRM.
    assert _polled(app) == polled


def _polled(app: Flask) -> dict[int, tuple[datetime | None, datetime | None]]:
    """When each connection's QBO (CDC) poll and CRM poll last moved its cursor; a backfill moves the CDC one too."""
    with app.app_context():
        rows = db.session.execute(select(Connection.id, Connection.cdc_cursor, Connection.crm_polled_at)).all()
        db.session.remove()
    return {row[0]: (row[1], row[2]) for row in rows}


def _pending(app: Flask) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(InboundEvent).where(
            InboundEvent.status == EventStatus.PENDING))
        db.session.remove()
    return int(count or 0)
