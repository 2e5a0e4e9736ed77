"""Two connections (two CRMs) on one QBO company: every QBO change reaches both, each once, without a CDC poll.

Issue 10 item 1: the first connection's drain used to mark the realm's event processed, so the second connection
found nothing pending and caught up only at its next CDC poll. No scheduler runs here, so no CDC poll can help.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask
from redis import Redis
from sqlalchemy import func, select

from crm_qb.app import create_app
from crm_qb.config import Settings
from crm_qb.connections import create_connection
from crm_qb.db import db
from crm_qb.models import EventSource, EventStatus, InboundEvent
from crm_qb.runtime import runtime
from tests.support import free_port, stop, wait_for
from tests.support.e2e import World, start_sandbox, wire
from tests.support.sync import connect_qbo

pytestmark = pytest.mark.e2e


class Second:
    """The second CRM and its connection to the same company."""

    def __init__(self, api_base: str, token: str, connection_id: int) -> None:
        self.api_base, self.token, self.connection_id = api_base, token, connection_id

    def contact_with(self, **wanted: object) -> dict[str, object] | None:
        """The one contact of the second CRM whose fields include ``wanted``, else None."""
        answer = requests.get(f"{self.api_base}/contacts?limit=1000", timeout=10,
                              headers={"Authorization": f"Bearer {self.token}"})
        found = [c for c in answer.json()["contacts"] if all(c.get(k) == v for k, v in wanted.items())]
        return found[0] if len(found) == 1 else None


@pytest.fixture
def two(settings: Settings, tmp_path: Path, redis_client: Redis,
        spawn: Callable[..., subprocess.Popen[bytes]]) -> Iterator[tuple[World, Second]]:
    """One QBO sandbox realm, two reference CRMs, two connections on that realm; web and two workers, no scheduler."""
    sandboxes = []
    qbo_port, crm_port, crm2_port, web_port = free_port(), free_port(), free_port(), free_port()
    qbo_proc, qbo_info = start_sandbox(["crm_qb.cli", "sandbox", "qbo", "--port", str(qbo_port)], tmp_path / "qbo.log")
    crm_proc, crm_info = start_sandbox(["crm_qb.sandbox.crm.server", "--port", str(crm_port)], tmp_path / "crm.log")
    crm2_proc, crm2_info = start_sandbox(["crm_qb.sandbox.crm.server", "--port", str(crm2_port)],
                                         tmp_path / "crm2.log")
    sandboxes += [qbo_proc, crm_proc, crm2_proc]
    try:
        world = wire(settings, tmp_path, spawn, qbo_info, crm_info, web_port)
        app = create_app(world.settings)
        with app.app_context():
            made = create_connection(runtime(app).secrets, crm_url=crm2_info["api_base"], crm_token=crm2_info["token"])
            second_id, secret = made.connection.id, made.crm_hook_secret
            db.session.remove()
        connect_qbo(app, second_id, world.realm)
        requests.post(f"{crm2_info['api_base']}/_sandbox/hooks",
                      json={"url": f"{world.web}/webhooks/crm/{second_id}", "secret": secret},
                      timeout=10).raise_for_status()
        yield world, Second(str(crm2_info["api_base"]), str(crm2_info["token"]), second_id)
    finally:
        for process in sandboxes:
            stop(process)


def test_a_qbo_edit_reaches_both_connections_of_the_company_without_a_poll(two: tuple[World, Second]) -> None:
    world, second = two
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

    app = create_app(world.settings)
    wait_for(lambda: _pending(app) == 0, timeout=60, what="every event to settle (the CRMs' echo hooks too)")
    with app.app_context():
        rows = db.session.execute(
            select(InboundEvent.connection_id, InboundEvent.entity_id, func.count())
            .where(InboundEvent.source == EventSource.QBO, InboundEvent.status == EventStatus.PROCESSED)
            .group_by(InboundEvent.connection_id, InboundEvent.entity_id)).all()
        db.session.remove()
    # Each QBO change (create, edit) was delivered to each connection once: two deliveries per connection.
    assert {(row[0], row[1]): row[2] for row in rows} == {
        (world.connection_id, customer["Id"]): 2, (second.connection_id, customer["Id"]): 2}


def _pending(app: Flask) -> int:
    with app.app_context():
        count = db.session.scalar(select(func.count()).select_from(InboundEvent).where(
            InboundEvent.status == EventStatus.PENDING))
        db.session.remove()
    return int(count or 0)
