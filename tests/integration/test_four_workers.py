"""Four worker processes, duplicate and out-of-order deliveries: each record ends at its last change, applied once.

The scale-out promise (README, Running on several hosts): any number of workers may drain at once. Drains of one
connection serialise on its lock, a redelivered notice is refused by the inbound table's unique key, a drain
claims each event once, and a late, older notice makes the drain read the record's *current* state (QBO) or is
stale against the version the link holds (CRM). Here four ``crm-qb worker --burst`` processes work the same
queues while every change reaches crm-qb twice and shuffled.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select

from crm_qb.db import db
from crm_qb.models import EventStatus, InboundEvent
from crm_qb.runtime import runtime
from tests.conftest import settings_env
from tests.support import ROOT
from tests.support import sync as support
from tests.support.connections import crm_body, post_crm
from tests.support.sync import Harness

qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness
RECORDS = 6
ROUNDS = 3


def _worker_env(h: Harness) -> dict[str, str]:
    s = runtime(h.app).settings
    return {**os.environ, **settings_env(s), "CRM_QB_QBO_ENVIRONMENT": "local", "CRM_QB_LOG_LEVEL": "WARNING",
            "CRM_QB_QBO_CLIENT_ID": s.qbo_client_id or "", "CRM_QB_QBO_CLIENT_SECRET": s.qbo_client_secret or "",
            "CRM_QB_QBO_REDIRECT_URI": s.qbo_redirect_uri or "", "CRM_QB_QBO_DISCOVERY_URL": s.qbo_discovery_url or "",
            "CRM_QB_QBO_API_BASE": s.qbo_api_base or "", "CRM_QB_QBO_APP_BASE": s.qbo_app_base or ""}


def _four_workers(h: Harness) -> None:
    """Run four ``crm-qb worker --burst`` processes at once until the queues are empty."""
    env = _worker_env(h)
    workers = [subprocess.Popen([sys.executable, "-m", "crm_qb.cli", "worker", "--burst"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(4)]
    for worker in workers:
        _out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err.decode(errors="replace")[-2000:]




@pytest.mark.slow  # four worker processes, about 75 s per database: `scripts/test`, not CI
def test_four_workers_apply_every_record_in_order_and_once(harness: Harness) -> None:
    h, rng = harness, random.Random(16)
    h.crm_user("POST", "/limits", {"requests": None})
    customers = [h.qbo.create_customer(DisplayName=f"Four {n}", PrimaryEmailAddr={"Address": f"four{n}@x.test"})
                 for n in range(RECORDS)]
    h.qbo_hooks([h.qbo_event(c["Id"], "created", time=c["MetaData"]["LastUpdatedTime"]) for c in customers])
    _four_workers(h)
    pairs = {link.qbo_customer_id: str(link.crm_contact_id) for link in h.links()}
    assert len(pairs) == RECORDS

    qbo_events: list[dict[str, Any]] = []
    crm_events: list[dict[str, Any]] = []
    half = RECORDS // 2
    for round_ in range(ROUNDS):  # QBO edits the first half of the records, the CRM the other half
        for customer in customers[:half]:
            edited = h.qbo.edit_customer(customer["Id"], Notes=f"qbo {round_}")
            qbo_events.append(h.qbo_event(customer["Id"], time=edited["MetaData"]["LastUpdatedTime"]))
        for customer in customers[half:]:
            contact = h.crm_user("PATCH", f"/contacts/{pairs[customer['Id']]}", {"notes": f"crm {round_}"})
            crm_events.append({"id": str(uuid.uuid4()), "type": "contact.updated", "contact": contact,
                               "occurred_at": contact["updated_at"]})
    deliveries = [("qbo", e) for e in qbo_events] * 2 + [("crm", e) for e in crm_events] * 2
    rng.shuffle(deliveries)  # every notice twice, in no particular order
    h.qbo.reset_counts()
    for side, event in deliveries:
        if side == "qbo":
            h.qbo_hooks([event])
        else:  # the same event (same id) each time, as a CRM retrying a delivery sends it
            assert post_crm(h.client, h.connection_id, h.hook_secret, crm_body(event)).status_code == 202
    crm_writes_before = _crm_writes(h)
    _four_workers(h)

    last = f"{ROUNDS - 1}"
    for customer in customers[:half]:
        assert h.contact(pairs[customer["Id"]])["notes"] == f"qbo {last}"
    for customer in customers[half:]:
        assert h.qbo.customer(customer["Id"])["Notes"] == f"crm {last}"
    with h.app.app_context():
        rows = db.session.execute(select(InboundEvent.status, func.count()).group_by(InboundEvent.status)).all()
        statuses = {status: count for status, count in rows}
        most_attempts = db.session.scalar(select(func.max(InboundEvent.attempts)))
    # Each distinct notice stored once (the duplicates refused at ingress), each settled, none failed or retried.
    assert statuses == {EventStatus.PROCESSED: RECORDS + len(qbo_events) + len(crm_events)}
    assert most_attempts == 0
    # Exactly once on the far side: at most one write per change (coalesced changes write less, never more).
    assert 0 < _crm_writes(h) - crm_writes_before <= len(qbo_events)
    qbo_writes = h.qbo.requests_by_endpoint().get("POST /customer", 0)
    assert 0 < qbo_writes <= len(crm_events)


def _crm_writes(h: Harness) -> int:
    """``PATCH /contacts/{id}`` calls the reference CRM answered (crm-qb's writes of QBO changes)."""
    counts = h.crm_user("GET", "/requests")["endpoints"]
    return int(sum(n for endpoint, n in counts.items() if endpoint.startswith("PATCH /contacts/")))
