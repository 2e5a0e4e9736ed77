"""The review page resolves what waits for a person; each action is checked on both sides afterwards.

Real QBO sandbox and reference CRM over HTTP, signed webhooks and hooks, a real RQ worker in burst mode.
"""

from __future__ import annotations

from typing import Any

import pytest

from crm_qb.models import LinkState
from tests.support import sync as support
from tests.support.console import admin, post, waiting
from tests.support.sync import Harness

# What this file tests does not depend on the database: its SQLite variants run in CI, its PostgreSQL ones with the
# slow tests (tests/conftest.py), to keep CI under 15 minutes.
pytestmark = pytest.mark.postgresql_slow


qbo_sandbox, crm_server, harness = support.qbo_sandbox, support.crm_server, support.harness


def _ambiguous(harness: Harness) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A QBO customer whose email two CRM contacts share: it waits for review, nothing is created."""
    first = harness.crm_user("POST", "/contacts", {"first_name": "Pat", "last_name": "Lee", "email": "pat@example.com",
                                                   "company": "Lee Tools"})
    second = harness.crm_user("POST", "/contacts", {"first_name": "Patricia", "last_name": "Lee",
                                                    "email": "PAT@example.com"})
    customer = harness.qbo.create_customer(DisplayName="Pat Lee", PrimaryEmailAddr={"Address": "pat@example.com"},
                                           Notes="pays by check")
    harness.qbo_hook(customer["Id"], "created")
    harness.work()
    [link] = waiting(harness)
    assert link.qbo_customer_id == customer["Id"] and set(link.review_candidates) == {first["id"], second["id"]}
    assert len(harness.contacts()) == 2
    return customer, first, second


def test_the_page_shows_why_and_the_candidates_side_by_side(harness: Harness) -> None:
    _customer, _first, _second = _ambiguous(harness)
    admin(harness)
    html = harness.client.get(f"/admin/connections/{harness.connection_id}/review").get_data(as_text=True)
    assert "several CRM contacts match by email" in html
    for text in ("Pat Lee", "Patricia Lee", "pat@example.com", "Lee Tools", "Link to Patricia Lee",
                 "Create new CRM contact"):
        assert text in html, text
    assert "USD 0" in html  # the customer's balance, beside the candidates


def test_link_to_the_chosen_candidate_writes_the_first_link_on_both_sides(harness: Harness) -> None:
    customer, first, second = _ambiguous(harness)
    csrf = admin(harness)
    [link] = waiting(harness)
    answer = post(harness, f"review/{link.id}", csrf_token=csrf, action="link", candidate=second["id"])
    assert answer.status_code == 303
    harness.work()
    linked = harness.link_of_customer(customer["Id"])
    assert linked.state == LinkState.LINKED and linked.crm_contact_id == second["id"]
    assert harness.contact(second["id"])["notes"] == "pays by check"  # filled from QuickBooks at first link
    assert harness.contact(second["id"])["display_name"] == "Pat Lee"
    assert harness.contact(first["id"])["notes"] in (None, "")  # the other candidate is untouched
    assert harness.qbo.customer(customer["Id"])["DisplayName"] == "Pat Lee"  # never renamed by a first link
    assert [e.diff.get("note") for e in harness.audit("link.chosen")] == [f"chosen by admin session {_nonce(harness)}"]


def test_create_new_makes_a_contact_and_links_it(harness: Harness) -> None:
    customer, first, second = _ambiguous(harness)
    csrf = admin(harness)
    [link] = waiting(harness)
    assert post(harness, f"review/{link.id}", csrf_token=csrf, action="create").status_code == 303
    harness.work()
    linked = harness.link_of_customer(customer["Id"])
    assert linked.state == LinkState.LINKED and linked.crm_contact_id not in (first["id"], second["id"])
    created = harness.contact(str(linked.crm_contact_id))
    assert created["display_name"] == "Pat Lee" and created["email"] == "pat@example.com"
    assert len(harness.contacts()) == 3 and not waiting(harness)


def test_ignore_leaves_it_unlinked_and_later_changes_write_nothing(harness: Harness) -> None:
    customer, _first, _second = _ambiguous(harness)
    csrf = admin(harness)
    [link] = waiting(harness)
    assert post(harness, f"review/{link.id}", csrf_token=csrf, action="ignore").status_code == 303
    harness.work()
    assert harness.link_of_customer(customer["Id"]).state == LinkState.UNLINKED
    harness.qbo.edit_customer(customer["Id"], Notes="changed later")
    harness.qbo_hook(customer["Id"])
    harness.work()
    assert len(harness.contacts()) == 2
    assert all(c["notes"] in (None, "") for c in harness.contacts())
    assert harness.qbo.customer(customer["Id"])["Notes"] == "changed later"


def test_a_wrong_action_or_candidate_is_refused_and_nothing_is_queued(harness: Harness) -> None:
    _ambiguous(harness)
    csrf = admin(harness)
    [link] = waiting(harness)
    refused = post(harness, f"review/{link.id}", csrf_token=csrf, action="link", candidate="nobody")
    assert refused.status_code == 409 and "not one of this record" in refused.get_data(as_text=True)
    assert post(harness, f"review/{link.id}", csrf_token=csrf, action="merge").status_code == 409
    assert post(harness, f"review/{link.id}", csrf_token="forged", action="ignore").status_code == 403
    harness.work()
    assert len(waiting(harness)) == 1


def test_a_waiting_record_is_settled_when_a_candidate_changes(harness: Harness) -> None:
    customer, first, second = _ambiguous(harness)
    edited = harness.crm_user("PATCH", f"/contacts/{first['id']}", {"email": "pat.other@example.com"})
    harness.crm_hook("updated", edited)
    harness.work()
    linked = harness.link_of_customer(customer["Id"])
    assert linked.state == LinkState.LINKED and linked.crm_contact_id == second["id"]
    assert harness.contact(second["id"])["notes"] == "pays by check"
    assert harness.qbo.customer(customer["Id"])["DisplayName"] == "Pat Lee"


def test_a_waiting_record_is_settled_when_it_changes_itself(harness: Harness) -> None:
    customer, first, second = _ambiguous(harness)
    harness.qbo.edit_customer(customer["Id"], PrimaryEmailAddr={"Address": "pat.new@example.com"})
    harness.qbo_hook(customer["Id"])
    harness.work()
    linked = harness.link_of_customer(customer["Id"])  # no contact has the new email, none has the name: created
    assert linked.state == LinkState.LINKED and linked.crm_contact_id not in (first["id"], second["id"])
    assert harness.contact(str(linked.crm_contact_id))["email"] == "pat.new@example.com"


def test_a_job_left_in_review_by_an_older_rule_leaves_it_when_looked_at_again(harness: Harness) -> None:
    parent = harness.qbo.create_customer(DisplayName="Acme", PrimaryEmailAddr={"Address": "ap@acme.example"})
    harness.qbo_hook(parent["Id"], "created")
    harness.work()
    job = harness.qbo.create_customer(DisplayName="Acme Roof", Job=True, ParentRef={"value": parent["Id"]},
                                      PrimaryEmailAddr={"Address": "ap@acme.example"})
    harness.qbo_hook(job["Id"], "created")
    harness.work()
    from crm_qb.db import db
    from crm_qb.models import ContactLink

    with harness.app.app_context():  # what the rule before sub-customers did: the job waited with its parent's contact
        db.session.add(ContactLink(connection_id=harness.connection_id, qbo_customer_id=job["Id"],
                                   state=LinkState.REVIEW, review_reason="several CRM contacts match by email",
                                   review_candidates=[harness.link_of_customer(parent["Id"]).crm_contact_id]))
        db.session.commit()
    csrf = admin(harness)
    [link] = waiting(harness)
    assert post(harness, f"review/{link.id}", csrf_token=csrf, action="recheck").status_code == 303
    harness.work()
    assert not waiting(harness)
    assert [c["display_name"] for c in harness.contacts()] == ["Acme"]  # no contact made for the job


def _nonce(harness: Harness) -> str:
    from crm_qb.web import signing

    cookie = harness.client.get_cookie(signing.SESSION_COOKIE)
    assert cookie is not None
    session = signing.read_session(harness.app.config["SECRET_KEY"], cookie.value, harness.connection_id)
    return session.nonce[:8]


def test_the_page_still_opens_when_quickbooks_must_be_reconnected(harness: Harness) -> None:
    _ambiguous(harness)
    admin(harness)
    from crm_qb.db import db
    from crm_qb.models import Connection, QboStatus

    with harness.app.app_context():
        row = db.session.get(Connection, harness.connection_id)
        assert row is not None
        row.qbo_status, row.qbo_status_reason = QboStatus.NEEDS_RECONNECT, "refresh token revoked"
        db.session.commit()
    answer = harness.client.get(f"/admin/connections/{harness.connection_id}/review")
    html = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "could not be read from QuickBooks" in html
    assert "Patricia Lee" in html  # the CRM side is still shown
