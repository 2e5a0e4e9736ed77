"""Time-dependent sync rules, driven by the sandboxes' own clocks (issue 10 item 15).

Each side stamps its changes with its own clock (QBO's MetaData.LastUpdatedTime, the CRM's updated_at); the tests
move those clocks (``POST /_sandbox/clock`` on both sandboxes) to put the two changes of a conflict minutes apart,
or to stamp a QBO change before crm-qb's poll cursor, and check the rule that depends on it. Each test fails on a
one-line bug in that rule: the change times swapped, the configured conflict window ignored, the poll's cursor
overlap removed, a connection-wide ``crm_to_qbo`` direction that still writes to the CRM.
"""

from __future__ import annotations

import requests

from crm_qb.models import LinkState
from tests.support import sync as support
from tests.support.sync import Harness

qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness

MINUTES = 60


def _set_clock(base_url: str, offset_seconds: float) -> None:
    """Run a sandbox's clock ``offset_seconds`` from real time."""
    requests.post(f"{base_url}/_sandbox/clock", json={"offset_seconds": offset_seconds},
                  timeout=10).raise_for_status()


def _linked_pair(h: Harness, name: str) -> tuple[str, str]:
    customer = h.qbo.create_customer(DisplayName=name)
    h.qbo_hook(customer["Id"], "created")
    h.work()
    return customer["Id"], str(h.link_of_customer(customer["Id"]).crm_contact_id)


def _edit_both(h: Harness, customer_id: str, contact_id: str, *, qbo: dict[str, object], crm: dict[str, object],
               qbo_at: float, crm_at: float) -> None:
    """Edit the pair on both sides, each stamped by its own clock at the given offset, then announce both."""
    _set_clock(h.qbo.url, qbo_at)
    h.qbo.edit_customer(customer_id, **qbo)
    _set_clock(h.crm.url, crm_at)
    edited = h.crm_user("PATCH", f"/contacts/{contact_id}", crm)
    h.crm_hook("updated", edited)
    h.qbo_hook(customer_id)
    h.work()


def test_outside_the_window_the_later_change_wins_whichever_side_made_it(harness: Harness) -> None:
    h = harness
    customer_id, contact_id = _linked_pair(h, "Clock Person")

    # QBO's change is ten minutes after the CRM's: QBO wins by recency, not by the window.
    _edit_both(h, customer_id, contact_id, qbo={"Notes": "from QBO"}, crm={"notes": "from CRM"},
               qbo_at=10 * MINUTES, crm_at=0)
    assert h.contact(contact_id)["notes"] == h.qbo.customer(customer_id)["Notes"] == "from QBO"

    # Now the CRM's change is twenty minutes after QBO's: the CRM wins.
    _edit_both(h, customer_id, contact_id, qbo={"PrimaryPhone": {"FreeFormNumber": "111"}}, crm={"phone": "222"},
               qbo_at=20 * MINUTES, crm_at=40 * MINUTES)
    assert h.qbo.customer(customer_id)["PrimaryPhone"]["FreeFormNumber"] == h.contact(contact_id)["phone"] == "222"

    notes, phone = h.conflicts()
    assert (notes.field, notes.winner, notes.rule) == ("notes", "qbo", "recent_wins")
    assert (phone.field, phone.winner, phone.rule) == ("phone", "crm", "recent_wins")
    assert notes.qbo_changed_at is not None and notes.crm_changed_at is not None
    assert 9 * MINUTES < (notes.qbo_changed_at - notes.crm_changed_at).total_seconds() < 11 * MINUTES


def test_the_configured_conflict_window_decides_not_the_default(harness: Harness) -> None:
    h = harness
    h.set_sync(conflict_window_seconds=3600)
    customer_id, contact_id = _linked_pair(h, "Window Person")

    # The CRM's change is 30 minutes later: outside the default 120 s, inside this connection's hour.
    _edit_both(h, customer_id, contact_id, qbo={"Notes": "from QBO"}, crm={"notes": "from CRM"},
               qbo_at=0, crm_at=30 * MINUTES)
    assert h.contact(contact_id)["notes"] == h.qbo.customer(customer_id)["Notes"] == "from QBO"
    [conflict] = h.conflicts()
    assert (conflict.winner, conflict.rule) == ("qbo", "window_qbo_wins")

    h.set_sync(conflict_window_seconds=0)  # and a window of nothing: the later change wins, even by a minute
    _edit_both(h, customer_id, contact_id, qbo={"Notes": "QBO again"}, crm={"notes": "CRM again"},
               qbo_at=31 * MINUTES, crm_at=32 * MINUTES)
    assert h.qbo.customer(customer_id)["Notes"] == h.contact(contact_id)["notes"] == "CRM again"
    assert (h.conflicts()[-1].winner, h.conflicts()[-1].rule) == ("crm", "recent_wins")


def test_the_cdc_poll_catches_a_change_stamped_just_before_its_cursor(harness: Harness) -> None:
    from workers.sync_jobs import poll_qbo_connection

    h = harness
    _set_clock(h.qbo.url, -2 * MINUTES)  # QBO's clock two minutes behind crm-qb's: every QBO stamp is "late"
    customer_id, contact_id = _linked_pair(h, "Late Stamp")
    with h.app.app_context():
        poll_qbo_connection(h.connection_id)  # the cursor is now crm-qb's "now"
    h.qbo.edit_customer(customer_id, Notes="stamped before the cursor")  # LastUpdatedTime < the cursor
    with h.app.app_context():
        poll_qbo_connection(h.connection_id)
    assert h.contact(contact_id)["notes"] == "stamped before the cursor"


def test_a_crm_to_qbo_connection_never_writes_the_crm_for_a_linked_pair(harness: Harness) -> None:
    h = harness
    customer_id, contact_id = _linked_pair(h, "One Way")
    h.set_sync(direction="crm_to_qbo")
    before = h.contact(contact_id)

    _set_clock(h.qbo.url, 5 * MINUTES)  # QBO's edits are the most recent: only the direction keeps them out
    h.qbo.edit_customer(customer_id, Notes="QBO only", PrimaryPhone={"FreeFormNumber": "555"})
    h.qbo_hook(customer_id)
    h.work()
    h.qbo.edit_customer(customer_id, Active=False)
    h.qbo_hook(customer_id)
    h.work()
    fresh = h.qbo.create_customer(DisplayName="Never In The CRM")
    h.qbo_hook(fresh["Id"], "created")
    h.work()
    assert h.contact(contact_id) == before  # same version: nothing was written to the CRM
    assert not any(c["display_name"] == "Never In The CRM" for c in h.contacts())

    edited = h.crm_user("PATCH", f"/contacts/{contact_id}", {"website": "https://one.example"})
    h.crm_hook("updated", edited)
    h.work()
    assert h.qbo.customer(customer_id)["WebAddr"]["URI"] == "https://one.example"
    assert h.link_of_customer(customer_id).state == LinkState.LINKED
